"""task=commongen (rft.task.commongen): the GRUE prompt, the concept order of the official
formatter, grouped references, SFT / offline rows, the hub's splits, and clear errors for bad
files. Parsed from tests/task/fixtures/commongen (made-up sets in the release's layout); the
real files are checked too when $RFT_DATA_DIR or ../shared/data holds them."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import types
from pathlib import Path

import pytest

from rft.errors import DataError, instantiate
from tests.conftest import REPO, compose_cfg
from tests.learning.commongen import FIXTURE

TRAIN_TXT = FIXTURE / "commongen"


def task(*overrides: str):
    return instantiate(compose_cfg("task=commongen", *overrides).task, _convert_="none")


def local(folder: Path = FIXTURE, *overrides: str):
    return task(f"task.data_dir={folder}", *overrides)


def real_data_dir() -> Path | None:
    for cand in (os.environ.get("RFT_DATA_DIR"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "commongen" / "commongen.dev.jsonl").is_file():
            return Path(cand)
    return None


@pytest.fixture
def copy(tmp_path) -> Path:
    """A writable copy of the fixture, to break."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "commongen"))


# ------------------------------------------------------------------------------ parsing
def test_splits_prompts_and_grouped_references():
    t = local(FIXTURE, "task.test_split=test")
    assert (len(t.train), len(t.val), len(t.test)) == (4, 3, 2)
    e = t.train[2]
    # concepts in the formatter's shuffled order (src_alpha.txt), tags dropped, GRUE format
    assert e.prompt == "generate a sentence with: lake row boat."
    assert e.meta["concepts"] == ["lake", "row", "boat"]
    assert e.meta["concept_set"] == "boat_N#lake_N#row_V"
    assert e.references == [
        "Two friends row a boat on the calm lake.",
        "The old man rows his boat across the lake.",
        "We rowed the boat to the middle of the lake.",
    ]
    assert e.reference == e.references[0] and e.reward_references == e.references
    assert e.meta["file"].endswith("commongen.train.tgt.txt") and e.meta["line"] == 4
    v = t.val[2]
    assert v.prompt == "generate a sentence with: hill ride bike."
    assert v.references[1] == "He rode the bike up a steep hill."
    assert (v.meta["file"].endswith("commongen.dev.jsonl"), v.meta["line"]) == (True, 3)
    assert t.test[1].meta["concepts"] == ["water", "car", "wash", "road"]
    assert (t.prompt_max_tokens, t.prompt_truncation) == (20, "right")
    # by default the final evaluation scores the dev set, where GRUE reports
    assert local().test == local().val and len(local().test) == 3
    assert (t.max_new_tokens, t.min_new_tokens) == (20, 5)


def test_shuffled_order_is_the_formatters_src_alpha():
    """The train prompts' concepts are line for line those of src_alpha.txt (which the
    formatter's seeded shuffle wrote); sorted is alphabetical; the prefix and suffix are knobs."""
    t = local()
    index = (TRAIN_TXT / "commongen.train.index.txt").read_text().split("\n")
    src = (TRAIN_TXT / "commongen.train.src_alpha.txt").read_text().split("\n")
    first = dict(reversed(list(zip(index, src))))
    assert [" ".join(e.meta["concepts"]) for e in t.train] == [first[str(i)] for i in range(4)]
    s = local(
        FIXTURE, "task.concept_order=sorted", "task.prompt_prefix=Words: ", "task.prompt_suffix="
    )
    assert [e.prompt for e in s.val] == [
        "Words: guitar play stage",
        "Words: cook kitchen soup",
        "Words: bike hill ride",
    ]


def test_the_folder_or_its_parent_and_the_environment(monkeypatch):
    assert [e.prompt for e in local(FIXTURE.parent).test] == [e.prompt for e in local().test]
    monkeypatch.setenv("RFT_DATA_DIR", str(FIXTURE.parent))
    assert len(task().train) == 4  # conf/task/commongen.yaml reads $RFT_DATA_DIR


def test_sft_and_offline_rows():
    t = local()
    rows = t.sft_pairs()
    assert [e.reference for e in rows] == (TRAIN_TXT / "commongen.train.tgt.txt").read_text().split(
        "\n"
    )
    assert all(e.references == t.train[0].references for e in rows[:2])
    assert rows[3].prompt == t.train[2].prompt and rows[3].meta["concepts"] == [
        "lake",
        "row",
        "boat",
    ]
    assert t.offline_examples() == rows
    # leave-one-out: each row scored against the OTHER references; single-reference sets dropped
    loo = local(FIXTURE, "task.pair_references=others").offline_examples()
    assert [(e.reference, e.reward_references) for e in loo[:3]] == [
        ("A boy kicks a ball across the yard.", ["She kicked the red ball into the yard."]),
        ("She kicked the red ball into the yard.", ["A boy kicks a ball across the yard."]),
        (
            "Two friends row a boat on the calm lake.",
            [
                "The old man rows his boat across the lake.",
                "We rowed the boat to the middle of the lake.",
            ],
        ),
    ]
    assert len(loo) == 5
    one = local(FIXTURE, "task.pairs_per_reference=false")
    assert [e.reference for e in one.sft_pairs()] == [e.reference for e in one.train]


@pytest.mark.skipif(real_data_dir() is None, reason="the real CommonGen files are not here")
def test_real_files_sizes_and_formatter_order():
    """docs/algorithms.md §12's counts, and every split's shuffled order equals the release's
    src_alpha.txt (the formatter's output) for its sets."""
    root = real_data_dir() / "commongen"
    t = local(root, "task.test_split=test")
    assert (len(t.train), len(t.val), len(t.test), len(t.sft_pairs())) == (27069, 993, 1497, 39069)
    for split, name in (("train", "train"), ("val", "dev"), ("test", "test")):
        folder = root / "commongen"
        index = (folder / f"commongen.{name}.index.txt").read_text().split("\n")
        src = (folder / f"commongen.{name}.src_alpha.txt").read_text().split("\n")
        first = dict(reversed(list(zip(index, src))))
        got = [" ".join(e.meta["concepts"]) for e in t.split(split)]
        assert got == [first[str(i)] for i in range(len(got))], split
    assert (
        max(len(e.references) for e in t.test) == 8 and min(len(e.references) for e in t.val) >= 2
    )


# ------------------------------------------------------------------------------ the hub
def hub_rows():
    sets = {
        "train": [
            (
                ["ski", "skier", "mountain"],
                ["A skier skis down the mountain.", "Skiers on a mountain."],
            )
        ],
        "validation": [(["eat_V", "apple_N"], ["I eat an apple."])],
        "test": [(["sing", "song"], [""])],  # the hub hides the test references
    }
    return {
        split: [
            {"concept_set_idx": i, "concepts": c, "target": r}
            for i, (c, refs) in enumerate(rows)
            for r in refs
        ]
        for split, rows in sets.items()
    }


def test_hub_splits_test_is_validation(monkeypatch, caplog):
    """source=hub groups the hub's rows by concept set, keeps its (shuffled) concept order, and
    takes test = validation because the hub's test split has no references."""
    calls = []

    def load_dataset(hub_id):
        calls.append(hub_id)
        return hub_rows()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with caplog.at_level(logging.WARNING):
        t = task("task.source=hub")
    assert calls == ["common_gen"]
    assert t.train[0].prompt == "generate a sentence with: ski skier mountain."
    assert t.train[0].references == ["A skier skis down the mountain.", "Skiers on a mountain."]
    assert (
        [e.prompt for e in t.test]
        == [e.prompt for e in t.val]
        == ["generate a sentence with: eat apple."]
    )
    assert "test split has no references" in caplog.text
    assert task("task.source=hub", "task.concept_order=sorted").train[0].meta["concepts"] == [
        "mountain",
        "ski",
        "skier",
    ]


def test_hub_unreachable_names_the_local_fix(monkeypatch):
    def load_dataset(hub_id):
        raise ConnectionError("offline")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(DataError, match=r"could not load the dataset 'common_gen'.*RFT_DATA_DIR"):
        task("task.source=hub")


# ------------------------------------------------------------------------------ bad input
def rewrite_jsonl(path: Path, line: int, **changes) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[line - 1].update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del rows[line - 1][k]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_missing_folder_names_it_and_the_fix(tmp_path):
    with pytest.raises(
        DataError,
        match=r"task.data_dir='.*nowhere'.*no CommonGen files.*RFT_DATA_DIR or task.data_dir",
    ):
        local(tmp_path / "nowhere")


def test_missing_train_files_name_the_folder(copy):
    shutil.rmtree(copy / "commongen")
    with pytest.raises(
        DataError, match=rf"{copy}.*no train files.*commongen.train.{{index,cs_str,tgt}}.txt"
    ):
        local(copy)


def test_concept_set_without_references_names_file_and_line(copy):
    rewrite_jsonl(copy / "commongen.dev.jsonl", 2, scene=[])
    with pytest.raises(
        DataError,
        match=r"commongen.dev.jsonl:2: the concept set 'cook_V#kitchen_N#soup_N' has no references in 'scene'",
    ):
        local(copy)


def test_missing_references_key_names_the_key_and_knob(copy):
    with pytest.raises(
        DataError,
        match=r"commongen.dev.jsonl:1: no 'sentences' field \(fields: \['concept_set', 'reason', 'scene'\]\).*task.references_key",
    ):
        local(copy, "task.references_key=sentences")
    rewrite_jsonl(copy / "commongen.test.jsonl", 2, concept_set=None)
    with pytest.raises(
        DataError, match=r"commongen.test.jsonl:2: no 'concept_set' field.*task.concepts_key"
    ):
        local(copy)


def test_bad_json_line_is_named(copy):
    path = copy / "commongen.test.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(DataError, match=r"commongen.test.jsonl:3: not valid JSON"):
        local(copy)


def test_train_files_that_disagree(copy):
    tgt = copy / "commongen" / "commongen.train.tgt.txt"
    lines = tgt.read_text().split("\n")
    tgt.write_text("\n".join(lines[:-1]))
    with pytest.raises(DataError, match=r"different line counts.*commongen.train.tgt.txt': 6"):
        local(copy)
    tgt.write_text("\n".join(lines[:4] + ["  "] + lines[5:]))
    with pytest.raises(
        DataError,
        match=r"commongen.train.tgt.txt:5: empty reference for the concept set 'boat_N#lake_N#row_V'",
    ):
        local(copy)
    tgt.write_text("\n".join(lines))
    index = copy / "commongen" / "commongen.train.index.txt"
    index.write_text("0\n0\n1\n2\n2\n2\n0")  # set 0 again after others
    with pytest.raises(
        DataError, match=r"commongen.train.index.txt:7: concept set 0 appears again"
    ):
        local(copy)
