"""The store folder: atomic publish, checksums, one entry per key under concurrent writers, and
the lease that lets concurrent jobs compute a result once (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rft.store import Key, ResultStore
from rft.store.store import MANIFEST, check_entry

REPO = Path(__file__).resolve().parents[2]
KEY = Key("evaluation", {"eval": {"seed": 7919}, "threads": 1})


def write_result(text: str, *, nested: bool = True):
    def write(d: Path) -> None:
        (d / "evaluation.json").write_text(text)
        if nested:
            (d / "policy").mkdir()
            (d / "policy" / "model.bin").write_bytes(b"\x00\x01" * 1000)

    return write


def test_put_then_get_returns_the_files_and_a_manifest_of_what_made_them(tmp_path):
    store = ResultStore(tmp_path / "s", origin="outputs/run_a")
    entry = store.put(KEY, write_result('{"r": 0.5}'), meta={"what": "test_init"}, compute_s=12.5)
    got = store.get(KEY)
    assert got is not None and got.path == entry.path
    assert (got.payload / "evaluation.json").read_text() == '{"r": 0.5}'
    assert (got.payload / "policy" / "model.bin").read_bytes() == b"\x00\x01" * 1000
    m = got.manifest
    assert m["kind"] == "evaluation" and m["parts"] == {"eval": {"seed": 7919}, "threads": 1}
    assert m["origin"]["run"] == "outputs/run_a" and m["origin"]["pid"] == os.getpid()
    assert m["compute_s"] == 12.5 and m["meta"] == {"what": "test_init"}
    assert m["size"] == len('{"r": 0.5}') + 2000
    assert set(m["files"]) == {"evaluation.json", "policy/model.bin"}
    assert got.path.parent.name == KEY.digest[:2] and got.path.name == KEY.digest
    assert store.get(Key("evaluation", {"eval": {"seed": 1}, "threads": 1})) is None
    assert list(store.tmp_dir.iterdir()) == []  # nothing left behind


def test_an_entry_is_invisible_until_it_is_complete(tmp_path):
    store = ResultStore(tmp_path)
    seen = []

    def write(d: Path) -> None:
        (d / "part1").write_text("a")
        seen.append(store.get(KEY))  # half written: a reader must not see it
        (d / "part2").write_text("b")

    store.put(KEY, write)
    assert seen == [None] and store.get(KEY) is not None


def test_a_failed_write_publishes_nothing(tmp_path):
    store = ResultStore(tmp_path)

    def write(d: Path) -> None:
        (d / "a").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        store.put(KEY, write)
    assert store.get(KEY) is None and list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda e: (e.payload / "evaluation.json").write_text('{"r": 0.6}'), "checksum mismatch"),
        (lambda e: (e.payload / "policy" / "model.bin").write_bytes(b"\x00"), "size"),
        (lambda e: (e.payload / "evaluation.json").unlink(), "payload files differ"),
        (lambda e: (e.payload / "extra.txt").write_text("?"), "payload files differ"),
        (lambda e: (e.path / MANIFEST).write_text('{"kind": "evalu'), "unreadable manifest"),
        (
            lambda e: (e.path / MANIFEST).write_text(
                (e.path / MANIFEST).read_text().replace('"threads": 1', '"threads": 2')
            ),
            "manifest checksum",
        ),
    ],
    ids=["edited", "truncated", "missing", "extra", "torn_manifest", "edited_manifest"],
)
def test_a_damaged_entry_is_a_miss_and_the_next_put_replaces_it(tmp_path, damage, problem):
    store = ResultStore(tmp_path)
    entry = store.put(KEY, write_result('{"r": 0.5}'))
    damage(entry)
    assert problem in check_entry(entry.path)[1]
    assert store.get(KEY) is None
    again = store.put(KEY, write_result('{"r": 0.5}'))
    assert check_entry(again.path)[1] is None
    assert (store.get(KEY).payload / "evaluation.json").read_text() == '{"r": 0.5}'


def test_a_second_put_of_an_intact_entry_keeps_the_first(tmp_path):
    store = ResultStore(tmp_path)
    first = store.put(KEY, write_result("first"))
    second = store.put(KEY, write_result("second"))
    assert second.manifest == first.manifest
    assert (store.get(KEY).payload / "evaluation.json").read_text() == "first"
    assert list(store.tmp_dir.iterdir()) == []


# ------------------------------------------------------------------- concurrent processes
PUBLISHER = """
import sys, time
from pathlib import Path
from rft.store import Key, ResultStore
root, go, tag = sys.argv[1:4]
while not Path(go).exists():
    time.sleep(0.005)
def write(d):
    (d / "evaluation.json").write_text(tag)
    time.sleep(0.3)  # both writers are staged at the same time
    (d / "blob.bin").write_bytes(tag.encode() * 100000)
e = ResultStore(root).put(Key("evaluation", {"eval": {"seed": 7919}, "threads": 1}), write)
print((e.payload / "evaluation.json").read_text())
"""


def spawn(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_publishing_one_key_leave_one_valid_entry(tmp_path):
    root, go = tmp_path / "store", tmp_path / "go"
    procs = [spawn(PUBLISHER, str(root), str(go), tag) for tag in ("A", "B")]
    time.sleep(1.5)  # both imported and polling
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    store = ResultStore(root)
    folders = [f for f, _ in store.scan()]
    assert len(folders) == 1 and check_entry(folders[0])[1] is None
    winner = (store.get(KEY).payload / "evaluation.json").read_text()
    assert winner in ("A", "B")
    assert (store.get(KEY).payload / "blob.bin").read_bytes() == winner.encode() * 100000
    # both processes were handed the entry that is at the address, not their own copy
    assert [o[0].strip() for o in outs] == [winner, winner]
    assert list(store.tmp_dir.iterdir()) == []


COMPUTER = """
import sys, time
from pathlib import Path
from rft.store import Key, ResultStore, cached
root, go, log = sys.argv[1:4]
while not Path(go).exists():
    time.sleep(0.005)
def compute():
    with open(log, "a") as f:
        f.write("computed\\n")
    time.sleep(1.0)
    return "value"
def save(v, d):
    (d / "v.txt").write_text(v)
value, reused = cached(ResultStore(root), Key("evaluation", {"x": 1}), compute, save=save,
                       load=lambda d: (d / "v.txt").read_text(), what="test_init")
print(value, reused is not None)
"""


def test_concurrent_jobs_compute_a_missing_result_once(tmp_path):
    root, go, log = tmp_path / "store", tmp_path / "go", tmp_path / "computed.log"
    procs = [spawn(COMPUTER, str(root), str(go), str(log)) for _ in range(2)]
    time.sleep(1.5)
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert log.read_text() == "computed\n"  # one computed, the other waited and read it
    assert sorted(o[0].strip() for o in outs) == ["value False", "value True"]
    assert list((root / "v1" / "locks").iterdir()) == []


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    store = ResultStore(tmp_path)
    store.locks_dir.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock = store.locks_dir / f"{KEY.digest}.lock"
    import socket

    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    t0 = time.monotonic()
    with store.lease(KEY, poll_s=0.01) as mine:
        assert mine and json.loads(lock.read_text())["pid"] == os.getpid()
    assert time.monotonic() - t0 < 5 and not lock.exists()


def test_a_lock_without_heartbeat_is_stale_after_stale_s(tmp_path):
    store = ResultStore(tmp_path)
    store.locks_dir.mkdir(parents=True)
    lock = store.locks_dir / f"{KEY.digest}.lock"
    lock.write_text(json.dumps({"host": "another-node", "pid": 1}))  # cannot check its pid
    t0 = time.monotonic()
    with store.lease(KEY, poll_s=0.02, stale_s=0.3) as mine:
        assert mine
    assert 0.3 <= time.monotonic() - t0 < 5


def test_a_waiter_stops_waiting_when_the_entry_appears(tmp_path):
    store = ResultStore(tmp_path)
    store.locks_dir.mkdir(parents=True)
    lock = store.locks_dir / f"{KEY.digest}.lock"
    lock.write_text(json.dumps({"host": "another-node", "pid": 1}))
    store.put(KEY, write_result("x"))  # published by the holder
    with store.lease(KEY, poll_s=0.01, stale_s=60) as mine:
        assert mine is False


def test_without_wait_the_lease_never_blocks(tmp_path):
    store = ResultStore(tmp_path, wait=False)
    store.locks_dir.mkdir(parents=True)
    (store.locks_dir / f"{KEY.digest}.lock").write_text("{}")
    with store.lease(KEY) as mine:
        assert mine is True


def test_nearest_entry_names_the_components_that_differ(tmp_path):
    store = ResultStore(tmp_path)
    store.put(
        Key("evaluation", {"eval": {"seed": 7919, "batch_size": 32}, "threads": 1}),
        write_result("a"),
    )
    store.put(
        Key("evaluation", {"eval": {"seed": 1, "batch_size": 8}, "threads": 2}), write_result("b")
    )
    store.put(Key("sft_warm_start", {"eval": {"seed": 3}}), write_result("c"))
    want = Key("evaluation", {"eval": {"seed": 3, "batch_size": 32}, "threads": 1})
    entry, diff = store.nearest(want)
    assert diff == ["eval.seed"]
    assert "differs in eval.seed" in store.explain_miss(want)
    assert "no other_kind entry" in store.explain_miss(Key("other_kind", {}))
