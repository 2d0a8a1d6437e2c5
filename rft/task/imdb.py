"""IMDB positive-sentiment continuation as RL4LMs builds it for GRUE (docs/algorithms.md §6).

- prompt = the first half of the review's words, reference = the second half;
  the tokenizer then keeps the last ``prompt_max_tokens`` (64) tokens of the prompt;
- train / val: the 25k train reviews shuffled with ``split_seed`` and cut 20k / 5k;
  test: the first 5k of the shuffled 25k test reviews;
- SFT pairs: positive train reviews only.

Shuffling uses ``numpy.random.default_rng(seed).permutation``, the same permutation that
``datasets.Dataset.shuffle(seed=...)`` draws, so the local files and the hub dataset give
identical splits. Reviews keep their ``<br />`` tags, as the hub copy does.

Data: Maas et al., "Learning Word Vectors for Sentiment Analysis", ACL 2011.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from rft.config import choice
from rft.errors import ConfigError, DataError
from rft.task.base import Example, Task, check_seed, load_hub_dataset, read_jsonl_objects

log = logging.getLogger(__name__)


def split_review(text: str) -> tuple[str, str]:
    words = text.split()
    half = len(words) // 2
    return " ".join(words[:half]), " ".join(words[half:])


def find_imdb_dir(data_dir: str | None) -> Path | None:
    """Accept the imdb folder itself or a parent holding ``imdb/``."""
    candidates = []
    if data_dir:
        candidates += [Path(data_dir), Path(data_dir) / "imdb"]
    for c in candidates:
        c = c.expanduser()
        if (c / "train.jsonl.gz").is_file() and (c / "test.jsonl.gz").is_file():
            return c
    return None


def _read_jsonl_gz(path: Path) -> list[dict]:
    """The reviews of one IMDB file, each checked: a ``text`` string and a 0/1 ``label``."""
    rows = []
    for i, row in read_jsonl_objects(path):
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str):
            raise DataError(
                f"{path}:{i}: needs a 'text' string (the review), got "
                f"{'no text field' if 'text' not in row else type(text).__name__}. "
                'Each line must be {"text": ..., "label": 0 or 1}.'
            )
        if len(text.split()) < 2:
            raise DataError(
                f"{path}:{i}: the review has {len(text.split())} word(s); its first half is the"
                " prompt, so it needs at least 2. Drop the row."
            )
        if label not in (0, 1):
            raise DataError(
                f"{path}:{i}: 'label' must be 0 (negative) or 1 (positive), got {label!r}."
            )
        rows.append(row)
    return rows


def _load_hub(hub_id: str) -> tuple[list[dict], list[dict]]:
    ds = load_hub_dataset(hub_id, "imdb")
    return list(ds["train"]), list(ds["test"])


class ImdbTask(Task):
    name = "imdb"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        super().__init__(cfg)
        check_seed(cfg)
        for key in ("n_train", "n_val", "n_test"):
            if cfg[key] < 1:
                raise ConfigError(f"task.{key}={cfg[key]}: must be ≥ 1 (a number of reviews).")
        source = choice(cfg.source)
        data_dir = cfg.data_dir or os.environ.get("RFT_DATA_DIR")
        folder = find_imdb_dir(data_dir)
        if source == "local" or (source == "auto" and data_dir):
            if folder is None:
                raise DataError(
                    f"task.data_dir={data_dir!r}: no IMDB files there (expected train.jsonl.gz "
                    "and test.jsonl.gz in it or in its imdb/ subfolder). Set RFT_DATA_DIR or "
                    "task.data_dir to the folder that holds them (e.g. ../shared/data)."
                    if data_dir
                    else "task.source=local but no data folder is set: set RFT_DATA_DIR or task.data_dir."
                )
            train_rows = _read_jsonl_gz(folder / "train.jsonl.gz")
            test_rows = _read_jsonl_gz(folder / "test.jsonl.gz")
        elif source in ("hub", "auto"):
            train_rows, test_rows = _load_hub(cfg.hub_id)
        else:  # pragma: no cover
            raise ConfigError(f"task.source={source!r}: choose auto, local or hub.")

        n_train, n_val, n_test = cfg.n_train, cfg.n_val, cfg.n_test
        if n_train + n_val > len(train_rows):
            raise ConfigError(
                f"task.n_train + task.n_val = {n_train + n_val} > {len(train_rows)} train reviews."
            )
        perm = np.random.default_rng(cfg.split_seed).permutation(len(train_rows))
        shuffled = [train_rows[i] for i in perm]
        test_perm = np.random.default_rng(cfg.split_seed).permutation(len(test_rows))
        test_shuffled = [test_rows[i] for i in test_perm[:n_test]]
        self.train = [self._example(r) for r in shuffled[:n_train]]
        self.val = [self._example(r) for r in shuffled[n_train : n_train + n_val]]
        self.test = [self._example(r) for r in test_shuffled]
        self.check()

    @staticmethod
    def _example(row: dict) -> Example:
        prompt, rest = split_review(row["text"])
        return Example(prompt=prompt, reference=rest, meta={"label": int(row["label"])})

    def sft_pairs(self) -> list[Example]:
        pairs = super().sft_pairs()
        if self.cfg.sft_positive_only:
            pairs = [e for e in pairs if e.meta.get("label") == 1]
        return pairs
