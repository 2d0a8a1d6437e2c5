"""rft/core/normalize.py: running moments merged batch by batch equal numpy over the whole
stream; scale / standardize on hand numbers; the std floor; checkpoint state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rft.core.normalize import STD_FLOOR, RunningMoments, normalize_scores


def test_merged_moments_equal_numpy_over_the_whole_stream():
    rng = np.random.default_rng(0)
    # uneven batches, size-1 batches included, and a shift in scale half-way
    sizes = [1, 5, 1, 1, 17, 3, 64, 1, 2]
    batches = [
        rng.normal(3.0 if i < 4 else -1.0, 0.03 * (i + 1), size=n) for i, n in enumerate(sizes)
    ]
    m = RunningMoments()
    seen: list[float] = []
    for b in batches:
        m.update(torch.tensor(b, dtype=torch.float32))
        seen += torch.tensor(b, dtype=torch.float32).double().tolist()
        ref = np.asarray(seen)
        assert m.count == len(ref)
        assert m.mean == pytest.approx(ref.mean(), rel=1e-12, abs=1e-12)
        want_var = ref.var(ddof=1) if len(ref) > 1 else 0.0
        assert m.var == pytest.approx(want_var, rel=1e-9, abs=1e-15)
        assert m.std == pytest.approx(math.sqrt(want_var), rel=1e-9, abs=1e-15)


def test_one_value_at_a_time_equals_all_at_once():
    x = torch.tensor([0.5, 0.52, 0.49, 0.55, 0.47, 0.5, 0.51])
    one, all_ = RunningMoments(), RunningMoments()
    for v in x:
        one.update(v.reshape(1))
    all_.update(x)
    assert one.count == all_.count == 7
    assert one.mean == pytest.approx(all_.mean, rel=1e-14)
    assert one.m2 == pytest.approx(all_.m2, rel=1e-9)


def test_empty_and_2d_batches():
    m = RunningMoments()
    m.update(torch.empty(0))
    assert (m.count, m.mean, m.m2, m.std) == (0.0, 0.0, 0.0, 0.0)
    m.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # every element counts
    assert (m.count, m.mean) == (4.0, 2.5)
    assert m.var == pytest.approx(5.0 / 3.0)  # Σ(x - 2.5)² = 5, ddof = 1


def test_scale_and_standardize_by_hand():
    m = RunningMoments()
    m.update(torch.tensor([1.0, 3.0]))  # mean 2, unbiased var 2, std √2
    s = torch.tensor([1.0, 3.0, 5.0])
    r2 = math.sqrt(2.0)
    torch.testing.assert_close(
        normalize_scores(s, m, "scale"), torch.tensor([1 / r2, 3 / r2, 5 / r2])
    )
    torch.testing.assert_close(
        normalize_scores(s, m, "standardize"), torch.tensor([-1 / r2, 1 / r2, 3 / r2])
    )
    assert normalize_scores(s, m, "none") is s
    assert normalize_scores(s.double(), m, "scale").dtype == torch.float64
    with pytest.raises(ValueError, match="allowed: none, scale, standardize"):
        normalize_scores(s, m, "whiten")


def test_the_floor_keeps_a_constant_reward_finite():
    m = RunningMoments()
    for _ in range(5):
        m.update(torch.full((8,), 0.7))
    assert m.std == pytest.approx(0.0, abs=1e-12)
    s = torch.full((8,), 0.7)
    scaled = normalize_scores(s, m, "scale")
    assert torch.isfinite(scaled).all()
    torch.testing.assert_close(scaled, torch.full((8,), 0.7 / STD_FLOOR))
    # standardize maps a constant reward to 0, not 0 / 0
    torch.testing.assert_close(
        normalize_scores(s, m, "standardize"), torch.zeros(8), atol=1e-9, rtol=0
    )
    # fewer than two scores: no spread yet, the floor applies too
    one = RunningMoments()
    one.update(torch.tensor([2.0]))
    torch.testing.assert_close(
        normalize_scores(torch.tensor([2.0]), one, "scale"), torch.tensor([2.0 / STD_FLOOR])
    )


def test_state_dict_round_trip_continues_the_same_stream():
    a = RunningMoments()
    a.update(torch.tensor([0.1, 0.4, 0.2]))
    sd = a.state_dict()
    assert all(type(v) is float for v in sd.values())  # plain floats: any checkpoint format
    b = RunningMoments()
    b.load_state_dict(dict(sd))
    for m in (a, b):
        m.update(torch.tensor([0.9, 0.3]))
    assert a.state_dict() == b.state_dict()
