"""What every task provides: prompt splits, optional references, and SFT pairs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rft.config import choice
from rft.errors import ConfigError, DataError


@dataclass
class Example:
    prompt: str
    reference: str | None = None  # a gold completion (SFT target, offline RL data)
    reward: float | None = None  # a precomputed reward, if the data carries one
    meta: dict = field(default_factory=dict)
    # every gold completion of this prompt, for metrics and metric rewards (CommonGen: all the
    # references of a concept set); empty where the task has at most one (`reference`)
    references: list[str] = field(default_factory=list)

    @property
    def reward_references(self):
        """What a reward gets as this prompt's references: the list of all of them where the task
        has several (a ``ReferenceList``, which also carries the example's ``meta``), else the
        single ``reference`` (a string or None)."""
        return ReferenceList(self.references, self.meta) if self.references else self.reference


class ReferenceList(list):
    """A prompt's references as a plain list of strings that also carries the example's
    ``meta`` (``.meta``): rewards are called ``fn(prompts, completions, references)``, and the
    few that need more than the references (PARENT reads the ToTTo table, the DailyDialog
    intent reward the gold intent) find it here. Everything else sees an ordinary list."""

    def __init__(self, references=(), meta: dict | None = None):
        super().__init__(references)
        self.meta = dict(meta or {})

    def __reduce__(self):  # pickle / deepcopy keep the meta
        return (ReferenceList, (list(self), self.meta))


@contextlib.contextmanager
def reading(path) -> Iterator[None]:
    """What can go wrong while a data file is read, as one DataError naming the file: bytes
    that are not UTF-8, a truncated or non-gzip ``.gz``, a CSV the csv module rejects, a path
    that is a folder or cannot be read."""
    import csv
    import gzip
    import zlib

    try:
        yield
    except DataError:
        raise
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.start}: {e.reason}). Save the file as UTF-8."
        ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(
            f"{path}: not a complete gzip file ({type(e).__name__}: {e}). Copy it again, or "
            "give the uncompressed file (a name without .gz)."
        ) from None
    except csv.Error as e:
        raise DataError(
            f"{path}: the csv reader rejects it ({e}). Check the quoting and delimiters, or "
            "convert the file to JSONL (task.format=jsonl)."
        ) from None
    except OSError as e:
        raise DataError(
            f"{path}: cannot be read ({e.strerror or e}). Give a readable file."
        ) from None


def read_jsonl_objects(path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-empty line of a JSONL file (``.gz`` read as gzip);
    a line that is not one JSON object is a DataError naming the file and line."""
    import gzip
    import json
    from pathlib import Path

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[tuple[int, dict]] = []
    with reading(path), opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}:{i}: not valid JSON ({e.msg} at column {e.colno}). "
                    "Each line must be one JSON object."
                ) from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{path}:{i}: expected a JSON object per line, got {type(row).__name__}."
                )
            rows.append((i, row))
    return rows


def load_hub_dataset(
    hub_id: str, folder: str, name: str | None = None, files: str = "", looked_in: str = ""
):
    """``datasets.load_dataset(hub_id[, name])``; any failure (no network, no such dataset, a
    script dataset that this ``datasets`` no longer runs) becomes one DataError that points at a
    local copy (``folder``: the data folder's name, e.g. imdb; ``files``: what it must hold;
    ``looked_in``: where a local copy was already looked for, if anywhere)."""
    try:
        import datasets

        return (
            datasets.load_dataset(hub_id) if name is None else datasets.load_dataset(hub_id, name)
        )
    except Exception as e:  # noqa: BLE001 - any hub failure ends in the same advice
        shown = f"{hub_id!r}" + (f" ({name!r})" if name else "")
        first = (str(e).strip().splitlines() or [""])[0][:200]
        where = f" No local copy in {looked_in}." if looked_in else ""
        holding = f", holding {files}" if files else ""
        raise DataError(
            f"task.source=hub: could not load the dataset {shown} from the hub "
            f"({e.__class__.__name__}: {first}).{where} Without a network, point rft at a local "
            f"copy: RFT_DATA_DIR=<folder holding {folder}/> or task.data_dir=<the {folder} "
            f"folder>{holding}."
        ) from None


def check_lengths(cfg) -> None:
    """The token budgets every task has; each failure names the key and the fix."""
    if cfg.prompt_max_tokens < 1:
        raise ConfigError(f"task.prompt_max_tokens={cfg.prompt_max_tokens}: must be ≥ 1.")
    if cfg.max_new_tokens < 1:
        raise ConfigError(f"task.max_new_tokens={cfg.max_new_tokens}: must be ≥ 1.")
    if not 0 <= cfg.min_new_tokens <= cfg.max_new_tokens:
        raise ConfigError(
            f"task.min_new_tokens={cfg.min_new_tokens}: must be in [0, task.max_new_tokens ="
            f" {cfg.max_new_tokens}]."
        )
    for key in ("n_eval_prompts", "n_test_prompts"):
        if cfg.get(key) is not None and cfg[key] < -1:
            raise ConfigError(f"task.{key}={cfg[key]}: must be ≥ 1, or -1 for all.")


def check_seed(cfg, key: str = "split_seed") -> None:
    if cfg[key] < 0:
        raise ConfigError(f"task.{key}={cfg[key]}: a seed must be ≥ 0 (numpy's generators).")


def data_folder(cfg, folder: str, found) -> tuple[Path | None, str]:
    """Where a hub-backed task reads its data: (the local folder, "") or (None, where a local copy
    was looked for) for the hub. ``task.source=local`` needs the folder; ``auto`` takes it when
    ``task.data_dir`` (or $RFT_DATA_DIR) holds it, itself or as its ``folder/`` subfolder, and
    the hub otherwise; ``found(path)`` says whether a path holds the task's files."""
    import os

    source = choice(cfg.source)
    data_dir = cfg.data_dir or os.environ.get("RFT_DATA_DIR")
    candidates = (
        [Path(data_dir).expanduser() / folder, Path(data_dir).expanduser()] if data_dir else []
    )
    hit = next((c for c in candidates if c.is_dir() and found(c)), None)
    if hit is not None and source != "hub":
        return hit, ""
    looked_in = " or ".join(str(c) for c in candidates)
    if source == "local":
        raise DataError(
            f"task.source=local: no {folder} files in {looked_in}. Set RFT_DATA_DIR to the "
            f"folder holding {folder}/ or task.data_dir to the {folder} folder."
            if data_dir
            else "task.source=local but no data folder is set: set RFT_DATA_DIR or task.data_dir."
        )
    return None, looked_in


class Task:
    """Base class: subclasses fill ``train``, ``val`` and ``test`` in ``__init__``."""

    name: str = "task"

    def __init__(self, cfg):
        self.cfg = cfg
        check_lengths(cfg)
        self.prompt_max_tokens = cfg.prompt_max_tokens
        # which end of a long prompt encode_prompts cuts (rft.config.TaskConfig.prompt_truncation)
        self.prompt_truncation = choice(cfg.get("prompt_truncation", "left"))
        self.max_new_tokens = cfg.max_new_tokens
        self.min_new_tokens = cfg.min_new_tokens
        self.train: list[Example] = []
        self.val: list[Example] = []
        self.test: list[Example] = []

    def split(self, name: str) -> list[Example]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def eval_examples(self, split: str) -> list[Example]:
        """The prompts evaluation uses: the first n of val/test (n from the task config)."""
        n = self.cfg.n_eval_prompts if split == "val" else self.cfg.n_test_prompts
        data = self.split(split)
        return data if n is None or n < 0 else data[:n]

    def sft_pairs(self) -> list[Example]:
        """(prompt, reference) pairs for supervised finetuning."""
        pairs = [e for e in self.train if e.reference]
        if not pairs:
            raise DataError(
                f"task={self.name}: no train example has a reference completion, so SFT "
                "(alg=sft or alg.warm_start.steps>0) has no targets. Add a reference column "
                "(task.reference_key) or set alg.warm_start.steps=0."
            )
        return pairs

    def offline_examples(self) -> list[Example]:
        """The rows offline RL (rft.task.offline) learns from: every train example; those
        without a reference are skipped there. A task whose RL prompts group several references
        (CommonGen) returns one row per (prompt, reference) instead."""
        return self.train

    def check(self) -> None:
        for split in ("train", "val", "test"):
            if not self.split(split):
                raise DataError(
                    f"task={self.name}: the {split} split is empty. Check the data file(s) and "
                    "the split fractions (task.val_fraction / task.test_fraction)."
                )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(train={len(self.train)}, val={len(self.val)}, "
            f"test={len(self.test)})"
        )
