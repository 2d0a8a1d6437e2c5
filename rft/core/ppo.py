"""PPO losses for the token-level MDP (RL4LMs, §1 of docs/algorithms.md).

Every loss is a masked mean over valid tokens of the minibatch. Deviations from the references:
- value loss: as RL4LMs / stable-baselines3, the squared error of the (optionally) clipped
  prediction, without a 0.5 factor; TRL instead uses 0.5 · max(unclipped, clipped).
- advantages are not normalised here; the caller whitens them per minibatch (`masked_whiten`).
"""

import torch
from torch import Tensor

from rft.core.kl import approx_kl, kl_penalty_k1
from rft.core.masked import masked_mean, masked_var


def ppo_policy_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate loss  E_t[max(-A_t ρ_t, -A_t clip(ρ_t, 1-ε, 1+ε))].

    logp (with grad), old_logp, advantages, mask: (B, T). Returns a scalar loss and detached
    scalar stats `clipfrac` (share of valid tokens with |ρ - 1| > ε) and `approx_kl`.
    """
    logratio = logp - old_logp
    ratio = logratio.exp()
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    loss = masked_mean(torch.max(pg_loss1, pg_loss2), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean(((ratio - 1).abs() > clip_eps).float(), mask),
            "approx_kl": masked_mean(approx_kl(logratio), mask),
        }
    return loss, stats


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range_vf: float | None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Value loss E_t[(R_t - V_pred)^2], V_pred clipped to old_values ± clip_range_vf if set.

    values (with grad), old_values, returns, mask: (B, T). Returns a scalar loss (no 0.5 factor,
    as stable-baselines3) and the detached stat `value_clipfrac`.
    """
    if clip_range_vf is None:
        values_pred = values
        clipped = torch.zeros_like(values, dtype=torch.bool)
    else:
        values_pred = old_values + (values - old_values).clamp(-clip_range_vf, clip_range_vf)
        clipped = (values - old_values).abs() > clip_range_vf
    loss = masked_mean((returns - values_pred) ** 2, mask)
    return loss, {"value_clipfrac": masked_mean(clipped.float(), mask).detach()}


@torch.no_grad()
def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """1 - Var[returns - values] / Var[returns] over valid tokens; a detached scalar.

    1 is a perfect critic, 0 no better than a constant, < 0 worse. NaN when Var[returns] == 0
    (undefined; stable-baselines3 does the same), which a logger shows rather than hides.
    """
    var_returns = masked_var(returns, mask, unbiased=False)
    var_residual = masked_var(returns - values, mask, unbiased=False)
    ev = 1 - var_residual / var_returns
    return torch.where(var_returns == 0, torch.full_like(ev, float("nan")), ev)


def per_token_rewards(
    score: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor, beta: float
) -> tuple[Tensor, Tensor]:
    """RL4LMs reward r_t = -β (log π_θ - log π_ref)(y_t), plus the score at the last valid token.

    score: (B,); logp, ref_logp, mask: (B, T), all without grad. Returns (rewards, kl), both
    (B, T) and 0 on padding. A row with no valid token gets no score.
    """
    valid = mask.bool()
    kl = torch.where(valid, kl_penalty_k1(logp, ref_logp), torch.zeros_like(logp))
    T = mask.shape[-1]
    # Index of the last valid token: the largest position whose mask is set.
    last = (valid * torch.arange(T, device=mask.device)).argmax(dim=-1)  # (B,)
    is_last = torch.nn.functional.one_hot(last, T).bool() & valid  # (B, T)
    rewards = -beta * kl + torch.where(is_last, score[:, None].to(kl.dtype), torch.zeros_like(kl))
    return rewards, kl
