"""A weighted sum of rewards: R = Σ_i w_i R_i."""

from __future__ import annotations

from rft.errors import ConfigError


class WeightedSum:
    def __init__(self, terms: dict):
        from rft.reward.base import build_reward

        if not terms:
            raise ConfigError("reward.terms is empty: add at least one {weight, reward} entry.")
        self.terms = []
        for name, t in terms.items():
            if "reward" not in t:
                raise ConfigError(f"reward.terms.{name} needs a `reward:` config with a _target_.")
            self.terms.append((name, float(t.get("weight", 1.0)), build_reward(t["reward"])))

    def __call__(self, prompts, completions, references=None) -> list[float]:
        total = None
        for _, w, fn in self.terms:
            s = w * fn(prompts, completions, references)
            total = s if total is None else total + s
        return total.tolist()

    def pop_stats(self) -> dict[str, float]:
        """The stats of every term that reports any (a remote term: ``remote/...``)."""
        out: dict[str, float] = {}
        for _, _, fn in self.terms:
            out.update(fn.pop_stats())
        return out
