import math

import torch

from rft.core.ppo import explained_variance, per_token_rewards, ppo_policy_loss, ppo_value_loss

MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_policy_loss_by_hand():
    # ε = 0.2. Per token (ratio, A) -> max(-Aρ, -A clip(ρ)):
    #   (1.5, +1) -> -1.2 clipped above     (0.5, +1) -> -0.5 (low ratio, A > 0: not clipped)
    #   (1.5, -1) -> 1.5 (not clipped)      (1.1, -1) -> 1.1 (inside the range)
    #   (0.7, -1) -> 0.8 clipped below      (2.0, +5) -> padding, ignored
    ratio = torch.tensor([[1.5, 0.5, 1.5], [1.1, 0.7, 2.0]])
    advantages = torch.tensor([[1.0, 1.0, -1.0], [-1.0, -1.0, 5.0]])
    old_logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -3.0, -1.0]])
    logp = (old_logp + ratio.log()).requires_grad_(True)
    loss, stats = ppo_policy_loss(logp, old_logp, advantages, MASK, clip_eps=0.2)
    loss.backward()
    assert math.isclose(loss.item(), (-1.2 - 0.5 + 1.5 + 1.1 + 0.8) / 5, rel_tol=1e-6)
    # d/dlogp of -Aρ is -Aρ where the unclipped term is taken, 0 where the clipped one is.
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -0.5, 1.5], [1.1, 0.0, 0.0]]) / 5)
    assert math.isclose(stats["clipfrac"].item(), 4 / 5, rel_tol=1e-6)
    kls = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.5, 1.1, 0.7)]
    assert math.isclose(stats["approx_kl"].item(), sum(kls) / 5, rel_tol=1e-5)
    assert not stats["clipfrac"].requires_grad and not stats["approx_kl"].requires_grad


def test_value_loss_by_hand():
    values = torch.tensor([[0.5, -0.5, 0.1], [0.15, 0.0, 9.0]], requires_grad=True)
    old_values = torch.zeros(2, 3)
    returns = torch.tensor([[1.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    # Clipped to ±0.2 around 0: predictions [.2, -.2, .1, .15, 0]; errors .8, 1.2, .1, .15, 1
    loss, stats = ppo_value_loss(values, old_values, returns, MASK, clip_range_vf=0.2)
    assert math.isclose(loss.item(), (0.64 + 1.44 + 0.01 + 0.0225 + 1.0) / 5, rel_tol=1e-6)
    assert math.isclose(stats["value_clipfrac"].item(), 2 / 5, rel_tol=1e-6)
    loss.backward()
    # Clipped predictions are constants: no gradient to those values (stable-baselines3).
    assert torch.allclose(values.grad, torch.tensor([[0.0, 0.0, 0.2], [0.3, 2.0, 0.0]]) / 5)

    loss, stats = ppo_value_loss(values, old_values, returns, MASK, clip_range_vf=None)
    assert math.isclose(loss.item(), (0.25 + 2.25 + 0.01 + 0.0225 + 1.0) / 5, rel_tol=1e-6)
    assert stats["value_clipfrac"].item() == 0.0


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 4.0], [3.0, 5.0, 99.0]])
    assert math.isclose(explained_variance(returns, returns, MASK).item(), 1.0)
    constant = torch.full_like(returns, 7.0)
    assert math.isclose(explained_variance(constant, returns, MASK).item(), 0.0, abs_tol=1e-6)
    # residual = [1, 2, 4, 3, 5] - [1, 2, 4, 3, 3] = [0, 0, 0, 0, 2]
    values = torch.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 0.0]])
    expected = 1 - torch.tensor([0.0, 0, 0, 0, 2]).var(unbiased=False) / torch.tensor(
        [1.0, 2, 4, 3, 5]
    ).var(unbiased=False)
    assert math.isclose(
        explained_variance(values, returns, MASK).item(), expected.item(), rel_tol=1e-6
    )
    assert math.isnan(explained_variance(values, torch.ones(2, 3), MASK).item())


def test_per_token_rewards_by_hand():
    score = torch.tensor([1.0, 2.0])
    ref_logp = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]])
    logp = ref_logp + torch.tensor([[0.2, -0.4, 0.6], [1.0, 0.0, 7.0]])
    rewards, kl = per_token_rewards(score, logp, ref_logp, MASK, beta=0.5)
    assert torch.allclose(kl, torch.tensor([[0.2, -0.4, 0.6], [1.0, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.1, 0.2, -0.3 + 1.0], [-0.5, 0.0 + 2.0, 0.0]]))


def test_per_token_rewards_single_token_and_empty_rows():
    mask = torch.tensor([[1, 0], [0, 0]])
    zeros = torch.zeros(2, 2)
    rewards, kl = per_token_rewards(torch.tensor([3.0, 4.0]), zeros, zeros, mask, beta=0.1)
    assert torch.equal(rewards, torch.tensor([[3.0, 0.0], [0.0, 0.0]]))
    assert torch.equal(kl, zeros)
