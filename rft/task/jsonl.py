"""Your own prompts from a JSONL or CSV file.

Each row needs a prompt column (``task.prompt_key``); a reference completion
(``task.reference_key``, used by SFT and offline RL), a precomputed reward
(``task.reward_key``) and a preference pair (``task.chosen_key`` + ``task.rejected_key``, used
by alg=dpo; kept in ``Example.meta["chosen"]`` / ``meta["rejected"]``) are optional. Val/test come from their own files or are cut from the train
file with ``val_fraction`` / ``test_fraction`` after a seeded shuffle.

Every problem with the file is reported with its path and line number.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from rft.config import choice
from rft.errors import ConfigError, DataError
from rft.task.base import Example, Task, check_seed, read_jsonl_objects, reading


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".jsonl", ".json", ".jsonl.gz", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise ConfigError(
        f"task.format=auto cannot tell the format of {path} from its suffix: "
        "set task.format=jsonl or task.format=csv."
    )


def read_rows(
    path: str | Path, fmt: str = "auto", key: str = "task.path"
) -> list[tuple[int, dict]]:
    """(line number, row) for every non-empty row of a JSONL or CSV file (``key``: the config
    key that named the file, for the error message)."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "file not found"
        raise DataError(
            f"{key}={str(path)!r}: {what}. Give the path of a JSONL or CSV "
            "file (relative paths are relative to the directory you run from)."
        )
    fmt = _format(path, fmt)
    rows: list[tuple[int, dict]] = []
    if fmt == "jsonl":
        rows = read_jsonl_objects(path)
    else:
        with reading(path), open(path, newline="", encoding="utf-8") as f:
            delim = "\t" if path.suffix == ".tsv" else ","
            reader = csv.DictReader(f, delimiter=delim)
            for row in reader:
                i = reader.line_num  # the row's (last) line; line 1 is the header
                extra = row.pop(None, None)  # more fields than the header names
                if extra is not None:
                    raise DataError(
                        f"{path}:{i}: {len(row) + len(extra)} fields, but the header names "
                        f"{len(row)} ({sorted(row)}). Quote fields that hold the delimiter."
                    )
                rows.append((i, row))
    return rows


def parse_examples(
    path: str | Path,
    rows: list[tuple[int, dict]],
    prompt_key: str,
    reference_key: str | None,
    reward_key: str | None,
    chosen_key: str | None = None,
    rejected_key: str | None = None,
) -> list[Example]:
    out = []
    for i, row in rows:
        if prompt_key not in row:
            raise DataError(
                f"{path}:{i}: no {prompt_key!r} field (fields: {sorted(row)}). "
                f"Name the prompt column with task.prompt_key=<field>."
            )
        prompt = row[prompt_key]
        if not isinstance(prompt, str):
            raise DataError(
                f"{path}:{i}: {prompt_key!r} must be a string, got {type(prompt).__name__}."
            )
        if not prompt.strip():
            raise DataError(
                f"{path}:{i}: {prompt_key!r} is empty: the policy needs a prompt to continue."
                " Fill it or drop the row."
            )
        ref = row.get(reference_key) if reference_key else None
        if ref is not None and not isinstance(ref, str):
            raise DataError(
                f"{path}:{i}: {reference_key!r} must be a string, got {type(ref).__name__}."
            )
        reward = None
        if reward_key:
            if reward_key not in row or row[reward_key] in ("", None):
                raise DataError(
                    f"{path}:{i}: no {reward_key!r} value (task.reward_key). Fill it, or "
                    "set task.reward_key=null to score with the configured reward."
                )
            try:
                reward = float(row[reward_key])
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}:{i}: {reward_key!r}={row[reward_key]!r} is not a number."
                ) from None
            if not math.isfinite(reward):
                raise DataError(f"{path}:{i}: {reward_key!r} is {reward} (not finite).")
        meta = {"line": i, "file": str(path)}
        if chosen_key and rejected_key:
            meta.update(_preference(path, i, row, chosen_key, rejected_key))
        out.append(Example(prompt=prompt, reference=ref or None, reward=reward, meta=meta))
    if not out:
        raise DataError(
            f"{path}: no prompts in the file (it is empty). Add rows with a {prompt_key!r} field."
        )
    return out


def _preference(path, i: int, row: dict, chosen_key: str, rejected_key: str) -> dict:
    """The row's chosen and rejected completions; every reason they cannot train is an error
    naming the file and line (a silent skip would hide a broken export)."""
    out = {}
    for key, which, knob in (
        (chosen_key, "chosen", "task.chosen_key"),
        (rejected_key, "rejected", "task.rejected_key"),
    ):
        if key not in row:
            raise DataError(
                f"{path}:{i}: no {key!r} field ({knob}; fields: {sorted(row)}). Name the "
                f"{which} column with {knob}=<field>."
            )
        text = row[key]
        if not isinstance(text, str):
            raise DataError(f"{path}:{i}: {key!r} must be a string, got {type(text).__name__}.")
        if not text.strip():
            raise DataError(
                f"{path}:{i}: {key!r} ({which}) is empty; a preference pair needs a non-empty "
                "chosen and rejected completion. Fill it or drop the row."
            )
        out[which] = text
    if out["chosen"] == out["rejected"]:
        raise DataError(
            f"{path}:{i}: {chosen_key!r} (chosen) and {rejected_key!r} (rejected) are the same "
            "text, which states no preference (its Δ is 0 whatever the policy). Drop the row or "
            "fix the columns."
        )
    return out


class JsonlTask(Task):
    name = "jsonl"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg)
        super().__init__(cfg)
        check_seed(cfg)
        fmt = choice(cfg.format)
        chosen_key, rejected_key = cfg.get("chosen_key"), cfg.get("rejected_key")
        if bool(chosen_key) != bool(rejected_key):
            given, other = (
                ("chosen_key", "rejected_key") if chosen_key else ("rejected_key", "chosen_key")
            )
            raise ConfigError(
                f"task.{given}={cfg[given]!r} without task.{other}: preference data needs both "
                f"columns. Set task.{other}=<field>, or task.{given}=null."
            )

        def load(p):
            return parse_examples(
                p,
                read_rows(p, fmt),
                cfg.prompt_key,
                cfg.reference_key,
                cfg.reward_key,
                chosen_key,
                rejected_key,
            )

        train = load(cfg.path)
        val = load(cfg.val_path) if cfg.val_path else None
        test = load(cfg.test_path) if cfg.test_path else None
        if val is None or test is None:
            for key in ("val_fraction", "test_fraction"):
                if not 0 <= cfg[key] < 1:
                    raise ConfigError(f"task.{key}={cfg[key]}: must be in [0, 1).")
            perm = np.random.default_rng(cfg.split_seed).permutation(len(train))
            n_test = 0 if test is not None else max(1, round(cfg.test_fraction * len(train)))
            n_val = 0 if val is not None else max(1, round(cfg.val_fraction * len(train)))
            if n_val + n_test >= len(train):
                raise DataError(
                    f"{cfg.path}: {len(train)} rows are too few to cut {n_val} val and "
                    f"{n_test} test prompts and keep any for training. Add rows, or give "
                    "task.val_path / task.test_path."
                )
            shuffled = [train[i] for i in perm]
            test = test if test is not None else shuffled[:n_test]
            val = val if val is not None else shuffled[n_test : n_test + n_val]
            train = shuffled[n_test + n_val :]
        self.train, self.val, self.test = train, val, test
        self.check()
