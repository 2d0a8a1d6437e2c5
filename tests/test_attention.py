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


def test_unknown_kernel_names_the_key():
    with pytest.raises(ConfigError, match=r"hardware.attention='flash'.*auto, model, eager"):
        attention.resolve("flash", True, 100)


def test_passes_switch_kernels_and_a_run_restores_them():
    cfg = compose_cfg("model=tiny", "hardware=cpu_fp32")
    policy = load_policy(cfg.model)
    model = policy.model
    default = model.config._attn_implementation
    assert default == "sdpa"
    g = torch.Generator().manual_seed(0)
    p_ids = torch.randint(5, 50, (2, 6), generator=g)
    p_mask = torch.ones_like(p_ids)
    p_mask[0, :2] = 0  # left padding
    c_ids = torch.randint(5, 50, (2, 4), generator=g)
    c_mask = torch.ones_like(c_ids)
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
