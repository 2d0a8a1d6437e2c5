"""The group-baseline maths (rft/core/group.py) against hand-computed numbers and naive loops.

The running example is a 2-group batch with G = 3: group 0 has rewards (1, 2, 4), group 1 is
constant (0.5, 0.5, 0.5), the zero-std case whose advantage must be exactly 0 everywhere.
Group 0 by hand: mean 7/3; centred (-4/3, -1/3, 5/3); Bessel variance (16 + 1 + 25)/9 / 2 = 7/3.
"""

from __future__ import annotations

import math

import pytest
import torch

from rft.core.group import (
    aggregate,
    batch_whitened_returns,
    clip_fractions,
    clipped_surrogate,
    group_advantages,
    group_std,
    kl_estimate,
    overlong_shaping,
    reward_to_go,
    sequence_kl_penalised_scores,
    sequence_log_ratio,
    terminal_token_rewards,
)

SCORES = torch.tensor([1.0, 2.0, 4.0, 0.5, 0.5, 0.5])
STD0 = math.sqrt(7 / 3)


def test_group_norm_by_hand_and_zero_std_group_is_zero():
    adv = group_advantages(SCORES, 3, "group_norm", std_floor=0.01)
    expect = [-4 / 3 / STD0, -1 / 3 / STD0, 5 / 3 / STD0, 0.0, 0.0, 0.0]
    assert adv.tolist() == pytest.approx(expect, abs=1e-6)
    # -0.872872, -0.218218, 1.091089 as numbers
    assert adv[:3].tolist() == pytest.approx([-0.872872, -0.218218, 1.091089], abs=1e-6)
    assert torch.isfinite(adv).all()


def test_group_norm_population_std_when_not_unbiased():
    adv = group_advantages(SCORES, 3, "group_norm", unbiased=False)
    pop = math.sqrt(14 / 9)
    assert adv[:3].tolist() == pytest.approx([-4 / 3 / pop, -1 / 3 / pop, 5 / 3 / pop], abs=1e-6)


def test_std_floor_keeps_a_near_constant_group_small():
    s = torch.tensor([0.5, 0.5001, 0.5, 1.0, 2.0, 4.0])
    floored = group_advantages(s, 3, "group_norm", std_floor=0.01)
    # centred (-1e-4/3, 2e-4/3, -1e-4/3) divided by the floor 0.01, not by the std 5.8e-5
    assert floored[:3].tolist() == pytest.approx(
        [-1e-4 / 3 / 0.01, 2e-4 / 3 / 0.01, -1e-4 / 3 / 0.01], abs=2e-5
    )
    unfloored = group_advantages(s, 3, "group_norm", std_floor=0.0)
    assert unfloored[:3].abs().max() > 1.0  # without the floor noise becomes a unit signal
    # the floor does not touch a group whose std is above it
    assert floored[3:].tolist() == pytest.approx(unfloored[3:].tolist(), abs=1e-6)


def test_group_mean_and_leave_one_out_by_hand():
    assert group_advantages(SCORES, 3, "group_mean").tolist() == pytest.approx(
        [-4 / 3, -1 / 3, 5 / 3, 0, 0, 0], abs=1e-6
    )
    loo = group_advantages(SCORES, 3, "leave_one_out")
    # r_i - mean of the other two: 1 - 3, 2 - 2.5, 4 - 1.5
    assert loo.tolist() == pytest.approx([-2.0, -0.5, 2.5, 0, 0, 0], abs=1e-6)
    naive = [
        float(SCORES[i] - torch.cat([SCORES[g * 3 : i], SCORES[i + 1 : g * 3 + 3]]).mean())
        for g in range(2)
        for i in range(g * 3, g * 3 + 3)
    ]
    assert loo.tolist() == pytest.approx(naive, abs=1e-6)


def test_group_std_and_bad_shapes():
    assert group_std(SCORES, 3).tolist() == pytest.approx([STD0, 0.0], abs=1e-6)
    assert group_std(SCORES, 1).tolist() == [0.0] * 6
    with pytest.raises(ValueError, match="whole number of groups"):
        group_advantages(SCORES, 4, "group_norm")
    with pytest.raises(ValueError, match="unknown estimator"):
        group_advantages(SCORES, 3, "nope")


def test_kl_estimators_by_hand():
    logp = torch.tensor([[math.log(0.5), math.log(0.2)]])
    ref = torch.tensor([[math.log(0.25), math.log(0.4)]])
    l1, l2 = math.log(2), math.log(0.5)
    assert kl_estimate(logp, ref, "k1").tolist()[0] == pytest.approx([l1, l2], abs=1e-6)
    assert kl_estimate(logp, ref, "k2").tolist()[0] == pytest.approx(
        [l1**2 / 2, l2**2 / 2], abs=1e-6
    )
    # k3 = (1/r - 1) + log r: r = 2 -> -0.5 + 0.6931 = 0.1931; r = 0.5 -> 1 - 0.6931 = 0.3069
    assert kl_estimate(logp, ref, "k3").tolist()[0] == pytest.approx([0.193147, 0.306853], abs=1e-6)
    # k3 is finite for extreme log-ratios (clamped), and ≥ 0
    big = kl_estimate(torch.tensor([[-100.0, 100.0]]), torch.zeros(1, 2), "k3")
    assert torch.isfinite(big).all() and (big >= 0).all()


def test_clipped_surrogate_and_clip_fractions_by_hand():
    # (ρ, A): clipped high, clipped low, inside, ρ < 1-ε_low but A > 0 (not clipped: min picks it)
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.5])
    adv = torch.tensor([1.0, -1.0, 1.0, 1.0])
    loss, r = clipped_surrogate(ratio.log(), adv, clip_low=0.2, clip_high=0.28)
    assert r.tolist() == pytest.approx(ratio.tolist())
    assert loss.tolist() == pytest.approx([-1.28, 0.8, -1.1, -0.5], abs=1e-6)
    fr = clip_fractions(r, adv, 0.2, 0.28)
    assert fr["high"].tolist() == [True, False, False, False]
    assert fr["low"].tolist() == [False, True, False, False]
    assert fr["region"].tolist() == [True, True, False, False]
    # naive per-element max(-A ρ, -A clip(ρ))
    for i in range(4):
        clipped = min(max(ratio[i].item(), 0.8), 1.28)
        assert loss[i].item() == pytest.approx(
            max(-adv[i].item() * ratio[i].item(), -adv[i].item() * clipped), abs=1e-6
        )


def test_sequence_log_ratio_sum_and_mean():
    logp = torch.tensor([[0.1, 0.2, 0.3], [0.4, 9.0, 9.0]])
    old = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert sequence_log_ratio(logp, old, mask, "sequence_sum").tolist() == pytest.approx(
        [0.6, 0.4], abs=1e-6
    )
    assert sequence_log_ratio(logp, old, mask, "sequence_mean").tolist() == pytest.approx(
        [0.2, 0.4], abs=1e-6
    )


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


@pytest.mark.parametrize(
    "mode, expect",
    [
        ("seq_mean_token_mean", (2.0 + 4.0) / 2),
        ("token_mean", 10 / 4),
        ("constant", 10 / (2 * 3)),
        ("seq_mean_token_sum", (6 + 4) / 2),
    ],
)
def test_aggregation_by_hand(mode, expect):
    assert aggregate(PER_TOKEN, MASK, mode, max_len=3).item() == pytest.approx(expect)


@pytest.mark.parametrize(
    "mode", ["seq_mean_token_mean", "token_mean", "constant", "seq_mean_token_sum"]
)
def test_aggregation_over_micro_batches_sums_to_the_whole(mode):
    torch.manual_seed(0)
    x = torch.randn(6, 5)
    m = (torch.rand(6, 5) > 0.3).long()
    m[:, 0] = 1
    whole = aggregate(x, m, mode, max_len=5)
    parts = sum(
        aggregate(x[i : i + 2], m[i : i + 2], mode, max_len=5, n_sequences=6, n_tokens=m.sum())
        for i in range(0, 6, 2)
    )
    assert parts.item() == pytest.approx(whole.item(), abs=1e-6)


def test_reward_to_go_and_batch_whitening_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert reward_to_go(rewards, mask).tolist() == [[1.0, 1.0, 1.0], [2.0, 2.0, 0.0]]
    # valid returns (1, 1, 1, 2, 2): mean 1.4, Bessel var 0.3
    w = batch_whitened_returns(rewards, mask)
    lo, hi = (1 - 1.4) / math.sqrt(0.3), (2 - 1.4) / math.sqrt(0.3)
    assert w.tolist()[0] == pytest.approx([lo] * 3, abs=1e-5)
    assert w.tolist()[1] == pytest.approx([hi, hi, 0.0], abs=1e-5)


def test_kl_in_the_reward_by_hand():
    logp = torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.2, 5.0]])
    ref = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    scores = torch.tensor([1.0, 2.0])
    # RLOO: r - β Σ_t k1 = 1 - 0.5·0.3, 2 - 0.5·0.4
    assert sequence_kl_penalised_scores(scores, logp, ref, mask, 0.5).tolist() == pytest.approx(
        [0.85, 1.8], abs=1e-6
    )
    # REINFORCE++: -β k1 per token, the score on the last valid token, 0 on padding
    r = terminal_token_rewards(scores, logp, ref, mask, 0.5)
    assert r.tolist()[0] == pytest.approx([-0.05, -0.05, 0.95], abs=1e-6)
    assert r.tolist()[1] == pytest.approx([-0.1, 1.9, 0.0], abs=1e-6)


def test_overlong_shaping_by_hand():
    lengths = torch.tensor([5, 6, 8, 10, 12])
    # L_max 10, buffer 4: 0 up to 6, then linear to -1 at 10
    assert overlong_shaping(lengths, 10, 4).tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])
    assert overlong_shaping(lengths, 10, 0).tolist() == [0.0] * 5
