"""task=gsm8k (rft/task/gsm8k.py) from a small fixture the test writes (made-up problems in the
release's format): gold numbers, SFT targets without calculator annotations, the val cut, the
hub path (mocked), math-verify as the check, and each bad file named with its line."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from rft.errors import ConfigError, DataError
from tests.task.verifiable_helpers import build

# made-up problems, GSM8K's layout: a worked solution with <<calculator>> notes, then #### N
PROBLEMS = [
    ("Ann has 3 bags of 4 apples. How many apples?", "3 * 4 = <<3*4=12>>12\n#### 12"),
    ("A pen costs $2. How much do 5 pens cost?", "5 * 2 = <<5*2=10>>10 dollars.\n#### 10"),
    (
        "Tom reads 1,200 pages a year for 2 years. Pages?",
        "1,200 * 2 = <<1200*2=2400>>2,400\n#### 2,400",
    ),
    ("A tank loses 3 liters from 10. What is left?", "10 - 3 = <<10-3=7>>7\n#### 7"),
    ("Half of 9 is?", "9 / 2 = <<9/2=4.5>>4.5\n#### 4.5"),
    ("Sam owes 5 and pays 8. Balance?", "5 - 8 = <<5-8=-3>>-3\n#### -3"),
]


def write_gsm8k(folder: Path, rows=PROBLEMS, test_rows=PROBLEMS[:2]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("train.jsonl", rows), ("test.jsonl", test_rows)):
        with open(folder / name, "w") as f:
            for q, a in data:
                f.write(json.dumps({"question": q, "answer": a}) + "\n")
    return folder


@pytest.fixture
def data(tmp_path) -> Path:
    return write_gsm8k(tmp_path / "gsm8k")


def gsm(data: Path, *overrides: str):
    return build("gsm8k", f"task.data_dir={data.parent}", "task.n_val=2", *overrides)


def test_local_files_give_gold_numbers_references_and_splits(data):
    t = gsm(data)
    assert (len(t.train), len(t.val), len(t.test)) == (4, 2, 2)
    by_q = {e.meta["question"]: e for e in t.train + t.val}
    e = by_q["Tom reads 1,200 pages a year for 2 years. Pages?"]
    assert e.references == ["2400"]  # commas dropped
    assert e.reference == "1,200 * 2 = 2,400\n#### 2400"  # no <<…>>, the #### line rewritten
    assert e.prompt.startswith("Tom reads") and "####" in t.instruction
    assert by_q["Half of 9 is?"].references == ["4.5"]
    assert by_q["Sam owes 5 and pays 8. Balance?"].references == ["-3"]
    assert [x.meta["question"] for x in t.test] == [q for q, _ in PROBLEMS[:2]]


def test_the_val_cut_is_seeded(tmp_path):
    rows = [
        (f"What is {i} plus {i}?", f"{i} + {i} = <<{i}+{i}={2 * i}>>{2 * i}\n#### {2 * i}")
        for i in range(20)
    ]
    data = write_gsm8k(tmp_path / "gsm8k", rows)
    a, b = gsm(data, "task.n_val=5"), gsm(data, "task.n_val=5")
    assert [e.prompt for e in a.val] == [e.prompt for e in b.val]
    c = gsm(data, "task.n_val=5", "task.split_seed=7")
    assert {e.prompt for e in a.val} != {e.prompt for e in c.val}
    assert len(gsm(data, "task.n_val=5", "task.n_train=3").train) == 3


def test_tag_format_and_math_verify_check(data):
    t = gsm(data, "task.answer_format=tag")
    e = t.train[0]
    assert e.reference.endswith(f"<answer>{e.references[0]}</answer>")
    check = t.verifier()
    assert check.name == "math_verify" and check.format == "tag"
    refs = [x.reward_references for x in t.train]
    v = check.verdicts(None, [x.reference for x in t.train], refs)
    assert all(x.correct for x in v)
    wrong = check.verdicts(None, ["<answer>100000</answer>"] * len(refs), refs)
    assert not any(x.correct for x in wrong)


def test_the_hub_path_loads_openai_gsm8k_main(monkeypatch):
    calls = []
    rows = [{"question": q, "answer": a} for q, a in PROBLEMS]

    def load_dataset(hub_id, name=None):
        calls.append((hub_id, name))
        return {"train": rows, "test": rows[:3]}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    t = build("gsm8k", "task.source=hub", "task.n_val=2", "task.data_dir=null")
    assert calls == [("openai/gsm8k", "main")]
    assert (len(t.train), len(t.test)) == (4, 3)


def test_no_hub_without_a_network_points_at_a_local_copy(monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(DataError, match="could not load the dataset 'openai/gsm8k'.*local copy"):
        build("gsm8k", "task.source=hub")


@pytest.mark.parametrize(
    "row,message",
    [
        ({"question": "q"}, r"train.jsonl:3: no 'answer' text"),
        (
            {"question": "q", "answer": "it is 5"},
            r"train.jsonl:3: the answer does not end in a '#### <number>' line",
        ),
        ({"question": "", "answer": "#### 5"}, r"train.jsonl:3: no 'question' text"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    folder = write_gsm8k(tmp_path / "gsm8k", PROBLEMS[:2])
    with open(folder / "train.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message):
        gsm(folder)


def test_missing_files_and_bad_sizes(tmp_path, data):
    with pytest.raises(DataError, match="no GSM8K files there.*train.jsonl and test.jsonl"):
        build("gsm8k", f"task.data_dir={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match=r"task.n_val=6: must be ≥ 1 and leave train problems"):
        gsm(data, "task.n_val=6")
