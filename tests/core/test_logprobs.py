import math

import torch

from rft.core.logprobs import entropy_from_logits, logprobs_from_logits, sequence_logprob


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
