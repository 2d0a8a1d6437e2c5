"""End-to-end runs of train(cfg) on the tiny model: each algorithm trains and changes the
policy, checkpoints load with plain transformers, and a killed run resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from rft.model.load import load_model
from rft.train import train
from tests.conftest import PPO_SMALL, SFT_SMALL, compose_cfg, run_cli, tiny_overrides


def initial_params(cfg) -> dict[str, torch.Tensor]:
    model, _ = load_model(cfg.model)
    return {k: v.clone() for k, v in model.state_dict().items()}


def changed(before: dict, folder, seq2seq: bool = False) -> int:
    cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    after = cls.from_pretrained(str(folder)).state_dict()
    return sum(not torch.equal(before[k], after[k]) for k in before if k in after)


def history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


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
    from rft.alg.ppo import PPO
    from rft.model.policy import ValueHead
    from rft.train import frozen_copy, load_policy

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
    assert rows[0]["objective/kl_coef"] == kl.init_beta
    assert rows[1]["objective/kl_coef"] == pytest.approx(
        kl.init_beta * (1 + e * 8 / kl.horizon), rel=1e-9
    )
    for r in rows:  # the entropy bonus and vf_coef enter the loss as their formula says
        total = r["loss/policy"] + 0.5 * r["loss/value"] - 0.01 * r["policy/entropy"]
        assert r["loss/total"] == pytest.approx(total, rel=1e-5, abs=1e-7)


def test_sft_trains_and_changes_policy(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *SFT_SMALL))
    before = initial_params(cfg)
    train(cfg, run_dir=tmp_path / "run")
    assert changed(before, tmp_path / "run" / "policy") > 0
    rows = [r for r in history(tmp_path / "run") if "sft/loss" in r]
    assert [r["iteration"] for r in rows] == [1, 2]


def test_seq2seq_t5_policy_trains(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL, "model=tiny_t5"))
    before = initial_params(cfg)
    train(cfg, run_dir=tmp_path / "run")
    assert changed(before, tmp_path / "run" / "policy", seq2seq=True) > 0


def test_sft_then_ppo_with_init_from(prompts_file, tmp_path):
    sft = compose_cfg(*tiny_overrides(prompts_file, *SFT_SMALL))
    train(sft, run_dir=tmp_path / "sft")
    ppo = compose_cfg(
        *tiny_overrides(prompts_file, *PPO_SMALL, f"model.init_from={tmp_path / 'sft'}")
    )
    sft_params = {
        k: v.clone()
        for k, v in AutoModelForCausalLM.from_pretrained(str(tmp_path / "sft" / "policy"))
        .state_dict()
        .items()
    }
    # the policy PPO builds holds the SFT weights, not the seeded random init
    from rft.train import load_policy

    start = load_policy(ppo.model).model.state_dict()
    assert all(torch.equal(start[k], v) for k, v in sft_params.items() if k in start)
    assert changed(initial_params(sft), tmp_path / "sft" / "policy") > 0  # SFT moved them
    # the PPO run starts from the SFT policy: with the fixed eval seed its initial test samples
    # are the SFT run's final ones (perplexity differs: PPO's reference is the SFT policy)
    m = train(ppo, run_dir=tmp_path / "ppo")
    sft_metrics = json.loads((tmp_path / "sft" / "metrics.json").read_text())
    for k in ("reward_mean", "distinct_1", "distinct_2"):
        assert m[f"test_init/{k}"] == pytest.approx(sft_metrics[f"test/{k}"], abs=1e-9), k
    assert changed(sft_params, tmp_path / "ppo" / "policy") > 0


def test_warm_start_inside_ppo(prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(
            prompts_file,
            *PPO_SMALL,
            "alg.warm_start.steps=3",
            "alg.warm_start.data_frac=0.5",
            "alg.warm_start.batch_size=4",
            "alg.warm_start.lr=1e-3",
        )
    )
    before = initial_params(cfg)
    train(cfg, run_dir=tmp_path / "run")
    ws = tmp_path / "run" / "warm_start"
    assert changed(before, ws / "policy") > 0
    assert len([r for r in history(ws) if "sft/loss" in r]) == 3


class Killed(RuntimeError):
    pass


def test_resume_after_kill_matches_uninterrupted_run(prompts_file, tmp_path, monkeypatch):
    over = tiny_overrides(
        prompts_file,
        *PPO_SMALL,
        "alg.n_iterations=4",
        "checkpoint.every_n_iterations=2",
        "alg.eval_every=2",
    )
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")

    from rft.alg.ppo import PPO

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


# Lightning calls set_epoch on a loader's sampler, never on its batch sampler: these pin that
# every block / iteration draws its own data instead of replaying the first one.
def spy_batches(monkeypatch, cls, expected_batch) -> list[tuple[int, int, list, list]]:
    """Records (epoch, batch_idx, batch, the batch a fresh sampler gives for that epoch/step)."""
    seen = []
    orig = cls.training_step

    def spy(self, batch, batch_idx):
        e = self.current_epoch
        seen.append((e, batch_idx, list(batch), expected_batch(self, e, batch_idx)))
        return orig(self, batch, batch_idx)

    monkeypatch.setattr(cls, "training_step", spy)
    return seen


def test_sft_blocks_draw_new_batches_and_stop_at_max_steps(prompts_file, tmp_path, monkeypatch):
    from rft.alg.sft import SFT, StepBatchSampler

    def expected(m, epoch, i):
        fresh = StepBatchSampler(len(m.pairs), m.batch_size, m.cfg.seed, m.steps_per_block, 13)
        return fresh.batch_for_step(epoch * m.steps_per_block + i)

    seen = spy_batches(monkeypatch, SFT, expected)
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *SFT_SMALL, "alg.max_steps=13", "alg.batch_size=2")
    )
    train(cfg, run_dir=tmp_path / "run")
    # 13 steps in blocks of 10: a full block, then a 3-step one (not another 10).
    assert [(e, i) for e, i, *_ in seen] == [(0, i) for i in range(10)] + [(1, i) for i in range(3)]
    assert all(got == want for *_, got, want in seen)
    assert [b for _, _, b, _ in seen[10:]] != [b for _, _, b, _ in seen[:3]]  # no replay
    rows = [r["iteration"] for r in history(tmp_path / "run") if "sft/loss" in r]
    assert rows == list(range(1, 14))


def test_ppo_draws_new_prompts_every_iteration(prompts_file, tmp_path, monkeypatch):
    from rft.alg.ppo import PPO
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


def test_gradient_checkpointing_runs_in_the_update(prompts_file, tmp_path, monkeypatch):
    """model.gradient_checkpointing=true recomputes activations in the PPO update. Hugging Face
    checkpoints only in train mode, and Lightning keeps the eval mode models load in, so this
    was silently a no-op until the module put its trained parts in train mode (on_fit_start)."""
    import transformers.modeling_utils as mu

    from rft.alg.base import RFTModule

    real, calls, modes = mu.checkpoint, [], {}
    original = RFTModule.on_fit_start

    def counting(fn, *a, **k):
        calls.append(torch.is_grad_enabled())
        return real(fn, *a, **k)

    def on_fit_start(self):
        original(self)
        modes.update(policy=self.policy.model.training, ref=self.ref.model.training)

    monkeypatch.setattr(mu, "checkpoint", counting)
    monkeypatch.setattr(RFTModule, "on_fit_start", on_fit_start)
    over = tiny_overrides(prompts_file, *PPO_SMALL, "model.gradient_checkpointing=true")
    train(compose_cfg(*over), run_dir=tmp_path / "run")
    assert modes == {"policy": True, "ref": False}
    assert sum(calls) > 0  # checkpointed layer calls with autograd on: the update's forward passes


def test_dlols_under_cpu_ddp_runs_both_schemes(prompts_file, tmp_path):
    """DLOLS under DDP: AggreVaTeD iterations train the guide critic and PPO++ iterations the
    policy critic, so each iteration leaves one critic unused. resolve_strategy switches to
    ddp_find_unused_parameters_true; with plain ddp the run stops with DDP's unused-parameter error."""
    run = tmp_path / "run"
    args = tiny_overrides(prompts_file, "alg=dlols") + [
        "alg.n_iterations=4",
        "alg.rollout_prompts=4",
        "alg.minibatch_size=2",
        "alg.n_epochs=1",
        "alg.eval_every=0",
        "alg.score_batch_size=4",
        "eval.before_training=false",
        "hardware.devices=2",
        "hardware.strategy=ddp",
        "hardware.torch_threads=1",
        f"hydra.run.dir={run}",
    ]
    r = run_cli(*args)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    schemes = [
        row["guided/scheme_aggrevated"] for row in history(run) if "guided/scheme_aggrevated" in row
    ]
    assert len(schemes) == 4 and set(schemes) == {0.0, 1.0}
