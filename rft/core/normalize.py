"""Running score moments and score normalisation for the PPO family (docs/algorithms.md §14).

PPO's per-token reward is r_t = -β · k1_t, plus the sequence score R on the last token. β is an
absolute number, so how hard the KL penalty pulls depends on the score's scale: a reward whose
values differ by hundredths is drowned by a penalty that one of spread ~1 would barely notice.
Dividing R by its running standard deviation gives β the same meaning for any reward.

The moments run over EVERY score seen so far in the run (all ranks, all iterations), merged
batch by batch with Chan et al.'s parallel update of (count, mean, M2), which is exact: merging
a stream batch by batch gives the moments of the whole stream at once (to float64 rounding).
No config objects, no I/O.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SCORE_NORM_KINDS = ("none", "scale", "standardize")

STD_FLOOR = 1e-3
"""The smallest divisor ``normalize_scores`` uses. A constant reward has running std 0; without
a floor, ``scale`` would turn it into c / 0. With it, ``scale`` multiplies scores by at most
1 / STD_FLOOR and ``standardize`` maps a constant reward to exactly 0. 1e-3 sits well below the
spread of any reward worth learning from on a [0, 1] scale (the low-spread case that motivated
this feature has std ≈ 0.03), so real rewards are divided by their true std."""


class RunningMoments:
    """Count, mean and sum of squared deviations (M2) of every value passed to ``update``.

    State is three Python floats (float64), so it is identical on every rank that merges the
    same values and serialises to a plain dict for checkpoints. ``var`` / ``std`` use Bessel's
    correction (M2 / (count - 1)), the estimate of the reward's spread; they are 0 until two
    values were seen.
    """

    def __init__(self) -> None:
        self.count = 0.0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, x: Tensor) -> None:
        """Merge the values of ``x`` (any shape; all elements count) into the moments.

        Chan et al.: with batch moments (n_b, μ_b, M2_b) and δ = μ_b - μ,
            n ← n + n_b,  μ ← μ + δ n_b / n,  M2 ← M2 + M2_b + δ² n n_b / (n + n_b).
        An empty ``x`` changes nothing.
        """
        x = x.detach().flatten().to(torch.float64)
        n_b = float(x.numel())
        if n_b == 0:
            return
        mean_b = float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    @property
    def var(self) -> float:
        """Unbiased variance M2 / (count - 1); 0 with fewer than two values."""
        return self.m2 / (self.count - 1) if self.count >= 2 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.count, self.mean, self.m2 = float(d["count"]), float(d["mean"]), float(d["m2"])


def normalize_scores(
    scores: Tensor, moments: RunningMoments, kind: str, std_floor: float = STD_FLOOR
) -> Tensor:
    """Sequence scores (N,) -> the scores that enter the per-token reward (N,), same dtype.

    kind ``none``: unchanged; ``scale``: score / max(std, floor) (the mean stays, so a reward
    that is positive stays positive); ``standardize``: (score - mean) / max(std, floor).
    ``moments`` are read, not updated: the caller merges the current rollout first (see
    ``PPO.reward_scores``), so the first rollout is normalised by its own spread.
    """
    if kind == "none":
        return scores
    if kind not in SCORE_NORM_KINDS:
        raise ValueError(f"unknown score_norm {kind!r}; allowed: {', '.join(SCORE_NORM_KINDS)}")
    denom = max(moments.std, std_floor)
    shift = moments.mean if kind == "standardize" else 0.0
    return ((scores.double() - shift) / denom).to(scores.dtype)
