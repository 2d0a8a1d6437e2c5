"""Errors that reach the user as one clear message (run.py prints them without a traceback)."""


class RFTError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(RFTError):
    """A config value is wrong: the message names the key and the fix."""


class DataError(RFTError):
    """Input data is wrong: the message names the file (and line) and the fix."""


class RewardError(RFTError):
    """A reward function returned something unusable."""


def instantiate(cfg, **kwargs):
    """hydra.utils.instantiate, but an RFTError raised by the target reaches the user as itself
    (Hydra would wrap it in an InstantiationException with a longer, less clear message)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as _instantiate

    try:
        return _instantiate(cfg, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, RFTError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
