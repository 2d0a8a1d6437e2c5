"""Reuse-or-compute wrappers: with fake compute functions (counted calls), and a real tiny-model
evaluation whose reused result is bit-identical to a recomputed one."""

from __future__ import annotations

import copy
import math
import struct

import pytest
import torch

from rft.errors import instantiate
from rft.eval.evaluate import evaluate_split, save_evaluation
from rft.model.build import frozen_copy, load_policy
from rft.reward import build_reward
from rft.store import (
    Key,
    ResultStore,
    cached,
    cached_evaluation,
    cached_policy,
    cached_tensor,
    open_store,
    reuse_metrics,
)
from rft.store.keys import evaluation_key
from tests.conftest import compose_cfg, tiny_overrides, write_prompts

KEY = Key("scores", {"texts": "xxh3:abc", "threads": 1})


class Counter:
    """A compute function that counts its calls and returns ``value``."""

    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def text_io():
    return dict(
        save=lambda v, d: (d / "v.txt").write_text(v), load=lambda d: (d / "v.txt").read_text()
    )


def test_a_result_is_computed_once_then_reused_with_its_origin(tmp_path):
    run_a = ResultStore(tmp_path, origin="outputs/run_a")
    run_b = ResultStore(tmp_path, origin="outputs/run_b")
    compute = Counter("0.25")
    v1, r1 = cached(run_a, KEY, compute, what="test_init", **text_io())
    v2, r2 = cached(run_b, KEY, compute, what="test_init", **text_io())
    assert (v1, v2, compute.calls) == ("0.25", "0.25", 1)
    assert r1 is None and r2.origin == "outputs/run_a" and r2.entry == KEY.digest
    assert r2.saved_s is not None and r2.saved_s >= 0
    m = reuse_metrics([r2])
    assert m["reused/test_init"].startswith(f"outputs/run_a (entry {KEY.digest[:12]}")
    assert m["reused/test_init_saved_s"] == r2.saved_s


def test_reuse_off_recomputes_and_publish_off_writes_nothing(tmp_path):
    compute = Counter("x")
    cached(ResultStore(tmp_path), KEY, compute, what="w", **text_io())
    _, reused = cached(ResultStore(tmp_path, reuse=False), KEY, compute, what="w", **text_io())
    assert reused is None and compute.calls == 2
    other = Key("scores", {"texts": "xxh3:def"})
    cached(ResultStore(tmp_path, publish=False), other, compute, what="w", **text_io())
    assert ResultStore(tmp_path).get(other) is None and compute.calls == 3
    assert cached(None, KEY, compute, what="w", **text_io()) == ("x", None)  # no store at all


def test_a_corrupt_entry_is_recomputed_and_replaced(tmp_path):
    store = ResultStore(tmp_path)
    compute = Counter("good")
    cached(store, KEY, compute, what="w", **text_io())
    (store.get(KEY).payload / "v.txt").write_text("bad!")  # bit rot / a file edited in place
    value, reused = cached(store, KEY, compute, what="w", **text_io())
    assert (value, reused, compute.calls) == ("good", None, 2)
    assert (store.get(KEY).payload / "v.txt").read_text() == "good"
    assert cached(store, KEY, compute, what="w", **text_io())[1] is not None


def test_an_entry_its_reader_rejects_is_recomputed(tmp_path):
    store = ResultStore(tmp_path)
    store.put(KEY, lambda d: (d / "other_format.bin").write_bytes(b"?"))  # intact, unreadable
    compute = Counter("fresh")
    value, reused = cached(store, KEY, compute, what="w", **text_io())
    assert (value, reused, compute.calls) == ("fresh", None, 1)
    assert (store.get(KEY).payload / "v.txt").read_text() == "fresh"


def test_an_unwritable_store_never_fails_the_run(tmp_path, caplog):
    store = ResultStore(tmp_path)

    def save(v, d):
        raise OSError(28, "No space left on device")

    value, reused = cached(store, KEY, Counter("v"), what="w", save=save, load=lambda d: None)
    assert (value, reused) == ("v", None)
    assert "computed but not published" in caplog.text and store.get(KEY) is None


def test_open_store_follows_the_store_block(tmp_path, monkeypatch):
    cfg = compose_cfg("model=tiny", f"store.path={tmp_path / 's'}", "store.wait=false")
    store = open_store(cfg, run_dir="outputs/x")
    assert store.root == tmp_path / "s" and store.origin == "outputs/x" and not store.wait
    assert open_store(compose_cfg("store.reuse=false", "store.publish=false")) is None
    monkeypatch.setenv("RFT_STORE_DIR", str(tmp_path / "env"))
    assert open_store(compose_cfg()).root == tmp_path / "env"
    (tmp_path / "file").write_text("")
    blocked = compose_cfg(f"store.path={tmp_path / 'file' / 'sub'}")
    assert open_store(blocked) is None  # a warning, and the run goes on without


def test_cached_tensor_reads_back_bit_identical_tensors(tmp_path):
    value = {
        "logps": torch.randn(5, 2, dtype=torch.float64),
        "scores": torch.tensor([0.1, float("nan")], dtype=torch.bfloat16),
        "stats": {"mse": 0.125, "epochs": [1, 2]},
        "texts": ["a sampled completion", ""],  # DPO's sampled pairs
    }
    compute = Counter(value)
    cached_tensor(ResultStore(tmp_path), KEY, compute, what="ref_logps")
    got, reused = cached_tensor(ResultStore(tmp_path), KEY, compute, what="ref_logps")
    assert reused is not None and compute.calls == 1
    for name in ("logps", "scores"):
        assert got[name].dtype == value[name].dtype
        assert torch.equal(got[name].view(torch.uint8), value[name].view(torch.uint8))
    assert got["stats"] == value["stats"] and got["texts"] == value["texts"]


def test_cached_policy_links_the_trained_folder_into_each_run(tmp_path):
    store = ResultStore(tmp_path / "store")
    calls = []

    def train(dest):
        calls.append(dest)
        dest.mkdir(parents=True)
        (dest / "config.json").write_text("{}")
        (dest / "model.safetensors").write_bytes(b"w" * 4096)

    a, r1 = cached_policy(store, KEY, tmp_path / "run_a" / "warm_start" / "policy", train)
    b, r2 = cached_policy(store, KEY, tmp_path / "run_b" / "warm_start" / "policy", train)
    assert len(calls) == 1 and r1 is None and r2 is not None
    assert b == tmp_path / "run_b" / "warm_start" / "policy"
    assert (b / "model.safetensors").read_bytes() == b"w" * 4096
    assert (b / "config.json").stat().st_ino == (a / "config.json").stat().st_ino  # linked
    assert not (tmp_path / "run_b" / "warm_start" / "policy.old").exists()


# --------------------------------------------------------------------- a real evaluation
def same_bits(a, b) -> bool:
    """Equal structure, types and values, floats compared bit for bit (NaN == NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_bits(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_bits(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory):
    prompts = write_prompts(tmp_path_factory.mktemp("eval") / "prompts.jsonl")
    cfg = compose_cfg(*tiny_overrides(prompts, "eval.samples_per_prompt=2"))
    task = instantiate(cfg.task, _convert_="none")
    policy = load_policy(cfg.model)
    return cfg, task, policy, frozen_copy(policy), build_reward(cfg.reward)


def test_a_reused_evaluation_is_bit_identical_to_a_recomputed_one(tmp_path, tiny_eval):
    cfg, task, policy, ref, reward_fn = tiny_eval
    calls = []

    def compute():
        calls.append(1)
        return evaluate_split(cfg, task, policy, ref, reward_fn, "test")

    key = evaluation_key(cfg, task, policy, ref, "test")
    store = ResultStore(tmp_path / "store", origin="run_a")
    (first, setup1), r1 = cached_evaluation(store, key, compute, what="test_init")
    (reused, setup2), r2 = cached_evaluation(store, key, compute, what="test_init")
    fresh, setup3 = evaluate_split(cfg, task, policy, ref, reward_fn, "test")  # no store
    assert len(calls) == 1 and r1 is None and r2.origin == "run_a"
    assert first.metrics["n_prompts"] == 4 and not math.isnan(first.metrics["perplexity"])
    for res, setup in ((reused, setup2), (fresh, setup3)):
        assert same_bits(res.metrics, first.metrics)
        assert same_bits(res.samples, first.samples)
        assert same_bits(res.per_prompt, first.per_prompt)
        assert same_bits(res.unavailable, first.unavailable) and setup == setup1
    # and what a run writes from it is the same file, byte for byte
    for name, res, setup in (("a", first, setup1), ("b", reused, setup2)):
        metrics = {f"test_init/{k}": v for k, v in res.metrics.items()}
        save_evaluation(tmp_path / name, "test_init", 0, metrics, setup, res)
    read = lambda n: (tmp_path / n / "eval" / "test_init_00000.json").read_bytes()  # noqa: E731
    assert read("a") == read("b")
    assert (tmp_path / "a" / "samples.jsonl").read_bytes() == (
        tmp_path / "b" / "samples.jsonl"
    ).read_bytes()


def test_another_eval_seed_recomputes(tmp_path, tiny_eval):
    cfg, task, policy, ref, reward_fn = tiny_eval
    cfg = copy.deepcopy(cfg)
    store = ResultStore(tmp_path)
    calls = []

    def evaluate(c):
        def compute():
            calls.append(c.eval.seed)
            return evaluate_split(c, task, policy, ref, reward_fn, "test")

        return cached_evaluation(store, evaluation_key(c, task, policy, ref, "test"), compute)

    evaluate(cfg)
    cfg.eval.seed += 1
    (res, setup), reused = evaluate(cfg)
    assert reused is None and calls == [cfg.eval.seed - 1, cfg.eval.seed]
    assert setup["seed"] == cfg.eval.seed


def test_a_store_it_cannot_write_is_read_and_never_fails_the_run(tmp_path, caplog):
    store = ResultStore(tmp_path / "s")
    cached(store, KEY, Counter("shared"), what="w", **text_io())
    team = ResultStore(tmp_path / "s")  # as a read-only store: no lock, no staging folder
    (tmp_path / "file").write_text("")
    team.locks_dir = team.tmp_dir = tmp_path / "file" / "sub"
    assert cached(team, KEY, Counter("x"), what="w", **text_io())[0] == "shared"
    other = Key("scores", {"texts": "xxh3:other"})
    assert cached(team, other, Counter("mine"), what="w", **text_io()) == ("mine", None)
    assert "no lock for" in caplog.text and "computed but not published" in caplog.text
