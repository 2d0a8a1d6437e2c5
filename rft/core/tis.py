"""Sampler/trainer mismatch: the log-prob gap and truncated importance sampling (TIS).

A rollout engine (vLLM) samples with its own kernels and dtype, so the probability it gave a
sampled token, π_sampler(y_t), differs a little from the one the trainer computes for the same
weights, π_trainer(y_t) (the PPO "old" log-prob). The PPO / GRPO ratio ρ_t = π_θ / π_trainer
assumes the data came from π_trainer; it came from π_sampler. TIS (Yao et al. 2025, "Your
efficient RL framework secretly brings you off-policy RL training"; verl and TRL implement it)
weights each token's policy loss by the importance ratio of the two, truncated at C:

    w_t = min(π_trainer(y_t) / π_sampler(y_t), C)        (no gradient)
    loss = aggregate_t( w_t · ℓ_t )                       ℓ_t the clipped surrogate term

Because w_t ≥ 0, w_t · max(-A ρ, -A clip(ρ)) = max(-(w_t A) ρ, -(w_t A) clip(ρ)): weighting the
per-token clipped loss is the same as scaling the token's advantage by w_t, which is how the
PPO module applies it. Both log-probs are of the untempered, unfiltered distribution (vLLM's
``raw_logprobs``, rft's ``logprobs_from_logits``), so the gap measures numerics only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rft.core.masked import masked_mean


def tis_weights(trainer_logp: Tensor, sampler_logp: Tensor, cap: float) -> Tensor:
    """w_t = min(exp(trainer_logp - sampler_logp), cap), detached.

    trainer_logp, sampler_logp: (B, T) log-probs of the sampled tokens. Returns (B, T) float32.
    Positions outside the caller's mask get a weight too; the loss's mask removes them.
    """
    log_ratio = (trainer_logp.detach() - sampler_logp.detach()).float()
    # clamp before exp: a huge gap on a padded position must not overflow to inf
    return log_ratio.clamp(max=20.0).exp().clamp(max=cap)


@torch.no_grad()
def logprob_gap_stats(
    trainer_logp: Tensor, sampler_logp: Tensor, mask: Tensor, cap: float | None = None
) -> dict[str, float]:
    """What the mismatch looks like over the valid tokens of a rollout.

    trainer_logp, sampler_logp, mask: (B, T). Returns ``rollout/logprob_gap_mean`` (mean
    |log π_trainer - log π_sampler|), ``rollout/logprob_gap_max``, ``rollout/logprob_gap_kl``
    (mean of log π_sampler - log π_trainer over the sampled tokens: a k1 estimate of
    KL(π_sampler ‖ π_trainer)), and with a ``cap`` the TIS weights' mean and the share of
    tokens whose ratio the cap truncated.
    """
    gap = (trainer_logp - sampler_logp).float()
    valid = mask.bool()
    if not valid.any():
        return {}
    stats = {
        "rollout/logprob_gap_mean": masked_mean(gap.abs(), mask).item(),
        "rollout/logprob_gap_max": gap.abs()[valid].max().item(),
        "rollout/logprob_gap_kl": masked_mean(-gap, mask).item(),
    }
    if cap is not None:
        w = tis_weights(trainer_logp, sampler_logp, cap)
        stats["rollout/tis_weight_mean"] = masked_mean(w, mask).item()
        stats["rollout/tis_truncated_share"] = masked_mean(
            (gap > math.log(cap)).float(), mask
        ).item()
    return stats
