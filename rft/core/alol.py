"""A-LoL family of offline RL losses (Baheti et al., "Leftover-Lunch", ICLR 2024; §3 of
docs/algorithms.md).

Every loss takes per-token policy log-probs `logp` (B, T) with grad, the frozen reference's
`ref_logp` (B, T), a `mask` (B, T) and a per-example weight (B,) (the reward R or the advantage
A), and returns the PER-EXAMPLE loss (B,); the caller averages over the batch.

Following the reference code (abaheti95/LoL-RL):
- NLL is summed over tokens, not averaged.
- Importance ratios ρ are computed from detached log-probs, so gradients flow through the NLL
  only; ref_logp is always detached.
- A+ = max(A, 0) weights the NLL; in `a_lol_kl` the KL term applies to every example, including
  those with A ≤ 0 (the reference code adds it outside the advantage weighting).
- `clip_eps=None` means ρ is used unclipped.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from rft.core.masked import masked_sum


def _nll(logp: Tensor, mask: Tensor) -> Tensor:
    return -masked_sum(logp, mask, dim=-1)  # (B,)


def _clip(ratio: Tensor, clip_eps: float | None) -> Tensor:
    return ratio if clip_eps is None else ratio.clamp(1 - clip_eps, 1 + clip_eps)


def _positive_weight(advantage: Tensor, ratio: Tensor | float = 1.0) -> Tensor:
    # A+ · ρ built with `where`, so A ≤ 0 gives an exact 0 weight (and 0 gradient) even when an
    # unclipped ρ is inf, where max(A, 0) · ρ would give 0 · inf = NaN.
    advantage = advantage.detach()
    return torch.where(advantage > 0, advantage * ratio, 0.0)


def _sequence_ratio(logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    # ρ = π_θ(y|x) / π_ref(y|x), a constant weight: no gradient through either log-prob.
    return (
        masked_sum(logp.detach(), mask, dim=-1) - masked_sum(ref_logp.detach(), mask, dim=-1)
    ).exp()


def nll_loss(logp: Tensor, mask: Tensor) -> Tensor:
    """NLL_θ(y|x) = -Σ_t log π_θ(y_t|·). Returns (B,)."""
    return _nll(logp, mask)


def wbc_loss(logp: Tensor, mask: Tensor, reward: Tensor) -> Tensor:
    """Reward-weighted behaviour cloning: R · NLL_θ. Returns (B,)."""
    return reward.detach() * _nll(logp, mask)


def r_gold_loss(logp: Tensor, mask: Tensor, reward: Tensor, min_prob: float = 0.1) -> Tensor:
    """GOLD-style: R · Σ_t max(π_θ(y_t|·) detached, min_prob) · (-log π_θ(y_t|·)). Returns (B,)."""
    token_weight = logp.detach().exp().clamp(min=min_prob)  # (B, T)
    return reward.detach() * masked_sum(token_weight * -logp, mask, dim=-1)


def r_lol_loss(
    logp: Tensor, ref_logp: Tensor, mask: Tensor, reward: Tensor, clip_eps: float | None
) -> Tensor:
    """R · clip(ρ, 1-ε, 1+ε) · NLL_θ with the sequence ratio ρ detached. Returns (B,)."""
    ratio = _clip(_sequence_ratio(logp, ref_logp, mask), clip_eps)
    return reward.detach() * ratio * _nll(logp, mask)


def a_lol_loss(
    logp: Tensor, ref_logp: Tensor, mask: Tensor, advantage: Tensor, clip_eps: float | None
) -> Tensor:
    """A+ · clip(ρ, 1-ε, 1+ε) · NLL_θ with the sequence ratio ρ detached. Returns (B,)."""
    ratio = _clip(_sequence_ratio(logp, ref_logp, mask), clip_eps)
    return _positive_weight(advantage, ratio) * _nll(logp, mask)


def a_lol_seq_loss(
    logp: Tensor, ref_logp: Tensor, mask: Tensor, advantage: Tensor, clip_eps: float | None
) -> Tensor:
    """A+ · Σ_t clip(ρ_t, 1-ε, 1+ε) · (-log π_θ(y_t|·)) with per-token ratios ρ_t detached.

    Returns (B,).
    """
    # log ρ_t set to 0 on padding so that a stray inf ratio there cannot make a NaN gradient.
    token_logratio = torch.where(mask.bool(), logp.detach() - ref_logp.detach(), 0.0)  # (B, T)
    token_ratio = _clip(token_logratio.exp(), clip_eps)
    token_weight = _positive_weight(advantage[:, None], token_ratio)  # (B, T)
    return masked_sum(token_weight * -logp, mask, dim=-1)


def a_lol_ref_free_loss(logp: Tensor, mask: Tensor, advantage: Tensor) -> Tensor:
    """A+ · NLL_θ (ρ ≡ 1). Returns (B,)."""
    return _positive_weight(advantage) * _nll(logp, mask)


def a_lol_kl_loss(
    logp: Tensor, ref_logp: Tensor, mask: Tensor, advantage: Tensor, beta_kl: float
) -> Tensor:
    """A+ · NLL_θ + β_kl · (log π_θ(y|x) - log π_ref(y|x)); the KL term keeps its gradient
    through logp. Returns (B,).
    """
    seq_logratio = masked_sum(logp, mask, dim=-1) - masked_sum(ref_logp.detach(), mask, dim=-1)
    return _positive_weight(advantage) * _nll(logp, mask) + beta_kl * seq_logratio


ALOL_LOSSES: dict[str, Callable[..., Tensor]] = {
    "nll": nll_loss,
    "wbc": wbc_loss,
    "r_gold": r_gold_loss,
    "r_lol": r_lol_loss,
    "a_lol": a_lol_loss,
    "a_lol_seq": a_lol_seq_loss,
    "a_lol_ref_free": a_lol_ref_free_loss,
    "a_lol_kl": a_lol_kl_loss,
}


def good_priority_weights(values: Tensor, kind: str) -> Tensor:
    """Sampling probabilities for good_priority sampling (with replacement).

    values: (N,) advantages (kind="advantage": p ∝ max(A, 0), so A ≤ 0 is never drawn) or rewards
    (kind="reward": p ∝ R, negative rewards clamped to 0). Returns (N,) summing to 1.
    """
    if kind not in ("advantage", "reward"):
        raise ValueError(f"unknown good_priority kind {kind!r}; allowed: advantage, reward")
    weights = values.detach().double().clamp(min=0)
    if not (weights > 0).any():
        raise ValueError(
            f"good_priority sampling: all {weights.numel()} {kind} values are ≤ 0; "
            "no example has a positive weight to sample"
        )
    return (weights / weights.sum()).to(values.dtype)
