"""CommonGen (Lin et al., "CommonGen: A Constrained Text Generation Challenge for Generative
Commonsense Reasoning", Findings of EMNLP 2020) as GRUE runs it (docs/algorithms.md §12).

Given 3-5 concepts, write one everyday sentence that uses them all.

- prompt = ``prompt_prefix`` + the concepts joined by a space + ``prompt_suffix``, i.e.
  "generate a sentence with: dog frisbee catch." (GRUE / RL4LMs); the concepts lose their
  part-of-speech tags (``catch_V`` -> ``catch``); ``meta["concepts"]`` = the words in prompt
  order, ``meta["concept_set"]`` = the tagged string;
- concept order (``concept_order``): ``shuffled`` (default) = the order of the official
  formatter's ``commongen.*.src_alpha.txt``: one ``random.shuffle`` per concept set from
  ``random.seed(42)``, drawn over the train, dev and test files in that order, which this module
  reproduces exactly from the tagged sets (tests/task/test_commongen.py checks it against the
  real files when they are present). The hub builder of ``common_gen`` shuffles its own copy by
  the same procedure, and RL4LMs joins those ``concepts`` in the hub's order, so a policy sees
  a shuffled order as in GRUE (not the same permutations: the hub holds another version of the
  data). ``sorted`` = alphabetical (the tagged concept_set string's order);
- RL prompts and evaluation (``train`` / ``val`` / ``test``): ONE Example per concept set,
  ``references`` = all its references (what metrics and metric rewards score against, as the
  RLGF code groups them), ``reference`` = the first one;
- SFT and offline rows (``sft_pairs`` / ``offline_examples``): one per (concept set, reference),
  as RL4LMs trains (``pairs_per_reference``; false: one per concept set, its first reference).
  An offline row's reward is computed against its set's references (``pair_references``:
  ``all``, itself included, or ``others``, leave-one-out, dropping the rows of the 17,409 of
  27,069 train sets that have one reference). With ``all``, a reward that takes the max over
  references (METEOR) gives every row 1; rewards that average over references (CIDEr-D) or use
  none (coverage) still separate the rows;
- lengths: prompts ≤ 20 tokens, cut on the RIGHT (``prompt_truncation``; no prompt of the
  real data reaches 20 tokens with the SmolLM2 or GPT-2 tokenizer); 5-20 new tokens.

Splits. Local data (``task.data_dir`` or $RFT_DATA_DIR: the commongen folder or its parent):
train = ``commongen/commongen.train.{index,cs_str,tgt}.txt`` (one line per (concept set,
reference); 27,069 sets, 39,069 lines), val = ``commongen.dev.jsonl`` (993 sets: the dev set on
which GRUE reports, the official test references being hidden), test = ``commongen.test.jsonl``
(1,497 sets; this copy carries their references). The final evaluation scores the dev set by
default, as GRUE reports (``test_split=dev``: test = val = dev); ``test_split=test`` scores the
release's test split instead. The hub
dataset (``source=hub``) has train / validation / test, but its test split has no references
(empty targets): there val = test = its validation split, with a warning.

Every problem with a file is a DataError naming the file (and line) and the fix.
"""

from __future__ import annotations

import logging
import os
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from rft.config import choice
from rft.errors import ConfigError, DataError
from rft.task.base import Example, Task, load_hub_dataset, read_jsonl_objects, reading

log = logging.getLogger(__name__)

FORMATTER_SEED = 42  # random.seed of the official formatter (dataset/final_data/formatter.py)
SPLIT_FILES = {"val": "commongen.dev.jsonl", "test": "commongen.test.jsonl"}
TRAIN_FILES = ("index", "cs_str", "tgt")  # commongen/commongen.train.<name>.txt
_TAG = re.compile(r"_[A-Z]+$")  # a part-of-speech suffix: _N, _V


@dataclass
class ConceptSet:
    """One concept set: its words in the data's order (tags stripped), the tagged string, its
    references, and where it was read (file, 1-based line of its first row)."""

    concepts: list[str]
    tagged: str
    references: list[str]
    file: str
    line: int


def strip_tag(concept: str) -> str:
    """``"catch_V"`` -> ``"catch"``; a concept without a tag is kept as it is."""
    return _TAG.sub("", concept)


def formatter_order(
    splits: list[list[ConceptSet]], seed: int = FORMATTER_SEED
) -> list[list[list[str]]]:
    """The concept order of the official formatter's ``src_alpha.txt``: one ``random.shuffle``
    of each set's concepts from a single ``random.Random(seed)`` stream, over the splits in the
    order given (the formatter's: train, dev, test). A shuffle's permutation depends only on
    the set's size and the stream, so the order follows from the tagged sets alone."""
    rng = random.Random(seed)
    out = []
    for sets in splits:
        orders = []
        for cs in sets:
            words = list(cs.concepts)
            rng.shuffle(words)
            orders.append(words)
        out.append(orders)
    return out


# ----------------------------------------------------------------------------------- local files
def find_commongen_dir(data_dir: str | None) -> Path | None:
    """Accept the commongen folder itself or a parent holding ``commongen/``."""
    if not data_dir:
        return None
    for c in (Path(data_dir), Path(data_dir) / "commongen"):
        c = c.expanduser()
        if all((c / name).is_file() for name in SPLIT_FILES.values()):
            return c
    return None


def _train_folder(folder: Path) -> Path | None:
    for c in (folder / "commongen", folder):
        if all((c / f"commongen.train.{n}.txt").is_file() for n in TRAIN_FILES):
            return c
    return None


def _lines(path: Path) -> list[str]:
    """The lines of a text file; the formatter writes no newline after the last one. Split on
    ``\\n`` only (str.splitlines would also split on the rare separators inside a sentence and
    misalign the parallel files)."""
    with reading(path):
        text = path.read_text(encoding="utf-8")
    lines = [x.rstrip("\r") for x in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


def read_train_txt(folder: Path) -> list[ConceptSet]:
    """Concept sets from the formatter's parallel train files: line i of ``index`` (the set's
    number), ``cs_str`` (its tagged concepts) and ``tgt`` (one reference) is one (set,
    reference) row; a set's rows are consecutive."""
    paths = {n: folder / f"commongen.train.{n}.txt" for n in TRAIN_FILES}
    cols = {n: _lines(p) for n, p in paths.items()}
    counts = {str(paths[n]): len(c) for n, c in cols.items()}
    if len(set(counts.values())) != 1:
        raise DataError(
            f"the CommonGen train files have different line counts ({counts}): each line of "
            "index, cs_str and tgt describes the same (concept set, reference) row. Copy the "
            "files again from the same release."
        )
    sets: list[ConceptSet] = []
    seen: set[str] = set()
    current = None  # the index of the set being read
    tgt = str(paths["tgt"])
    for i, (idx, tagged, ref) in enumerate(zip(cols["index"], cols["cs_str"], cols["tgt"]), 1):
        ref = ref.strip()
        if not ref:
            raise DataError(
                f"{tgt}:{i}: empty reference for the concept set {tagged!r}. Every line must "
                "hold one reference sentence; drop the row from all the train files."
            )
        if not tagged.strip():
            raise DataError(f"{paths['cs_str']}:{i}: empty concept set. Fill or drop the row.")
        if idx == current:
            if tagged != sets[-1].tagged:
                raise DataError(
                    f"{paths['cs_str']}:{i}: concept set {tagged!r}, but earlier rows of set "
                    f"{idx} say {sets[-1].tagged!r}. The index and cs_str files disagree."
                )
            sets[-1].references.append(ref)
            continue
        if idx in seen:
            raise DataError(
                f"{paths['index']}:{i}: concept set {idx} appears again after other sets; a "
                "set's rows must be consecutive (as the formatter writes them)."
            )
        seen.add(idx)
        current = idx
        concepts = [strip_tag(c) for c in tagged.split("#")]
        sets.append(ConceptSet(concepts, tagged, [ref], tgt, i))
    if not sets:
        raise DataError(f"{tgt}: no rows (the file is empty).")
    return sets


def read_jsonl_sets(path: Path, concepts_key: str, references_key: str) -> list[ConceptSet]:
    """Concept sets from a release JSONL file: one row per set, ``concepts_key`` a
    '#'-joined tagged string and ``references_key`` a list of reference sentences."""
    sets = []
    for i, row in read_jsonl_objects(path):
        for key, knob in ((concepts_key, "concepts_key"), (references_key, "references_key")):
            if key not in row:
                raise DataError(
                    f"{path}:{i}: no {key!r} field (fields: {sorted(row)}). Name the field "
                    f"with task.{knob}=<field>."
                )
        tagged, refs = row[concepts_key], row[references_key]
        if not isinstance(tagged, str) or not tagged.strip():
            raise DataError(
                f"{path}:{i}: {concepts_key!r} must be a '#'-joined string of concepts, "
                f"got {tagged!r}."
            )
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise DataError(
                f"{path}:{i}: {references_key!r} must be a list of reference sentences, "
                f"got {type(refs).__name__}."
            )
        refs = [r.strip() for r in refs]
        if not refs or not all(refs):
            raise DataError(
                f"{path}:{i}: the concept set {tagged!r} has "
                f"{'no references' if not refs else 'an empty reference'} in "
                f"{references_key!r}. Every set needs at least one reference sentence: fill "
                "it or drop the row."
            )
        concepts = [strip_tag(c) for c in tagged.split("#")]
        sets.append(ConceptSet(concepts, tagged, refs, str(path), i))
    if not sets:
        raise DataError(f"{path}: no concept sets (the file is empty).")
    return sets


def load_local(folder: Path, concepts_key: str, references_key: str) -> dict[str, list[ConceptSet]]:
    train_dir = _train_folder(folder)
    if train_dir is None:
        raise DataError(
            f"task.data_dir: {folder} has the dev/test JSONL files but no train files "
            f"(expected commongen.train.{{{','.join(TRAIN_FILES)}}}.txt in {folder / 'commongen'}"
            " or in the folder itself). Copy the release's commongen/ subfolder next to them."
        )
    return {
        "train": read_train_txt(train_dir),
        "val": read_jsonl_sets(folder / SPLIT_FILES["val"], concepts_key, references_key),
        "test": read_jsonl_sets(folder / SPLIT_FILES["test"], concepts_key, references_key),
    }


# -------------------------------------------------------------------------------------- the hub
def hub_sets(rows, split: str) -> list[ConceptSet]:
    """Concept sets from the hub's rows (``concept_set_idx``, ``concepts``, ``target``), one row
    per (set, reference); the hub's concepts are already in its builder's shuffled order."""
    sets: list[ConceptSet] = []
    last = None
    for i, row in enumerate(rows):
        idx = row["concept_set_idx"]
        target = (row.get("target") or "").strip()
        if idx != last:
            concepts = [strip_tag(c) for c in row["concepts"]]
            sets.append(ConceptSet(concepts, "#".join(row["concepts"]), [], f"hub:{split}", i))
            last = idx
        if target:
            sets[-1].references.append(target)
    return sets


def load_hub(hub_id: str) -> dict[str, list[ConceptSet]]:
    ds = load_hub_dataset(hub_id, "commongen")
    return hub_splits({name: list(ds[name]) for name in ds})


def hub_splits(ds: dict[str, list[dict]]) -> dict[str, list[ConceptSet]]:
    """train / val / test from the hub's train / validation / test. The hub's test targets are
    empty (the official references are hidden): test = validation, the set GRUE reports on."""
    train, val = hub_sets(ds["train"], "train"), hub_sets(ds["validation"], "validation")
    test = hub_sets(ds.get("test", []), "test")
    if not any(s.references for s in test):
        log.warning(
            "CommonGen from the hub: its test split has no references; task.test = the "
            "validation split (%d concept sets), on which GRUE reports.",
            len(val),
        )
        test = val
    for name, sets in (("train", train), ("validation", val)):
        empty = [s.tagged for s in sets if not s.references]
        if empty:
            raise DataError(
                f"hub dataset split {name!r}: {len(empty)} concept sets have no reference "
                f"(first: {empty[0]!r}). Use a local copy (task.data_dir)."
            )
    return {"train": train, "val": val, "test": test}


# ------------------------------------------------------------------------------------------ task
class CommongenTask(Task):
    name = "commongen"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        super().__init__(cfg)
        source = choice(cfg.source)
        data_dir = cfg.data_dir or os.environ.get("RFT_DATA_DIR")
        if source == "local" or (source == "auto" and data_dir):
            folder = find_commongen_dir(data_dir)
            if folder is None:
                raise DataError(
                    f"task.data_dir={data_dir!r}: no CommonGen files there (expected "
                    f"{' and '.join(SPLIT_FILES.values())} with the train files in their "
                    "commongen/ subfolder, in the folder or in its commongen/ subfolder). Set "
                    "RFT_DATA_DIR or task.data_dir to the folder that holds them (e.g. "
                    "../shared/data)."
                    if data_dir
                    else "task.source=local but no data folder is set: set RFT_DATA_DIR or "
                    "task.data_dir."
                )
            sets = load_local(folder, cfg.concepts_key, cfg.references_key)
            hub = False
        elif source in ("hub", "auto"):
            sets, hub = load_hub(cfg.hub_id), True
        else:  # pragma: no cover - the schema's enum rejects other values
            raise ConfigError(f"task.source={source!r}: choose auto, local or hub.")

        order = choice(cfg.concept_order)
        names = ("train", "val", "test")
        if order == "sorted":
            orders = [[sorted(s.concepts) for s in sets[n]] for n in names]
        elif hub:  # the hub builder already shuffled them
            orders = [[list(s.concepts) for s in sets[n]] for n in names]
        else:
            orders = formatter_order([sets[n] for n in names])
        self.train, self.val, self.test = (
            [self._example(s, o) for s, o in zip(sets[n], orders[i])] for i, n in enumerate(names)
        )
        if choice(cfg.test_split) == "dev":
            self.test = self.val  # GRUE's numbers are dev numbers (task.test_split)
        per_set = None if cfg.pairs_per_reference else 1
        self.rows = [
            replace(e, reference=ref, meta={**e.meta, "reference_index": j})
            for e in self.train
            for j, ref in enumerate(e.references[:per_set])
        ]
        self.check()

    def _example(self, cs: ConceptSet, concepts: list[str]) -> Example:
        prompt = f"{self.cfg.prompt_prefix}{' '.join(concepts)}{self.cfg.prompt_suffix}"
        meta = {"concepts": concepts, "concept_set": cs.tagged, "file": cs.file, "line": cs.line}
        return Example(
            prompt, reference=cs.references[0], meta=meta, references=list(cs.references)
        )

    def sft_pairs(self) -> list[Example]:
        """One row per (concept set, reference) (``pairs_per_reference``), each carrying its
        set's references; else one per set with its first reference."""
        return self.rows

    def offline_examples(self) -> list[Example]:
        """The SFT rows; with ``pair_references=others`` each row's references are the OTHER
        references of its set, and rows of single-reference sets are left out."""
        if choice(self.cfg.pair_references) == "all":
            return self.rows
        out = []
        for e in self.rows:
            j = e.meta["reference_index"]
            others = e.references[:j] + e.references[j + 1 :]
            if others:
                out.append(replace(e, references=others))
        if not out:
            raise DataError(
                f"task.pair_references=others: none of the {len(self.train)} train concept "
                "sets has two references, so no offline row has a reference left to be scored "
                "against. Use task.pair_references=all."
            )
        return out
