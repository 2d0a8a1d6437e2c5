"""The one door every user error leaves through: ``rft: error: <one line>``, exit code 2.

run.py hands its Hydra entry point to ``cli``. Whatever raised (rft's own checks, Hydra or
OmegaConf while composing the overrides, the OS while creating the run folder or writing into a
folder a setting names, a full disk), ``user_error`` turns what a user can cause and fix into
one RFTError naming the key or file and the fix; anything else is a bug in rft or a library and
keeps its whole traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from rft.errors import ConfigError, RFTError

log = logging.getLogger("rft")

# OS errors a setting that names a path causes: the folder cannot be made, is a file, is
# read-only, the file is missing, ...
PATH_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ELOOP,
    }
)
EXPLAIN = "`rft explain <your overrides>` lists every knob with its type and help"


def one_line(text: str) -> str:
    """Hydra's and OmegaConf's multi-line messages as one line: their ``full_key:``,
    ``object_type=`` and search-path lines dropped (the key is already in the message), the
    rest joined; a list of options comma-separated."""
    keep: list[str] = []
    options: list[str] = []
    for raw in str(text).splitlines():
        line = raw.strip()
        if not line or line.startswith(("full_key:", "object_type=", "reference_type=")):
            continue
        if line.startswith(("Config search path", "provider=", "See https://hydra.cc")):
            continue
        if raw.startswith("\t") and keep and keep[-1].startswith("Available options"):
            options.append(line)
            continue
        keep.append(line.rstrip(":.") if line.endswith(":") else line)
    out = ". ".join(s.rstrip(".") for s in keep)
    if options:
        out += ": " + ", ".join(o for o in options if not o.endswith("_schema"))
    return out


def compose_error(exc: BaseException) -> ConfigError | None:
    """A Hydra / OmegaConf error from composing the config (a key the schema lacks, a value of
    the wrong type or outside an Enum, an option that does not exist, an override that does not
    parse, a mandatory value left unset) as one ConfigError; None for anything else."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(exc, (HydraException, OmegaConfBaseException)):
        return None
    parts = [one_line(str(exc))]
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        parts.append(one_line(str(cause)))
    msg = ": ".join(p for p in parts if p)
    if isinstance(exc, MissingConfigException):
        fix = "Pick one of the options listed (`python run.py --help` shows every group)."
    elif isinstance(exc, OverrideParseException):
        fix = "Quote a value with special characters: key='value' (and the whole override for the shell)."
    elif "not in" in msg:
        fix = f"Check the key's spelling ({EXPLAIN})."
    elif "Missing mandatory value" in msg:
        fix = f"Set it: key=<value> ({EXPLAIN})."
    else:
        fix = f"Fix the value ({EXPLAIN})."
    return ConfigError(f"{msg}. {fix}")


def _path_values(cfg) -> list[tuple[str, str]]:
    """(key, value) of every string setting of ``cfg`` that could name a file or folder."""
    from omegaconf import OmegaConf

    try:
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an unresolvable config: no key to name
        return []
    out: list[tuple[str, str]] = []

    def walk(node, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, str) and node and ("/" in node or node.startswith("~")):
            out.append((key, node))

    walk(container, "")
    return out


def key_for_path(cfg, filename: str) -> tuple[str, str] | None:
    """The setting whose value is ``filename`` or a folder above it (the longest such), as
    (key, value); None when no setting names it."""
    target = os.path.abspath(os.path.expanduser(str(filename)))
    best = None
    for key, value in _path_values(cfg):
        v = os.path.abspath(os.path.expanduser(value))
        if target == v or target.startswith(v.rstrip("/") + "/"):
            if best is None or len(v) > len(best[2]):
                best = (key, value, v)
    return best[:2] if best else None


def path_error(exc: OSError, cfg=None, started: bool = True) -> ConfigError | None:
    """An OS error on a path a setting names (or, before the run started, the run folder
    Hydra creates) as one ConfigError naming the key; None for anything else."""
    if exc.errno not in PATH_ERRNOS or not exc.filename:
        return None
    filename = str(exc.filename)
    what = f"{filename}: {exc.strerror or exc}"
    if not started:  # Hydra creates the run folder, writes .hydra/ and run.log into it
        return ConfigError(
            f"cannot write the run folder ({what}). Set hydra.run.dir=<a folder you can write "
            "to> (hydra.sweep.dir with --multirun), or run from such a folder."
        )
    found = key_for_path(cfg, filename) if cfg is not None else None
    if found is None:
        return None
    key, value = found
    return ConfigError(
        f"{key}={value!r}: {what}. Point {key} at a folder you can write to, or at a file that "
        "exists (relative paths are relative to the directory you run from)."
    )


def user_error(exc: BaseException, cfg=None, started: bool = True) -> RFTError | None:
    """What ``exc`` means to the user as one RFTError, or None when it is not theirs to fix."""
    from rft.io import disk_full_error, is_disk_full

    if isinstance(exc, RFTError):
        return exc
    if isinstance(exc, Exception) and is_disk_full(exc):
        return disk_full_error(getattr(exc, "filename", None) or Path.cwd() / "?")
    composed = compose_error(exc)
    if composed is not None and (not started or _config_access_error(exc)):
        # once the run has started, an OmegaConf error other than a value the user left unset
        # or a reference that does not resolve is rft's own bug: it keeps its traceback
        return composed
    if isinstance(exc, OSError):
        return path_error(exc, cfg, started)
    return None


def _config_access_error(exc: BaseException) -> bool:
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    return isinstance(exc, (MissingMandatoryValue, InterpolationResolutionError))


class _Run:
    """What the door knows once the task function has started: the run folder exists (Hydra
    made it) and the composed config names the paths an OS error can be traced back to."""

    started = False
    cfg = None


@contextlib.contextmanager
def task(cfg) -> Iterator[None]:
    """Around the task function's work: a user error is logged into the run's log (run.log),
    printed as one line and ends the process with exit code 2 (SystemExit passes Hydra's job
    runner, which would add its own "Error executing job" line to an exception); anything else
    is re-raised untouched."""
    _Run.started, _Run.cfg = True, cfg
    try:
        yield
    except Exception as e:
        err = user_error(e, cfg)
        if err is None:
            raise
        log.error("%s", err)
        exit_with(err)


def exit_with(err: RFTError) -> None:
    print(f"\nrft: error: {err}", file=sys.stderr)
    sys.exit(2)


def cli(main: Callable[[], object]) -> None:
    """Run a ``@hydra.main`` entry point behind the door. ``HYDRA_FULL_ERROR`` makes Hydra
    re-raise composition errors to here instead of printing them itself (with exit code 1)."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        from rft.alg.schemas import check_renamed

        check_renamed(sys.argv[1:])  # an old key's name: the new one, before Hydra's "not in"
        main()
    except Exception as exc:  # noqa: BLE001 - the user's (one line) or re-raised whole
        err = user_error(exc, _Run.cfg, started=_Run.started)
        if err is None:
            raise
        exit_with(err)
