"""hardware.attention (rft/model/attention.py): which kernel scoring/update and generation
passes run, switched per pass, restored after a run."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from rft.errors import ConfigError
from rft.model import attention
from rft.model.build import load_policy
from tests.conftest import compose_cfg


@pytest.mark.parametrize(
    "choice,on_cpu,tokens,scoring,generation",
    [
        ("auto", True, 112, "eager", None),
        ("auto", True, 512, "eager", None),
        ("auto", True, 513, None, None),  # long sequences: the (T × T) weights grow with T²
        ("auto", False, 112, None, None),  # GPUs keep SDPA / flash attention
        ("model", True, 112, None, None),
        ("sdpa", True, 112, "sdpa", "sdpa"),
        ("eager", False, 4096, "eager", "eager"),
    ],
)
def test_resolve(choice, on_cpu, tokens, scoring, generation):
    assert attention.resolve(choice, on_cpu, tokens) == {
        "scoring": scoring,
        "generation": generation,
    }


def left_padded_batch(vocab: int):
    """Two prompts of 6 tokens (the first left-padded by 2) and their 4-token completions,
    token ids in [5, vocab), seeded."""
    g = torch.Generator().manual_seed(0)
    p_ids = torch.randint(5, vocab, (2, 6), generator=g)
    p_mask = torch.ones_like(p_ids)
    p_mask[0, :2] = 0  # left padding
    c_ids = torch.randint(5, vocab, (2, 4), generator=g)
    return p_ids, p_mask, c_ids, torch.ones_like(c_ids)


def test_unknown_kernel_names_the_key():
    with pytest.raises(ConfigError, match=r"hardware.attention='flash'.*auto, model, eager"):
        attention.resolve("flash", True, 100)


def test_passes_switch_kernels_and_a_run_restores_them():
    cfg = compose_cfg("model=tiny", "hardware=cpu_fp32")
    policy = load_policy(cfg.model)
    model = policy.model
    default = model.config._attn_implementation
    assert default == "sdpa"
    p_ids, p_mask, c_ids, c_mask = left_padded_batch(50)
    with torch.no_grad():
        ref_logits, _ = policy(p_ids, p_mask, c_ids, c_mask)
    gen = OmegaConf.create({"do_sample": False, "top_k": 0, "top_p": 1.0, "temperature": 1.0})
    with attention.configured(cfg) as kernels:  # tiny model on CPU, short sequences: eager
        assert kernels == {"scoring": "eager", "generation": None}
        with torch.no_grad():
            logits, _ = policy(p_ids, p_mask, c_ids, c_mask)
        assert model.config._attn_implementation == "eager"
        torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)  # same maths
        policy.generate(p_ids, p_mask, 3, 3, gen)
        assert model.config._attn_implementation == default  # generation: the model's own
        policy(p_ids, p_mask, c_ids, c_mask)
        assert model.config._attn_implementation == "eager"
    policy(p_ids, p_mask, c_ids, c_mask)  # after the run: the model's own kernel again
    assert model.config._attn_implementation == default


def gqa_llama(layers: int = 2):
    """A random LLaMA with grouped-query attention: 4 query heads share 2 key/value heads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    conf = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(conf)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_eager_equals_transformers_eager_with_repeated_heads(dtype):
    from transformers.models.llama.modeling_llama import eager_attention_forward

    class Module(torch.nn.Module):
        num_key_value_groups = 3

    g = torch.Generator().manual_seed(0)
    B, KVH, G, T, D = 2, 2, 3, 5, 8
    q = torch.randn(B, KVH * G, T, D, generator=g).to(dtype).requires_grad_(True)
    k = torch.randn(B, KVH, T, D, generator=g).to(dtype).requires_grad_(True)
    v = torch.randn(B, KVH, T, D, generator=g).to(dtype).requires_grad_(True)
    mask = torch.zeros(B, 1, T, T)
    mask[0, :, :, :2] = torch.finfo(torch.float32).min  # row 0: two left-pad positions
    mask = mask + torch.triu(torch.full((T, T), torch.finfo(torch.float32).min), 1)
    module = Module().eval()
    outs, grads = [], []
    for fn in (eager_attention_forward, attention.grouped_eager_attention):
        out, weights = fn(module, q, k, v, mask, scaling=D**-0.5)
        (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append((out, weights))
        grads.append([t.grad.clone() for t in (q, k, v)])
        for t in (q, k, v):
            t.grad = None
    tol = {"atol": 1e-6, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-2, "rtol": 1e-2}
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(b, a, **tol)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(b, a, atol=1e-5 if dtype == torch.float32 else 2e-2, rtol=1e-4)


def test_eager_passes_run_the_grouped_kernel_on_grouped_heads_only():
    from rft.model.policy import PolicyLM

    plain = load_policy(compose_cfg("model=tiny", "model.tiny.arch=llama").model)  # 2 = 2 heads
    policy = PolicyLM(gqa_llama(), plain.tokenizer)
    p_ids, p_mask, c_ids, c_mask = left_padded_batch(60)
    with torch.no_grad():
        want, _ = policy(p_ids, p_mask, c_ids, c_mask)  # the model's own kernel (SDPA)
    cfg = compose_cfg("model=tiny", "hardware=cpu_fp32")
    with attention.configured(cfg), torch.no_grad():
        got, _ = policy(p_ids, p_mask, c_ids, c_mask)
        assert policy.model.config._attn_implementation == attention.GROUPED_EAGER
        plain(p_ids, p_mask, c_ids, c_mask)
        assert plain.model.config._attn_implementation == "eager"  # no grouped heads
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
