"""A2C's loss (rft/core/a2c.py) against hand-computed numbers and a naive per-token loop; a
rollout cut into chunks gives the one-batch loss and gradient."""

from __future__ import annotations

import pytest
import torch

from rft.core.a2c import a2c_loss


def test_hand_computed_tiny_case():
    # two sequences, the second one token shorter (padding holds garbage that must not count)
    logp = torch.tensor([[-1.0, -2.0], [-0.5, 99.0]])
    values = torch.tensor([[0.5, 0.0], [1.0, 99.0]])
    entropy = torch.tensor([[2.0, 1.0], [3.0, 99.0]])
    adv = torch.tensor([[1.0, -1.0], [2.0, 99.0]])
    returns = torch.tensor([[1.5, 0.0], [2.0, 99.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, parts = a2c_loss(logp, values, entropy, adv, returns, mask, vf_coef=0.5, ent_coef=0.1)
    # policy: -(1·-1 + -1·-2 + 2·-0.5) / 3 = -(−1 + 2 − 1) / 3 = 0
    # value: ((1.5-0.5)² + 0² + (2-1)²) / 3 = 2/3; entropy: (2 + 1 + 3) / 3 = 2
    assert parts["policy"].item() == pytest.approx(0.0, abs=1e-7)
    assert parts["value"].item() == pytest.approx(2 / 3)
    assert parts["entropy"].item() == pytest.approx(2.0)
    assert loss.item() == pytest.approx(0.0 + 0.5 * 2 / 3 - 0.1 * 2.0)


def naive_loss(logp, values, entropy, adv, returns, mask, vf_coef, ent_coef):
    """SB3's A2C on the flattened transitions, one token at a time."""
    pg, vf, ent, n = 0.0, 0.0, 0.0, 0
    for b in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if mask[b, t]:
                pg = pg - adv[b, t] * logp[b, t]
                vf = vf + (returns[b, t] - values[b, t]) ** 2
                ent = ent + entropy[b, t]
                n += 1
    return pg / n + vf_coef * vf / n - ent_coef * ent / n


def random_case(seed: int = 0, B: int = 5, T: int = 7):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    entropy = torch.rand(B, T, generator=g, dtype=torch.float64) * 4
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    returns = torch.randn(B, T, generator=g, dtype=torch.float64)
    return logp.requires_grad_(), values.requires_grad_(), entropy, adv, returns, mask


def test_loss_and_gradient_equal_a_per_token_loop():
    logp, values, entropy, adv, returns, mask = random_case()
    loss, _ = a2c_loss(logp, values, entropy, adv, returns, mask, 0.5, 0.01)
    want = naive_loss(logp, values, entropy, adv, returns, mask, 0.5, 0.01)
    assert loss.item() == pytest.approx(want.item(), rel=1e-12)
    g = torch.autograd.grad(loss, (logp, values))
    g_want = torch.autograd.grad(want, (logp, values))
    for a, b in zip(g, g_want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunks_add_up_to_the_one_batch_loss_and_gradient(chunk):
    logp, values, entropy, adv, returns, mask = random_case(seed=1)
    whole, _ = a2c_loss(logp, values, entropy, adv, returns, mask, 0.5, 0.01)
    g_whole = torch.autograd.grad(whole, (logp, values))
    n = mask.sum()
    total = 0.0
    for idx in torch.arange(mask.shape[0]).split(chunk):
        part, _ = a2c_loss(
            logp[idx], values[idx], entropy[idx], adv[idx], returns[idx], mask[idx], 0.5, 0.01, n
        )
        total = total + part
    assert total.item() == pytest.approx(whole.item(), rel=1e-12)
    for a, b in zip(torch.autograd.grad(total, (logp, values)), g_whole):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
