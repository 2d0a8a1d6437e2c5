import math

import torch

from rft.core.masked import masked_mean, masked_sum, masked_var, masked_whiten

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1, 1, 0], [1, 0, 0]])


def test_masked_sum_and_mean_by_hand():
    assert masked_sum(X, MASK).item() == 7.0
    assert torch.allclose(masked_mean(X, MASK), torch.tensor(7 / 3))
    assert torch.equal(masked_sum(X, MASK, dim=-1), torch.tensor([3.0, 4.0]))
    assert torch.equal(masked_mean(X, MASK, dim=-1), torch.tensor([1.5, 4.0]))
    assert torch.equal(masked_mean(X, MASK.bool(), dim=0), torch.tensor([2.5, 2.0, 0.0]))


def test_masked_mean_empty_mask_is_zero_not_nan():
    empty = torch.zeros_like(MASK)
    assert masked_mean(X, empty).item() == 0.0
    assert torch.equal(
        masked_mean(X, torch.tensor([[1, 0, 0], [0, 0, 0]]), dim=-1), torch.tensor([1.0, 0.0])
    )


def test_padding_nan_does_not_leak_into_value_or_grad():
    x = torch.tensor([[1.0, float("nan")], [2.0, float("-inf")]], requires_grad=True)
    mask = torch.tensor([[1, 0], [1, 0]])
    out = masked_mean(x, mask)
    out.backward()
    assert out.item() == 1.5
    assert torch.equal(x.grad, torch.tensor([[0.5, 0.0], [0.5, 0.0]]))


def test_masked_var_by_hand():
    # valid entries 1, 2, 4: mean 7/3, squared deviations sum to 14/3
    assert math.isclose(masked_var(X, MASK, unbiased=False).item(), 14 / 9, rel_tol=1e-6)
    assert math.isclose(masked_var(X, MASK).item(), 7 / 3, rel_tol=1e-6)
    assert torch.allclose(masked_var(X, MASK), torch.tensor([1.0, 2.0, 4.0]).var())


def test_masked_var_degenerate_masks_give_zero():
    one = torch.tensor([[0, 1, 0], [0, 0, 0]])
    assert masked_var(X, one).item() == 0.0
    assert masked_var(X, torch.zeros_like(MASK)).item() == 0.0


def test_masked_whiten():
    torch.manual_seed(0)
    x = torch.randn(3, 5) * 3 + 2
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    valid = x[mask.bool()]
    w = masked_whiten(x, mask)
    assert torch.allclose(w[mask.bool()], (valid - valid.mean()) / valid.std(), atol=1e-5)
    assert torch.all(w[~mask.bool()] == 0)
    kept = masked_whiten(x, mask, shift_mean=False)
    assert torch.allclose(
        kept[mask.bool()], (valid - valid.mean()) / valid.std() + valid.mean(), atol=1e-5
    )
    assert torch.all(kept[~mask.bool()] == 0)
