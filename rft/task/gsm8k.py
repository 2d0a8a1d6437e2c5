"""GSM8K grade-school maths (Cobbe et al. 2021): ``task=gsm8k`` (docs/verifiable-and-remote.md
§A3), answers checked with math-verify (``reward=math_verify``; the task's check).

Data. Local (``source=local``, or ``auto`` with a data folder): ``train.jsonl`` and
``test.jsonl`` (``.gz`` too) in ``task.data_dir`` or its ``gsm8k/`` subfolder (RFT_DATA_DIR),
one problem per line as the release writes them: ``question``, and ``answer`` = the worked
solution with calculator annotations ``<<48/2=24>>`` and a last line ``#### <number>``. Hub
(``source=hub``, or ``auto`` without a folder; needs a network): ``openai/gsm8k``, config
``main``, its train / test splits. GSM8K is not among rft's offline data.

- gold = the number after ``####``, commas removed (the reference extraction's
  ``#### (-?[0-9.,]+)``); a solution without that line is a DataError naming file and line;
- reference (SFT target) = the solution without its calculator annotations, its ``####`` line
  replaced by the answer in ``answer_format`` (default ``hash``: GSM8K's own line);
- train / val: the train file shuffled with ``split_seed``, the first ``n_val`` problems cut
  for val, at most ``n_train`` of the rest kept (-1: all); test: the test file in order
  (evaluation takes the first ``n_test_prompts``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from rft.config import choice
from rft.errors import ConfigError, DataError
from rft.reward import answers
from rft.reward.verify import Gold
from rft.task.base import Example, load_hub_dataset, read_jsonl_objects
from rft.task.verifiable import VerifiableTask

_ANSWER = re.compile(r"####\s*(-?[0-9.,]+)\s*$")
_CALC = re.compile(r"<<[^>]*>>")


def find_gsm8k_dir(data_dir: str | None) -> Path | None:
    """The folder holding train.jsonl and test.jsonl (or .gz): ``data_dir`` or its gsm8k/."""
    if not data_dir:
        return None
    for c in (Path(data_dir), Path(data_dir) / "gsm8k"):
        c = c.expanduser()
        if _split_file(c, "train") and _split_file(c, "test"):
            return c
    return None


def _split_file(folder: Path, split: str) -> Path | None:
    for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def parse_solution(solution: str) -> tuple[str, str] | None:
    """(worked solution without annotations and without the #### line, gold number) or None
    when the last line is not ``#### <number>``.

    >>> parse_solution("She pays 2*3=<<2*3=6>>6 dollars.\\n#### 1,006")
    ('She pays 2*3=6 dollars.', '1006')
    """
    text = solution.rstrip()
    m = _ANSWER.search(text)
    if not m:
        return None
    gold = m.group(1).replace(",", "")
    if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", gold):
        return None
    body = _CALC.sub("", text[: m.start()]).rstrip()
    return body, gold


def examples_from_rows(rows, where: str, task: Gsm8kTask) -> list[Example]:
    out = []
    for line, row in rows:
        for key in ("question", "answer"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError(
                    f"{where}:{line}: no {key!r} text (fields: {sorted(row)}). Each line needs "
                    "`question` and `answer` (a worked solution ending in '#### <number>')."
                )
        parsed = parse_solution(row["answer"])
        if parsed is None:
            raise DataError(
                f"{where}:{line}: the answer does not end in a '#### <number>' line "
                f"(…{row['answer'][-60:]!r}). GSM8K solutions end with the final number after "
                "####; fix or drop the row."
            )
        out.append(task.example(row["question"].strip(), *parsed, meta={"line": line}))
    if not out:
        raise DataError(f"{where}: no problems (the file is empty).")
    return out


class Gsm8kTask(VerifiableTask):
    name = "gsm8k"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        self.answer_format = choice(cfg.answer_format)
        self.default_instruction = answers.INSTRUCTIONS[self.answer_format]
        super().__init__(cfg)
        source = choice(cfg.source)
        data_dir = cfg.data_dir or os.environ.get("RFT_DATA_DIR")
        if source == "local" or (source == "auto" and data_dir):
            folder = find_gsm8k_dir(data_dir)
            if folder is None:
                raise DataError(
                    f"task.data_dir={data_dir!r}: no GSM8K files there (expected train.jsonl and "
                    "test.jsonl, or .jsonl.gz, in it or in its gsm8k/ subfolder). Set "
                    "task.data_dir to that folder, or task.source=hub with a network."
                    if data_dir
                    else "task.source=local but no data folder is set: set RFT_DATA_DIR or "
                    "task.data_dir."
                )
            train_file, test_file = _split_file(folder, "train"), _split_file(folder, "test")
            train = examples_from_rows(read_jsonl_objects(train_file), str(train_file), self)
            test = examples_from_rows(read_jsonl_objects(test_file), str(test_file), self)
        elif source in ("hub", "auto"):
            ds = load_hub_dataset(cfg.hub_id, "gsm8k", cfg.hub_name)
            train, test = (
                examples_from_rows(enumerate(ds[s], 1), f"hub:{cfg.hub_id}/{s}", self)
                for s in ("train", "test")
            )
        else:  # pragma: no cover - the schema's enum rejects other values
            raise ConfigError(f"task.source={source!r}: choose auto, local or hub.")
        if not 1 <= cfg.n_val < len(train):
            raise ConfigError(
                f"task.n_val={cfg.n_val}: must be ≥ 1 and leave train problems (the train file "
                f"has {len(train)})."
            )
        perm = np.random.default_rng(cfg.split_seed).permutation(len(train))
        shuffled = [train[i] for i in perm]
        self.val = shuffled[: cfg.n_val]
        rest = shuffled[cfg.n_val :]
        self.train = rest if cfg.n_train < 0 else rest[: cfg.n_train]
        self.test = test
        self.check()

    def example(self, question: str, body: str, gold: str, meta: dict) -> Example:
        final = answers.render(gold, self.answer_format)
        return Example(
            prompt=self.make_prompt(question),
            reference=f"{body}\n{final}" if body else final,
            meta={**meta, "question": question},
            references=[Gold(gold)],
        )

    def build_verifier(self):
        from rft.reward.verify import MathVerifyReward

        return MathVerifyReward(format=self.answer_format)
