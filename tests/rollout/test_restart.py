"""Restart maths of guide-policy RL (rft/rollout/restart.py) on hand-built sequences."""

from __future__ import annotations

import torch

from rft.rollout.restart import (
    force_logits,
    forced_prefix,
    loss_masks,
    prefix_mask,
    sample_restart_flags,
    sample_rollin_lengths,
    shift_left,
    splice,
)

PAD = 0
# Three right-padded completions: L = 5, 3 (padded), 1 (too short to restart).
IDS = torch.tensor([[11, 12, 13, 14, 15], [21, 22, 23, PAD, PAD], [31, PAD, PAD, PAD, PAD]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_restart_flags_are_bernoulli_beta():
    assert not sample_restart_flags(100, 0.0, gen()).any()
    assert sample_restart_flags(100, 1.0, gen()).all()
    flags = sample_restart_flags(20000, 0.6, gen())
    assert abs(flags.double().mean().item() - 0.6) < 0.02
    assert torch.equal(flags, sample_restart_flags(20000, 0.6, gen()))  # seeded


def test_rollin_length_is_uniform_on_1_to_L_minus_1():
    n = 40000
    k = sample_rollin_lengths(torch.full((n,), 5), torch.ones(n, dtype=torch.bool), gen(1))
    assert (
        k.min() == 1 and k.max() == 4
    )  # never 0 (restarted) and never L (the roll-out writes ≥ 1 token)
    freq = torch.bincount(k, minlength=5)[1:].double() / n
    assert torch.allclose(freq, torch.full((4,), 0.25, dtype=torch.float64), atol=0.01)


def test_rollin_length_edge_cases():
    lengths = torch.tensor([5, 3, 1, 0, 2, 2])
    restart = torch.tensor([True, True, True, True, True, False])
    k = sample_rollin_lengths(lengths, restart, gen(2))
    assert k[2] == 0 and k[3] == 0  # L < 2: no restart
    assert k[4] == 1  # L = 2: the only choice
    assert k[5] == 0  # not restarted
    assert 1 <= k[0] <= 4 and 1 <= k[1] <= 2


def test_prefix_mask_and_forced_prefix():
    k = torch.tensor([4, 2, 0])  # k = L-1 for the first two rows, k = 0 for the third
    assert prefix_mask(k, 5).long().tolist() == [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert forced_prefix(IDS, k, PAD).tolist() == [
        [11, 12, 13, 14],
        [21, 22, PAD, PAD],
        [PAD, PAD, PAD, PAD],
    ]
    assert forced_prefix(IDS, torch.zeros(3, dtype=torch.long), PAD).shape == (3, 0)


def test_loss_masks_ppo_pp_cover_the_policy_suffix():
    k = torch.tensor([4, 2, 0])  # k = L-1, k = L-1 on a padded row, k = 0 (L < 2)
    policy, value = loss_masks(MASK, k, "ppo_pp")
    expected = [[0, 0, 0, 0, 1], [0, 0, 1, 0, 0], [1, 0, 0, 0, 0]]
    assert policy.tolist() == expected and value.tolist() == expected
    # k = 0 everywhere: plain PPO
    p0, v0 = loss_masks(MASK, torch.zeros(3, dtype=torch.long), "ppo_pp")
    assert torch.equal(p0, MASK) and torch.equal(v0, MASK)


def test_loss_masks_aggrevated_policy_prefix_and_guide_critic():
    k = torch.tensor([2, 2, 0])
    policy, value = loss_masks(MASK, k, "aggrevated")
    assert policy.tolist() == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert value.tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 0, 0], [1, 0, 0, 0, 0]]
    assert torch.equal(policy + value, MASK)  # every token is the policy's or the guide's
    assert policy.dtype == MASK.dtype


def test_force_logits_forces_only_rows_inside_their_prefix():
    scores = torch.randn(3, 10)
    forced = torch.tensor([[7, 3], [2, 9], [0, 0]])
    k = torch.tensor([2, 1, 0])
    out0 = force_logits(scores.clone(), 0, forced, k)
    assert out0[0].argmax() == 7 and torch.isinf(out0[0]).sum() == 9 and out0[0, 7] == 0
    assert out0[1].argmax() == 2 and torch.isinf(out0[1]).sum() == 9
    assert torch.equal(out0[2], scores[2])  # k = 0: untouched
    out1 = force_logits(scores.clone(), 1, forced, k)
    assert out1[0].argmax() == 3 and torch.equal(out1[1], scores[1])
    assert torch.equal(force_logits(scores.clone(), 2, forced, k), scores)  # past max k


def test_shift_left_drops_the_prefix():
    ids, mask = shift_left(IDS, MASK, torch.tensor([2, 3, 0]), PAD)
    assert ids.tolist() == [[13, 14, 15, PAD, PAD], [PAD] * 5, [31, PAD, PAD, PAD, PAD]]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [0] * 5, [1, 0, 0, 0, 0]]


def test_splice_joins_prefix_and_continuation_and_cuts_to_width():
    prefix = torch.tensor([[11, 12, 13], [21, PAD, PAD], [PAD, PAD, PAD]])
    k = torch.tensor([3, 1, 0])
    cont = torch.tensor([[91, 92, 93], [81, 82, PAD], [71, PAD, PAD]])
    cmask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    ids, mask = splice(prefix, k, cont, cmask, 5, PAD)
    assert ids.tolist() == [[11, 12, 13, 91, 92], [21, 81, 82, PAD, PAD], [71, PAD, PAD, PAD, PAD]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]
