"""Sentiment accuracy of a reward on IMDB test reviews: how often reward > threshold agrees with
the review's label. Compares a reward model trained in rft with VADER on the same reviews:

    python scripts/imdb_reward_accuracy.py reward=sentiment_vader
    python scripts/imdb_reward_accuracy.py reward=classifier reward.model=<run>/reward_model

The reviews are the first ``--n`` of the task's test split (task=imdb: the GRUE shuffle, the
ones ``alg=reward_classifier`` reports on with task.n_test_prompts=<n>), each scored whole as
the completion of an empty prompt. Threshold 0.5: P(POSITIVE) > 0.5 for a classifier; VADER's
(compound + 1) / 2 > 0.5 is the sign of its compound score (0 counts as negative).
Extra arguments are config overrides (task=, reward=, ...). Set RFT_DATA_DIR first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import rft  # noqa: F401  (registers the schemas)
from rft.reward import build_reward

CONF = Path(__file__).resolve().parents[1] / "conf"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="test reviews (the first n)")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. reward=sentiment_vader")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["task=imdb", *args.overrides])
    task = instantiate(cfg.task, _convert_="none")
    reviews = task.split("test")[: args.n]
    texts = [f"{e.prompt} {e.reference}" if e.reference else e.prompt for e in reviews]
    labels = torch.tensor([e.meta["label"] for e in reviews])
    reward = build_reward(cfg.reward)
    scores = torch.as_tensor(reward([""] * len(texts), texts), dtype=torch.float32)
    acc = float(((scores > args.threshold).long() == labels).float().mean())
    out = {
        "reward": str(cfg.reward.get("model") or cfg.reward._target_),
        "n": len(texts),
        "accuracy": acc,
        "positive_share": float(labels.float().mean()),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
