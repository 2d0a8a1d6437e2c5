import math

import pytest
import torch

from rft.core.kl import (
    AdaptiveKLControllerRL4LMs,
    AdaptiveKLControllerZiegler,
    FixedKLController,
    approx_kl,
    kl_penalty_k1,
    make_kl_controller,
)


def test_estimators():
    logp = torch.tensor([[-1.0, -2.0]])
    ref_logp = torch.tensor([[-1.5, -1.0]])
    assert torch.equal(kl_penalty_k1(logp, ref_logp), torch.tensor([[0.5, -1.0]]))
    logratio = torch.tensor([0.0, math.log(2.0), math.log(0.5)])
    expected = torch.tensor([0.0, 1 - math.log(2.0), -0.5 + math.log(2.0)])
    assert torch.allclose(approx_kl(logratio), expected)


def test_fixed_controller():
    ctl = FixedKLController(0.1)
    ctl.step(5.0, 128)
    ctl.step(0.0, 128)
    assert ctl.beta == 0.1


def test_rl4lms_controller_by_hand():
    ctl = AdaptiveKLControllerRL4LMs(init_beta=0.1, target=0.1)
    ctl.step(0.11, n_steps=1280)  # e = 0.1, unclipped; n_steps is ignored
    assert math.isclose(ctl.beta, 0.1 * 1.01)
    ctl.step(1.0, n_steps=1)  # e = 9 clipped to 0.2
    assert math.isclose(ctl.beta, 0.1 * 1.01 * 1.02)
    ctl.step(0.0, n_steps=1)  # e = -1 clipped to -0.2
    assert math.isclose(ctl.beta, 0.1 * 1.01 * 1.02 * 0.98)
    assert math.isclose(ctl.beta, 0.1009596)


def test_ziegler_controller_by_hand():
    ctl = AdaptiveKLControllerZiegler(init_beta=0.2, target=6.0, horizon=10000)
    ctl.step(6.6, n_steps=256)  # e = 0.1 -> × (1 + 0.1 · 256 / 10000)
    assert math.isclose(ctl.beta, 0.2 * 1.00256)
    ctl.step(60.0, n_steps=256)  # e = 9 clipped to 0.2 -> × 1.00512
    assert math.isclose(ctl.beta, 0.2 * 1.00256 * 1.00512)
    ctl.step(0.0, n_steps=256)  # e = -1 clipped to -0.2 -> × 0.99488
    assert math.isclose(ctl.beta, 0.2 * 1.00256 * 1.00512 * 0.99488)


def test_state_dict_round_trip():
    ctl = AdaptiveKLControllerRL4LMs(0.1, 0.1)
    ctl.step(1.0, 1)
    fresh = AdaptiveKLControllerRL4LMs(0.1, 0.1)
    fresh.load_state_dict(ctl.state_dict())
    assert fresh.beta == ctl.beta != 0.1


def test_factory():
    assert isinstance(make_kl_controller("fixed", 0.1), FixedKLController)
    assert isinstance(
        make_kl_controller("adaptive_rl4lms", 0.1, target=0.1), AdaptiveKLControllerRL4LMs
    )
    ctl = make_kl_controller("adaptive_ziegler", 0.1, target=6.0, horizon=10000)
    assert isinstance(ctl, AdaptiveKLControllerZiegler) and ctl.beta == 0.1
    with pytest.raises(ValueError, match="fixed, adaptive_rl4lms, adaptive_ziegler"):
        make_kl_controller("adaptive", 0.1, target=0.1)
    with pytest.raises(ValueError, match="target"):
        make_kl_controller("adaptive_rl4lms", 0.1)
    with pytest.raises(ValueError, match="horizon"):
        make_kl_controller("adaptive_ziegler", 0.1, target=6.0)
