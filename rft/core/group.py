"""Group-baseline policy gradients: GRPO, Dr. GRPO, DAPO, RLOO, REINFORCE++, GSPO
(docs/algorithms.md §9), as pure tensor functions.

A batch holds B = n_groups × G completions, prompt-major: rows ``g·G .. g·G + G - 1`` are the G
samples of prompt g. No critic: a completion's advantage compares its reward with the other
samples of its prompt (or, for REINFORCE++, with the whole batch). The loss is PPO's clipped
surrogate with an asymmetric clip range; what differs between the family's members is

- the advantage estimator (``group_advantages``, ``batch_whitened_returns``),
- the ratio: per token, or one per sequence (``sequence_log_ratio``),
- the aggregation of per-token terms into a scalar (``aggregate``),
- where the KL to the reference enters (the reward, the loss, or nowhere) and its estimator
  (``kl_estimate``: Schulman's k1, k2, k3, docs/algorithms.md §10).

Everything here is a function of tensors; the config lives in rft/alg/group.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rft.core.masked import masked_mean, masked_sum, masked_whiten

ADVANTAGE_ESTIMATORS = ("group_norm", "group_mean", "leave_one_out")
AGGREGATIONS = ("seq_mean_token_mean", "token_mean", "constant", "seq_mean_token_sum")
KL_ESTIMATORS = ("k1", "k2", "k3")
# verl clamps the log-ratio before exponentiating in k3: exp(20) is already 5e8
_K3_LOG_RATIO_CLAMP = 20.0


# ----------------------------------------------------------------------------- advantages
def group_view(x: Tensor, group_size: int) -> Tensor:
    """(B,) -> (B / G, G), checking that B is a whole number of groups."""
    if x.ndim != 1 or x.shape[0] % group_size:
        raise ValueError(f"{tuple(x.shape)} is not a whole number of groups of {group_size}")
    return x.view(-1, group_size)


def group_std(scores: Tensor, group_size: int, unbiased: bool = True) -> Tensor:
    """Each group's reward std: (B,) -> (B / G,). A group of one has std 0."""
    g = group_view(scores.float(), group_size)
    if group_size == 1:
        return torch.zeros(g.shape[0], dtype=g.dtype, device=g.device)
    return g.std(dim=1, unbiased=unbiased)


def group_advantages(
    scores: Tensor,
    group_size: int,
    estimator: str,
    std_floor: float = 0.0,
    unbiased: bool = True,
) -> Tensor:
    """One advantage per completion from its group's rewards. scores: (B,) -> (B,).

    - ``group_norm`` (GRPO, DAPO, GSPO):  (r_i - mean_g) / max(std_g, std_floor).
      The floor replaces the usual ``std + eps``: with an eps of 1e-4 a group of continuous
      rewards that differ by 1e-6 gets advantages of ±0.01 .. ±1 depending on noise alone;
      with a floor, a group whose spread is below it is compared on the floor's scale.
    - ``group_mean`` (Dr. GRPO):  r_i - mean_g.
    - ``leave_one_out`` (RLOO):  r_i - mean_{j≠i} r_j = G / (G - 1) · (r_i - mean_g).
    A group whose rewards are all equal gets advantage 0 under every estimator: its samples
    carry no learning signal (Razin et al.'s vanishing gradient, docs/algorithms.md §5).
    """
    g = group_view(scores.float(), group_size)
    centred = g - g.mean(dim=1, keepdim=True)  # (n, G)
    if estimator == "group_mean":
        adv = centred
    elif estimator == "leave_one_out":
        if group_size < 2:
            raise ValueError("leave_one_out needs at least 2 samples per prompt")
        adv = centred * group_size / (group_size - 1)
    elif estimator == "group_norm":
        std = group_std(scores, group_size, unbiased)[:, None]
        adv = centred / std.clamp(min=std_floor) if std_floor > 0 else centred / std
        adv = torch.where(std > 0, adv, torch.zeros_like(adv))  # 0/0 of a constant group
    else:
        raise ValueError(f"unknown estimator {estimator!r}; allowed: {ADVANTAGE_ESTIMATORS}")
    return adv.reshape(-1)


def reward_to_go(rewards: Tensor, mask: Tensor) -> Tensor:
    """Undiscounted returns G_t = Σ_{u ≥ t} r_u over valid tokens. (B, T) -> (B, T), 0 on padding."""
    r = torch.where(mask.bool(), rewards, torch.zeros_like(rewards))
    returns = r.flip(-1).cumsum(-1).flip(-1)
    return torch.where(mask.bool(), returns, torch.zeros_like(returns))


def batch_whitened_returns(token_rewards: Tensor, mask: Tensor) -> Tensor:
    """REINFORCE++ advantages: per-token returns (γ = 1), whitened over every valid token of the
    batch (no group baseline). token_rewards, mask: (B, T) -> (B, T)."""
    return masked_whiten(reward_to_go(token_rewards, mask), mask)


def sequence_kl_penalised_scores(
    scores: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor, beta: float
) -> Tensor:
    """RLOO's KL in the reward: r_i - β Σ_t k1_t over the sequence. scores (B,); the rest (B, T)."""
    return scores.float() - beta * masked_sum(logp - ref_logp, mask, dim=-1)


def terminal_token_rewards(
    scores: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor, beta: float
) -> Tensor:
    """REINFORCE++'s per-token rewards: -β k1_t on every token, plus the score on the last valid
    one. scores (B,); logp, ref_logp, mask (B, T) -> (B, T), 0 on padding."""
    valid = mask.bool()
    T = mask.shape[-1]
    last = (valid * torch.arange(T, device=mask.device)).argmax(dim=-1)  # (B,)
    is_last = torch.nn.functional.one_hot(last, T).bool() & valid
    r = -beta * (logp - ref_logp) + torch.where(is_last, scores[:, None].float(), 0.0)
    return torch.where(valid, r, torch.zeros_like(r))


def overlong_shaping(lengths: Tensor, max_len: int, buffer: int, penalty: float = 1.0) -> Tensor:
    """DAPO's soft overlong punishment, added to the reward. lengths: (B,) -> (B,).

    0 up to L_max - buffer, then linear down to -penalty at L_max (and -penalty beyond)."""
    if buffer <= 0:
        return torch.zeros_like(lengths, dtype=torch.float32)
    start = max_len - buffer
    over = (lengths.float() - start).clamp(min=0)
    return -penalty * (over / buffer).clamp(max=1.0)


# ----------------------------------------------------------------------------- KL estimators
def kl_estimate(logp: Tensor, ref_logp: Tensor, kind: str) -> Tensor:
    """Per-token estimate of KL(π_θ || π_ref) from samples of π_θ (docs/algorithms.md §10).

    With l = log π_θ(y_t) - log π_ref(y_t):  k1 = l;  k2 = l² / 2;  k3 = (e^{-l} - 1) + l.
    (B, T) -> (B, T). k3's l is clamped to ±20 before the exponential (as verl does).
    """
    log_ratio = logp - ref_logp
    if kind == "k1":
        return log_ratio
    if kind == "k2":
        return 0.5 * log_ratio**2
    if kind == "k3":
        lr = log_ratio.clamp(-_K3_LOG_RATIO_CLAMP, _K3_LOG_RATIO_CLAMP)
        return torch.expm1(-lr) + lr
    raise ValueError(f"unknown KL estimator {kind!r}; allowed: {KL_ESTIMATORS}")


# ----------------------------------------------------------------------------- ratio and loss
def sequence_log_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor, level: str) -> Tensor:
    """log s_i of a sequence-level ratio. (B, T) -> (B,).

    ``sequence_sum`` (RLOO): Σ_t (log π_θ - log π_old), the ratio of whole-sequence likelihoods.
    ``sequence_mean`` (GSPO): the mean over the sequence's tokens, a length-normalised ratio.
    """
    diff = logp - old_logp
    if level == "sequence_sum":
        return masked_sum(diff, mask, dim=-1)
    if level == "sequence_mean":
        return masked_mean(diff, mask, dim=-1)
    raise ValueError(f"unknown sequence ratio level {level!r}")


def clipped_surrogate(
    log_ratio: Tensor, advantages: Tensor, clip_low: float, clip_high: float
) -> tuple[Tensor, Tensor]:
    """ℓ = -min(ρ A, clip(ρ, 1 - ε_low, 1 + ε_high) A) elementwise, ρ = exp(log_ratio).

    Any matching shapes: per token (B, T) or per sequence (B,). Returns (ℓ, ρ)."""
    ratio = log_ratio.exp()
    loss1 = -advantages * ratio
    loss2 = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    return torch.max(loss1, loss2), ratio


def clip_fractions(
    ratio: Tensor, advantages: Tensor, clip_low: float, clip_high: float
) -> dict[str, Tensor]:
    """Where the clip is active (its gradient is 0), as boolean tensors of ratio's shape:
    ``low``: ρ < 1 - ε_low with A < 0; ``high``: ρ > 1 + ε_high with A > 0; ``region``: either
    (TRL's clip_ratio/low_mean, high_mean, region_mean)."""
    low = (ratio < 1 - clip_low) & (advantages < 0)
    high = (ratio > 1 + clip_high) & (advantages > 0)
    return {"low": low, "high": high, "region": low | high}


def aggregate(
    per_token: Tensor,
    mask: Tensor,
    mode: str,
    max_len: int | None = None,
    n_sequences: int | None = None,
    n_tokens: float | None = None,
) -> Tensor:
    """Reduce per-token terms (B, T) to the scalar loss.

    - ``seq_mean_token_mean`` (GRPO): (1/N) Σ_i (Σ_t ℓ_it / |y_i|)
    - ``token_mean`` (DAPO, REINFORCE++): Σ_it ℓ_it / Σ_i |y_i|
    - ``constant`` (Dr. GRPO): Σ_it ℓ_it / (N · L_max), no length bias
    - ``seq_mean_token_sum``: (1/N) Σ_i Σ_t ℓ_it
    For gradient accumulation over micro-batches of one minibatch, pass the minibatch's
    ``n_sequences`` (N) and ``n_tokens`` (Σ|y_i|): each micro-batch's value is then its share of
    the minibatch loss, and their sum equals the loss of the whole minibatch at once.
    """
    n = per_token.shape[0] if n_sequences is None else n_sequences
    if mode == "seq_mean_token_mean":
        return masked_mean(per_token, mask, dim=-1).sum() / n
    if mode == "seq_mean_token_sum":
        return masked_sum(per_token, mask, dim=-1).sum() / n
    if mode == "token_mean":
        total = mask.sum().clamp(min=1) if n_tokens is None else max(float(n_tokens), 1.0)
        return masked_sum(per_token, mask) / total
    if mode == "constant":
        if not max_len:
            raise ValueError("aggregation 'constant' needs max_len")
        return masked_sum(per_token, mask) / (n * max_len)
    raise ValueError(f"unknown aggregation {mode!r}; allowed: {AGGREGATIONS}")
