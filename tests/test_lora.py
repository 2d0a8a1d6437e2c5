"""LoRA policies (model.lora.*, rft/model/lora.py) on the tiny models: only the adapters train,
π_ref is exactly the base model (the same weights with the adapters off, no copy), a killed run
resumes exactly from a checkpoint that holds the adapters only, policy/ holds merged weights
that plain transformers loads, every algorithm family runs, and bad settings name their key."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

import rft.train
from rft.alg.alol import weights_fingerprint
from rft.alg.ppo import PPO
from rft.alg.value_ref import prompt_hidden_states
from rft.errors import ConfigError
from rft.model.build import frozen_copy, load_policy, load_trained_policy, reference_policy
from rft.model.load import load_model
from rft.model.lora import base_state_dict
from rft.model.policy import PolicyLM
from rft.train import train
from tests.alg.conftest import alol_overrides, write_pairs
from tests.alg.test_dpo import dpo_overrides, write_preferences
from tests.conftest import (
    PPO_SMALL,
    SFT_SMALL,
    compose_cfg,
    run_killed_then_resumed,
    tiny_overrides,
)

LORA = ("model.lora.r=4",)
ARCHS = {"gpt2": ("model=tiny",), "llama": ("model=tiny", "model.tiny.arch=llama")}
ARCHS["t5"] = ("model=tiny_t5",)


def trained_module(monkeypatch) -> dict:
    """Captures the module train() fits (its in-memory weights after the run)."""
    seen, original = {}, rft.train.run_module

    def spy(cfg, module, *args, **kwargs):
        seen["module"] = module
        return original(cfg, module, *args, **kwargs)

    monkeypatch.setattr(rft.train, "run_module", spy)
    return seen


def assert_base_untouched(policy: PolicyLM, model_cfg) -> None:
    """Every base weight of the LoRA policy is bit-identical to a freshly loaded model's."""
    fresh = load_model(model_cfg)[0].state_dict()
    base = base_state_dict(policy.model)
    assert set(base) == set(fresh)
    assert [k for k in fresh if not torch.equal(base[k], fresh[k])] == []


def adapter_params(policy: PolicyLM) -> dict[str, torch.Tensor]:
    return {n: p for n, p in policy.model.named_parameters() if "lora_" in n}


def batch(n: int = 3, p: int = 5, t: int = 4):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 2000, (n, p), generator=g)
    comp = torch.randint(10, 2000, (n, t), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # one left-padded prompt
    return ids, mask, comp, torch.ones_like(comp)


def history(run) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def untimed(record: dict) -> dict:
    # reused/*: a later run whose final policy equals an earlier one's reads the test
    # evaluation from the result store (the same numbers, plus where they came from)
    return {k: v for k, v in record.items() if not k.startswith(("time/", "reused/"))}


def checkpoint_state(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "state.ckpt", weights_only=False)["state_dict"]


# ------------------------------------------------------------------------------ PPO / SFT
def test_ppo_trains_only_the_adapters_and_exports_merged_weights(
    prompts_file, tmp_path, monkeypatch, caplog
):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL, *LORA))
    seen = trained_module(monkeypatch)
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="rft"):
        train(cfg, run_dir=run)
    assert "trainable of" in caplog.text  # the parameter counts, logged once
    assert caplog.text.count("trainable of") == 1
    module = seen["module"]
    policy = module.policy
    assert [r["iteration"] for r in history(run) if "loss/policy" in r] == [1, 2]

    # only the adapters moved: the base is bit-identical, every B left its zero init
    assert_base_untouched(policy, cfg.model)
    lora_b = [p for n, p in adapter_params(policy).items() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)
    trained = {id(p) for g in module.trainer.optimizers[0].param_groups for p in g["params"]}
    expected = {id(p) for p in adapter_params(policy).values()}
    expected |= {id(p) for p in module.value_head.parameters()}  # the head on the shared trunk
    assert trained == expected

    # π_ref shares the policy's weights: no parameter of its own, the base tensors themselves
    assert list(module.ref.named_parameters()) == []
    base_ptrs = {p.data_ptr() for n, p in policy.model.named_parameters() if "lora_" not in n}
    assert {p.data_ptr() for p in module.ref.parameters()} == base_ptrs

    # the checkpoint holds the adapters and the value head, not the base weights
    state = checkpoint_state(run)
    assert state and all("lora_" in k or k.startswith("value_head.") for k in state)
    ckpt_bytes = (run / "checkpoints" / "state.ckpt").stat().st_size
    policy_bytes = (run / "policy" / "model.safetensors").stat().st_size
    assert ckpt_bytes < policy_bytes / 20  # a full-weight state.ckpt is ≈ 3x the policy

    # policy/: merged weights, plain transformers, the adapted policy's logits
    plain = AutoModelForCausalLM.from_pretrained(str(run / "policy")).eval()
    assert not any("lora" in k or "base_layer" in k for k in plain.state_dict())
    policy.eval()
    with torch.no_grad():
        adapted, _ = policy(*batch())
        exported, _ = PolicyLM(plain, policy.tokenizer)(*batch())
    assert not torch.allclose(
        adapted, PolicyLM(load_model(cfg.model)[0], policy.tokenizer)(*batch())[0]
    )
    torch.testing.assert_close(exported, adapted, atol=1e-5, rtol=1e-5)


def test_bf16_mixed_holds_the_frozen_base_in_bf16_and_exports_fp32(
    prompts_file, tmp_path, monkeypatch
):
    # under bf16 autocast the frozen linear weights only ever reach a matmul as bf16: they are
    # held in bf16 (half their memory), the adapters, norms and embeddings stay fp32
    over = tiny_overrides(prompts_file, *PPO_SMALL, *LORA, "hardware=cpu")
    cfg = compose_cfg(*over, "hardware.precision=bf16-mixed")
    seen = trained_module(monkeypatch)
    run = tmp_path / "run"
    train(cfg, run_dir=run)
    policy = seen["module"].policy
    fresh = load_model(cfg.model)[0].state_dict()
    base = base_state_dict(policy.model)
    adapted = {n for n in base if n.endswith(".weight") and ".c_" in n}  # GPT-2's Conv1D layers
    assert adapted and all(base[n].dtype == torch.bfloat16 for n in adapted)
    assert all(torch.equal(base[n], fresh[n].to(torch.bfloat16)) for n in adapted)
    assert all(torch.equal(base[n], fresh[n]) for n in base if n not in adapted)
    assert all(p.dtype == torch.float32 for p in adapter_params(policy).values())
    # policy/: fp32 weights, the bf16-held base plus the adapters' update
    plain = AutoModelForCausalLM.from_pretrained(str(run / "policy")).eval()
    assert {p.dtype for p in plain.parameters()} == {torch.float32}
    policy.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want, _ = policy(*batch())
        got, _ = PolicyLM(plain, policy.tokenizer)(*batch())
    torch.testing.assert_close(got.float(), want.float(), atol=0.05, rtol=0.05)
    # a resume must hold the base as the checkpoint's adapters were trained on
    with pytest.raises(ConfigError, match=r"held in bfloat16, this run holds them in float32"):
        train(compose_cfg(*over, "model.lora.base_dtype=float32"), run_dir=run)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_bf16_held_base_gives_bit_identical_logits_under_autocast(arch):
    cfg = compose_cfg(*ARCHS[arch], *LORA)
    fp32 = load_trained_policy(cfg.model, seed=0, precision="32-true").eval()
    bf16 = load_trained_policy(cfg.model, seed=0, precision="bf16-mixed").eval()
    for p in (fp32, bf16):  # a nonzero update, the same in both
        for name, q in p.model.named_parameters():
            if "lora_B" in name:
                q.data.fill_(0.01)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want, _ = fp32(*batch())
        got, _ = bf16(*batch())
    assert torch.equal(got, want)


def test_lora_base_dtype_follows_the_precision_unless_set():
    from rft.model.lora import lora_base_dtype

    lora = compose_cfg("model=tiny", *LORA).model.lora
    assert lora_base_dtype(lora, "bf16-mixed") == torch.bfloat16
    assert lora_base_dtype(lora, "32-true") is None
    assert lora_base_dtype(lora, "16-mixed") == torch.float16  # fp16 autocast: the same rule
    assert lora_base_dtype(lora, "bf16-true") is None  # Lightning converts the whole model
    lora.base_dtype = "float32"
    assert lora_base_dtype(lora, "bf16-mixed") == torch.float32
    assert lora_base_dtype(compose_cfg("model=tiny").model.lora, "bf16-mixed") is None  # r = 0


def test_sft_trains_only_the_adapters_and_ppo_starts_from_its_merged_policy(
    prompts_file, tmp_path, monkeypatch
):
    seen = trained_module(monkeypatch)
    sft_cfg = compose_cfg(*tiny_overrides(prompts_file, *SFT_SMALL, *LORA))
    train(sft_cfg, run_dir=tmp_path / "sft")
    sft = seen["module"]
    assert_base_untouched(sft.policy, sft_cfg.model)
    assert any(p.abs().sum() > 0 for n, p in adapter_params(sft.policy).items() if "lora_B" in n)

    # model.init_from=<a LoRA run>: its merged policy/ is the new base, and so π_ref
    over = (*PPO_SMALL, "alg.n_iterations=1", f"model.init_from={tmp_path / 'sft'}", *LORA)
    ppo_cfg = compose_cfg(*tiny_overrides(prompts_file, *over))
    train(ppo_cfg, run_dir=tmp_path / "ppo")
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "sft" / "policy")).state_dict()
    base = base_state_dict(seen["module"].policy.model)
    assert [k for k in merged if not torch.equal(base[k], merged[k])] == []


# ------------------------------------------------------------------------------ π_ref
@pytest.mark.parametrize("arch", list(ARCHS))
def test_reference_is_the_base_model_with_the_adapters_off(arch):
    cfg = compose_cfg(*ARCHS[arch], *LORA)
    policy = load_trained_policy(cfg.model, seed=0)
    with torch.no_grad():  # adapters that change the output (B starts at 0)
        for p in [p for n, p in adapter_params(policy).items() if "lora_B" in n]:
            p.normal_(0, 0.5)
    ref = reference_policy(policy)
    base = load_policy(cfg.model)  # a separately loaded copy of the base model
    policy.train()  # as during fit: π_ref must still run like a frozen copy in eval mode
    x = batch()
    with torch.no_grad():  # as every algorithm calls π_ref
        adapted_before, _ = policy(*x)
        ref_logits, ref_hidden = ref(*x, return_hidden=True)
        base_logits, base_hidden = base(*x, return_hidden=True)
        adapted_after, _ = policy(*x)
        ref_states = prompt_hidden_states(ref, x[0], x[1])  # A-LoL's V_ref reads these
        base_states = prompt_hidden_states(base, x[0], x[1])
    assert torch.equal(ref_logits, base_logits)
    assert torch.equal(ref_hidden, base_hidden)
    assert torch.equal(ref_states, base_states)
    assert not torch.allclose(adapted_before, base_logits)
    # the adapters are back on, trainable, and the policy in the mode it was in
    assert torch.equal(adapted_after, adapted_before)
    assert all(p.requires_grad for p in adapter_params(policy).values())
    assert policy.model.training

    # A-LoL calls π_ref between the policy's forward and its backward: the gradient must not
    # notice (the adapters' requires_grad and the train mode are switched and switched back)
    def adapter_grads(call_ref: bool) -> dict[str, torch.Tensor]:
        policy.zero_grad()
        logits, _ = policy(*x)
        if call_ref:
            with torch.no_grad():
                ref(*x)
        logits.logsumexp(-1).sum().backward()
        return {n: p.grad.clone() for n, p in adapter_params(policy).items()}

    plain, around_ref = adapter_grads(False), adapter_grads(True)
    assert plain and all(torch.equal(plain[n], around_ref[n]) for n in plain)

    gen = cfg_generation()
    torch.manual_seed(0)
    from_ref = ref.generate(x[0], x[1], 6, 6, gen)
    torch.manual_seed(0)
    from_base = base.generate(x[0], x[1], 6, 6, gen)
    assert torch.equal(from_ref.ids, from_base.ids)
    # DPO's and A-LoL's caches key π_ref by its weights: the same key as a frozen copy's
    assert weights_fingerprint(ref) == weights_fingerprint(frozen_copy(base))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_generation_samples_merged_weights_and_restores_the_base(arch):
    """model.lora.merge_for_generation (default): HF generate runs W + (alpha/r)·BA with the
    adapters off (no adapter matmul per step), samples what the unmerged policy samples, and
    leaves the very same base tensors and trainable adapters behind."""
    cfg = compose_cfg(*ARCHS[arch], *LORA)
    policy = load_trained_policy(cfg.model, seed=0)
    with torch.no_grad():  # adapters that change the output (B starts at 0)
        for p in [p for n, p in adapter_params(policy).items() if "lora_B" in n]:
            p.normal_(0, 0.5)
    from rft.model.lora import adapted_layers

    layers = list(adapted_layers(policy.model).values())
    bases = [
        (layer.get_base_layer().weight, layer.get_base_layer().weight.data_ptr())
        for layer in layers
    ]
    before = {n: t.clone() for n, t in policy.model.state_dict().items()}
    adapter_calls = []
    hook = layers[0].lora_A["default"].register_forward_hook(lambda *a: adapter_calls.append(1))
    x, gen = batch(), cfg_generation()
    try:
        torch.manual_seed(0)
        merged = policy.generate(x[0], x[1], 6, 6, gen)
        assert adapter_calls == []  # the adapters did not run: the merged weights did
        from rft.model.generate import HFGenerator
        from rft.model.lora import MergedLoRAGenerator

        assert isinstance(policy.generator, MergedLoRAGenerator)
        torch.manual_seed(0)  # model.lora.merge_for_generation=false: the plain HF generator
        unmerged = policy.with_generator(HFGenerator()).generate(x[0], x[1], 6, 6, gen)
        assert adapter_calls  # ... here they did
    finally:
        hook.remove()
    assert torch.equal(merged.ids, unmerged.ids)
    assert all(w.data_ptr() == ptr for w, ptr in bases)  # the base tensors themselves, put back
    after = policy.model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    assert all(p.requires_grad for p in adapter_params(policy).values())
    logits, _ = policy(*x)  # and the adapters are on again
    base_logits, _ = reference_policy(policy)(*x)
    assert not torch.allclose(logits, base_logits)


def cfg_generation():
    return compose_cfg("model=tiny").alg.generation  # top-k 50 sampling


# ------------------------------------------------------------------------------ resume
def test_resume_after_kill_matches_uninterrupted_lora_run(prompts_file, tmp_path, monkeypatch):
    over = tiny_overrides(
        prompts_file, *PPO_SMALL, *LORA, "alg.n_iterations=3", "eval.before_training=false"
    )
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")
    resumed = run_killed_then_resumed(over, PPO, 2, tmp_path / "resumed", monkeypatch)
    # the same numbers, exactly (a CPU run is deterministic), but for the timings
    assert untimed(resumed) == untimed(full)
    rows = [r for r in history(tmp_path / "resumed") if "loss/policy" in r]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    full_rows = [r for r in history(tmp_path / "full") if "loss/policy" in r]
    assert [untimed(r) for r in rows] == [untimed(r) for r in full_rows]
    from safetensors.torch import load_file

    w_full = load_file(tmp_path / "full" / "policy" / "model.safetensors")
    w_res = load_file(tmp_path / "resumed" / "policy" / "model.safetensors")
    assert [k for k in w_full if not torch.equal(w_full[k], w_res[k])] == []


def test_resume_with_other_lora_settings_names_the_key(prompts_file, tmp_path):
    over = tiny_overrides(prompts_file, *PPO_SMALL, *LORA, "eval.before_training=false")
    run = tmp_path / "run"
    train(compose_cfg(*over, "alg.n_iterations=1"), run_dir=run)
    # the checkpoint has no base weights: resuming it as a full-weight run must not go silently
    with pytest.raises(ConfigError, match=r"holds LoRA adapters \(model.lora.r=4\)"):
        train(compose_cfg(*over, "model.lora.r=0"), run_dir=run)
    with pytest.raises(ConfigError, match=r"differ from model.lora now \(r: 4 in the checkpoint"):
        train(compose_cfg(*over, "model.lora.r=8"), run_dir=run)
    with pytest.raises(ConfigError, match="trained on other base weights"):
        train(compose_cfg(*over, "model.tiny.n_embd=32"), run_dir=run)


# ------------------------------------------------------------------------------ every family
def family_overrides(alg: str, tmp_path, prompts_file) -> list[str]:
    if alg == "grpo":
        return tiny_overrides(
            prompts_file,
            "alg=grpo",
            "alg.n_iterations=2",
            "alg.rollout_prompts=4",
            "alg.samples_per_prompt=2",
            "alg.minibatch_size=4",
            "alg.eval_every=0",
            "alg.lr=1e-3",
            "eval.before_training=false",
        )
    if alg == "a_lol":
        data = write_pairs(tmp_path / "pairs.jsonl", rewards=lambda i: (i % 5) / 4)
        return alol_overrides(data, "a_lol", "task.reward_key=reward")
    return dpo_overrides(write_preferences(tmp_path / "prefs.jsonl"), "dpo")


@pytest.mark.parametrize("alg", ["grpo", "a_lol", "dpo"])
def test_each_family_trains_two_steps_with_lora(alg, prompts_file, tmp_path, monkeypatch):
    cfg = compose_cfg(*family_overrides(alg, tmp_path, prompts_file), *LORA)
    seen = trained_module(monkeypatch)
    run = tmp_path / "run"
    train(cfg, run_dir=run)
    policy = seen["module"].policy
    assert_base_untouched(policy, cfg.model)
    assert any(p.abs().sum() > 0 for n, p in adapter_params(policy).items() if "lora_B" in n)
    assert all("lora_" in k for k in checkpoint_state(run))
    before = load_model(cfg.model)[0].state_dict()
    after = AutoModelForCausalLM.from_pretrained(str(run / "policy")).state_dict()
    assert sum(not torch.equal(before[k], after[k]) for k in before) > 0


def test_seq2seq_lora_sft_exports_a_plain_t5(prompts_file, tmp_path, monkeypatch):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *SFT_SMALL, *LORA, "model=tiny_t5"))
    seen = trained_module(monkeypatch)
    train(cfg, run_dir=tmp_path / "run")
    policy = seen["module"].policy.eval()
    assert_base_untouched(policy, cfg.model)
    plain = AutoModelForSeq2SeqLM.from_pretrained(str(tmp_path / "run" / "policy")).eval()
    with torch.no_grad():
        adapted, _ = policy(*batch())
        exported, _ = PolicyLM(plain, policy.tokenizer, kind="seq2seq")(*batch())
    torch.testing.assert_close(exported, adapted, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.lora.r=-1"], r"model.lora.r=-1: the LoRA rank must be ≥ 0"),
        (["model.lora.r=4", "model.lora.alpha=0"], r"model.lora.alpha=0.0: must be > 0"),
        (
            ["model.lora.r=4", "model.lora.dropout=0.1"],
            r"model.lora.dropout=0.1 contradicts model.disable_dropout=true",
        ),
        (
            ["model.lora.r=4", "model.lora.target_modules=[c_attn,q_proj]"],
            r"model.lora.target_modules=\['c_attn', 'q_proj'\]: \['q_proj'\] match no linear "
            r"layer.*named \['c_attn', 'c_fc', 'c_proj'\]",
        ),
        (
            ["model.lora.r=4", "model.lora.target_modules=[lm_head,wte]"],
            r"\['lm_head', 'wte'\] match no linear layer of this model \(the LM head and",
        ),
        (["model.lora.r=4", "model.lora.target_modules=[]"], r"model.lora.target_modules=\[\]"),
        (
            ["model.lora.r=4", "alg=reward_classifier"],
            r"model.lora.r=4: LoRA adapts the policy LM, and alg=reward_classifier trains",
        ),
    ],
)
def test_bad_lora_settings_name_the_key(prompts_file, tmp_path, overrides, message):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *SFT_SMALL), *overrides)
    with pytest.raises(ConfigError, match=message):
        train(cfg, run_dir=tmp_path / "run")
