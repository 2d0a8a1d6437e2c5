import math

import torch

from rft.core.ppo import ppo_policy_loss
from rft.core.tis import logprob_gap_stats, tis_weights

MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
# log π_trainer - log π_sampler per token: ratios e^0 = 1, e^0.5 = 1.65, e^-1 = 0.37,
# e^2 = 7.39, e^-0.2 = 0.82, and a padded position with a huge gap
TRAINER = torch.tensor([[-1.0, -1.5, -3.0], [-0.5, -2.2, 30.0]])
SAMPLER = torch.tensor([[-1.0, -2.0, -2.0], [-2.5, -2.0, -1.0]])


def test_tis_weights_by_hand():
    w = tis_weights(TRAINER, SAMPLER, cap=2.0)
    expected = [[1.0, math.exp(0.5), math.exp(-1.0)], [2.0, math.exp(-0.2), 2.0]]
    assert torch.allclose(w, torch.tensor(expected), rtol=1e-6)
    assert not w.requires_grad  # a weight, never a path for the gradient
    assert torch.isfinite(w).all()  # the padded e^31 is clamped before exp, then capped


def test_tis_weights_carry_no_gradient():
    trainer = TRAINER.clone().requires_grad_(True)
    assert not tis_weights(trainer, SAMPLER, cap=2.0).requires_grad


def test_weighted_loss_equals_loss_of_weighted_advantages():
    # The PPO module applies TIS by scaling advantages: w·max(-Aρ, -A clip ρ) = max(-wAρ, ...)
    # for w ≥ 0. By hand, ε = 0.2, ratios ρ = π_θ/π_old and A per token:
    #   (1.5, +1, w 1)     -> -1.2           (0.5, +1, w e^.5) -> -0.5 e^.5
    #   (1.5, -1, w e^-1)  -> 1.5 e^-1       (1.1, -1, w 2)    -> 2.2
    #   (0.7, -1, w e^-.2) -> 0.8 e^-.2      padding ignored
    ratio = torch.tensor([[1.5, 0.5, 1.5], [1.1, 0.7, 2.0]])
    adv = torch.tensor([[1.0, 1.0, -1.0], [-1.0, -1.0, 5.0]])
    old = TRAINER
    logp = old + ratio.log()
    w = tis_weights(old, SAMPLER, cap=2.0)
    loss, _ = ppo_policy_loss(logp, old, adv * w, MASK, clip_eps=0.2)
    by_hand = (-1.2 - 0.5 * math.exp(0.5) + 1.5 * math.exp(-1) + 2.2 + 0.8 * math.exp(-0.2)) / 5
    assert math.isclose(loss.item(), by_hand, rel_tol=1e-6)


def test_gap_stats_by_hand():
    s = logprob_gap_stats(TRAINER, SAMPLER, MASK, cap=2.0)
    gaps = [0.0, 0.5, -1.0, 2.0, -0.2]  # the valid tokens' log π_trainer - log π_sampler
    assert math.isclose(s["rollout/logprob_gap_mean"], sum(map(abs, gaps)) / 5, rel_tol=1e-6)
    assert math.isclose(s["rollout/logprob_gap_max"], 2.0, rel_tol=1e-6)
    assert math.isclose(s["rollout/logprob_gap_kl"], -sum(gaps) / 5, abs_tol=1e-6)
    weights = [1.0, math.exp(0.5), math.exp(-1), 2.0, math.exp(-0.2)]
    assert math.isclose(s["rollout/tis_weight_mean"], sum(weights) / 5, rel_tol=1e-6)
    assert math.isclose(s["rollout/tis_truncated_share"], 1 / 5, rel_tol=1e-6)  # only e^2 > 2


def test_gap_stats_without_cap_or_tokens():
    s = logprob_gap_stats(TRAINER, SAMPLER, MASK)
    assert "rollout/tis_weight_mean" not in s
    assert logprob_gap_stats(TRAINER, SAMPLER, torch.zeros_like(MASK)) == {}
