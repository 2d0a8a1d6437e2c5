"""Learning test of the DPO family on the word task (tests/learning/words.py): preference pairs
whose chosen completion holds more GOOD words than its rejected one must raise the policy's GOOD
share well beyond the seed-to-seed spread; the same pairs with chosen and rejected swapped (the
flipped preference, through the same code path) must lower it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rft.train import train
from tests.conftest import compose_cfg
from tests.learning.words import BAD, GOOD, VOCAB, word_overrides

# The untrained policy's good share on the test prompts (fixed eval seed), as in test_learning.py
INIT_GOOD = 0.512


def write_preferences(path: Path, n: int = 96, seed: int = 0) -> Path:
    """n rows: a prompt from VOCAB, a 6-word chosen (each word GOOD with p 0.75) and a 6-word
    rejected (p 0.25); resampled until chosen holds strictly more GOOD words."""
    rng = random.Random(seed)

    def completion(p: float) -> list[str]:
        return [rng.choice(GOOD if rng.random() < p else BAD) for _ in range(6)]

    with open(path, "w") as f:
        for _ in range(n):
            prompt = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(3, 6)))
            while True:
                c, r = completion(0.75), completion(0.25)
                if sum(w in GOOD for w in c) > sum(w in GOOD for w in r):
                    break
            f.write(json.dumps({"prompt": prompt, "chosen": " ".join(c), "rejected": " ".join(r)}))
            f.write("\n")
    return path


DPO_LEARN = (
    "alg.max_steps=24",
    "alg.batch_size=8",
    "alg.eval_every=0",
    "alg.lr=3e-3",
    "alg.score_batch_size=32",
    "eval.before_training=false",
)


def good_share_after(words, tmp_path, alg: str, *extra: str, flip: bool = False) -> float:
    """Train on the preference file (chosen/rejected swapped when ``flip``); the test reward is
    the GOOD share itself."""
    data = write_preferences(tmp_path / "prefs.jsonl")
    keys = ("rejected", "chosen") if flip else ("chosen", "rejected")
    over = word_overrides(
        words,
        data,
        f"alg={alg}",
        f"task.chosen_key={keys[0]}",
        f"task.rejected_key={keys[1]}",
        *DPO_LEARN,
        *extra,
    )
    return train(compose_cfg(*over), run_dir=tmp_path / ("flip" if flip else "run"))[
        "test/reward_mean"
    ]


# Good share after 24 steps of 8 pairs, lr 3e-3, β 0.1 (seeds 0/1/2; flipped preference in
# brackets), untrained 0.512; about 1 s per run on one thread:
#   dpo           0.816 0.883 0.992  [0.004 0.000 0.090]
#   ipo           0.965 0.766 0.715  [0.262 0.008 0.191]
#   hinge         0.969 0.992 0.730  [0.000 0.000 0.023]
#   dpo_ref_free  0.734 0.980 0.992  [0.000 0.000 0.066]
# A Δ with its sign flipped trains every variant towards the rejected completions: the correct
# run then ends where the flipped control does. The asserts (seed 0) keep ≥ 0.2 from 0.512.
@pytest.mark.parametrize("alg", ["dpo", "ipo", "hinge", "dpo_ref_free"])
def test_dpo_learns_the_preference_and_the_flipped_preference_unlearns(words, tmp_path, alg):
    good = good_share_after(words, tmp_path, alg)
    flipped = good_share_after(words, tmp_path, alg, flip=True)
    assert good > INIT_GOOD + 0.2, good
    assert flipped < INIT_GOOD - 0.2, flipped
