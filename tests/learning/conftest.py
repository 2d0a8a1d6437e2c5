"""Fixtures of the learning and wiring tests: the word tokenizer and tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.learning.words import build_word_tokenizer, write_task

# METEOR needs WordNet: the CommonGen runs skip with the fix where it is absent, as the metric
# tests do, instead of failing deep inside the reward.
from tests.metrics.conftest import wordnet_reader  # noqa: F401


@pytest.fixture(scope="module")
def words(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("words")
    return {
        "root": root,
        "tok": build_word_tokenizer(root / "tok"),
        # each reference has a random share of good words: offline rewards that vary
        "task": write_task(root / "task.jsonl", n=96, seed=0),
        "sft_good": write_task(root / "sft_good.jsonl", n=64, seed=1, ref_good=0.9),
        "sft_bad": write_task(root / "sft_bad.jsonl", n=64, seed=2, ref_good=0.1),
        "heldout": write_task(root / "heldout.jsonl", n=32, seed=3, ref_good=0.9),
    }
