"""Offline RL data (rft.task.offline): pairs from a task, cut continuations, data-carried or
scored rewards, the reward cache, and clear errors for unusable data."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf
from transformers import GPT2TokenizerFast

from rft.errors import DataError, RewardError
from rft.model.load import ASSETS
from rft.reward import CheckedReward
from rft.task.base import Example, Task
from rft.task.jsonl import JsonlTask
from rft.task.offline import build_pairs, given_rewards, load_offline_data, score_pairs


@pytest.fixture(scope="module")
def tok():
    return GPT2TokenizerFast.from_pretrained(str(ASSETS / "gpt2-tokenizer"))


def make_task(name: str, train: list[Example], max_new_tokens: int = 5) -> Task:
    task = Task(
        OmegaConf.create(
            {
                "prompt_max_tokens": 16,
                "max_new_tokens": max_new_tokens,
                "min_new_tokens": 1,
                "n_eval_prompts": 1,
                "n_test_prompts": 1,
            }
        )
    )
    task.name, task.train = name, train
    return task


class CountingReward:
    def __init__(self):
        self.calls = 0

    def __call__(self, prompts, completions, references):
        self.calls += 1
        return [len(c.split()) / 10 for c in completions]


def test_imdb_pairs_rejoin_the_review_and_cut_the_continuation(tok):
    long_half = "a review that goes on and on for many more words than five"
    task = make_task(
        "imdb",
        [
            Example("the first half of", long_half, meta={"label": 1}),
            Example("short", "end", meta={"label": 0}),
        ],
    )
    pairs = build_pairs(task, tok, max_new_tokens=5)
    assert [p.reference for p in pairs] == [" a review that goes on", " end"]  # both labels kept
    assert pairs[1].prompt + pairs[1].reference == "short end"
    assert all(len(tok(p.reference)["input_ids"]) <= 5 for p in pairs)
    assert pairs[0].meta == {"label": 1}
    other = build_pairs(
        make_task("jsonl", task.train), tok, max_new_tokens=5
    )  # user data: no space added
    assert other[1].reference == "end"


def test_subset_is_seeded_and_nested(tok):
    task = make_task("jsonl", [Example(f"p{i}", f"c{i}") for i in range(20)])
    five = [p.prompt for p in build_pairs(task, tok, 5, n_pairs=5, seed=1)]
    assert five == [p.prompt for p in build_pairs(task, tok, 5, n_pairs=5, seed=1)]
    assert set(five) < {p.prompt for p in build_pairs(task, tok, 5, n_pairs=10, seed=1)}
    assert five == sorted(five, key=lambda s: int(s[1:]))  # data order kept
    assert len(build_pairs(task, tok, 5, n_pairs=-1)) == 20


def test_scores_are_kept_by_reward_and_texts(tmp_path, tok):
    from rft.store import ResultStore
    from tests.conftest import compose_cfg

    cfg = compose_cfg("alg=a_lol", "reward=sentiment_vader")
    pairs = build_pairs(
        make_task("jsonl", [Example(f"p{i}", f"one two {i}") for i in range(5)]), tok, 5
    )
    reward, store = CountingReward(), ResultStore(tmp_path / "store")
    first = score_pairs(pairs, reward, 2, store=store, cfg=cfg)
    assert reward.calls == 3 and first.shape == (5,) and first.dtype == torch.float32
    assert torch.equal(score_pairs(pairs, reward, store=store, cfg=cfg), first)
    assert reward.calls == 3
    cfg.reward.include_prompt = True  # another reward config
    score_pairs(pairs, reward, 8, store=store, cfg=cfg)
    assert reward.calls == 4
    score_pairs(pairs[:4], reward, 8, store=store, cfg=cfg)  # other pairs
    assert reward.calls == 5 and len(store.entries("offline_rewards")) == 3
    score_pairs(pairs, reward, 8)  # no store: scored, kept nowhere
    assert reward.calls == 6


def test_scores_are_shared_through_the_result_store(tmp_path, tok):
    from rft.store import ResultStore
    from tests.conftest import compose_cfg

    cfg = compose_cfg("alg=a_lol", "reward=sentiment_vader")
    pairs = build_pairs(
        make_task("jsonl", [Example(f"p{i}", f"one two {i}") for i in range(5)]), tok, 5
    )
    reward = CountingReward()
    store = ResultStore(tmp_path / "store", origin="run_a")
    first = score_pairs(pairs, reward, 2, store=store, cfg=cfg)
    other_run = ResultStore(tmp_path / "store", origin="run_b")  # another job
    again = score_pairs(pairs, reward, 2, store=other_run, cfg=cfg)
    assert reward.calls == 3 and torch.equal(again, first) and again.dtype == torch.float32
    assert [r.what for r in other_run.reused] == ["offline_rewards"]
    assert other_run.reused[0].origin == "run_a"
    cfg.reward.include_prompt = True  # another reward setting: scored again
    score_pairs(pairs, reward, 2, store=other_run, cfg=cfg)
    assert reward.calls == 6


def test_data_rewards_are_used_and_checked(tmp_path, tok):
    reward = CountingReward()
    good = make_task("jsonl", [Example("a", "b", reward=0.5), Example("c", "d", reward=1.0)])
    _, r = load_offline_data(good, tok, reward, n_pairs=-1, seed=0)
    assert r.tolist() == [0.5, 1.0] and reward.calls == 0
    mixed = make_task("jsonl", [Example("a", "b", reward=0.5), Example("c", "d")])
    with pytest.raises(DataError, match="1 of 2 train pairs carry a reward"):
        given_rewards(build_pairs(mixed, tok, 5), "task=jsonl")
    nan = make_task(
        "jsonl",
        [
            Example("a", "b", reward=math.nan),
            Example("c", "d", reward=1.0),
            Example("e", "f", reward=math.inf),
        ],
    )
    with pytest.raises(DataError, match=r"2 of 3 rewards are NaN/inf \(first: pair 0"):
        given_rewards(build_pairs(nan, tok, 5), "task=jsonl")


def test_a_nan_from_the_reward_function_is_an_error(tmp_path, tok):
    pairs = build_pairs(make_task("jsonl", [Example("a", "b"), Example("c", "d")]), tok, 5)
    bad = CheckedReward(lambda p, c, r: [0.1, float("nan")], name="flaky")
    with pytest.raises(RewardError, match="1 non-finite"):
        score_pairs(pairs, bad)


def test_no_completions_is_an_error_and_missing_ones_are_counted(tok, caplog):
    with pytest.raises(DataError, match="task.reference_key"):
        build_pairs(make_task("jsonl", [Example("a"), Example("b")]), tok, 5)
    with caplog.at_level("WARNING"):
        pairs = build_pairs(
            make_task("jsonl", [Example("a", "x"), Example("b"), Example("c")]), tok, 5
        )
    assert len(pairs) == 1 and "2 of 3 train examples have no reference" in caplog.text


def test_jsonl_reward_column(tmp_path, tok):
    path = tmp_path / "data.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": f"p{i}", "reference": f"c{i}", "score": i / 10}) + "\n"
            for i in range(10)
        )
    )
    task = JsonlTask(
        path=str(path),
        format="auto",
        prompt_key="prompt",
        reference_key="reference",
        reward_key="score",
        val_path=None,
        test_path=None,
        val_fraction=0.2,
        test_fraction=0.2,
        split_seed=0,
        prompt_max_tokens=16,
        max_new_tokens=4,
        min_new_tokens=1,
        n_eval_prompts=1,
        n_test_prompts=1,
    )
    pairs, rewards = load_offline_data(task, tok, CountingReward(), n_pairs=-1, seed=0)
    assert rewards.tolist() == pytest.approx([int(p.prompt[1:]) / 10 for p in pairs])
