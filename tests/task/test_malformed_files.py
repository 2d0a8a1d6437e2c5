"""Malformed data files of every task: a clean DataError / ConfigError naming the file, or a task
whose examples are usable, never another exception (property-based, hypothesis).

Each example starts from a valid file in the task's real layout (a JSONL or CSV prompt file, the
IMDB folder of two .jsonl.gz files, the CommonGen fixture) and breaks it: a row's field removed
or given another type, a garbage or non-UTF-8 line, a truncated or corrupted gzip stream, a
train file with a line less, the file cut at a random byte. The task is built as train() builds
it (rft.errors.instantiate of the composed task config), so what a user sees is what is tested.

Examples: a fixed seed and a small count in CI; ``HYPOTHESIS_PROFILE=thorough`` for many more.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rft.errors import ConfigError, DataError, instantiate
from rft.task.base import Task
from tests.conftest import compose_cfg

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
SETTINGS = settings(
    max_examples=400 if THOROUGH else 30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "commongen"

# values a field may wrongly hold
ODD = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.just(""),
    st.just("   "),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.text(max_size=20),
)
GARBAGE = st.one_of(
    st.binary(min_size=1, max_size=12),  # often not UTF-8
    st.just(b"[1, 2]"),
    st.just(b"42"),
    st.just(b'{"prompt": "unclosed'),
    st.just(b"\x00\x00"),
    st.just(b'"a string"'),
)


@st.composite
def edits(draw, n_rows: int, fields: list[str]):
    """A list of edits: ('drop', row, field), ('set', row, field, value), ('garbage', row,
    bytes), ('cut', fraction of the file's bytes kept)."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "set", "garbage", "cut"]))
        row = draw(st.integers(0, n_rows - 1))
        if kind == "drop":
            out.append(("drop", row, draw(st.sampled_from(fields))))
        elif kind == "set":
            out.append(("set", row, draw(st.sampled_from(fields)), draw(ODD)))
        elif kind == "garbage":
            out.append(("garbage", row, draw(GARBAGE)))
        else:
            out.append(("cut", draw(st.floats(0.0, 1.0))))
    return out


def jsonl_bytes(rows: list[dict], ed) -> bytes:
    """The rows as JSONL with the edits applied (row-level ones first, then a cut)."""
    lines: list[bytes] = []
    rows = [dict(r) for r in rows]
    garbage = {}
    for e in ed:
        if e[0] == "drop":
            rows[e[1]].pop(e[2], None)
        elif e[0] == "set":
            rows[e[1]][e[2]] = e[3]
        elif e[0] == "garbage":
            garbage[e[1]] = e[2]
    for i, r in enumerate(rows):
        lines.append(json.dumps(r).encode())
        if i in garbage:
            lines.append(garbage[i])
    data = b"\n".join(lines) + b"\n"
    for e in ed:
        if e[0] == "cut":
            data = data[: int(len(data) * e[1])]
    return data


@functools.lru_cache(maxsize=8)
def composed(*overrides: str):
    return compose_cfg(*overrides)


def build(*overrides: str, **values):
    """The task as train() builds it (the config composed once per test, the file's path set
    per example through ``values``); the outcome must be clean."""
    cfg = copy.deepcopy(composed(*overrides))
    for k, v in values.items():
        cfg.task[k] = v
    try:
        task = instantiate(cfg.task, _convert_="none")
    except (DataError, ConfigError):
        return None
    assert isinstance(task, Task)
    for split in ("train", "val", "test"):
        examples = task.split(split)
        assert examples, split
        assert all(isinstance(e.prompt, str) and e.prompt.strip() for e in examples)
        for e in examples:
            assert e.reference is None or isinstance(e.reference, str)
            assert e.reward is None or isinstance(e.reward, float)
    return task


def fresh(tmp_path_factory, name: str) -> Path:
    d = tmp_path_factory.mktemp(name)
    return d


# ------------------------------------------------------------------------------ task=jsonl
ROWS = [
    {"prompt": f"Review {i}: the film was good", "reference": f"it was fun {i}", "reward": i / 10}
    for i in range(12)
]


@SETTINGS
@given(ed=edits(len(ROWS), ["prompt", "reference", "reward"]), reward_key=st.booleans())
def test_malformed_jsonl_prompt_file(tmp_path_factory, ed, reward_key):
    f = fresh(tmp_path_factory, "jsonl") / "p.jsonl"
    f.write_bytes(jsonl_bytes(ROWS, ed))
    extra = ["task.reward_key=reward"] if reward_key else []
    build("task=jsonl", "task.path=?", "model=tiny", *extra, path=str(f))


@SETTINGS
@given(
    ed=edits(len(ROWS), ["prompt", "reference"]),
    extra_field=st.integers(0, len(ROWS) - 1),
    quote=st.booleans(),
)
def test_malformed_csv_prompt_file(tmp_path_factory, ed, extra_field, quote):
    """CSV rows from the same edits: a dropped field is an empty cell, a set one its text, a
    garbage line raw bytes; plus a row with one field too many or an unbalanced quote."""
    lines = [b"prompt,reference"]
    rows = [dict(r) for r in ROWS]
    garbage = {}
    for e in ed:
        if e[0] == "drop":
            rows[e[1]][e[2]] = ""
        elif e[0] == "set":
            rows[e[1]][e[2]] = e[3]
        elif e[0] == "garbage":
            garbage[e[1]] = e[2]
    for i, r in enumerate(rows):
        cells = [str(r["prompt"]), str(r["reference"])]
        line = ",".join(f'"{c}' if quote and i == extra_field else c for c in cells)
        if i == extra_field and not quote:
            line += ",surplus"
        lines.append(line.encode())
        if i in garbage:
            lines.append(garbage[i])
    data = b"\n".join(lines) + b"\n"
    for e in ed:
        if e[0] == "cut":
            data = data[: int(len(data) * e[1])]
    f = fresh(tmp_path_factory, "csv") / "p.csv"
    f.write_bytes(data)
    build("task=jsonl", "task.path=?", "model=tiny", path=str(f))


# ------------------------------------------------------------------------------ task=imdb
IMDB = [{"text": f"review {i} the film was good and then bad", "label": i % 2} for i in range(16)]


@SETTINGS
@given(
    ed=edits(len(IMDB), ["text", "label"]),
    which=st.sampled_from(["train", "test"]),
    gz=st.sampled_from(["ok", "truncated", "flipped", "plain"]),
    at=st.floats(0.05, 0.95),
)
def test_malformed_imdb_files(tmp_path_factory, ed, which, gz, at):
    root = fresh(tmp_path_factory, "imdb")
    (root / "imdb").mkdir()
    for split in ("train", "test"):
        raw = jsonl_bytes(IMDB, ed if split == which else [])
        packed = gzip.compress(raw)
        if split == which and gz == "truncated":
            packed = packed[: max(1, int(len(packed) * at))]
        elif split == which and gz == "flipped":
            i = int(len(packed) * at)
            packed = packed[:i] + bytes([packed[i] ^ 0xFF]) + packed[i + 1 :]
        elif split == which and gz == "plain":
            packed = raw
        (root / "imdb" / f"{split}.jsonl.gz").write_bytes(packed)
    build("task=imdb", "task.n_train=8", "task.n_val=4", "task.n_test=4", data_dir=str(root))


# ------------------------------------------------------------------------------ task=commongen
def _commongen_rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@SETTINGS
@given(
    ed=edits(2, ["concept_set", "scene"]),
    which=st.sampled_from(["commongen.dev.jsonl", "commongen.test.jsonl"]),
    train_edit=st.sampled_from(["none", "drop_line", "blank_line", "swap_index", "bad_bytes"]),
    train_file=st.sampled_from(["index", "cs_str", "tgt"]),
    line=st.integers(0, 5),
)
def test_malformed_commongen_files(tmp_path_factory, ed, which, train_edit, train_file, line):
    root = fresh(tmp_path_factory, "cg") / "commongen"
    shutil.copytree(FIXTURE, root)
    target = root / which
    target.write_bytes(jsonl_bytes(_commongen_rows(target)[:2], ed))
    txt = root / "commongen" / f"commongen.train.{train_file}.txt"
    lines = txt.read_bytes().split(b"\n")
    i = min(line, len(lines) - 1)
    if train_edit == "drop_line":
        del lines[i]
    elif train_edit == "blank_line":
        lines[i] = b""
    elif train_edit == "swap_index" and train_file == "index":
        lines[i], lines[-1] = lines[-1], lines[i]
    elif train_edit == "bad_bytes":
        lines[i] = b"\xff\xfe" + lines[i]
    txt.write_bytes(b"\n".join(lines))
    build("task=commongen", data_dir=str(root))


def test_the_unbroken_files_build_a_task(tmp_path_factory):
    """The premise: with no edit, each test above builds its task (a broken base file would
    make every example a trivially clean DataError)."""
    f = fresh(tmp_path_factory, "ok") / "p.jsonl"
    f.write_bytes(jsonl_bytes(ROWS, []))
    assert build("task=jsonl", "task.path=?", "model=tiny", "task.reward_key=reward", path=str(f))
    root = fresh(tmp_path_factory, "okimdb")
    (root / "imdb").mkdir()
    for split in ("train", "test"):
        (root / "imdb" / f"{split}.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes(IMDB, [])))
    assert build("task=imdb", "task.n_train=8", "task.n_val=4", "task.n_test=4", data_dir=str(root))
    assert build("task=commongen", data_dir=str(FIXTURE))


pytestmark = pytest.mark.filterwarnings("ignore")
