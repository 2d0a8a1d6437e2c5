"""Masked reductions over padded (B, T) token tensors.

`mask` is 1 (or True) on valid tokens and 0 on padding. Padded entries are selected away with
`torch.where` rather than multiplied by 0, so a NaN or inf sitting in padding (e.g. the log-prob of
a pad token) cannot leak into the result.
"""

import torch
from torch import Tensor


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of `x` over entries where `mask` is set; over all dims when `dim` is None."""
    x = torch.where(mask.bool(), x, torch.zeros_like(x))
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` over entries where `mask` is set; 0 (not NaN) where the mask is empty."""
    count = mask.sum() if dim is None else mask.sum(dim)
    # The numerator is exactly 0 when the mask is empty, so clamping the count gives 0, not 0/0.
    return masked_sum(x, mask, dim) / count.clamp(min=1).to(x.dtype)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance (scalar) of the masked entries of `x`.

    With `unbiased`, applies Bessel's correction n / (n - 1); with a single valid entry the
    variance is 0 rather than NaN (the correction is skipped), and an empty mask also gives 0.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum().to(x.dtype)
        var = var * n / (n - 1).clamp(min=1)
    return var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise `x` to zero mean and unit variance using masked statistics only.

    With `shift_mean=False` the mean is added back (only the scale changes), as TRL does for
    rewards. Padded entries of the output are 0.
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))
