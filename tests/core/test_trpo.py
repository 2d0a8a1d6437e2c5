"""TRPO's maths (rft/core/trpo.py): the conjugate gradient against torch.linalg.solve, the
Fisher-vector product against an explicit Hessian of the KL, chunked = unchunked, the step size
and the backtracking line search (it backtracks when the surrogate does not improve or the KL
is too large, and puts θ_old back when no step is accepted)."""

from __future__ import annotations

import math

import pytest
import torch

from rft.core.trpo import (
    backtracking_line_search,
    categorical_kl,
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    hessian_vector_product,
    max_step_size,
    normalize_advantages,
    set_params,
    surrogate,
)

# ------------------------------------------------------------------------------ small pieces


def test_categorical_kl_equals_torch_distributions():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 11, generator=g), torch.randn(2, 3, 11, generator=g)
    want = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=a), torch.distributions.Categorical(logits=b)
    )
    torch.testing.assert_close(categorical_kl(a, b), want)
    assert categorical_kl(a, a).abs().max() < 1e-6


def test_normalize_advantages_as_sb3_over_valid_tokens():
    adv = torch.tensor([[1.0, 2.0, 3.0], [4.0, 50.0, 60.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    valid = torch.tensor([1.0, 2.0, 3.0, 4.0])
    want = (valid - valid.mean()) / (valid.std() + 1e-8)  # Bessel-corrected, as torch's std
    out = normalize_advantages(adv, mask)
    torch.testing.assert_close(out[mask.bool()], want)
    assert out[~mask.bool()].abs().sum() == 0


def test_surrogate_is_the_token_mean_of_advantage_times_ratio():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, 7.0]])
    old = torch.tensor([[-1.5, -2.0], [-0.5, 0.0]])
    adv = torch.tensor([[1.0, -2.0], [3.0, 9.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    want = (1.0 * math.exp(0.5) - 2.0 * 1.0 + 3.0 * 1.0) / 3
    assert surrogate(logp, old, adv, mask).item() == pytest.approx(want)
    # as a chunk of a 6-token rollout: the same sum over twice the count
    assert surrogate(logp, old, adv, mask, n_tokens=6).item() == pytest.approx(want / 2)


# ------------------------------------------------------------------------------ CG


def spd(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    return m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)


def test_cg_solves_a_small_spd_system():
    A = spd()
    b = torch.randn(6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0 = 1e-4 * torch.randn(6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    res = conjugate_gradient(lambda v: A @ v, b, x0, max_steps=50, residual_tol=1e-20)
    torch.testing.assert_close(res.x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)
    assert res.residual_sq < 1e-20
    assert res.steps <= 8  # n steps in exact arithmetic, a few more in floating point


def test_cg_stops_after_max_steps_and_at_the_tolerance():
    A, b = spd(), torch.ones(6, dtype=torch.float64)
    calls = []

    def mv(v):
        calls.append(1)
        return A @ v

    res = conjugate_gradient(mv, b, torch.zeros(6, dtype=torch.float64), max_steps=2)
    assert res.steps == 2 and len(calls) == 3  # the x₀ residual + 2 in the loop
    assert res.residual_sq > 1e-10
    # a loose tolerance stops early
    loose = conjugate_gradient(lambda v: A @ v, b, torch.zeros(6, dtype=torch.float64), 15, 1e3)
    assert loose.steps < 6 and loose.residual_sq < 1e3
    # x₀ already solving the system: no step at all
    x = torch.linalg.solve(A, b)
    assert conjugate_gradient(lambda v: A @ v, b, x, 15, 1e-10).steps == 0


# ------------------------------------------------------------------------------ Hv


def tiny_policy(seed: int = 0, n: int = 5, d: int = 3, V: int = 4):
    """logits = X W + c over n states, V actions: two parameter tensors, float64."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    W = torch.randn(d, V, generator=g, dtype=torch.float64).requires_grad_()
    c = torch.randn(V, generator=g, dtype=torch.float64).requires_grad_()
    return X, [W, c]


def kl_of(X, params, rows=None):
    """D = mean KL(π_θ ‖ π_θ detached) over the rows of X (a chunk's share with ``rows``)."""
    W, c = params
    idx = torch.arange(X.shape[0]) if rows is None else rows
    logits = X[idx] @ W + c
    return categorical_kl(logits, logits.detach()).sum() / X.shape[0]


def test_fisher_vector_product_equals_the_explicit_hessian_of_the_kl():
    X, params = tiny_policy()
    W0, c0 = (p.detach().clone() for p in params)
    old = (X @ W0 + c0).detach()

    def kl_flat(theta):  # KL(π_θ ‖ π_old) with π_old fixed at θ_old
        W = theta[: W0.numel()].view_as(W0)
        c = theta[W0.numel() :]
        return categorical_kl(X @ W + c, old).mean()

    theta0 = torch.cat([W0.reshape(-1), c0])
    H = torch.autograd.functional.hessian(kl_flat, theta0)
    v = torch.randn(theta0.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = hessian_vector_product(kl_of(X, params), params, v)
    torch.testing.assert_close(got, H @ v, rtol=1e-10, atol=1e-12)
    damped = fisher_vector_product([lambda: kl_of(X, params)], params, v, damping=0.1)
    torch.testing.assert_close(damped, H @ v + 0.1 * v, rtol=1e-10, atol=1e-12)


def test_hessian_vector_product_of_any_scalar():
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)

    def f(x):
        return (x[0] ** 2 * x[1] + torch.sin(x[2]) * x[0]).sum()

    v = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    H = torch.autograd.functional.hessian(f, x.detach())
    torch.testing.assert_close(hessian_vector_product(f(x), [x], v), H @ v)
    # a linear function has no curvature
    assert hessian_vector_product((2 * x).sum(), [x], v).abs().sum() == 0


def test_chunked_fisher_vector_product_and_gradient_equal_unchunked():
    X, params = tiny_policy(n=7)
    v = torch.randn(16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    whole = fisher_vector_product([lambda: kl_of(X, params)], params, v, 0.1)
    chunks = [lambda r=r: kl_of(X, params, r) for r in torch.arange(7).split(3)]
    torch.testing.assert_close(fisher_vector_product(chunks, params, v, 0.1), whole)
    # the surrogate's gradient likewise (a sum of per-row terms)
    g = torch.Generator().manual_seed(5)
    y, adv = (
        torch.randint(0, 4, (7,), generator=g),
        torch.randn(7, generator=g, dtype=torch.float64),
    )
    mask = torch.ones(7, 1)

    def surr(rows):
        W, c = params
        logp = torch.log_softmax(X[rows] @ W + c, -1).gather(-1, y[rows, None])
        return surrogate(logp, logp.detach(), adv[rows, None], mask[rows], n_tokens=7)

    g_whole = flat_grad(surr(torch.arange(7)), params)
    g_chunks = sum(flat_grad(surr(r), params) for r in torch.arange(7).split(2))
    torch.testing.assert_close(g_chunks, g_whole)


# ------------------------------------------------------------------------------ step and search


def test_step_size_puts_the_quadratic_kl_model_on_the_boundary():
    A = spd()
    x = torch.randn(6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    beta = max_step_size(torch.dot(x, A @ x).item(), max_kl=0.01)
    assert 0.5 * (beta * x) @ A @ (beta * x) == pytest.approx(0.01)
    assert max_step_size(0.0, 0.01) == 0.0 and max_step_size(float("nan"), 0.01) == 0.0


def search(surr, kl, surrogate_old=0.0, max_kl=0.01, tries=10):
    seen, restored = [], []

    def try_step(f):
        seen.append(f)
        return surr(f), kl(f)

    res = backtracking_line_search(
        try_step, lambda: restored.append(1), surrogate_old, max_kl, 0.8, tries
    )
    return res, seen, restored


def test_line_search_backtracks_until_the_surrogate_improves():
    # L(f) = 0.7 - f improves on L_old = 0 only below f = 0.7: f = 1, 0.8 fail, 0.64 passes
    res, seen, restored = search(lambda f: 0.7 - f, lambda f: 0.0)
    assert seen == pytest.approx([1.0, 0.8, 0.64])
    assert res.accepted and res.tries == 3 and res.step_fraction == pytest.approx(0.64)
    assert res.surrogate == pytest.approx(0.06) and not restored


def test_line_search_backtracks_until_the_kl_is_inside_the_region():
    # the surrogate always improves; D(f) = 0.02 f² < 0.01 needs f < 0.707
    res, seen, _ = search(lambda f: 1.0, lambda f: 0.02 * f * f)
    assert res.accepted and res.step_fraction == pytest.approx(0.64)
    assert res.kl == pytest.approx(0.02 * 0.64**2) and res.kl <= 0.01


def test_line_search_needs_a_strict_improvement_and_restores_theta_old():
    res, seen, restored = search(lambda f: 0.0, lambda f: 0.0, tries=4)  # L = L_old: never
    assert not res.accepted and len(seen) == 4 and restored == [1]
    assert res.step_fraction == 0.0 and res.kl == 0.0 and res.surrogate == 0.0


def test_set_params_and_restore_on_real_tensors():
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    base = [p.clone() for p in params]
    step = torch.tensor([1.0, -1.0, 2.0])
    set_params(params, base, step, 0.5)
    assert params[0].tolist() == [1.5, 1.5] and params[1].tolist() == [[4.0]]

    def try_step(f):
        set_params(params, base, step, f)
        return -1.0, 0.0  # never better than L_old = 0

    def restore():
        for p, b in zip(params, base):
            p.copy_(b)

    res = backtracking_line_search(try_step, restore, 0.0, 0.01)
    assert not res.accepted
    assert all(torch.equal(p, b) for p, b in zip(params, base))
