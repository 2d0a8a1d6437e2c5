"""Procedural reasoning problems from the ``reasoning-gym`` package (no download; its
generators are code): ``task=reasoning_gym`` (docs/verifiable-and-remote.md §A1).

``task.generators`` lists one or more generators, each ``{name, weight, <knobs>}`` with the
generator's own difficulty knobs (its config dataclass fields, e.g. chain_sum's ``min_terms``
/ ``max_terms`` / ``min_digits`` / ``max_digits``). A list, so that an override replaces the
mixture (``task.generators.0.max_terms=4`` changes one knob); the same generator may appear
twice with two difficulties::

    task.generators='[{name:chain_sum,weight:2,max_terms:3},{name:leg_counting,max_animals:3}]'

Splits from disjoint seed ranges. reasoning-gym generates item i of a dataset seeded s with
``random.Random(s + i)``, so item i+1 of seed s IS item i of seed s+1 (§A1's pitfall: seeds 42
and 43 share 99 of 100 items). Item j of a split therefore uses seed ``start + j`` with
``start`` = ``seed`` for train, ``seed + n_train`` for val and ``seed + n_train + n_val`` for
test: no seed is used twice. Item j's generator is drawn by weight from a stream seeded with
(``seed``, split), so a mixture's splits are disjoint too (each generator's datasets are built
with the split's start seed and size). A small problem space (chain_sum with two one-digit
terms has 100 problems) repeats questions by chance even across disjoint seeds:
``drop_train_overlap`` removes val/test questions that also occur in train and logs how many.

Each example: ``prompt`` = the question and the answer instruction (rft/task/verifiable.py),
``references`` = ``[Gold(answer, entry)]`` (the generator's entry, which its scorer reads),
``reference`` = the SFT target, the generator's answer in the asked format, or with
``sft_target=cot`` its worked solution where it has one (gsm_symbolic's ``answer_cot``, whose
"#### N" line becomes the answer in the asked format). ``meta`` holds the generator, seed and
difficulty. The task's check (evaluation) is the generator's scorer with pass = score 1.0.
"""

from __future__ import annotations

import difflib
import logging
import re

import numpy as np

from rft.config import choice
from rft.errors import ConfigError, DataError
from rft.reward import answers
from rft.reward.verify import Gold
from rft.task.base import Example
from rft.task.verifiable import VerifiableTask

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def parse_generators(generators) -> list[tuple[str, float, dict, str]]:
    """[(name, weight, difficulty knobs, config key)] from ``task.generators`` (a list of
    ``{name, weight, <knobs>}``), checked against reasoning-gym's registry; every problem
    names its key (``task.generators.<i>...``)."""
    from reasoning_gym.factory import DATASETS

    gens = list(generators or [])
    if not gens:
        raise ConfigError(
            "task.generators is empty: name at least one reasoning-gym generator, e.g. "
            "task.generators=[{name:chain_sum}]."
        )
    out = []
    for i, spec in enumerate(gens):
        key = f"task.generators.{i}"
        if not isinstance(spec, dict) or not spec.get("name"):
            raise ConfigError(
                f"{key}={spec!r}: each entry is {{name: <generator>, weight: <w>, <its knobs>}}, "
                "e.g. {name:chain_sum,weight:1,max_terms:3}."
            )
        spec = dict(spec)
        name = str(spec.pop("name"))
        if name not in DATASETS:
            close = difflib.get_close_matches(name, list(DATASETS), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ConfigError(
                f"{key}.name={name!r}: reasoning-gym has no such generator.{hint} "
                f"(reasoning_gym.factory.DATASETS lists all {len(DATASETS)}.)"
            )
        weight = spec.pop("weight", 1.0)
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}.weight={weight!r}: must be a number > 0.") from None
        if not weight > 0:
            raise ConfigError(f"{key}.weight={weight}: must be > 0 (drop the entry instead).")
        for fixed in ("seed", "size"):
            if fixed in spec:
                raise ConfigError(
                    f"{key}.{fixed}: set by the task (seed ranges from task.seed, sizes from "
                    "task.n_train / n_val / n_test); remove it."
                )
        out.append((name, weight, spec, key))
    return out


def make_dataset(name: str, knobs: dict, seed: int, size: int, key: str):
    """reasoning_gym.create_dataset(name, seed, size, **knobs); a bad knob is a ConfigError
    naming ``<key>.<knob>``."""
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(name, seed=seed, size=size, **knobs)
    except TypeError as e:
        m = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if m:
            from reasoning_gym.factory import DATASETS

            fields = sorted(DATASETS[name][1].__dataclass_fields__)
            raise ConfigError(
                f"{key}.{m.group(1)}: not a setting of the {name} generator (its settings: "
                f"{[f for f in fields if f not in ('seed', 'size')]})."
            ) from None
        raise ConfigError(
            f"{key}: reasoning-gym refused the {name} settings {knobs}: {e}"
        ) from None
    except (AssertionError, ValueError) as e:
        raise ConfigError(
            f"{key}: reasoning-gym refused the {name} settings {knobs}: "
            f"{e or type(e).__name__}. Check the ranges (min ≤ max, positive sizes)."
        ) from None


def sft_target(entry: dict, fmt: str, mode: str) -> str:
    """The answer in format ``fmt``, after the worked solution when ``mode`` is cot and the
    generator gives one (its last ``#### N`` line replaced by the formatted answer).

    >>> e = {"answer": "5", "metadata": {"answer_cot": "2 + 3 = 5\\n#### 5"}}
    >>> sft_target(e, "tag", "cot"), sft_target(e, "tag", "answer")
    ('2 + 3 = 5\\n<answer>5</answer>', '<answer>5</answer>')
    """
    final = answers.render(str(entry["answer"]), fmt)
    cot = entry.get("metadata", {}).get("answer_cot") if mode == "cot" else None
    if not cot:
        return final
    body = re.sub(r"\n?####[^\n]*\s*$", "", cot.rstrip())
    return f"{body}\n{final}"


class ReasoningGymTask(VerifiableTask):
    name = "reasoning_gym"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        self.answer_format = choice(cfg.answer_format)
        self.default_instruction = answers.INSTRUCTIONS[self.answer_format]
        super().__init__(cfg)
        gens = parse_generators(OmegaConf.to_container(cfg.generators, resolve=True))
        sizes = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
        for split, n in sizes.items():
            if n < 1:
                raise ConfigError(f"task.n_{split}={n}: must be ≥ 1.")
        self.sft_mode = choice(cfg.sft_target)
        p = np.array([g[1] for g in gens])
        p = p / p.sum()
        start = int(cfg.seed)
        self.seed_ranges: dict[str, tuple[int, int]] = {}
        splits: dict[str, list[Example]] = {}
        for s_idx, split in enumerate(SPLITS):
            n = int(sizes[split])
            self.seed_ranges[split] = (start, start + n)
            pick = np.random.default_rng([int(cfg.seed), s_idx]).choice(len(gens), size=n, p=p)
            # one dataset per mixture entry, seeded with the split's start: item j is
            # reasoning-gym's Random(start + j) item of the entry item j was drawn for
            datasets = {
                gi: make_dataset(gens[gi][0], gens[gi][2], start, n, gens[gi][3])
                for gi in sorted(set(pick.tolist()))
            }
            splits[split] = [
                self._example(datasets[gi][j], gens[gi][0], start + j)
                for j, gi in enumerate(pick.tolist())
            ]
            start += n
        self.dropped = {"val": 0, "test": 0}
        if cfg.drop_train_overlap:
            seen = {e.meta["question"] for e in splits["train"]}
            for split in ("val", "test"):
                kept = [e for e in splits[split] if e.meta["question"] not in seen]
                self.dropped[split] = len(splits[split]) - len(kept)
                if not kept:
                    raise DataError(
                        f"task.generators {[g[0] for g in gens]}: every {split} question also occurs among the "
                        f"{len(splits['train'])} train questions: the problem space is too "
                        "small. Raise the difficulty knobs (more terms or digits) or lower "
                        "task.n_train, or set task.drop_train_overlap=false."
                    )
                splits[split] = kept
            if any(self.dropped.values()):
                log.info(
                    "task=reasoning_gym: dropped %d val and %d test questions that also occur "
                    "in train (task.drop_train_overlap)",
                    self.dropped["val"],
                    self.dropped["test"],
                )
        self.train, self.val, self.test = splits["train"], splits["val"], splits["test"]
        self.check()

    def _example(self, entry: dict, generator: str, seed: int) -> Example:
        entry = {
            "question": entry["question"],
            "answer": entry["answer"],
            "metadata": entry["metadata"],
        }
        meta = {
            "generator": generator,
            "seed": seed,
            "question": entry["question"],
            "difficulty": entry["metadata"].get("difficulty"),
        }
        return Example(
            prompt=self.make_prompt(entry["question"]),
            reference=sft_target(entry, self.answer_format, self.sft_mode),
            meta=meta,
            references=[Gold(str(entry["answer"]), entry)],
        )

    def build_verifier(self):
        from rft.reward.verify import ReasoningGymReward

        return ReasoningGymReward(format=self.answer_format, binary=True)
