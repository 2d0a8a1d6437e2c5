"""Errors that reach the user as one clear message (run.py prints them without a traceback)."""


class RFTError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(RFTError):
    """A config value is wrong: the message names the key and the fix."""


class DataError(RFTError):
    """Input data is wrong: the message names the file (and line) and the fix."""


class RewardError(RFTError):
    """A reward function returned something unusable."""


class DiskFullError(RFTError):
    """The disk filled up while rft wrote a file: the message names the folder, the last
    checkpoint (intact: every save is atomic) and that the same command resumes from it."""


class RemoteError(RFTError):
    """A server rft calls over HTTP (a remote guide, reward model or judge: rft.remote) is
    unreachable, kept failing after its retries, hit the run's request / token cap, or answered
    something unusable: the message names the server, the request and what to do."""


class UserCodeError(RFTError):
    """A callable the config names (a reward, a task, ...) raised: the message names it
    (module:qualname), gives its exception and the user's own frames, not rft's stack."""


# Frames of these packages are rft's machinery, not the user's code.
_INTERNAL = ("rft", "hydra", "omegaconf", "lightning", "pytorch_lightning", "functools")


def callable_name(fn) -> str:
    """``module:qualname`` of a function, a functools.partial of one, or a callable instance."""
    import functools

    while isinstance(fn, functools.partial):
        fn = fn.func
    obj = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def is_user_code(fn) -> bool:
    """True for a callable outside rft (a bug in rft's own code keeps its full traceback)."""
    module = callable_name(fn).split(":")[0]
    return module != "rft" and not module.startswith("rft.")


def _is_internal(filename: str) -> bool:
    import sys
    from pathlib import Path

    parts = Path(filename).parts
    if any(p in _INTERNAL for p in parts):
        return True
    return Path(filename).name == "functools.py" and str(filename).startswith(sys.prefix)


def user_frames(exc: BaseException, limit: int = 6) -> str:
    """The traceback of ``exc`` from the first frame of the user's code on (rft's, Hydra's
    and Lightning's callers dropped), as ``File "...", line N, in f`` lines with their source."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    start = 0
    for i, fr in enumerate(frames):
        if _is_internal(fr.filename):
            start = i + 1
    shown = frames[start:][-limit:] or frames[-1:]
    return "".join(traceback.format_list(shown)).rstrip()


def user_code_error(what: str, fn, exc: BaseException, fix: str = "") -> UserCodeError:
    """One error for an exception raised inside the user's ``fn``: what it is (``reward``,
    ``task``), its name, the exception and the user's own frames."""
    msg = f"{what} {callable_name(fn)} raised {type(exc).__name__}: {exc}"
    frames = user_frames(exc)
    if frames:
        msg += f"\n{frames}"
    return UserCodeError(f"{msg}\n{fix}".rstrip())


def instantiate(cfg, **kwargs):
    """hydra.utils.instantiate, but an RFTError raised by the target reaches the user as itself
    (Hydra would wrap it in an InstantiationException with a longer, less clear message), and
    an exception raised inside a user's own class or function (a task's ``__init__``, a reward
    class) becomes one UserCodeError that names it and shows the user's frames."""
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
        target = _user_target(cfg)
        if target is None or e.__cause__ is None or "Error locating target" in str(e):
            raise
        node = cfg._get_full_key("") if hasattr(cfg, "_get_full_key") else ""
        raise user_code_error(
            node or "_target_",
            target,
            e.__cause__,
            fix=f"Fix it, or set {node + '.' if node else ''}_target_ to another callable.",
        ) from None


def _user_target(cfg):
    """The object ``cfg._target_`` names when it is user code (None for rft's own)."""
    try:
        from hydra.utils import get_object

        obj = get_object(cfg.get("_target_"))
    except Exception:  # noqa: BLE001 - unimportable: Hydra's own error says so
        return None
    return obj if is_user_code(obj) else None
