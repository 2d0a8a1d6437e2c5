"""A weighted sum of rewards: R = Σ_i w_i R_i."""

from __future__ import annotations

import math

from rft.errors import ConfigError
from rft.reward.base import NAMESPACED


def _weight(name: str, t) -> float:
    raw = t.get("weight", 1.0)
    try:
        w = float(raw)
    except (TypeError, ValueError):
        w = math.nan
    if not math.isfinite(w):
        raise ConfigError(
            f"reward.terms.{name}.weight={raw!r}: must be a finite number (the term's weight)."
        )
    return w


def _same_reward(t) -> str:
    """A term's reward config as text: two terms with the same text compute the same reward."""
    from omegaconf import OmegaConf

    r = t["reward"]
    return str(OmegaConf.to_container(r) if OmegaConf.is_config(r) else r)


def check_weights(terms: dict[str, tuple[float, str]]) -> None:
    """A sum that is 0 whatever the completion cannot train: every weight 0, or terms of the
    same reward whose weights cancel. Caught when the reward is built, before any model loads
    (rft.degenerate names what only a rollout shows: a sum constant over a batch)."""
    if all(w == 0 for w, _ in terms.values()):
        raise ConfigError(
            f"reward.terms: every weight is 0 ({', '.join(terms)}), so the reward is 0 for every"
            " completion and nothing can be learned. Give at least one term a non-zero weight."
        )
    by_reward: dict[str, list[str]] = {}
    for name, (_, text) in terms.items():
        by_reward.setdefault(text, []).append(name)
    nonzero = [names for names in by_reward.values() if sum(terms[n][0] for n in names) != 0]
    if not nonzero:
        groups = "; ".join(" + ".join(names) for names in by_reward.values() if len(names) > 1)
        raise ConfigError(
            f"reward.terms: the weights of terms with the same reward cancel ({groups}: their "
            "weights sum to 0), so the sum is 0 for every completion. Change the weights or "
            "drop those terms."
        )


class WeightedSum:
    def __init__(self, terms: dict):
        from rft.reward.base import build_reward

        if not terms:
            raise ConfigError("reward.terms is empty: add at least one {weight, reward} entry.")
        for name, t in terms.items():
            if not hasattr(t, "get") or "reward" not in t:
                raise ConfigError(f"reward.terms.{name} needs a `reward:` config with a _target_.")
        weights = {name: (_weight(name, t), _same_reward(t)) for name, t in terms.items()}
        check_weights(weights)
        # each term's own spread is not checked: a term constant over a batch is fine when the
        # sum varies (CheckedReward checks the sum)
        self.terms = [
            (name, weights[name][0], build_reward(t["reward"], check_spread=False))
            for name, t in terms.items()
        ]

    def __call__(self, prompts, completions, references=None) -> list[float]:
        total = None
        for _, w, fn in self.terms:
            s = w * fn(prompts, completions, references)
            total = s if total is None else total + s
        return total.tolist()

    def pop_stats(self) -> dict[str, float]:
        """Each term's statistics as ``<term>/<key>`` (rft/reward/base.py); a remote term's
        client accounting as it names it (``remote/<name>/...``)."""
        out = {}
        for name, _, fn in self.terms:
            for key, v in fn.pop_stats().items():
                namespaced = key.startswith(NAMESPACED)
                out[key if namespaced else f"{name}/{key.removeprefix('reward/')}"] = v
        return out
