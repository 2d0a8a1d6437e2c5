"""Evaluation wiring: the logged test perplexity equals an independent computation, on the word
task (tests/learning/words.py), where a sample's text re-tokenizes to exactly its 8 ids."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rft.model.load import load_model
from rft.train import train
from tests.conftest import compose_cfg
from tests.learning.words import build_word_tokenizer, good_share, word_overrides, write_task


@pytest.mark.parametrize("hardware", ["cpu_fp32", "cpu"])
def test_test_perplexity_is_exp_of_token_nll_under_the_reference(tmp_path, hardware):
    """test/perplexity = exp(Σ -log π_ref(y|x) / Σ |y|) over every test sample, with π_ref the
    initial policy; test/reward_mean is the mean reward of the same samples. hardware=cpu with
    bf16-mixed (bf16 autocast; set explicitly: auto picks fp32 on CPUs without native bf16)
    trains too; its perplexity is computed in bf16, hence the looser tolerance."""
    torch.set_num_threads(1)
    words = {
        "tok": build_word_tokenizer(tmp_path / "tok"),
        "task": write_task(tmp_path / "t.jsonl"),
    }
    over = word_overrides(
        words,
        None,
        f"hardware={hardware}",
        *(["hardware.precision=bf16-mixed"] if hardware == "cpu" else []),
        "hardware.torch_threads=1",
        "alg=sft",
        "alg.max_steps=3",
        "alg.batch_size=8",
        "alg.eval_every=0",
        "alg.lr=3e-3",
        "eval.before_training=false",
        "task.n_test_prompts=16",
        "eval.batch_size=8",
        "eval.n_samples_table=16",  # every test sample is written to eval/
    )
    cfg = compose_cfg(*over)
    m = train(cfg, run_dir=tmp_path / "run")
    (path,) = sorted((tmp_path / "run" / "eval").glob("test_0*.json"))
    samples = json.loads(path.read_text())["samples"]
    assert len(samples) == 16
    ref, tok = load_model(cfg.model)  # the frozen reference = the initial (untrained) policy
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in samples:
            p = tok(s["prompt"], add_special_tokens=False)["input_ids"]
            y = tok(s["completion"], add_special_tokens=False)["input_ids"]
            assert len(y) == 8
            logp = ref(torch.tensor([p + y])).logits[0].log_softmax(-1)
            nll -= sum(logp[len(p) - 1 + i, t].item() for i, t in enumerate(y))
            n += len(y)
    rel = 1e-5 if hardware == "cpu_fp32" else 2e-2
    assert m["test/perplexity"] == pytest.approx(math.exp(nll / n), rel=rel)
    rewards = good_share(None, [s["completion"] for s in samples])
    assert [s["reward"] for s in samples] == pytest.approx(rewards, abs=1e-7)
    assert m["test/reward_mean"] == pytest.approx(sum(rewards) / len(rewards), abs=1e-7)
