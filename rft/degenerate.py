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

A condition chance alone produces is named only on evidence: every completion of a batch scoring
alike, or every group of a batch without a spread, is what a pass/fail reward gives on a hard
task whenever all the batch's samples fail (at a pass rate of 0.06, 24 completions all fail with
probability 0.23). Such a condition is counted in completions in a row (``Streak``) and named
once the streak reaches ``degenerate_after`` (default 128: at a pass rate of 0.06 chance gives
128 failures in a row with probability 4e-4), so a strict sweep does not stop at random.
"""

from __future__ import annotations

import logging

from rft.errors import ConfigError

log = logging.getLogger("rft")

STRICT_KEY = "strict"
EVIDENCE_KEY = "degenerate_after"
DEFAULT_EVIDENCE = 128


class DegenerateRunError(ConfigError):
    """A degenerate run under strict=true: the message says what shows it and the fix."""


def is_strict(cfg) -> bool:
    """``strict`` of the run's config; ``cfg`` is the whole config, any node of it (its root
    is looked up), a plain dict holding ``strict``, a bool, or None (not strict)."""
    if isinstance(cfg, bool):
        return cfg
    return bool(_root_get(cfg, STRICT_KEY, False))


def _root_get(cfg, key: str, default):
    if cfg is None or isinstance(cfg, bool):
        return default
    root = cfg._get_root() if hasattr(cfg, "_get_root") else cfg
    try:
        return root.get(key, default)
    except Exception:  # noqa: BLE001 - a node without a root config: the default
        return default


def evidence_needed(cfg) -> int:
    """``degenerate_after`` of the run's config (looked up like ``is_strict``), or 128."""
    return int(_root_get(cfg, EVIDENCE_KEY, DEFAULT_EVIDENCE))


class Streak:
    """Completions in a row that show a chance-prone degenerate condition, across batches.

    ``add(n, shows, value)``: a batch of ``n`` completions shows the condition or not; ``value``
    (optional) is what it shows (the one score of a constant batch): a streak only goes on
    while the value is the same. Returns the streak's length after the batch. A batch that
    does not show the condition ends the streak (its completions are counted from 0 again)."""

    def __init__(self) -> None:
        self.n = 0
        self.value = None

    def add(self, n: int, shows: bool, value=None) -> int:
        if not shows:
            self.n, self.value = 0, None
        elif self.n and value != self.value:
            self.n, self.value = n, value
        else:
            self.n, self.value = self.n + n, value
        return self.n


def degenerate(msg: str, cfg, logger: logging.Logger | None = None) -> None:
    """Warn with ``msg`` (what shows the run cannot learn, and the fix), or raise it as a
    DegenerateRunError when the config sets strict=true."""
    if is_strict(cfg):
        raise DegenerateRunError(
            f"{msg} (strict=true makes this an error; strict=false lets such a run go on with"
            " a warning)"
        )
    (logger or log).warning("%s", msg)
