"""Time to first signal: the plan's arithmetic against hand-computed numbers (fake timings),
its counts from composed configs, and calibration that leaves the policy and the RNG as they
were."""

from __future__ import annotations

import pytest
import torch

from rft.plan import (
    Calibration,
    Workload,
    calibrate,
    duration,
    estimate,
    plan_run,
    time_generation,
    time_update,
    workload_from_cfg,
)
from rft.store.fingerprint import weights_fingerprint
from tests.conftest import compose_cfg

W = Workload(
    n_units=10,
    unit="iteration",
    generate=32,
    score=64,
    update=64,
    episodes_per_unit=32,
    warm_start_steps=100,
    warm_start_batch=16,
    test_prompts=512,
    test_k=2,
    val_prompts=128,
    val_k=1,
    val_every=5,
)
C = Calibration(generate_s=0.5, update_s=0.2, score_s=0.05)


def test_plan_arithmetic_by_hand():
    plan = estimate(W, C, run_dir="outputs/imdb_ppo/t", store="/cache/store")
    secs = {p.name: p.seconds for p in plan.phases}
    assert list(secs) == ["warm_start", "test_init", "training", "test"]
    assert secs["warm_start"] == pytest.approx(100 * 16 * 0.2)  # 320
    assert secs["test_init"] == pytest.approx(1024 * (0.5 + 0.05))  # 563.2
    per_iteration = 32 * 0.5 + 64 * 0.05 + 64 * 0.2  # 32
    val = 2 * 128 * (0.5 + 0.05)  # 140.8: evaluations at iterations 5 and 10
    assert secs["training"] == pytest.approx(10 * per_iteration + val)  # 460.8
    assert secs["test"] == pytest.approx(563.2)
    assert plan.total_s == pytest.approx(1907.2)
    assert plan.first_signal_s == pytest.approx(320 + 563.2 + 32)
    assert plan.episodes == 320
    text = plan.format(now=0.0)
    assert "10 iterations × 32 episodes; 2 val evals × 128" in text
    assert "first signal +15.3 min" in text and "total        ~31.8 min" in text
    assert "outputs/imdb_ppo/t/ (metrics.json" in text and "/cache/store" in text


def test_reused_phases_cost_nothing_and_say_where_from():
    plan = estimate(W, C, reused={"test_init": "outputs/a", "warm_start": "outputs/b"})
    secs = {p.name: p.seconds for p in plan.phases}
    assert secs["warm_start"] == secs["test_init"] == 0
    assert plan.total_s == pytest.approx(460.8 + 563.2)
    assert plan.first_signal_s == pytest.approx(32)  # the first iteration is the first thing
    assert "reused from outputs/a" in plan.format()


def test_without_perplexity_evaluations_only_generate():
    w = Workload(n_units=1, test_prompts=100, test_k=1, perplexity=False, eval_before=False)
    plan = estimate(w, C)
    assert [p.name for p in plan.phases] == ["training", "test"]
    assert plan.phases[1].seconds == pytest.approx(100 * 0.5)


@pytest.mark.parametrize(
    "alg, units, unit, generate, update",
    [
        ("ppo", 20, "iteration", 32, 64),  # 32 prompts × 1, 2 epochs
        ("grpo", 20, "iteration", 32, 32),  # 8 prompts × 4, μ = 1
        ("sft", 200, "step", 0, 16),
        ("dpo", 200, "step", 0, 32),  # chosen and rejected
    ],
)
def test_counts_from_the_composed_config(alg, units, unit, generate, update):
    cfg = compose_cfg(f"alg={alg}")
    w = workload_from_cfg(cfg, n_test_prompts=512, n_val_prompts=128)
    assert (w.n_units, w.unit, w.generate, w.update) == (units, unit, generate, update)
    assert w.test_k == cfg.eval.samples_per_prompt and w.val_every == cfg.alg.eval_every
    assert w.warm_start_steps == 0


def test_warm_start_and_epoch_budgets_count():
    cfg = compose_cfg("alg=ppo", "alg.warm_start.steps=50", "alg.warm_start.batch_size=8")
    w = workload_from_cfg(cfg, 512, 128)
    assert (w.warm_start_steps, w.warm_start_batch) == (50, 8)
    cfg = compose_cfg("alg=sft", "alg.max_steps=-1", "alg.dataset_epochs=2", "alg.batch_size=10")
    assert workload_from_cfg(cfg, 512, 128, n_pairs=95).n_units == 2 * 10


def test_durations_read_naturally():
    assert [duration(s) for s in (12, 150, 7200)] == ["12 s", "2.5 min", "2.0 h"]


def test_calibration_leaves_the_policy_and_the_rng_as_they_were():
    from rft.model.build import load_policy

    cfg = compose_cfg("model=tiny")
    policy = load_policy(cfg.model)
    task = type("T", (), {"prompt_max_tokens": 8, "max_new_tokens": 6, "min_new_tokens": 6})()
    before, rng = weights_fingerprint(policy), torch.get_rng_state()
    gen_s, texts = time_generation(policy, task, ["the film was", "a good"], cfg.eval.generation)
    update_s, score_s = time_update(policy, task, ["the film was", "a good"], texts)
    assert len(texts) == 2 and gen_s > 0 and update_s > 0 and score_s > 0
    assert weights_fingerprint(policy) == before and torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in policy.parameters())
    c = calibrate(policy, task, ["the film was"], cfg.eval.generation)
    assert c.generate_s > 0 and c.update_s > 0 and c.score_s > 0
    assert weights_fingerprint(policy) == before


def test_plan_run_on_a_tiny_model_and_task(prompts_file):
    from rft.errors import instantiate
    from rft.model.build import load_policy
    from tests.conftest import PPO_SMALL, tiny_overrides

    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL))
    task = instantiate(cfg.task, _convert_="none")
    policy = load_policy(cfg.model)
    before = weights_fingerprint(policy)
    plan = plan_run(cfg, task, policy, run_dir="outputs/x", reused={"test_init": "outputs/y"})
    assert [p.name for p in plan.phases] == ["test_init", "training", "test"]
    assert plan.phases[0].seconds == 0 and plan.phases[1].seconds > 0
    assert plan.episodes == 2 * 4 and weights_fingerprint(policy) == before
