"""Evaluation: metrics from per-example records, and sharding across DDP ranks (real gloo
process group, 2 processes on the CPU)."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from rft.eval.evaluate import (
    EvalRecords,
    aggregate,
    evaluate_policy,
    evaluate_shard,
    shard_bounds,
)
from rft.task.base import Example
from rft.train import frozen_copy, load_policy
from tests.conftest import WORDS, compose_cfg

BATCH = 4


def word_reward(prompts, texts, refs):
    """Share of words from a small positive list: cheap, deterministic, in [0, 1]."""
    good = {"good", "great", "lovely", "fun", "happy"}
    return torch.tensor([sum(w in good for w in t.split()) / max(len(t.split()), 1) for t in texts])


def examples(n: int = 10) -> list[Example]:
    return [
        Example(prompt=f"Review {i}: the {WORDS[i % len(WORDS)]} film", reference="x")
        for i in range(n)
    ]


def eval_kwargs(cfg, seed: int = 11) -> dict:
    return dict(
        prompt_max_tokens=16,
        max_new_tokens=6,
        min_new_tokens=6,
        generation=cfg.eval.generation,
        batch_size=BATCH,
        seed=seed,
    )


def models():
    cfg = compose_cfg("model=tiny")
    policy = load_policy(cfg.model)
    return cfg, policy, frozen_copy(policy)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 10, 17, 64])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_cover_every_example_once_in_whole_batches(n, world):
    bounds = [shard_bounds(n, BATCH, r, world) for r in range(world)]
    covered = [i for lo, hi in bounds for i in range(lo, hi)]
    assert covered == list(range(n))
    for lo, hi in bounds:
        assert lo % BATCH == 0 and (hi - lo) % BATCH == 0 or hi == n
    batches = [math.ceil((hi - lo) / BATCH) for lo, hi in bounds]
    assert max(batches) - min(batches) <= 1


def test_aggregate_matches_hand_computed_metrics():
    rec = EvalRecords(texts=["a b a", "b c"], rewards=[0.2, 0.6], lengths=[3, 1], nll=[3.0, 1.0])
    m = aggregate(rec)
    assert m["reward_mean"] == pytest.approx(0.4)
    assert m["reward_std"] == pytest.approx(0.2)  # population std
    assert m["perplexity"] == pytest.approx(math.exp(4.0 / 4))  # corpus NLL / corpus tokens
    assert m["distinct_1"] == pytest.approx(3 / 5)  # a b c of a b a b c
    assert m["distinct_2"] == pytest.approx(3 / 3)  # (a b) (b a) (b c)
    assert m["completion_tokens"] == pytest.approx(2.0)
    assert "perplexity" not in aggregate(EvalRecords(texts=["a"], rewards=[1.0], lengths=[1]))


def test_single_process_evaluation_is_one_shard_and_keeps_example_order():
    cfg, policy, ref = models()
    ex = examples(10)
    metrics, samples = evaluate_policy(
        policy, ref, word_reward, ex, n_samples=7, **eval_kwargs(cfg)
    )
    rec = evaluate_shard(policy, ref, word_reward, ex, **eval_kwargs(cfg))
    assert metrics == aggregate(rec)
    assert [s["prompt"] for s in samples] == [e.prompt for e in ex[:7]]
    assert [s["completion"] for s in samples] == rec.texts[:7]
    assert [s["reward"] for s in samples] == pytest.approx(
        word_reward(None, rec.texts[:7], None).tolist()
    )
    assert 1 < metrics["perplexity"] < float(policy.model.config.vocab_size) * 10


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        cfg, policy, ref = models()
        metrics, samples = evaluate_policy(
            policy, ref, word_reward, examples(10), n_samples=10, **eval_kwargs(cfg)
        )
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"metrics": metrics, "samples": samples}, f)
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_evaluate_their_shards_and_agree_on_whole_split_metrics(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # every rank logs the same metrics and samples

    # The same shards computed here: rank 0 takes batch 0 (examples 0-3) with the seed, rank 1
    # batches 1-2 (examples 4-9) with seed + 1.
    cfg, policy, ref = models()
    ex = examples(10)
    assert shard_bounds(10, BATCH, 0, 2) == (0, 4) and shard_bounds(10, BATCH, 1, 2) == (4, 10)
    want = evaluate_shard(policy, ref, word_reward, ex[:4], **eval_kwargs(cfg))
    want.extend(evaluate_shard(policy, ref, word_reward, ex[4:], **eval_kwargs(cfg, seed=12)))
    assert [s["completion"] for s in r0["samples"]] == want.texts
    for k, v in aggregate(want).items():
        assert r0["metrics"][k] == pytest.approx(v, rel=1e-6), k
