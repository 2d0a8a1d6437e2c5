"""The controlled experiment: exact gradients, and the RFT-stalls-on-low-std effect."""

import json
import math

import pytest
import torch
from torch import nn

from rft.diagnostics.controlled import (
    ControlledConfig,
    derangement,
    expected_reward,
    expected_reward_grad,
    main,
    onehot_reward,
    per_example_grad_norms,
    reward_std,
    run,
)


def test_expected_reward_grad_matches_finite_differences():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, dtype=torch.float64)
    R = torch.tensor([[1.0, 0, 0], [0, 0.5, 2.0], [0, 0, 1], [-1.0, 0.3, 0.7]], dtype=torch.float64)
    analytic = expected_reward_grad(logits, R)
    eps = 1e-6
    fd = torch.zeros_like(logits)
    for i in range(4):
        for c in range(3):
            d = torch.zeros_like(logits)
            d[i, c] = eps
            up, down = expected_reward(logits + d, R)[i], expected_reward(logits - d, R)[i]
            fd[i, c] = (up - down) / (2 * eps)
    torch.testing.assert_close(analytic, fd, rtol=1e-7, atol=1e-9)
    # and autograd agrees with the closed form
    lg = logits.clone().requires_grad_()
    expected_reward(lg, R).sum().backward()
    torch.testing.assert_close(lg.grad, analytic)


def test_reward_std_binary_and_gradient_bound():
    torch.manual_seed(1)
    logits = 4 * torch.randn(200, 10, dtype=torch.float64)
    R = onehot_reward(torch.randint(0, 10, (200,)), 10, torch.float64)
    p = expected_reward(logits, R)
    std = reward_std(logits, R)
    torch.testing.assert_close(std, (p * (1 - p)).sqrt())
    # For a 0/1 reward, ||dV/dlogits|| = p ||e_c - π|| <= sqrt(2) p (1 - p) = sqrt(2) std².
    g = expected_reward_grad(logits, R).norm(dim=-1)
    assert torch.all(g <= math.sqrt(2) * std**2 + 1e-12)


def test_per_example_grad_norms_match_loop():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    R = onehot_reward(torch.tensor([0, 1, 2, 0, 1, 2]), 3, torch.float64)
    got = per_example_grad_norms(model, x, R)
    for i in range(6):
        model.zero_grad()
        expected_reward(model(x[i : i + 1]), R[i : i + 1]).sum().backward()
        rft = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
        model.zero_grad()
        (model(x[i : i + 1]).log_softmax(-1) * R[i : i + 1]).sum().backward()
        sft = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
        torch.testing.assert_close(got["rft"][i], rft)
        torch.testing.assert_close(got["sft"][i], sft)


def test_derangement_has_no_fixed_point():
    perm = derangement(10, seed=3)
    assert sorted(perm) == list(range(10)) and all(perm[i] != i for i in range(10))


def test_config_validation():
    with pytest.raises(ValueError, match="optimizer"):
        ControlledConfig(optimizer="rmsprop")


TINY = ControlledConfig(seed=0, pretrain_steps=150, steps=30, probe_size=16, n_checkpoints=2)


def test_rft_stalls_on_low_std_inputs_where_sft_does_not():
    res = run(TINY)
    for m in ("sft", "rft"):
        assert len(res[m]["reward"]) == TINY.steps + 1
        assert [p["iteration"] for p in res[m]["probes"]] == [0, TINY.steps]
    start = res["sft"]["reward_low_std"][0]
    assert start == res["rft"]["reward_low_std"][0] < 0.05  # same init, the new labels are unlikely
    f = res["final"]
    # SFT lifts the initially-low-std inputs as much as the rest ...
    assert f["sft/reward_low_std"] > 0.5
    # ... RFT, with the same optimizer and lr, barely moves them while it does move the rest.
    rft_gain_low = f["rft/reward_low_std"] - start
    rft_gain_rest = f["rft/reward_rest"] - res["rft"]["reward_rest"][0]
    assert rft_gain_rest > 0.1
    assert rft_gain_low < 0.5 * rft_gain_rest
    assert f["sft/reward_low_std"] - f["rft/reward_low_std"] > 0.3
    # Exact per-input RFT gradients at the start: the lowest-std probe gets a far smaller one.
    probe = res["rft"]["probes"][0]
    order = sorted(range(len(probe["std"])), key=lambda i: probe["std"][i])
    assert probe["grad_norm"][order[0]] < 1e-2 * probe["grad_norm"][order[-1]]


def test_cli_writes_outputs(tmp_path, capsys):
    main(["--out", str(tmp_path), *"--steps 5 --pretrain-steps 20 --probe-size 4 --seed 1".split()])
    data = json.loads((tmp_path / "controlled.json").read_text())
    assert data["config"]["steps"] == 5 and data["config"]["seed"] == 1
    assert {"sft/reward", "rft/reward", "sft/reward_low_std", "rft/reward_low_std"} <= set(
        data["final"]
    )
    for name in ("controlled_curves.png", "controlled_std_vs_grad.png", "controlled_low_std.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "RFT: final train reward" in capsys.readouterr().out
