"""NarrativeQA (over story summaries) as RL4LMs builds it for GRUE (``NarrativeQA`` data pool;
docs/grue-tasks.md §1.3).

RL4LMs reads UnifiedQA's encoding of NarrativeQA, three TSV files (``train.tsv``, ``dev.tsv``,
``test.tsv``: train / val / test) whose lines are ``f"{question} \\\\n {summary} \\t {answer} \\n"``
(the two characters backslash-n between question and summary, the summary's own newlines
deleted), two lines per question, one per answer (allenai/unifiedqa ``encode_datasets.py``).

- the files are read with ``pandas.read_csv(sep="\\t", header=None)`` as RL4LMs reads them, with
  every field kept as a string (RL4LMs' default type inference would crash on an answer pandas
  reads as a number or as NaN);
- samples: the lines grouped by identical input, in order of first appearance: one sample per
  question whose references are its answers (usually 2; a question repeated word for word about
  the same story gets them all);
- prompt = ``input.lower()``, not stripped (the space before the tab stays), references =
  ``answer.lower().strip()`` (RL4LMs' ``normalize_text``; its apostrophe removal is a no-op);
- SFT and offline rows: one per (question, answer), as RL4LMs' seq2seq SFT expands
  multi-reference samples;
- lengths: prompts ≤ 512 tokens cut on the RIGHT (the question and the start of the summary are
  kept); answers ≤ 19 new tokens: GRUE's PPO / NLPO configs set no length, so HF's default
  ``max_length`` 20 (decoder start included) applies (its +SFT configs: 50).

Data: ``task.data_dir`` or $RFT_DATA_DIR holding ``narrative_qa/{train,dev,test}.tsv`` (UnifiedQA's
files), or ``task.source=hub``: RL4LMs' own loader, which downloads those three files from
UnifiedQA's storage (``task.hub_url``) into ``task.cache_dir`` once.

Data: Kočiský et al., "The NarrativeQA Reading Comprehension Challenge", TACL 2018; UnifiedQA:
Khashabi et al., Findings of EMNLP 2020.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from rft.errors import DataError
from rft.task.base import Example, Task, data_folder

FOLDER = "narrative_qa"
FILES = {"train": "train.tsv", "val": "dev.tsv", "test": "test.tsv"}


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """(input, answer) per line of a UnifiedQA TSV, as pandas parses it."""
    import pandas

    try:
        df = pandas.read_csv(
            path, sep="\t", header=None, encoding="utf-8", dtype=str, keep_default_na=False
        )
    except Exception as e:  # noqa: BLE001 - a malformed file: name it
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataError(
            f"{path}: not a UnifiedQA TSV ({type(e).__name__}: {first}). Each line must be "
            "'<question> \\n <summary>' TAB '<answer>'."
        ) from None
    if df.shape[1] != 2:
        raise DataError(
            f"{path}: {df.shape[1]} tab-separated columns; each line must hold the input and "
            "one answer ('<question> \\n <summary>' TAB '<answer>')."
        )
    return list(zip(df[0].tolist(), df[1].tolist()))


def group_answers(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(input, its answers) in order of first appearance, as RL4LMs groups the lines."""
    grouped: dict[str, list[str]] = {}
    for prompt, answer in pairs:
        grouped.setdefault(prompt, []).append(answer)
    return list(grouped.items())


def download(url: str, cache: Path) -> Path:
    """The three TSVs from ``url`` into ``cache`` (once); any failure is one DataError."""
    import urllib.request

    cache.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        target = cache / name
        if target.is_file():
            continue
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{name}-")
            os.close(fd)
            urllib.request.urlretrieve(f"{url.rstrip('/')}/{name}", tmp)
            os.replace(tmp, target)
        except Exception as e:  # noqa: BLE001 - any download failure ends in the same advice
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise DataError(
                f"task.source=hub: could not download {url.rstrip('/')}/{name} "
                f"({type(e).__name__}). Without a network, point rft at a local copy: "
                f"RFT_DATA_DIR=<folder holding {FOLDER}/> or task.data_dir=<the {FOLDER} folder>, "
                f"holding UnifiedQA's {', '.join(FILES.values())}."
            ) from None
    return cache


class NarrativeQaTask(Task):
    name = "narrative_qa"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        super().__init__(cfg)
        folder, _ = data_folder(cfg, FOLDER, lambda p: (p / FILES["train"]).is_file())
        if folder is None:
            cache = cfg.cache_dir or Path.home() / ".cache" / "rft" / FOLDER
            folder = download(cfg.hub_url, Path(cache).expanduser())
        for split, name in FILES.items():
            if not (folder / name).is_file():
                raise DataError(
                    f"{folder}: no {name} (the {split} split). The folder must hold UnifiedQA's "
                    f"{', '.join(FILES.values())}."
                )
        self.train, self.val, self.test = (
            [self._example(p, a, folder / FILES[s], i) for i, (p, a) in enumerate(rows)]
            for s, rows in ((s, group_answers(read_tsv(folder / FILES[s]))) for s in FILES)
        )
        self.rows = [
            replace(e, reference=ref, meta={**e.meta, "reference_index": j})
            for e in self.train
            for j, ref in enumerate(e.references)
        ]
        self.check()

    @staticmethod
    def _example(prompt: str, answers: list[str], path: Path, i: int) -> Example:
        refs = [a.lower().strip() for a in answers]
        meta = {"file": str(path), "sample": i}
        return Example(prompt.lower(), reference=refs[0], references=refs, meta=meta)

    def sft_pairs(self) -> list[Example]:
        """One row per (question, answer), each carrying all the question's answers."""
        return self.rows

    def offline_examples(self) -> list[Example]:
        return self.rows
