"""Seq2seq (model=tiny_t5) runs checked like the causal ones: SFT fits its data, a
reward-weighted offline variant beats plain NLL, and the evaluation is recomputed by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rft.model.load import load_model
from rft.train import train
from tests.conftest import compose_cfg
from tests.learning.words import word_overrides


def t5(words, data=None, *extra):
    return word_overrides(
        words, data, "model=tiny_t5", f"model.tiny.tokenizer={words['tok']}", *extra
    )


def test_t5_sft_fits_the_references_and_eval_perplexity_matches(words, tmp_path):
    """SFT on mostly-good references lowers sft/loss (first vs last step, same data), and the
    test perplexity is exp(token NLL) of the written samples under the initial T5, computed
    with plain transformers (decoder fed the samples' ids after the start token)."""
    over = t5(
        words,
        words["sft_good"],
        "alg=sft",
        "alg.max_steps=12",
        "alg.batch_size=8",
        "alg.eval_every=0",
        "alg.lr=3e-3",
        "eval.before_training=false",
        "task.n_test_prompts=8",
        "eval.batch_size=8",
        "eval.n_samples_table=8",
    )
    cfg = compose_cfg(*over)
    m = train(cfg, run_dir=tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    losses = [r["sft/loss"] for r in rows if "sft/loss" in r]
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3, losses
    (path,) = sorted((tmp_path / "run" / "eval").glob("test_0*.json"))
    samples = json.loads(path.read_text())["samples"]
    ref, tok = load_model(cfg.model)
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in samples:
            x = tok(s["prompt"], add_special_tokens=False)["input_ids"]
            y = tok(s["completion"], add_special_tokens=False)["input_ids"]
            dec = [ref.config.decoder_start_token_id] + y[:-1]
            logits = ref(input_ids=torch.tensor([x]), decoder_input_ids=torch.tensor([dec])).logits
            logp = logits[0].log_softmax(-1)
            nll -= sum(logp[i, t].item() for i, t in enumerate(y))
            n += len(y)
    assert n == 8 * len(samples)
    assert m["test/perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-4)


def test_t5_reward_weighted_offline_beats_nll(words, tmp_path):
    common = (
        "alg.max_steps=24",
        "alg.batch_size=8",
        "alg.eval_every=0",
        "alg.lr=3e-3",
        "alg.n_train_pairs=-1",
        "alg.score_batch_size=32",
        "eval.before_training=false",
    )
    good = {}
    for alg in ("nll", "wbc"):
        m = train(compose_cfg(*t5(words, None, f"alg={alg}", *common)), run_dir=tmp_path / alg)
        good[alg] = m["test/reward_mean"]
    assert good["wbc"] > good["nll"] + 0.05, good
