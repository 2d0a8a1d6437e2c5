"""Errors that reach the user as one clear message (run.py prints them without a traceback)."""


class RFTError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(RFTError):
    """A config value is wrong: the message names the key and the fix."""


class DataError(RFTError):
    """Input data is wrong: the message names the file (and line) and the fix."""


class RewardError(RFTError):
    """A reward function returned something unusable."""
