"""Build a reward from its config and check what it returns."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence

import torch
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from rft.errors import (
    ConfigError,
    RewardError,
    RFTError,
    instantiate,
    is_user_code,
    user_code_error,
)

RewardFn = Callable[[list[str], list[str], list], Sequence[float]]

log = logging.getLogger(__name__)


class CheckedReward:
    """Calls a reward function and validates its output: one finite float per completion."""

    def __init__(
        self,
        fn: RewardFn,
        name: str = "reward",
        batch_size: int | None = None,
        key: str = "reward._target_",
    ):
        self.fn = fn
        self.name = name
        self.batch_size = batch_size
        self.key = key  # the config key that names fn, for error messages
        self.n_empty = 0  # empty (or whitespace-only) completions scored so far
        self.n_scored = 0

    def __call__(
        self, prompts: list[str], completions: list[str], references: list | None = None
    ) -> torch.Tensor:
        references = list(references) if references is not None else [None] * len(prompts)
        if not (len(prompts) == len(completions) == len(references)):
            raise RewardError(
                f"{self.name}: got {len(prompts)} prompts, {len(completions)} completions"
            )
        out = self._call(prompts, completions, references)
        if len(out) != len(completions):
            raise RewardError(
                f"reward {self.name} returned {len(out)} values for {len(completions)} completions: "
                "a reward must return exactly one float per completion, in order."
            )
        scores = torch.as_tensor([float(v) for v in out], dtype=torch.float32)
        self._note_empty(completions, scores)
        bad = (~torch.isfinite(scores)).nonzero().flatten().tolist()
        if bad:
            i = bad[0]
            raise RewardError(
                f"reward {self.name} returned {len(bad)} non-finite value(s) (NaN/inf) out of "
                f"{len(scores)}; first at index {i} for completion {completions[i][:80]!r}. "
                "Make the reward return a finite float for every completion (e.g. 0.0 for empty text)."
            )
        return scores

    def pop_stats(self) -> dict[str, float]:
        """What the reward reports about itself since the previous call, for the history (a
        remote reward's requests, tokens, retries, latency: ``remote/<name>/...``); {} for a
        reward without a ``pop_stats`` of its own."""
        pop = getattr(self.fn, "pop_stats", None)
        return dict(pop()) if callable(pop) else {}

    def _note_empty(self, completions: list[str], scores: torch.Tensor) -> None:
        """An empty completion gets whatever its reward gives it (a metric: 0 by definition), but
        never silently: the first batch that holds one is logged with the score it got, and
        ``n_empty`` / ``n_scored`` keep the running count."""
        empty = [i for i, c in enumerate(completions) if not c.strip()]
        self.n_scored += len(completions)
        if empty and not self.n_empty:
            log.warning(
                "reward %s: %d of %d completions in this batch are empty (first scored %.3g); "
                "a metric reward gives empty text its floor. If this keeps happening, raise "
                "task.min_new_tokens or check the decoding (EOS/pad) settings.",
                self.name,
                len(empty),
                len(completions),
                float(scores[empty[0]]),
            )
        self.n_empty += len(empty)

    def _call(self, prompts, completions, references) -> list[float]:
        if not self.batch_size:
            return list(_as_list(self._score(prompts, completions, references)))
        out: list[float] = []
        for s in range(0, len(prompts), self.batch_size):
            e = s + self.batch_size
            out += list(_as_list(self._score(prompts[s:e], completions[s:e], references[s:e])))
        return out

    def _score(self, prompts, completions, references):
        """One call of the reward. An exception inside a user's own reward becomes one
        UserCodeError naming it, with the user's frames: rft's and Lightning's stack above it
        says nothing about the bug. rft's own rewards keep their full traceback."""
        try:
            return self.fn(prompts, completions, references)
        except RFTError:
            raise
        except Exception as e:
            if not is_user_code(self.fn):
                raise
            raise user_code_error(
                "reward",
                self.fn,
                e,
                fix=f"rft calls it as fn(prompts, completions, references) on lists of "
                f"{len(prompts)} strings (references: the task's, or None) and needs one float "
                f"per completion back. Fix the function named by {self.key}.",
            ) from None


def _as_list(x) -> list:
    if isinstance(x, torch.Tensor):
        return x.detach().float().flatten().tolist()
    try:
        return list(x)
    except TypeError:
        raise RewardError(
            f"a reward returned {type(x).__name__}, expected a list of floats"
        ) from None


def make_callable(cfg: DictConfig | dict) -> RewardFn:
    """Instantiate a reward config: a class is constructed with the config's keys; a function
    gets them bound as keyword arguments."""
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    target = cfg.get("_target_")
    if not target or target == "???":
        raise ConfigError(
            "reward._target_ is not set: name an importable reward callable, e.g. "
            "reward._target_=my_pkg.rewards.positive_words"
        )
    try:
        obj = get_object(target)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(
            f"reward._target_={target!r} could not be imported: {e}. "
            "Check the module path and that the module is importable (PYTHONPATH)."
        ) from None
    # _recursive_=False: nested reward configs (WeightedSum's terms) are built by the reward itself
    if inspect.isclass(obj):
        return instantiate(cfg, _recursive_=False)
    return instantiate(cfg, _partial_=True, _recursive_=False)


def build_reward(cfg: DictConfig | dict) -> CheckedReward:
    fn = make_callable(cfg)
    name = str((cfg.get("_target_") if hasattr(cfg, "get") else None) or fn).rsplit(".", 1)[-1]
    key = cfg._get_full_key("_target_") if hasattr(cfg, "_get_full_key") else ""
    key = f"{key or 'reward._target_'}={cfg.get('_target_')}"
    return CheckedReward(fn, name=name, key=key)
