import pytest
import torch

from rft.core.gae import gae


def gae_naive(rewards, values, mask, gamma, lam):
    """Reference: for each valid t, A_t = Σ_{k=t}^{L-1} (γλ)^(k-t) δ_k, with V(s_L) = 0."""
    advantages = torch.zeros_like(rewards)
    B, T = rewards.shape
    for b in range(B):
        L = int(mask[b].sum())
        for t in range(L):
            for k in range(t, L):
                next_value = values[b, k + 1] if k + 1 < L else 0.0
                delta = rewards[b, k] + gamma * next_value - values[b, k]
                advantages[b, t] += (gamma * lam) ** (k - t) * delta
    returns = (advantages + values) * mask
    return advantages, returns


def _ragged_batch(seed, B=5, T=7):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([T, 0, 1, 4, 6])[:B]
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    # Padding holds garbage on purpose: it must not reach any valid output.
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    return rewards, values, mask.double()


@pytest.mark.parametrize(
    "gamma,lam", [(0.99, 0.95), (1.0, 1.0), (0.9, 0.0), (1.0, 0.0), (0.5, 1.0)]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_gae_matches_naive_loop(gamma, lam, seed):
    rewards, values, mask = _ragged_batch(seed)
    adv, ret = gae(rewards, values, mask, gamma, lam)
    adv_ref, ret_ref = gae_naive(rewards, values, mask, gamma, lam)
    assert torch.allclose(adv, adv_ref, atol=1e-10)
    assert torch.allclose(ret, ret_ref, atol=1e-10)
    assert torch.all(adv[mask == 0] == 0) and torch.all(ret[mask == 0] == 0)


def test_gae_hand_computed():
    # γ = λ = 0.5, so γλ = 0.25.
    # Row 0: δ = [0 + .5·.5 - .5, 0 + .5·.5 - .5, 1 + 0 - .5] = [-.25, -.25, .5]
    #   A_2 = .5, A_1 = -.25 + .25·.5 = -.125, A_0 = -.25 + .25·(-.125) = -.28125
    # Row 1 (length 2): δ = [-.25, 1 - .5] = [-.25, .5]; A = [-.125, .5, 0]
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.5, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[-0.28125, -0.125, 0.5], [-0.125, 0.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[0.21875, 0.375, 1.0], [0.375, 1.0, 0.0]]))


def test_gae_gamma_lambda_one_gives_reward_to_go():
    rewards, values, mask = _ragged_batch(3)
    adv, ret = gae(rewards, values, mask, 1.0, 1.0)
    masked_rewards = rewards * mask
    reward_to_go = masked_rewards.flip(-1).cumsum(-1).flip(-1) * mask
    assert torch.allclose(ret, reward_to_go, atol=1e-10)
