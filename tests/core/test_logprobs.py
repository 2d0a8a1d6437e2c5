import math

import pytest
import torch

from rft.core.logprobs import (
    entropy_from_logits,
    logprobs_and_entropy,
    logprobs_from_logits,
    sequence_logprob,
)


def _reference_logprobs(logits, labels):
    return torch.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def test_logprobs_match_log_softmax_values_and_grads():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7, requires_grad=True)
    labels = torch.randint(0, 7, (2, 3))
    ours = logprobs_from_logits(logits, labels)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    ref = _reference_logprobs(logits, labels)
    (g_ref,) = torch.autograd.grad(ref.sum(), logits)
    assert ours.shape == (2, 3)
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(g_ours, g_ref, atol=1e-6)


def test_logprobs_bf16_upcast():
    torch.manual_seed(0)
    logits = (torch.randn(2, 3, 50) * 5).bfloat16()
    labels = torch.randint(0, 50, (2, 3))
    ours = logprobs_from_logits(logits, labels)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours, _reference_logprobs(logits, labels), atol=1e-5)


def test_entropy_matches_categorical_and_handles_masked_logits():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7)
    expected = torch.distributions.Categorical(logits=logits).entropy()
    assert torch.allclose(entropy_from_logits(logits), expected, atol=1e-6)

    # A uniform distribution over 2 tokens with the rest filtered to -inf has entropy ln 2.
    masked = torch.full((1, 1, 4), float("-inf"))
    masked[..., :2] = 0.0
    masked.requires_grad_(True)
    h = entropy_from_logits(masked)
    h.sum().backward()
    assert math.isclose(h.item(), math.log(2), rel_tol=1e-6)
    assert torch.isfinite(masked.grad).all()


def test_sequence_logprob():
    token_logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.25, float("nan")]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert torch.equal(sequence_logprob(token_logp, mask), torch.tensor([-6.0, -0.75]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_logprobs_and_entropy_share_a_pass_and_match_the_separate_functions(dtype):
    torch.manual_seed(0)
    logits = (4 * torch.randn(3, 5, 1000)).to(dtype)
    logits[1, 2, 10:] = float("-inf")  # a top-p filtered row takes the masked path
    labels = torch.randint(0, 10, (3, 5))
    x = logits.clone().requires_grad_(True)
    logp, ent = logprobs_and_entropy(x, labels)
    want_logp = logprobs_from_logits(logits, labels)
    want_ent = torch.distributions.Categorical(logits=logits.float()).entropy()
    torch.testing.assert_close(logp, want_logp, rtol=0, atol=0)
    torch.testing.assert_close(ent, want_ent, rtol=1e-5, atol=1e-5)
    assert not ent.requires_grad  # logged only: no graph through the entropy
    w = torch.randn(3, 5)  # an upstream gradient that differs per token
    (logp * w).sum().backward()
    y = logits.clone().requires_grad_(True)
    (logprobs_from_logits(y, labels) * w).sum().backward()
    torch.testing.assert_close(x.grad, y.grad)
    # with an entropy bonus the entropy is differentiated, as entropy_from_logits does
    x.grad = None
    _, ent = logprobs_and_entropy(x, labels, entropy_grad=True)
    ent.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_logprobs_and_entropy_gradient_passes_gradcheck():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 11, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 11, (2, 3))
    assert torch.autograd.gradcheck(lambda x: logprobs_and_entropy(x, labels)[0], (logits,))


def test_logprobs_and_entropy_keep_their_precision_at_large_logits():
    """Real LM logits sit tens of nats above zero: log Z and the entropy come from the shifted
    exponential (max subtracted first), so an offset changes neither beyond float rounding."""
    torch.manual_seed(2)
    logits = 3 * torch.randn(2, 4, 5000)
    labels = torch.randint(0, 5000, (2, 4))
    logp0, ent0 = logprobs_and_entropy(logits, labels)
    logp1, ent1 = logprobs_and_entropy(logits + 60.0, labels)
    want = torch.distributions.Categorical(logits=logits.double()).entropy().float()
    torch.testing.assert_close(ent0, want, rtol=0, atol=2e-5)
    torch.testing.assert_close(ent1, want, rtol=0, atol=2e-5)
    torch.testing.assert_close(logp1, logp0, rtol=0, atol=5e-5)
