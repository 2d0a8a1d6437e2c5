"""Extraction mode and the online gradient probe on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rft.diagnostics.probe import leave_one_out_weights
from rft.train import train
from tests.conftest import PPO_SMALL, compose_cfg, tiny_overrides


def test_leave_one_out_baseline():
    R = torch.tensor([1.0, 2.0, 3.0, 6.0])
    w = leave_one_out_weights(R)
    expected = [R[k] - (R.sum() - R[k]) / 3 for k in range(4)]
    assert torch.allclose(w, torch.stack(expected))
    assert torch.all(leave_one_out_weights(torch.ones(5)) == 0)  # zero std: zero gradient


def test_extract_writes_reward_matrix(prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(prompts_file),
        "mode=extract",
        "diag.n_prompts=5",
        "diag.k_samples=3",
        "diag.batch_prompts=2",
    )
    m = train(cfg, run_dir=tmp_path / "ex")
    R = np.load(tmp_path / "ex" / "rewards.npy")
    assert R.shape == (5, 3)
    rows = [json.loads(x) for x in (tmp_path / "ex" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(len(r["completions"]) == 3 for r in rows)
    assert m["diag/low_std_share"] == np.mean(R.std(1) < 0.05)
    assert (tmp_path / "ex" / "reward_std_vs_mean.png").is_file()


@pytest.mark.parametrize("reward", ["constant", "length"])
def test_online_probe_logs_std_and_grad_norm(prompts_file, tmp_path, reward):
    """Razin et al.'s property: a prompt whose K samples all score the same has an exactly zero
    expected-gradient estimate, and one whose rewards differ has a nonzero one."""
    target = {
        "constant": "tests.learning.words.constant_reward",
        "length": "rft.reward.basic.length_reward",
    }[reward]
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *PPO_SMALL, "alg.samples_per_prompt=2"),
        "diag.probe_every=1",
        "diag.probe_prompts=2",
        "diag.probe_samples=3",
        "reward=custom",
        f"reward._target_={target}",
    )
    m = train(cfg, run_dir=tmp_path / "run")
    rows = [
        json.loads(x) for x in (tmp_path / "run" / "diagnostics.jsonl").read_text().splitlines()
    ]
    assert [r["iteration"] for r in rows] == [0, 1]
    pairs = [(s, g) for r in rows for s, g in zip(r["std"], r["grad_norm"], strict=True)]
    assert len(pairs) == 4
    if reward == "constant":
        assert all(s == 0.0 and g == 0.0 for s, g in pairs), pairs
    else:
        assert any(s > 0 for s, _ in pairs), pairs
        assert all((g > 1e-6) == (s > 0) for s, g in pairs), pairs
    assert "reward/low_std_share" in m and "reward/std_per_prompt_p50" in m
    assert (tmp_path / "run" / "std_vs_gradnorm.png").is_file()


def test_probe_does_not_change_training(prompts_file, tmp_path):
    """The probe forks the RNG and leaves grads alone: training metrics are identical."""
    base = tiny_overrides(prompts_file, *PPO_SMALL)
    a = train(compose_cfg(*base), run_dir=tmp_path / "a")
    b = train(
        compose_cfg(*base, "diag.probe_every=1", "diag.probe_prompts=2", "diag.probe_samples=2"),
        run_dir=tmp_path / "b",
    )
    assert a["test/reward_mean"] == b["test/reward_mean"]
    assert a["reward/mean"] == b["reward/mean"]
