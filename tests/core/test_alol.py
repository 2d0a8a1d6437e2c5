import math

import numpy as np
import pytest
import torch

from rft.alg.steps import StepBatchSampler
from rft.core.alol import (
    ALOL_LOSSES,
    a_lol_kl_loss,
    a_lol_loss,
    a_lol_ref_free_loss,
    a_lol_seq_loss,
    good_priority_weights,
    nll_loss,
    r_gold_loss,
    r_lol_loss,
    wbc_loss,
)

ln = math.log
# Two examples; the second has 2 valid tokens and a padding token whose values must be ignored.
PROBS = [[0.5, 0.05, 0.8], [0.2, 0.5, 0.9]]
# Per-token ratios π_θ / π_ref; sequence ratios ρ = 3 (above 1 + ε) and 0.25 (below 1 - ε).
TOKEN_RATIOS = [[3.0, 0.4, 2.5], [2.0, 0.125, 7.0]]
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
REWARD = torch.tensor([2.0, -1.0])
ADVANTAGE = torch.tensor([1.5, -0.5])  # the second example has A ≤ 0
EPS = 0.5  # ratios clipped to [0.5, 1.5]
NLL = [-ln(0.5 * 0.05 * 0.8), -ln(0.2 * 0.5)]


def _inputs():
    logp = torch.tensor(PROBS).log().requires_grad_(True)
    ref_logp = (logp.detach() - torch.tensor(TOKEN_RATIOS).log()).requires_grad_(True)
    return logp, ref_logp


def _check(loss, expected, logp, ref_logp, expected_grad):
    """Per-example values, the gradient w.r.t. logp, and no gradient to ref_logp."""
    assert loss.shape == (2,)
    assert torch.allclose(loss, torch.tensor(expected), rtol=1e-5)
    g_logp, g_ref = torch.autograd.grad(loss.sum(), [logp, ref_logp], allow_unused=True)
    assert torch.allclose(g_logp, torch.tensor(expected_grad), rtol=1e-5)
    assert g_ref is None or torch.all(g_ref == 0)


def test_nll():
    logp, ref_logp = _inputs()
    _check(nll_loss(logp, MASK), NLL, logp, ref_logp, [[-1.0, -1, -1], [-1, -1, 0]])


def test_wbc():
    logp, ref_logp = _inputs()
    _check(
        wbc_loss(logp, MASK, REWARD),
        [2 * NLL[0], -NLL[1]],
        logp,
        ref_logp,
        [[-2.0, -2, -2], [1, 1, 0]],
    )


def test_r_gold():
    logp, ref_logp = _inputs()
    # Per-token weights max(p, 0.1): 0.05 is lifted to 0.1.
    expected = [
        2 * (0.5 * -ln(0.5) + 0.1 * -ln(0.05) + 0.8 * -ln(0.8)),
        -1 * (0.2 * -ln(0.2) + 0.5 * -ln(0.5)),
    ]
    grad = [[-2 * 0.5, -2 * 0.1, -2 * 0.8], [0.2, 0.5, 0.0]]
    _check(r_gold_loss(logp, MASK, REWARD), expected, logp, ref_logp, grad)


def test_r_lol_clipped_on_both_edges_and_unclipped():
    logp, ref_logp = _inputs()
    # ρ = 3 -> 1.5 and ρ = 0.25 -> 0.5; the ratio is a constant, so d/dlogp_t = -R · clip(ρ).
    loss = r_lol_loss(logp, ref_logp, MASK, REWARD, clip_eps=EPS)
    _check(
        loss, [2 * 1.5 * NLL[0], -1 * 0.5 * NLL[1]], logp, ref_logp, [[-3.0, -3, -3], [0.5, 0.5, 0]]
    )
    loss = r_lol_loss(logp, ref_logp, MASK, REWARD, clip_eps=None)
    _check(
        loss,
        [2 * 3 * NLL[0], -1 * 0.25 * NLL[1]],
        logp,
        ref_logp,
        [[-6.0, -6, -6], [0.25, 0.25, 0]],
    )


def test_a_lol():
    logp, ref_logp = _inputs()
    loss = a_lol_loss(logp, ref_logp, MASK, ADVANTAGE, clip_eps=EPS)
    _check(loss, [1.5 * 1.5 * NLL[0], 0.0], logp, ref_logp, [[-2.25, -2.25, -2.25], [0, 0, 0]])


def test_a_lol_seq_per_token_ratios():
    logp, ref_logp = _inputs()
    # Token ratios [3, 0.4, 2.5] clip to [1.5, 0.5, 1.5].
    expected = [1.5 * (1.5 * -ln(0.5) + 0.5 * -ln(0.05) + 1.5 * -ln(0.8)), 0.0]
    grad = [[-1.5 * 1.5, -1.5 * 0.5, -1.5 * 1.5], [0, 0, 0]]
    _check(
        a_lol_seq_loss(logp, ref_logp, MASK, ADVANTAGE, clip_eps=EPS),
        expected,
        logp,
        ref_logp,
        grad,
    )


def test_a_lol_ref_free():
    logp, ref_logp = _inputs()
    _check(
        a_lol_ref_free_loss(logp, MASK, ADVANTAGE),
        [1.5 * NLL[0], 0.0],
        logp,
        ref_logp,
        [[-1.5] * 3, [0, 0, 0]],
    )


def test_a_lol_kl_term_applies_to_every_example():
    logp, ref_logp = _inputs()
    # β_kl · log ρ with log ρ = ln 3 and ln 0.25; the KL term's gradient is +β_kl per valid token.
    expected = [1.5 * NLL[0] + 0.2 * ln(3), 0.2 * ln(0.25)]
    grad = [[-1.5 + 0.2] * 3, [0.2, 0.2, 0.0]]
    _check(
        a_lol_kl_loss(logp, ref_logp, MASK, ADVANTAGE, beta_kl=0.2), expected, logp, ref_logp, grad
    )


@pytest.mark.parametrize("name", ["a_lol", "a_lol_seq", "a_lol_ref_free"])
@pytest.mark.parametrize("clip_eps", [EPS, None])
def test_non_positive_advantage_gives_zero_loss_and_zero_grad(name, clip_eps):
    logp, ref_logp = _inputs()
    # Without clipping a huge ρ must still not turn 0 · ρ into NaN.
    ref_logp = ref_logp.detach() - 200.0
    advantage = torch.tensor([-1.0, 0.0])
    kwargs = {"logp": logp, "mask": MASK, "advantage": advantage}
    if name != "a_lol_ref_free":
        kwargs |= {"ref_logp": ref_logp, "clip_eps": clip_eps}
    loss = ALOL_LOSSES[name](**kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert torch.all(loss == 0) and torch.all(grad == 0)


def test_registry_names():
    assert set(ALOL_LOSSES) == {
        "nll",
        "wbc",
        "r_gold",
        "r_lol",
        "a_lol",
        "a_lol_seq",
        "a_lol_ref_free",
        "a_lol_kl",
    }


def test_good_priority_weights():
    values = torch.tensor([1.0, -2.0, 3.0, 0.0])
    for kind in ("advantage", "reward"):
        assert torch.allclose(
            good_priority_weights(values, kind), torch.tensor([0.25, 0.0, 0.75, 0.0])
        )
    with pytest.raises(ValueError, match="all 4"):
        good_priority_weights(torch.tensor([-1.0, 0.0, -3.0, 0.0]), "advantage")
    with pytest.raises(ValueError, match="advantage, reward"):
        good_priority_weights(values, "value")


def test_good_priority_sampler_draws_in_proportion_to_positive_advantages():
    """rft's good_priority sampler as ALoL builds it (StepBatchSampler fed good_priority_weights),
    not torch.multinomial: over many steps each pair is drawn with frequency A+ / Σ A+, pairs with
    A ≤ 0 never, and a batch is a pure function of (seed, step), so a resumed run redraws it.

    Catches (each checked by planting it in a scratch copy of rft/): the sampler ignoring
    ``probs`` (uniform draws: A ≤ 0 drawn); weights ∝ |A| or A not
    clamped at 0 (A < 0 drawn); draws from a generator that does not depend on the step (every
    batch the same) or on the seed; draws from global / shared RNG state (a fresh sampler at
    the same step gives another batch)."""
    adv = torch.tensor([1.0, -2.0, 3.0, 0.0, 0.5, 2.5])
    probs = good_priority_weights(adv, "advantage").double().numpy()
    expected = np.array([1.0, 0.0, 3.0, 0.0, 0.5, 2.5]) / 7.0  # A+ / Σ A+, by hand
    n_steps, bs, seed = 1000, 8, 11
    sampler = StepBatchSampler(
        len(adv), bs, seed, steps_per_block=10, total_steps=n_steps, probs=probs
    )
    batches = [sampler.batch_for_step(s) for s in range(n_steps)]
    assert all(len(b) == bs for b in batches)
    counts = np.bincount(np.concatenate(batches), minlength=len(adv))
    n = counts.sum()
    assert counts[1] == 0 and counts[3] == 0  # A ≤ 0: never drawn (the leftover lunch is the rest)
    pos = expected > 0
    # Pearson chi² over the 4 drawable pairs (3 dof): 16.27 is its 0.999 quantile. The draws are
    # seeded, so this is deterministic; uniform draws over the 4 give chi² ≈ 5,000.
    chi2 = (((counts[pos] - n * expected[pos]) ** 2) / (n * expected[pos])).sum()
    assert chi2 < 16.27, (counts, n * expected)
    se = np.sqrt(expected * (1 - expected) / n)  # binomial SE of each frequency
    assert np.all(np.abs(counts / n - expected) <= 4 * se + 1e-12)
    # the step matters: consecutive batches differ (a step-independent RNG repeats one batch)
    assert len({tuple(b) for b in batches[:50]}) > 40
    # a resumed sampler: same seed, fresh object, asked for block 7 (steps 70..79) -> same batches,
    # whether the block comes from set_epoch or from epoch_fn (how ALoL passes current_epoch)
    again = StepBatchSampler(
        len(adv), bs, seed, steps_per_block=10, total_steps=n_steps, probs=probs
    )
    again.set_epoch(7)
    assert list(again) == batches[70:80]
    via_fn = StepBatchSampler(len(adv), bs, seed, 10, n_steps, probs=probs, epoch_fn=lambda: 7)
    assert list(via_fn) == batches[70:80]
    assert [via_fn.batch_for_step(s) for s in (999, 3)] == [batches[999], batches[3]]
    # ... and another seed draws other batches
    other = StepBatchSampler(len(adv), bs, seed + 1, 10, n_steps, probs=probs)
    assert [other.batch_for_step(s) for s in range(10)] != batches[:10]
