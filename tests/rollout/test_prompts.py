"""encode_prompts: left padding, and the task's ``prompt_truncation`` (left keeps a long prompt's
last tokens, GRUE IMDB; right its first ones, GRUE CommonGen), checked against the tokenizer's
own truncation; and the knob reaching the prompts every rollout encodes."""

from __future__ import annotations

import json

import pytest
import torch

from rft.model.load import _tiny_tokenizer, prepare_tokenizer
from rft.model.policy import PolicyLM
from rft.rollout.prompts import encode_prompts
from rft.train import train
from tests.conftest import PPO_SMALL, SFT_SMALL, compose_cfg, tiny_overrides

PROMPTS = ["one two three four five six seven", "alpha beta", "", "x"]


@pytest.fixture(scope="module")
def tok():
    return prepare_tokenizer(_tiny_tokenizer(None))


@pytest.mark.parametrize("side", ["left", "right"])
def test_truncation_side_matches_the_tokenizers_own(tok, side):
    ids, mask = encode_prompts(tok, PROMPTS, 3, truncation=side)
    tok.truncation_side = side
    try:
        want = tok(PROMPTS, padding=True, truncation=True, max_length=3, add_special_tokens=False)
    finally:
        tok.truncation_side = "left"
    want_ids, want_mask = torch.tensor(want["input_ids"]), torch.tensor(want["attention_mask"])
    want_mask[2, -1] = 1  # an empty prompt attends to its last (pad) position
    assert torch.equal(ids, want_ids) and torch.equal(mask, want_mask)
    kept = tok.decode(ids[0])
    assert kept == (" five six seven" if side == "left" else "one two three")
    assert mask[1].tolist() == [0, 1, 1]  # left-padded: every prompt ends in the last column


def test_unknown_side_is_refused(tok):
    with pytest.raises(ValueError, match="truncation='middle'"):
        encode_prompts(tok, PROMPTS, 3, truncation="middle")


RUNS = {
    "ppo": PPO_SMALL,
    "ppo_pp": (*PPO_SMALL, "alg=ppo_pp", "alg.restart_prob.ppo_pp=1.0", "alg.target_coef=0.1"),
    "sft": SFT_SMALL,
    "a_lol": (
        "alg=a_lol",
        "alg.max_steps=2",
        "alg.batch_size=4",
        "alg.eval_every=0",
        "alg.value.n_prompts=4",
        "alg.value.epochs=1",
        "alg.value.max_value=0.01",  # V_ref ≈ 0: every pair with R > 0.01 has A > 0
    ),
}


@pytest.mark.parametrize(
    "alg,side",
    [("ppo", "left"), ("ppo", "right"), ("ppo_pp", "right"), ("sft", "right"), ("a_lol", "right")],
)
def test_training_encodes_prompts_with_the_tasks_truncation(
    prompts_file, tmp_path, monkeypatch, alg, side
):
    """Every prompt an algorithm feeds the policy (generate and forward: rollouts, roll-ins, SFT
    and offline batches, A-LoL's V_ref samples and prompt states) is the first / last
    prompt_max_tokens tokens of its text, as task.prompt_truncation says. Recorded inside
    training_step and A-LoL's prepare only: the final evaluation is rft.eval's."""
    from hydra.utils import get_class

    from rft.alg import value_ref

    cfg = compose_cfg(
        *tiny_overrides(
            prompts_file,
            *RUNS[alg],
            "eval.before_training=false",
            "task.prompt_max_tokens=3",
            f"task.prompt_truncation={side}",
        )
    )
    module = get_class(cfg.alg._target_)
    seen, inside = [], []

    def recording(fn):
        def wrapped(self, prompt_ids, prompt_mask, *a, **k):
            if inside:
                tok = self.tokenizer
                seen.extend(tok.decode(r[m.bool()]) for r, m in zip(prompt_ids, prompt_mask))
            return fn(self, prompt_ids, prompt_mask, *a, **k)

        return wrapped

    def marking(fn):
        def wrapped(*a, **k):
            inside.append(1)
            try:
                return fn(*a, **k)
            finally:
                inside.pop()

        return wrapped

    for name in ("generate", "forward"):
        monkeypatch.setattr(PolicyLM, name, recording(getattr(PolicyLM, name)))
    monkeypatch.setattr(module, "training_step", marking(module.training_step))
    monkeypatch.setattr(module, "prepare", marking(module.prepare))
    # V_ref reads prompt states without PolicyLM.forward
    states = value_ref.prompt_hidden_states
    monkeypatch.setattr(
        value_ref,
        "prompt_hidden_states",
        lambda lm, ids, mask: recording(lambda s, i, m: states(lm, i, m))(lm, ids, mask),
    )
    train(cfg, run_dir=tmp_path / "run")
    tok = prepare_tokenizer(_tiny_tokenizer(None))
    texts = [json.loads(x)["prompt"] for x in prompts_file.read_text().splitlines()]
    cut = {
        tok.decode(ids[:3] if side == "right" else ids[-3:])
        for ids in tok(texts, add_special_tokens=False)["input_ids"]
    }
    assert seen and set(seen) <= cut, set(seen) - cut
