"""``rft cache ls | show | verify | prune`` on a small store (in-process, through rft.cli)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rft.cli import main as rft_main
from rft.store import Key, ResultStore
from rft.store.cli import parse_duration, parse_size, select_prune
from rft.store.store import Entry

DAY = 86400.0


def fill(store: ResultStore, kind: str, name: str, size: int, age_days: float, monkeypatch):
    """An entry of ``size`` bytes published (and last used) ``age_days`` ago."""
    then = time.time() - age_days * DAY
    monkeypatch.setattr(time, "time", lambda: then)
    entry = store.put(Key(kind, {"name": name}), lambda d: (d / "f.bin").write_bytes(b"x" * size))
    monkeypatch.undo()
    return entry


@pytest.fixture
def store(tmp_path, monkeypatch):
    s = ResultStore(tmp_path / "store", origin="outputs/run_a")
    fill(s, "evaluation", "old_eval", 1000, 40, monkeypatch)
    fill(s, "evaluation", "new_eval", 2000, 1, monkeypatch)
    fill(s, "sft_warm_start", "policy", 5000, 10, monkeypatch)
    return s


def cache(store, capsys, *args) -> tuple[int, str]:
    rc = rft_main(["cache", *args, "--store", str(store.root)])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def test_ls_lists_kind_size_age_and_origin(store, capsys):
    rc, out = cache(store, capsys, "ls")
    assert rc == 0
    rows = [line for line in out.splitlines() if "outputs/run_a" in line]
    assert len(rows) == 3
    assert any("sft_warm_start" in r and "4.9K" in r and "10.0d" in r for r in rows)
    assert "3 entries, 7.8K" in out
    rc, out = cache(store, capsys, "ls", "--kind", "evaluation", "--json")
    entries = json.loads(out)
    assert {e["parts"]["name"] for e in entries} == {"old_eval", "new_eval"}


def test_show_prints_one_manifest(store, capsys):
    digest = Key("sft_warm_start", {"name": "policy"}).digest
    rc, out = cache(store, capsys, "show", digest[:8])
    assert rc == 0 and json.loads(out)["parts"] == {"name": "policy"}
    rc, _ = cache(store, capsys, "show", "zz")
    assert rc == 1


def test_verify_finds_a_corrupt_entry_and_delete_removes_it(store, capsys):
    rc, out = cache(store, capsys, "verify")
    assert rc == 0 and "3 entries checked, 0 bad" in out
    bad = store.get(Key("evaluation", {"name": "new_eval"}))
    (bad.payload / "f.bin").write_bytes(b"y" * 2000)
    rc, out = cache(store, capsys, "verify")
    assert rc == 1 and f"bad: {bad.digest[:12]} evaluation: f.bin: checksum mismatch" in out
    rc, out = cache(store, capsys, "verify", "--delete")
    assert rc == 0 and "removed" in out and not bad.path.exists()
    assert cache(store, capsys, "verify")[0] == 0


def names(store) -> set[str]:
    return {e.parts["name"] for e in store.entries()}


def test_prune_by_age_with_dry_run_first(store, capsys):
    rc, out = cache(store, capsys, "prune", "--older-than", "30d", "--dry-run")
    assert rc == 0 and "would remove" in out and names(store) == {"old_eval", "new_eval", "policy"}
    rc, out = cache(store, capsys, "prune", "--older-than", "30d")
    assert names(store) == {"new_eval", "policy"} and "removed 1 entries" in out


def test_prune_to_a_size_drops_the_least_recently_used(store, capsys):
    cache(store, capsys, "prune", "--max-size", "7000")  # 8000 -> drop the oldest use (old_eval)
    assert names(store) == {"new_eval", "policy"}
    cache(store, capsys, "prune", "--max-size", "2k")
    assert names(store) == {"new_eval"}


def test_prune_by_kind_and_without_criteria(store, capsys):
    rc, out = cache(store, capsys, "prune")
    assert rc == 2 and "--older-than" in out and len(names(store)) == 3
    cache(store, capsys, "prune", "--kind", "evaluation")
    assert names(store) == {"policy"}


def test_prune_removes_leftovers_of_killed_writers(store, capsys):
    stale = store.tmp_dir / "abc.123.ff"
    stale.mkdir(parents=True)
    old = time.time() - 2 * DAY
    os.utime(stale, (old, old))
    fresh = store.tmp_dir / "def.456.ff"  # a writer at work right now: kept
    fresh.mkdir()
    rc, out = cache(store, capsys, "prune", "--older-than", "100d")
    assert not stale.exists() and fresh.exists() and "left by a killed writer" in out


def entry(size: int, used: float, kind: str = "evaluation") -> Entry:
    return Entry(
        path=Path(f"/nonexistent/{size}"),
        manifest={"key": str(size), "kind": kind, "size": size, "created_unix": used},
    )


def test_select_prune_rules():
    now = 100 * DAY
    es = [entry(100, now - 50 * DAY), entry(200, now - 5 * DAY), entry(400, now - 1 * DAY, "sft")]
    pick = lambda **kw: sorted(e.size for e in select_prune(es, now=now, **kw))  # noqa: E731
    assert pick(older_than_s=30 * DAY) == [100]
    assert pick(max_bytes=450) == [100, 200]  # 700 -> 600 -> 400
    assert pick(max_bytes=10_000) == []
    assert pick(older_than_s=2 * DAY, kinds=["evaluation"]) == [100, 200]
    assert pick(max_bytes=0, kinds=["evaluation"]) == [100, 200]  # only what the kind allows
    assert pick(kinds=["sft"]) == [400]
    assert pick() == []


def test_durations_and_sizes_parse_with_units():
    assert parse_duration("30d") == 30 * DAY and parse_duration("2w") == 14 * DAY
    assert parse_size("20G") == 20 << 30 and parse_size("4096") == 4096
    assert parse_size("1.5MiB") == int(1.5 * (1 << 20))
    with pytest.raises(Exception, match="unit"):
        parse_duration("30")
