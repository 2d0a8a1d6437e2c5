"""Build a reward from its config and check what it returns.

Extra statistics. A reward may expose numbers about the batches it scored (a verifier's share
of unparsable answers, a code reward's timeouts) by defining ``pop_stats() -> dict[str,
float]``: the values over the completions scored since its previous call, keys without a
prefix (``unparsable_share``). ``CheckedReward.pop_stats()`` returns them under ``reward/``
(``reward/unparsable_share``), and ``{}`` for a reward without the method, so a training loop
can add ``reward_fn.pop_stats()`` to every iteration's row whatever the reward is.
``WeightedSum`` passes its terms' on as ``reward/<term>/<key>``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence

import torch
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from rft.degenerate import Streak, degenerate, evidence_needed
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

NAMESPACED = ("remote/",)
"""Prefixes of statistic keys a reward names in a namespace of their own (a remote reward's or
judge's client accounting, rft.remote): they reach the history as named, not under reward/."""


class CheckedReward:
    """Calls a reward function and validates its output: one finite float per completion."""

    def __init__(
        self,
        fn: RewardFn,
        name: str = "reward",
        batch_size: int | None = None,
        key: str = "reward._target_",
        cfg=None,
        check_spread: bool = True,
    ):
        self.fn = fn
        self.name = name
        self.batch_size = batch_size
        self.key = key  # the config key that names fn, for error messages
        self.n_empty = 0  # empty (or whitespace-only) completions scored so far
        self.n_scored = 0
        self.cfg = cfg  # the reward's config node: its root says strict (rft.degenerate)
        # completions in a row that all scored the same are named once, after
        # degenerate_after of them (rft.degenerate: one all-fail batch of a hard task is chance;
        # a weighted sum's terms are not checked one by one: a constant term is fine if the sum
        # varies)
        self.check_spread = check_spread
        self.spread_warned = False
        self.alike = Streak()

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
                "a reward must return exactly one float per completion, in order. Fix the "
                f"function named by {self.key}."
            )
        scores = torch.as_tensor([self._number(v, i, completions) for i, v in enumerate(out)])
        scores = scores.float()
        self._note_empty(completions, scores)
        bad = (~torch.isfinite(scores)).nonzero().flatten().tolist()
        if bad:
            i = bad[0]
            raise RewardError(
                f"reward {self.name} returned {len(bad)} non-finite value(s) (NaN/inf) out of "
                f"{len(scores)}; first at index {i} for completion {completions[i][:80]!r}. "
                "Make the reward return a finite float for every completion (e.g. 0.0 for "
                f"empty text): the function named by {self.key}."
            )
        self._note_spread(scores)
        return scores

    def _number(self, v, i: int, completions: list[str]) -> float:
        """One returned value as a float: a real number (int, float, bool, a numpy scalar, a
        one-element tensor); anything else (a string, None, a list) is a RewardError."""
        import numbers

        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        elif hasattr(v, "item") and getattr(v, "size", None) == 1:  # numpy scalar / 1-array
            v = v.item()
        if isinstance(v, numbers.Real):
            return float(v)
        raise RewardError(
            f"reward {self.name} returned {type(v).__name__} {str(v)[:40]!r} at index {i} "
            f"(completion {completions[i][:60]!r}): a reward returns one float per completion. "
            f"Fix the function named by {self.key}."
        )

    def _note_spread(self, scores: torch.Tensor) -> None:
        """Completions that all score alike, over batches in a row: no advantage, no gradient
        (Razin et al.'s vanishing gradient at its extreme). Named once, when the streak reaches
        ``degenerate_after`` completions (rft.degenerate); under strict=true an error."""
        if not self.check_spread or self.spread_warned or len(scores) < 2:
            return
        alike = bool((scores == scores[0]).all())
        n = self.alike.add(len(scores), alike, float(scores[0]))
        need = evidence_needed(self.cfg)
        if n >= need:
            self.spread_warned = True
            degenerate(
                f"reward {self.name}: the last {n} completions it scored all scored "
                f"{float(scores[0]):.4g}, so their advantages (and the policy gradient) are 0."
                f" A constant reward cannot train; check the function named by {self.key} (a "
                "weighted sum's weights, a threshold every completion misses, the references "
                "it compares with). A pass/fail reward on a task the policy never passes shows"
                " the same: an easier task or a warm start (alg.warm_start.steps, an SFT"
                f" model). degenerate_after={need} sets how many in a row are named.",
                self.cfg,
                log,
            )

    def pop_stats(self) -> dict[str, float]:
        """The wrapped reward's statistics since the last call, as ``reward/<key>`` (see the
        module docstring), a remote reward's client accounting as it names it
        (``remote/<name>/...``); ``{}`` when it exposes none."""
        pop = getattr(self.fn, "pop_stats", None)
        if not callable(pop):
            return {}
        return {
            (k if k.startswith(NAMESPACED) else f"reward/{k}"): float(v) for k, v in pop().items()
        }

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
            return _as_list(self._score(prompts, completions, references), self.key)
        out: list[float] = []
        for s in range(0, len(prompts), self.batch_size):
            e = s + self.batch_size
            out += _as_list(self._score(prompts[s:e], completions[s:e], references[s:e]), self.key)
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


def _as_list(x, key: str = "reward._target_") -> list:
    """The values a reward returned: a list, a tuple, a 1-D tensor or array (a tensor of shape
    (n, 1) is flattened), any iterable."""
    if isinstance(x, torch.Tensor):
        return x.detach().float().flatten().tolist()
    if hasattr(x, "ndim") and hasattr(x, "tolist") and x.ndim <= 2:  # numpy
        return list(x.reshape(-1).tolist()) if x.ndim == 2 and x.shape[-1] == 1 else x.tolist()
    if isinstance(x, (str, bytes, dict)) or not hasattr(x, "__iter__"):
        raise RewardError(
            f"a reward returned {type(x).__name__} {str(x)[:40]!r}, expected a list of floats"
            f" (one per completion). Fix the function named by {key}."
        )
    return list(x)


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


def build_reward(cfg: DictConfig | dict, check_spread: bool = True) -> CheckedReward:
    """The reward a config names, wrapped in the checks every reward passes. ``check_spread``:
    name a batch in which every completion scores alike (off for a weighted sum's terms)."""
    fn = make_callable(cfg)
    name = str((cfg.get("_target_") if hasattr(cfg, "get") else None) or fn).rsplit(".", 1)[-1]
    key = cfg._get_full_key("_target_") if hasattr(cfg, "_get_full_key") else ""
    key = f"{key or 'reward._target_'}={cfg.get('_target_')}"
    return CheckedReward(fn, name=name, key=key, cfg=cfg, check_spread=check_spread)
