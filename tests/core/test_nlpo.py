"""NLPO's action mask (rft/core/nlpo.py) against kept sets built by hand on small logits."""

from __future__ import annotations

import math

import pytest
import torch

from rft.core.nlpo import (
    action_mask,
    apply_action_mask,
    keep_labels,
    masked_logprobs,
    top_k_keep,
    top_p_keep,
)


def logits_of(probs: list[float]) -> torch.Tensor:
    return torch.tensor([math.log(p) for p in probs])


def kept(keep: torch.Tensor) -> set[int]:
    return set(keep.nonzero().flatten().tolist())


# token:        0     1     2     3     4     5
PROBS = [0.05, 0.40, 0.10, 0.30, 0.15, 0.00001]
# sorted: 1 (0.40), 3 (0.30), 4 (0.15), 2 (0.10), 0 (0.05), 5; cumulative 0.40 0.70 0.85 0.95 1.0


@pytest.mark.parametrize(
    "top_p,want",
    [
        (0.3, {1}),  # the top token alone already reaches 0.3
        (0.5, {1, 3}),  # 0.40 < 0.5: one more
        (0.8, {1, 3, 4}),
        (0.9, {1, 3, 4, 2}),
        (0.99, {1, 3, 4, 2, 0}),
        (1e-6, {1}),  # the top token is always kept
    ],
)
def test_top_p_keeps_the_smallest_prefix_reaching_top_p(top_p, want):
    assert kept(top_p_keep(logits_of(PROBS), top_p)) == want


def test_top_p_cumulative_tie_keeps_the_prefix_that_reaches():
    logits = logits_of(PROBS)
    p = torch.softmax(logits, -1)
    # top_mask exactly the top two's cumulative probability, bit for bit: those two reach it,
    # so the third is not needed (cumulative ≥ top_p, not >).
    tie = float(p[1] + p[3])
    assert kept(top_p_keep(logits, tie)) == {1, 3}
    # a hair (one float32 step) above the tie needs the third token
    above = torch.nextafter(torch.tensor(tie), torch.tensor(1.0)).item()
    assert kept(top_p_keep(logits, above)) == {1, 3, 4}


def test_top_p_equal_probabilities_keep_the_lower_token_id_first():
    logits = logits_of([0.2, 0.3, 0.3, 0.2])  # 1 and 2 tie, 0 and 3 tie
    assert kept(top_p_keep(logits, 0.25)) == {1}
    assert kept(top_p_keep(logits, 0.65)) == {1, 2, 0}


def test_min_tokens_to_keep_and_special_tokens():
    logits = logits_of(PROBS)
    assert kept(top_p_keep(logits, 0.3, min_tokens_to_keep=3)) == {1, 3, 4}
    assert kept(top_p_keep(logits, 0.99, min_tokens_to_keep=2)) == {1, 3, 4, 2, 0}  # p wins
    assert kept(top_p_keep(logits, 0.3, min_tokens_to_keep=100)) == set(range(6))  # ≤ V
    special = torch.tensor([5, 0])  # e.g. EOS and pad: kept however improbable
    assert kept(top_p_keep(logits, 0.3, always_keep=special)) == {1, 5, 0}
    assert kept(top_k_keep(logits, 1, always_keep=special)) == {1, 5, 0}


def test_learned_top_k():
    logits = logits_of(PROBS)
    assert kept(top_k_keep(logits, 2)) == {1, 3}
    assert kept(top_k_keep(logits, 2, min_tokens_to_keep=4)) == {1, 3, 4, 2}
    assert kept(top_k_keep(logits, 50)) == set(range(6))
    # action_mask dispatches on the type; top_k reads int(top_mask)
    assert torch.equal(action_mask(logits, "learned_top_k", 3.7, 1), top_k_keep(logits, 3))
    assert torch.equal(action_mask(logits, "learned_top_p", 0.8, 1), top_p_keep(logits, 0.8))
    with pytest.raises(ValueError, match="learned_top_p, learned_top_k"):
        action_mask(logits, "topk", 3, 1)


def test_batched_mask_equals_row_by_row():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 40, generator=g) * 2  # (B, T, V)
    special = torch.tensor([7])
    for fn, arg in ((top_p_keep, 0.6), (top_k_keep, 4)):
        batched = fn(logits, arg, 2, special)
        assert batched.shape == logits.shape
        for b in range(3):
            for t in range(5):
                assert torch.equal(batched[b, t], fn(logits[b, t], arg, 2, special))
    # the top-p set by hand on one row: sort, and keep while the mass before is < 0.6
    row = logits[1, 2]
    order = torch.softmax(row, -1).argsort(descending=True, stable=True).tolist()
    p = torch.softmax(row, -1).tolist()
    want, mass = set(), 0.0
    for i in order:
        if mass >= 0.6 and len(want) >= 2:
            break
        want.add(i)
        mass += p[i]
    assert kept(top_p_keep(row, 0.6, 2)) == want


def test_masked_logprobs_renormalise_over_the_kept_tokens():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 30, generator=g)  # (B, T, V)
    keep = top_p_keep(logits, 0.5, 2)
    labels = logits.argmax(-1)  # the top token: always kept
    logp = masked_logprobs(logits, keep, labels)
    # by hand: p_masked(y) = exp(l_y) / Σ_{kept} exp(l_v)
    z = torch.where(keep, logits.exp(), torch.zeros_like(logits)).sum(-1)
    want = logits.gather(-1, labels[..., None]).squeeze(-1).exp() / z
    torch.testing.assert_close(logp.exp(), want)
    # summed over the kept tokens, the masked distribution is 1; masked tokens get 0
    all_logp = torch.log_softmax(apply_action_mask(logits, keep), -1)
    torch.testing.assert_close(all_logp.exp().sum(-1), torch.ones(2, 4))
    assert (all_logp.exp()[~keep] == 0).all()
    # renormalising can only raise a kept token's log-prob
    assert (logp >= torch.log_softmax(logits, -1).gather(-1, labels[..., None]).squeeze(-1)).all()


def test_keep_labels_makes_an_outside_label_finite():
    logits = logits_of(PROBS)[None, None]  # (1, 1, V)
    keep = top_k_keep(logits, 1)  # only token 1
    label = torch.tensor([[2]])
    assert masked_logprobs(logits, keep, label).item() == float("-inf")
    fixed = keep_labels(keep, label)
    assert kept(fixed[0, 0]) == {1, 2}
    want = math.log(0.10 / (0.40 + 0.10))
    assert masked_logprobs(logits, fixed, label).item() == pytest.approx(want, rel=1e-5)
