"""Helpers for the A-LoL family tests: a small JSONL task with an optional reward column and the
overrides that keep one train(cfg) on the tiny model to a few seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from tests.conftest import WORDS


@pytest.fixture
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread is ~100x faster than two
    threads contending with other jobs (opt in: ``pytest.mark.usefixtures("one_torch_thread")``)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_pairs(
    path: Path, n: int = 24, rewards=None, seed: int = 0, reward_key: str = "reward"
) -> Path:
    """n rows of prompt + reference; ``rewards``: None (no column), a float, or a callable(i)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            row = {
                "prompt": f"Review {i}: "
                + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))),
                "reference": " ".join(rng.choice(WORDS) for _ in range(6)),
            }
            if rewards is not None:
                row[reward_key] = rewards(i) if callable(rewards) else rewards
            f.write(json.dumps(row) + "\n")
    return path


def alol_overrides(data: Path, alg: str, *extra: str) -> list[str]:
    """tiny model, JSONL task, 2 optimizer steps, 1 eval prompt, a length reward."""
    return [
        "task=jsonl",
        f"task.path={data}",
        "task.max_new_tokens=4",
        "task.min_new_tokens=4",
        "task.val_fraction=0.25",
        "task.test_fraction=0.1",
        "task.n_eval_prompts=1",
        "task.n_test_prompts=1",
        "model=tiny",
        "logger=none",
        "hardware=cpu_fp32",
        "hardware.torch_threads=1",
        "eval.batch_size=2",
        "eval.n_samples_table=1",
        "eval.before_training=false",
        "reward=custom",
        "reward._target_=rft.reward.basic.length_reward",
        "+reward.target_words=3",
        f"alg={alg}",
        "alg.max_steps=2",
        "alg.batch_size=4",
        "alg.eval_every=0",
        "alg.lr=1e-3",
        "alg.n_train_pairs=12",
        "alg.score_batch_size=8",
        "alg.value.n_prompts=4",
        "alg.value.epochs=2",
        "alg.value.batch_size=2",
        *extra,
    ]
