"""BART as a seq2seq policy (model=bart / tiny_bart; rft/model/load.py prepare_seq2seq,
docs/grue-tasks.md §4): the decoder starts from BART's start token, generation samples the
policy itself (no forced tokens, no n-gram ban, one beam), scoring has the right shapes and
agrees with generation token by token, and PPO trains it."""

from __future__ import annotations

import copy
import json
import time

import torch
from omegaconf import OmegaConf

from rft.model.build import load_policy
from rft.model.load import prepare_seq2seq
from rft.rollout.prompts import encode_prompts
from tests.conftest import PPO_SMALL, compose_cfg, tiny_overrides

GREEDY = OmegaConf.create(
    {"do_sample": False, "top_k": 0, "top_p": 1.0, "temperature": 1.0, "num_beams": 1}
)


def tiny_bart():
    return load_policy(compose_cfg("model=tiny_bart").model)


def test_tiny_bart_decoder_start_and_neutral_generation_defaults():
    policy = tiny_bart()
    m = policy.model
    assert type(m).__name__ == "BartForConditionalGeneration" and policy.is_seq2seq
    assert m.config.decoder_start_token_id == policy.tokenizer.eos_token_id  # BART: </s>
    g = m.generation_config
    assert (g.decoder_start_token_id, g.num_beams, g.no_repeat_ngram_size) == (
        policy.tokenizer.eos_token_id, 1, 0,
    )  # fmt: skip
    assert g.forced_bos_token_id is None and g.forced_eos_token_id is None
    labels = torch.tensor([[5, 6, 7]])
    assert m._shift_right(labels).tolist() == [[m.config.decoder_start_token_id, 5, 6]]
    # a copy (the frozen reference) shifts with its own config
    ref = copy.deepcopy(policy)
    assert ref.model._shift_right.__self__ is ref.model


def test_bart_checkpoint_defaults_are_dropped():
    """A bart-base fine-tune's generation config (forced <s> and </s>, 3-gram ban, 4 beams)."""
    policy = tiny_bart()
    m = policy.model
    del m._shift_right
    m.generation_config.update(
        forced_bos_token_id=0, forced_eos_token_id=2, no_repeat_ngram_size=3, num_beams=4
    )
    prepare_seq2seq(m)
    g = m.generation_config
    assert (g.forced_bos_token_id, g.forced_eos_token_id, g.no_repeat_ngram_size, g.num_beams) == (
        None, None, 0, 1,
    )  # fmt: skip


def test_tiny_bart_generates_and_scoring_matches_generation():
    torch.manual_seed(0)
    policy = tiny_bart()
    tok = policy.tokenizer
    ids, mask = encode_prompts(
        tok, ["the film was", "a long and dull story"], 16, torch.device("cpu"), "left"
    )
    comp = policy.generate(ids, mask, 6, 6, GREEDY)
    assert comp.ids.shape == (2, 6) and comp.mask.shape == (2, 6)
    logits, hidden = policy(ids, mask, comp.ids, comp.mask, return_hidden=True)
    assert logits.shape == (2, 6, policy.model.config.vocab_size)
    assert hidden.shape == (2, 6, policy.hidden_size)
    # greedy: every generated token is the argmax of the scoring pass at its position, so the
    # scoring pass sees the same decoder inputs (start token, then the tokens so far)
    assert torch.equal(logits.argmax(-1), comp.ids)
    sampled = policy.generate(
        ids, mask, 6, 2, OmegaConf.merge(GREEDY, {"do_sample": True, "top_k": 5})
    )
    assert sampled.ids.shape[0] == 2


def test_bart_trains_two_ppo_iterations(tmp_path, prompts_file):
    from rft.train import train

    t0 = time.time()
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *PPO_SMALL, "model=tiny_bart", "eval.before_training=false")
    )
    metrics = train(cfg, run_dir=tmp_path / "run")
    history = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    losses = [h["loss/policy"] for h in history if "loss/policy" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert "test/reward_mean" in metrics
    assert time.time() - t0 < 60
