"""A2C's loss for the token-level MDP, as RL4LMs runs it (a copy of stable-baselines3's A2C;
docs/algorithms.md §16).

Over every valid token t of the rollout (one transition per token):

    loss = -mean_t(A_t · log π_θ(y_t|s_t)) + vf_coef · mean_t (G_t - V_θ(s_t))² - ent_coef · mean_t H_t

with the advantages A as GAE gave them (RL4LMs: λ = 1, not normalised), the returns G = A + V_old
and the value loss unclipped (``F.mse_loss(returns, values)``). A rollout that does not fit one
forward pass is cut into chunks: every term is a sum over tokens divided by the ROLLOUT's token
count ``n_tokens``, so the chunks' losses (and gradients) add up to the one-batch loss exactly.
"""

from __future__ import annotations

from torch import Tensor

from rft.core.masked import masked_sum


def a2c_loss(
    logp: Tensor,
    values: Tensor,
    entropy: Tensor,
    advantages: Tensor,
    returns: Tensor,
    mask: Tensor,
    vf_coef: float,
    ent_coef: float,
    n_tokens: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """A chunk's share of the A2C loss (module docstring).

    logp, values, entropy (with grad as needed), advantages, returns (no grad), mask: (B, T);
    ``n_tokens``: the valid tokens of the whole rollout the chunk belongs to (None: this chunk's
    own, i.e. the chunk is the rollout). Returns the scalar loss and its detached parts
    ``policy``, ``value``, ``entropy`` (each also a share of the rollout's mean)."""
    n = mask.sum() if n_tokens is None else n_tokens
    policy = -masked_sum(advantages * logp, mask) / n
    value = masked_sum((returns - values) ** 2, mask) / n
    ent = masked_sum(entropy, mask) / n
    loss = policy + vf_coef * value - ent_coef * ent
    return loss, {"policy": policy.detach(), "value": value.detach(), "entropy": ent.detach()}
