"""Helpers for the A-LoL family tests: a small JSONL task with an optional reward column and the
overrides (on tests.conftest.tiny_overrides) that keep one train(cfg) to a few seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import LENGTH_REWARD, OFFLINE_SMALL, WORDS, tiny_overrides


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
    """A tiny offline run: 2 optimizer steps on a JSONL task, 1 eval prompt, a length reward."""
    return tiny_overrides(
        data,
        "task.max_new_tokens=4",
        "task.min_new_tokens=4",
        "task.val_fraction=0.25",
        "task.test_fraction=0.1",
        "task.n_eval_prompts=1",
        "task.n_test_prompts=1",
        "hardware.torch_threads=1",
        "eval.batch_size=2",
        "eval.n_samples_table=1",
        "eval.before_training=false",
        *LENGTH_REWARD,
        f"alg={alg}",
        *OFFLINE_SMALL,
        *extra,
    )
