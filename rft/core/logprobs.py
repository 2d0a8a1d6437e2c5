"""Token log-probabilities and entropies from LM logits.

Both functions avoid materialising a full (B, T, V) float32 log-softmax: they work one batch row
at a time, upcasting only that (T, V) slice to float32. This keeps bf16 / fp16 logits accurate
(logsumexp over a 50k vocabulary is lossy in bf16) at a peak memory of one row. Outputs are
float32.
"""

import torch
from torch import Tensor

from rft.core.masked import masked_sum


def logprobs_from_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """log π(label_t | s_t) = logits[label_t] - logsumexp(logits).

    logits: (B, T, V); labels: (B, T) int64. Returns (B, T) float32.
    """
    label_logits = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1).float()  # (B, T)
    log_z = torch.stack([torch.logsumexp(row.float(), dim=-1) for row in logits])  # (B, T)
    return label_logits - log_z


def _row_entropy(row: Tensor) -> Tensor:
    logp = torch.log_softmax(row.float(), dim=-1)  # (T, V)
    p = logp.exp()
    # Tokens masked to -inf (e.g. top-p filtered logits) have p = 0 and contribute 0 to the
    # entropy; zero their log-prob so 0 * -inf does not give NaN in the value or the gradient.
    logp = logp.masked_fill(p == 0, 0.0)
    return -(p * logp).sum(-1)  # (T,)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy H(π(· | s_t)) of the next-token distribution.

    logits: (B, T, V). Returns (B, T) float32.
    """
    return torch.stack([_row_entropy(row) for row in logits])


@torch.no_grad()
def _row_log_z_and_entropy(row: Tensor, wide: torch.dtype) -> tuple[Tensor, Tensor]:
    """log Z and H = -Σ_v p_v log p_v of each position of ``row`` (T, V), in ``wide``, sharing
    one shifted exponential: with y = x - max x, e = exp(y), s = Σ e, log Z = max x + log s and
    H = log s - Σ e·y / s. Five passes over the row (upcast, max, shift, exp, product) where
    logsumexp followed by a fresh log-softmax, its exp and a dot product took nine; the
    product is an elementwise multiply and a sum, not a (1 × V)·(V × 1) matmul, which the CPU
    runs at ~2 GFLOP/s. A -inf logit (e = 0, y = -inf) makes 0 · -inf = NaN: such rows take
    the masked path (``_row_entropy``)."""
    y = row.to(wide, copy=True)  # a copy even when row is already float32: y is shifted in place
    m = y.amax(-1, keepdim=True)
    y.sub_(m)
    e = y.exp()
    s = e.sum(-1, keepdim=True)
    log_s = s.log()
    log_z = (m + log_s).squeeze(-1)
    h = (log_s - e.mul_(y).sum(-1, keepdim=True) / s).squeeze(-1)
    if not torch.isfinite(h).all():
        h = _row_entropy(row)
    return log_z, h


class _LogprobsAndEntropy(torch.autograd.Function):
    """Token log-probs (differentiable) and entropies (not) in one pass per row.

    Forward, per row: the float32 upcast, then log Z and the entropy from one shifted
    exponential (``_row_log_z_and_entropy``). Backward, per row:
    d log p_t / d x_v = [v = y_t] - softmax(x)_v, computed in place from the saved logits (in
    their own dtype, bf16 under autocast) and log Z: the softmax, its scaling by -g and the
    label scatter without the zero-filled gather gradient, the fp32 copy autograd would keep,
    or a second gradient to add."""

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor):
        wide = torch.promote_types(logits.dtype, torch.float32)  # float32, or float64 as given
        label_logits = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1).to(wide)  # (B, T)
        log_z, entropy = map(
            torch.stack, zip(*(_row_log_z_and_entropy(row, wide) for row in logits))
        )
        ctx.save_for_backward(logits, labels, log_z)
        ctx.mark_non_differentiable(entropy)
        return label_logits - log_z, entropy

    @staticmethod
    def backward(ctx, grad_logp: Tensor, _grad_entropy):
        logits, labels, log_z = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for b in range(logits.shape[0]):
            g = grad_logp[b].to(log_z.dtype)[:, None]  # (T, 1)
            p = logits[b].to(log_z.dtype, copy=True).sub_(log_z[b][:, None]).exp_()  # softmax
            p.mul_(-g).scatter_add_(-1, labels[b][:, None], g)
            grad[b].copy_(p)
        return grad, None


def logprobs_and_entropy(logits: Tensor, labels: Tensor, entropy_grad: bool = False):
    """``logprobs_from_logits`` and ``entropy_from_logits`` of the same logits, sharing each
    row's float32 upcast and logsumexp: the update step's entropy, logged but not trained on,
    costs 3 passes over the row instead of 9, and the log-probs' backward is one in-place
    softmax-minus-one-hot per row (``_LogprobsAndEntropy``).

    logits: (B, T, V); labels: (B, T) int64. Returns two (B, T) float32 tensors; the entropy
    has a gradient only with ``entropy_grad`` (an entropy bonus), then both are computed as
    ``logprobs_from_logits`` and ``entropy_from_logits`` do.
    """
    if entropy_grad:
        return logprobs_from_logits(logits, labels), entropy_from_logits(logits)
    return _LogprobsAndEntropy.apply(logits, labels)


def sequence_logprob(token_logp: Tensor, mask: Tensor) -> Tensor:
    """log π(y | x) = Σ_t log π(y_t | s_t) over valid tokens.

    token_logp, mask: (B, T). Returns (B,).
    """
    return masked_sum(token_logp, mask, dim=-1)
