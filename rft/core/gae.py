"""Generalised Advantage Estimation (Schulman et al., 2016) for the token-level MDP.

Vectorised: instead of the usual reversed loop over time, the discounted sum
A_t = Σ_k (γλ)^k δ_{t+k} is one matmul of δ with the (T, T) upper-triangular matrix
D[t, j] = (γλ)^(j - t). That is O(T^2) work but T is a completion length (≤ a few hundred) and
it is a single kernel instead of T small ones.

Episodes end after the last valid token: the value after it is 0 (no bootstrap), as in RL4LMs,
where every episode terminates at EOS or at the length limit.
"""

import torch
from torch import Tensor


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Advantages and returns for right-padded rollouts.

    rewards, values, mask: (B, T); mask is 1 on generated tokens, a contiguous prefix of each row.
    values should carry no gradient. Returns (advantages, returns), both (B, T) and 0 on padding.
    """
    mask = mask.to(rewards.dtype)
    T = rewards.shape[-1]
    # V(s_{t+1}), 0 past the last valid token: the episode terminates there.
    next_values = torch.cat(
        [values[:, 1:] * mask[:, 1:], values.new_zeros(values.shape[0], 1)], dim=1
    )
    deltas = (rewards + gamma * next_values - values) * mask  # (B, T)

    t = torch.arange(T, device=rewards.device)
    power = (t[None, :] - t[:, None]).clamp(min=0).to(rewards.dtype)  # (T, T): j - t
    # 0 ** 0 == 1, so λ = 0 (or γ = 0) correctly leaves A_t = δ_t on the diagonal.
    discount = torch.triu(
        torch.as_tensor(gamma * lam, dtype=rewards.dtype, device=rewards.device) ** power
    )
    advantages = deltas @ discount.T  # (B, T): A_t = Σ_j D[t, j] δ_j
    returns = (advantages + values) * mask
    return advantages * mask, returns
