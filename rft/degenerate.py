"""Runs that go on but cannot learn, named: one warning when it first shows, or, with
``strict=true`` (for sweeps, where nobody reads the logs of every job), one error.

A run is degenerate when nothing it does can move the policy by the reward: a reward with no
spread over a batch (a constant reward, a weighted sum whose terms cancel), dynamic sampling that
keeps no group, a KL penalty that outweighs the reward's spread. The run itself may finish
"Done"; its policy loss is 0 (or only the KL's) every iteration.

    from rft.degenerate import degenerate
    if not flagged and (std == 0).all():
        degenerate("iteration 3: every group's rewards are equal ...", self.cfg)

The caller says when (the first iteration it shows, or at most every N iterations); this
module says how: a warning, or under strict an error the door prints as one line.
"""

from __future__ import annotations

import logging

from rft.errors import ConfigError

log = logging.getLogger("rft")

STRICT_KEY = "strict"


class DegenerateRunError(ConfigError):
    """A degenerate run under strict=true: the message says what shows it and the fix."""


def is_strict(cfg) -> bool:
    """``strict`` of the run's config; ``cfg`` is the whole config, any node of it (its root
    is looked up), a plain dict holding ``strict``, a bool, or None (not strict)."""
    if cfg is None or isinstance(cfg, bool):
        return bool(cfg)
    root = cfg._get_root() if hasattr(cfg, "_get_root") else cfg
    try:
        return bool(root.get(STRICT_KEY, False))
    except Exception:  # noqa: BLE001 - a node without a root config is not strict
        return False


def degenerate(msg: str, cfg, logger: logging.Logger | None = None) -> None:
    """Warn with ``msg`` (what shows the run cannot learn, and the fix), or raise it as a
    DegenerateRunError when the config sets strict=true."""
    if is_strict(cfg):
        raise DegenerateRunError(
            f"{msg} (strict=true makes this an error; strict=false lets such a run go on with"
            " a warning)"
        )
    (logger or log).warning("%s", msg)
