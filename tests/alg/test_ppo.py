"""alg=ppo (rft.alg.ppo.PPO) end to end on the tiny model: it trains and changes the policy, the
value head has its own learning rate, a separate value model and K samples per prompt work,
every iteration draws new prompts, two CPU DDP processes agree, and a killed run resumes
exactly. The PPO maths: tests/core/test_ppo.py; its wiring: tests/learning/test_wiring.py."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from rft.alg.ppo import PPO
from rft.train import train
from tests.conftest import (
    PPO_SMALL,
    Killed,
    changed,
    compose_cfg,
    history,
    initial_params,
    run_cli,
    spy_batches,
    tiny_overrides,
)


def test_ppo_trains_two_iterations_and_changes_policy(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL))
    before = initial_params(cfg)
    run = tmp_path / "run"
    metrics = train(cfg, run_dir=run)
    assert changed(before, run / "policy") > 0
    for key in (
        "test/reward_mean",
        "test/perplexity",
        "test/distinct_1",
        "test/distinct_2",
        "test_init/reward_mean",
        "reward/mean",
        "objective/kl_coef",
    ):
        assert key in metrics, key
    rows = history(run)
    train_rows = [r for r in rows if "loss/policy" in r]
    assert [r["iteration"] for r in train_rows] == [1, 2]
    for key in (
        "policy/approx_kl",
        "policy/clipfrac",
        "value/explained_variance",
        "policy/entropy",
        "objective/kl",
        "time/rollout_s",
        "time/update_s",
        "time/rollout_tokens_per_s",
    ):
        assert key in train_rows[0], key
    for f in (
        "metrics.json",
        "curves.png",
        "samples.jsonl",
        "config.yaml",
        "checkpoints/state.ckpt",
    ):
        assert (run / f).is_file(), f
    # the saved policy generates with plain transformers
    model = AutoModelForCausalLM.from_pretrained(str(run / "policy"))
    out = model.generate(torch.tensor([[464, 2646]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 5)


def test_value_head_has_its_own_learning_rate(prompts_file, tmp_path):
    from rft.model.build import frozen_copy, load_policy
    from rft.model.policy import ValueHead

    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL, "alg.value_head_lr=0.01"))
    policy = load_policy(cfg.model)
    module = PPO(cfg, None, policy, frozen_copy(policy), None, tmp_path)
    body, heads = module.configure_optimizers().param_groups
    assert (body["lr"], heads["lr"]) == (1e-3, 0.01)
    assert [id(p) for p in heads["params"]] == [id(p) for p in module.value_head.parameters()]
    assert isinstance(module.value_head, ValueHead)
    assert len(body["params"]) == len(list(policy.parameters()))


def test_ppo_separate_value_model_and_k_samples(prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(
            prompts_file,
            *PPO_SMALL,
            "alg.value_model=separate",
            "alg.samples_per_prompt=2",
            "alg.kl.kind=adaptive_ziegler",
            "alg.whiten_rewards=true",
            "alg.ent_coef=0.01",
        )
    )
    before = initial_params(cfg)
    metrics = train(cfg, run_dir=tmp_path / "run")
    assert changed(before, tmp_path / "run" / "policy") > 0
    assert "reward/std_per_prompt" in metrics and "reward/low_std_share" in metrics
    rows = [r for r in history(tmp_path / "run") if "loss/policy" in r]
    # Ziegler: β ← β (1 + clip(KL/target - 1, ±0.2) · n_steps / horizon), 8 episodes a rollout
    kl = cfg.alg.kl
    e = min(max(rows[0]["objective/kl"] / kl.target - 1, -0.2), 0.2)
    assert rows[0]["objective/kl_coef"] == kl.beta
    assert rows[1]["objective/kl_coef"] == pytest.approx(
        kl.beta * (1 + e * 8 / kl.horizon), rel=1e-9
    )
    for r in rows:  # the entropy bonus and vf_coef enter the loss as their formula says
        total = r["loss/policy"] + 0.5 * r["loss/value"] - 0.01 * r["policy/entropy"]
        assert r["loss/total"] == pytest.approx(total, rel=1e-5, abs=1e-7)


def test_ppo_draws_new_prompts_every_iteration(prompts_file, tmp_path, monkeypatch):
    from rft.rollout.prompts import IterationSampler

    def expected(m, epoch, _):
        fresh = IterationSampler(len(m.task.train), m.a.rollout_prompts, m.cfg.seed)
        fresh.set_epoch(epoch)
        return next(iter(fresh))

    seen = spy_batches(monkeypatch, PPO, expected)
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL, "alg.n_iterations=3"))
    train(cfg, run_dir=tmp_path / "run")
    assert [e for e, *_ in seen] == [0, 1, 2]
    assert all(got == want for *_, got, want in seen)
    assert len({tuple(b) for _, _, b, _ in seen}) == 3


def test_ppo_under_cpu_ddp_two_processes(prompts_file, tmp_path):
    """Lightning DDP with 2 CPU processes (gloo) through run.py: PPO trains, the val/test
    evaluations are sharded across the ranks and gathered (rft/eval/evaluate.py), and both
    ranks end with the same test metrics."""
    import re

    run = tmp_path / "run"
    args = tiny_overrides(prompts_file, *PPO_SMALL) + [
        "task.n_test_prompts=8",
        "task.n_eval_prompts=8",
        "alg.eval_every=1",
        "hardware.devices=2",
        "hardware.strategy=ddp",
        "hardware.torch_threads=1",
        f"hydra.run.dir={run}",
    ]
    r = run_cli(*args)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    done = re.findall(r"Done: (.*) \| run folder", out)
    assert len(done) == 2 and done[0] == done[1], done  # one line per rank, the same metrics
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test/reward_mean"] <= 1.0 and metrics["test/perplexity"] > 1
    rows = history(run)
    assert [r["iteration"] for r in rows if "val/reward_mean" in r] == [1]  # last: test only
    test = json.loads(sorted((run / "eval").glob("test_0*.json"))[-1].read_text())
    assert len(test["samples"]) == 2  # eval.n_samples_table=2, from the gathered records


def test_resume_after_kill_matches_uninterrupted_run(prompts_file, tmp_path, monkeypatch):
    over = tiny_overrides(
        prompts_file,
        *PPO_SMALL,
        "alg.n_iterations=4",
        "checkpoint.every_n_iterations=2",
        "alg.eval_every=2",
    )
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")

    original = PPO.training_step

    def dies_in_iteration_3(self, batch, batch_idx):
        if self.current_epoch == 3:
            raise Killed("simulated kill")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(PPO, "training_step", dies_in_iteration_3)
    with pytest.raises(Killed):
        train(compose_cfg(*over), run_dir=tmp_path / "resumed")
    assert (
        json.loads((tmp_path / "resumed" / "checkpoints" / "state.json").read_text())["step"] == 2
    )
    monkeypatch.setattr(PPO, "training_step", original)
    resumed = train(compose_cfg(*over), run_dir=tmp_path / "resumed")  # resumes by itself

    for k in ("test/reward_mean", "test/perplexity", "reward/mean", "objective/kl_coef"):
        assert resumed[k] == pytest.approx(full[k], rel=1e-5, abs=1e-7), k
    val = [r["val/reward_mean"] for r in history(tmp_path / "full") if "val/reward_mean" in r]
    assert len(val) == 1  # the periodic evaluation after iteration 2 (eval_every=2)
    assert [
        r["val/reward_mean"] for r in history(tmp_path / "resumed") if "val/reward_mean" in r
    ] == val
    h_full = [r for r in history(tmp_path / "full") if "loss/policy" in r]
    h_res = [r for r in history(tmp_path / "resumed") if "loss/policy" in r]
    assert [r["iteration"] for r in h_res] == [1, 2, 3, 4]
    for a, b in zip(h_full, h_res):
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], rel=1e-5)
        assert a["loss/policy"] == pytest.approx(b["loss/policy"], rel=1e-4, abs=1e-6)
