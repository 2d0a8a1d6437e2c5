"""Runs of a sweep share what they have in common through the result store: the initial test
evaluation of one policy, an SFT warm start of one budget; a reused result is exactly the
computed one, and metrics.json says where it came from."""

from __future__ import annotations

import json

from rft.train import train
from tests.conftest import PPO_SMALL, compose_cfg, tiny_overrides


def metrics(run) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_the_initial_evaluation_is_computed_once_per_policy(prompts_file, tmp_path):
    over = tiny_overrides(prompts_file, *PPO_SMALL)
    a = train(compose_cfg(*over, "alg.lr=1e-3"), run_dir=tmp_path / "a")
    b = train(compose_cfg(*over, "alg.lr=3e-3"), run_dir=tmp_path / "b")  # another job of a sweep
    fresh = train(compose_cfg(*over, "alg.lr=3e-3", "store.reuse=false"), run_dir=tmp_path / "c")
    init = {k for k in a if k.startswith("test_init/")}
    assert init and all(a[k] == b[k] == fresh[k] for k in init)  # bit for bit
    assert "reused/test_init" not in metrics(tmp_path / "a")
    assert str(tmp_path / "a") in metrics(tmp_path / "b")["reused/test_init"]
    assert "reused/test_init" not in metrics(tmp_path / "c")
    # the trained policies differ: their final evaluations are computed, not reused
    assert "reused/test" not in metrics(tmp_path / "b")
    assert b["test/reward_mean"] == fresh["test/reward_mean"]  # the same run, reuse or not


def test_a_warm_start_of_the_same_budget_is_trained_once(prompts_file, tmp_path):
    ws = ("alg.warm_start.steps=3", "alg.warm_start.batch_size=4", "alg.warm_start.data_frac=0.5")
    over = tiny_overrides(prompts_file, *PPO_SMALL, *ws)
    train(compose_cfg(*over, "alg.lr=1e-3"), run_dir=tmp_path / "a")
    b = train(compose_cfg(*over, "alg.lr=3e-3"), run_dir=tmp_path / "b")
    assert str(tmp_path / "a") in metrics(tmp_path / "b")["reused/warm_start"]
    assert not (tmp_path / "b" / "warm_start" / "history.jsonl").exists()  # no SFT step ran
    fresh = train(compose_cfg(*over, "alg.lr=3e-3", "store.reuse=false"), run_dir=tmp_path / "c")
    assert (tmp_path / "c" / "warm_start" / "history.jsonl").exists()
    keys = [k for k in fresh if k.startswith(("test/", "test_init/", "reward/"))]
    assert keys and all(b[k] == fresh[k] for k in keys)
    # another budget is another warm start
    train(compose_cfg(*over, "alg.warm_start.steps=2"), run_dir=tmp_path / "d")
    assert "reused/warm_start" not in metrics(tmp_path / "d")


def test_the_plan_comes_before_the_warm_start_it_announces(prompts_file, tmp_path, caplog):
    """Time to first signal: the plan (with the SFT phase's estimate) is printed before the warm
    start trains, and a later run's plan says the store will serve that warm start."""
    import logging

    ws = ("alg.warm_start.steps=2", "alg.warm_start.batch_size=4", "alg.warm_start.data_frac=0.5")
    over = tiny_overrides(prompts_file, *PPO_SMALL, *ws, "plan=true")

    def messages(run: str) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="rft"):
            train(compose_cfg(*over), run_dir=tmp_path / run)
        return [r.getMessage() for r in caplog.records]

    first = messages("a")
    plan = next(i for i, m in enumerate(first) if m.startswith("Plan of"))
    sft = next(i for i, m in enumerate(first) if m.startswith("Warm start:"))
    assert plan < sft
    (line,) = [x for x in first[plan].splitlines() if x.strip().startswith("warm_start")]
    assert "SFT 2 steps × 4 pairs" in line and "reused" not in line
    again = next(m for m in messages("b") if m.startswith("Plan of"))
    (line,) = [x for x in again.splitlines() if x.strip().startswith("warm_start")]
    assert f"reused from {tmp_path / 'a'}" in line
