"""TRPO's maths (Schulman et al., 2015), as RL4LMs runs it: a copy of sb3-contrib's TRPO, which
borrows from Spinning Up (docs/algorithms.md §16).

One actor step on a rollout, over its valid tokens t (one transition per token):

    Â     = (A - mean A) / (std A + 1e-8)                    normalised over the whole rollout
    L(θ)  = mean_t Â_t · exp(log π_θ(y_t|s_t) - log π_old(y_t|s_t))          the surrogate
    D(θ)  = mean_t KL(π_θ(·|s_t) ‖ π_old(·|s_t))             exact, over the whole vocabulary
    g     = ∇L(θ_old);   H v = ∇(∇D · v) + damping · v        (Fisher-vector product at θ_old)
    x     ≈ H⁻¹ g by conjugate gradient, started at x₀ = 1e-4 · N(0, I)
    β     = sqrt(2 δ / xᵀ H x)
    θ     = θ_old + shrink^i · β · x for the first i with D(θ) < δ and L(θ) > L(θ_old),
            else θ_old

Everything here is a tensor function; the module (rft.alg.trpo) composes them. L, D, g and Hv
are sums of per-token terms: a rollout cut into chunks gives each as the sum of the chunks'
(divided by the ROLLOUT's token count), exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rft.core.masked import masked_mean, masked_sum, masked_var


def normalize_advantages(advantages: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(A - mean A) / (std A + eps) over the valid tokens (Bessel-corrected std, as torch's
    ``Tensor.std`` in sb3-contrib). advantages, mask: (B, T); returns (B, T), 0 on padding."""
    mean = masked_mean(advantages, mask)
    std = masked_var(advantages, mask, unbiased=True).sqrt()
    out = (advantages - mean) / (std + eps)
    return torch.where(mask.bool(), out, torch.zeros_like(out))


def categorical_kl(logits: Tensor, old_logits: Tensor) -> Tensor:
    """KL(softmax(logits) ‖ softmax(old_logits)) at every position, summed over the vocabulary,
    in float32 (float64 stays float64). logits (differentiable, twice), old_logits: (B, T, V).
    Returns (B, T)."""
    wide = torch.promote_types(logits.dtype, torch.float32)
    logp = torch.log_softmax(logits.to(wide), dim=-1)
    old = torch.log_softmax(old_logits.to(wide), dim=-1)
    return (logp.exp() * (logp - old)).sum(-1)


def surrogate(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, n_tokens=None
) -> Tensor:
    """A chunk's share of L = mean_t Â_t · exp(log π_θ - log π_old): the sum over its valid
    tokens divided by ``n_tokens`` (the rollout's; None: the chunk's own). (B, T) each."""
    n = mask.sum() if n_tokens is None else n_tokens
    return masked_sum(advantages * (logp - old_logp).exp(), mask) / n


def flat_grad(
    y: Tensor, params: Sequence[Tensor], create_graph: bool = False, retain_graph=None
) -> Tensor:
    """∇y over ``params``, flattened into one vector (zeros for a parameter y does not use)."""
    grads = torch.autograd.grad(
        y, params, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True
    )
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]
    )


def param_views(flat: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """Views of the flat vector ``flat`` shaped as ``params`` (no copy)."""
    out, i = [], 0
    for p in params:
        out.append(flat[i : i + p.numel()].view_as(p))
        i += p.numel()
    return out


def add_grad(out: Tensor, y: Tensor, params: Sequence[Tensor], **kwargs) -> Tensor:
    """out += ∇y over ``params`` (flat ``out``), without a flattened copy of the gradient."""
    grads = torch.autograd.grad(y, params, allow_unused=True, **kwargs)
    for o, g in zip(param_views(out, params), grads):
        if g is not None:
            o.add_(g)
    return out


def hessian_vector_product(
    y: Tensor, params: Sequence[Tensor], v: Tensor, out: Tensor | None = None
) -> Tensor:
    """H v = ∇(∇y · v) for a scalar y built with a graph through ``params`` (Pearlmutter's
    double backward); v flat, as ``flat_grad``'s output. Added into ``out`` when given (one
    0.5 GB vector fewer for an LM), else returned as a new flat vector."""
    out = torch.zeros_like(v) if out is None else out
    grads = torch.autograd.grad(y, params, create_graph=True, allow_unused=True)
    terms = [
        torch.dot(g.reshape(-1), vp.reshape(-1))
        for g, vp in zip(grads, param_views(v, params))
        if g is not None and g.requires_grad
    ]
    if not terms:  # y is linear (or constant) in params: H = 0
        return out
    return add_grad(out, torch.stack(terms).sum(), params)


def fisher_vector_product(
    kl_chunks: Iterable[Callable[[], Tensor]],
    params: Sequence[Tensor],
    v: Tensor,
    damping: float,
) -> Tensor:
    """Σ_c ∇(∇D_c · v) + damping · v: the Fisher-vector product of D = Σ_c D_c, each chunk's
    share of the KL built by its callable (a fresh forward pass, so only one chunk's graph is
    alive at a time). v: flat over ``params``; returns a flat vector."""
    hv = damping * v  # the sum accumulates in place: each flat vector of an LM is ~0.5 GB
    for kl in kl_chunks:
        hessian_vector_product(kl(), params, v, out=hv)
    return hv


@dataclass
class CGResult:
    x: Tensor  # the approximate solution of H x = b
    residual_sq: float  # ‖b - H x‖² as the last iteration left it
    steps: int  # matrix-vector products inside the loop (the x₀ residual's not counted)


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor,
    max_steps: int = 15,
    residual_tol: float = 1e-10,
) -> CGResult:
    """Solve H x = b for a symmetric positive definite H given as ``matvec`` (sb3-contrib's
    ``conjugate_gradient_solver``): start at ``x0`` (sb3-contrib: 1e-4 · N(0, I), not 0, for
    stability when b is tiny), stop after ``max_steps`` products or once ‖r‖² < residual_tol.
    b, x0: flat vectors (n,)."""
    x = x0.clone()
    del x0  # a temporary x₀ is freed here, not held for the whole solve
    r = b - matvec(x)
    rs = torch.dot(r, r).item()
    if rs < residual_tol:
        return CGResult(x, rs, 0)
    p = r.clone()
    for i in range(max_steps):  # in place: an LM's vectors are ~0.5 GB each
        Ap = matvec(p)
        alpha = rs / torch.dot(p, Ap).item()
        x.add_(p, alpha=alpha)
        r.sub_(Ap, alpha=alpha)
        del Ap
        new_rs = torch.dot(r, r).item()
        if i == max_steps - 1 or new_rs < residual_tol:
            return CGResult(x, new_rs, i + 1)
        p.mul_(new_rs / rs).add_(r)
        rs = new_rs
    return CGResult(x, rs, 0)  # max_steps = 0


def max_step_size(xhx: float, max_kl: float) -> float:
    """β = sqrt(2 δ / xᵀ H x): the step along x whose quadratic KL model equals δ; 0 when
    xᵀ H x is not a positive number (no step)."""
    if not (math.isfinite(xhx) and xhx > 0):
        return 0.0
    return math.sqrt(2.0 * max_kl / xhx)


@dataclass
class LineSearchResult:
    accepted: bool
    tries: int  # step sizes evaluated
    step_fraction: float  # shrink^i of the accepted step; 0 when none was
    surrogate: float  # L at the θ kept
    kl: float  # D at the θ kept (0 at θ_old)


def backtracking_line_search(
    try_step: Callable[[float], tuple[float, float]],
    restore: Callable[[], None],
    surrogate_old: float,
    max_kl: float,
    shrink: float = 0.8,
    max_tries: int = 10,
) -> LineSearchResult:
    """sb3-contrib's line search: ``try_step(f)`` puts θ = θ_old + f · β · x in place and returns
    (L(θ), D(θ)); f = 1, shrink, shrink², ... until D < max_kl and L > surrogate_old (strict).
    When no try is accepted, ``restore()`` puts θ_old back."""
    frac = 1.0
    for i in range(max_tries):
        surr, kl = try_step(frac)
        if kl < max_kl and surr > surrogate_old:
            return LineSearchResult(True, i + 1, frac, surr, kl)
        frac *= shrink
    restore()
    return LineSearchResult(False, max_tries, 0.0, surrogate_old, 0.0)


@torch.no_grad()
def set_params(params: Sequence[Tensor], base: Sequence[Tensor], step: Tensor, scale: float):
    """params ← base + scale · step, in place: ``step`` flat over ``params`` (their order)."""
    i = 0
    for p, b in zip(params, base):
        n = p.numel()
        torch.add(b, step[i : i + n].view_as(p), alpha=scale, out=p.data)
        i += n
