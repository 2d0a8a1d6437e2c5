"""End-to-end runs of train(cfg) across the parts: a T5 policy, SFT then PPO from its run folder,
the SFT warm start inside an RL run, gradient checkpointing in the update, DLOLS under CPU
DDP. Each family's own end-to-end tests are in tests/alg/test_<family>.py."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from rft.train import train
from tests.conftest import (
    PPO_SMALL,
    SFT_SMALL,
    changed,
    compose_cfg,
    history,
    initial_params,
    run_cli,
    tiny_overrides,
)


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
    from rft.model.build import load_policy

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
        "alg.update_epochs=1",
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
