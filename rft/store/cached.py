"""Reuse a result from the store or compute (and publish) it: the calls a run makes.

    store = open_store(cfg, run_dir)              # None when store.reuse and store.publish are off
    (res, setup), reused = cached_evaluation(store, evaluation_key(...), lambda: evaluate_split(...))
    folder, reused = cached_policy(store, warm_start_key(...), dest, train=lambda d: ...)
    value, reused = cached_tensor(store, result_key("dpo/ref_logps", cfg, ...), compute)

Each returns the result and a ``Reuse`` record (None when it was computed here); the store
also collects every record of the run in ``store.reused``, which the run writes to metrics.json
(``reuse_metrics(store.reused)``). Behaviour, by the run's store.* knobs:

- ``store.reuse=true``: a verified entry with the same key is read instead of computing; a
  corrupt one is ignored (and replaced once recomputed); a miss is logged with the components in
  which the nearest entry differs. While another job computes the same key, this one waits for
  it (``store.wait``) instead of computing it too.
- ``store.publish=true``: a computed result is published for later runs.
- A store that cannot be written (full disk, permissions) never fails a run: the result is
  computed, used, and a warning says it was not published.
- Under DDP (a process group is initialised, ``collective=True``) every rank looks the key up,
  the ranks agree (all hit, or all compute: an evaluation is a collective), nobody waits on
  another job's lease, and only rank 0 publishes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rft.store.key import Key
from rft.store.store import Entry, ResultStore, default_store_path, link_or_copy_tree

log = logging.getLogger("rft")


@dataclass
class Reuse:
    """A result read from the store instead of computed: what it is, the entry, the run that
    computed it and the compute time it saved."""

    what: str
    kind: str
    entry: str  # the key's digest
    origin: str  # the publishing run's folder (or host:pid)
    created: str
    saved_s: float | None

    @classmethod
    def of(cls, what: str, entry: Entry) -> Reuse:
        o = entry.origin
        origin = o.get("run") or f"{o.get('host', '?')}:{o.get('pid', '?')}"
        return cls(
            what,
            entry.kind,
            entry.digest,
            origin,
            entry.manifest.get("created", ""),
            entry.compute_s,
        )

    def describe(self) -> str:
        saved = f", saved {self.saved_s:.0f} s" if self.saved_s is not None else ""
        return f"{self.what} reused from {self.origin} (entry {self.entry[:12]}{saved})"


def reuse_metrics(reuses: list[Reuse]) -> dict[str, Any]:
    """Flat metrics.json keys: ``reused/<what>`` = the publishing run and entry,
    ``reused/<what>_saved_s`` = its compute time (a number, or absent when unknown)."""
    out: dict[str, Any] = {}
    for r in reuses:
        out[f"reused/{r.what}"] = f"{r.origin} (entry {r.entry[:12]}, {r.created})"
        if r.saved_s is not None:
            out[f"reused/{r.what}_saved_s"] = float(r.saved_s)
    return out


def open_store(cfg, run_dir: str | Path | None = None) -> ResultStore | None:
    """The run's store from ``cfg.store`` (None when reuse and publish are both off, or when
    the folder cannot be created: then a warning names the key and the run goes on without)."""
    s = cfg.get("store")
    if s is None or not (s.reuse or s.publish):
        return None
    root = Path(s.path).expanduser() if s.path else default_store_path()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning(
            "store.path=%s cannot be created (%s): this run reuses and shares nothing. Set "
            "store.path to a writable folder, or store.reuse=false store.publish=false.",
            root,
            e,
        )
        return None
    return ResultStore(
        root,
        reuse=bool(s.reuse),
        publish=bool(s.publish),
        wait=bool(s.wait),
        origin=str(run_dir) if run_dir is not None else None,
    )


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_ranks(flag: bool, world_size: int) -> bool:
    """True when ``flag`` is true on every rank (object gather: any backend, any device)."""
    if world_size == 1:
        return flag
    import torch.distributed as dist

    flags: list[Any] = [None] * world_size
    dist.all_gather_object(flags, bool(flag))
    return all(flags)


def _read(store: ResultStore, key: Key, load: Callable[[Path], Any], what: str):
    """(value, Reuse) from a verified entry, else None (an entry ``load`` rejects is removed)."""
    entry = store.get(key)
    if entry is None:
        return None
    try:
        value = load(entry.payload)
    except Exception as e:  # noqa: BLE001 - an entry we cannot read is recomputed, never fatal
        log.warning(
            "store: %s entry %s is unreadable (%s); recomputing", what, entry.digest[:12], e
        )
        store.remove(entry)
        return None
    reuse = Reuse.of(what, entry)
    store.reused.append(reuse)
    log.info("store: %s", reuse.describe())
    return value, reuse


def cached(
    store: ResultStore | None,
    key: Key,
    compute: Callable[[], Any],
    *,
    save: Callable[[Any, Path], None],
    load: Callable[[Path], Any],
    what: str,
    collective: bool = False,
    meta: dict | None = None,
) -> tuple[Any, Reuse | None]:
    """The value of ``key``: ``load(payload)`` of its entry, else ``compute()`` (then
    ``save(value, payload)`` publishes it). ``what`` names it in logs and metrics.json
    (``test_init``, ``warm_start``). See the module docstring for the rules."""
    if store is None:
        return compute(), None
    rank, world = _rank_world() if collective else (0, 1)
    if store.reuse:
        hit = _read(store, key, load, what)
        if _all_ranks(hit is not None, world) and hit is not None:
            return hit
        if rank == 0:
            log.info("store: computing %s (%s)", what, store.explain_miss(key))
    publish = store.publish and rank == 0
    # wait for another job only where this process alone decides (not inside a collective)
    lease = (
        store.lease(key) if publish and store.reuse and world == 1 else contextlib.nullcontext(True)
    )
    with lease as mine:
        # another job published it while this one waited (mine=False), or between this one's
        # lookup and its taking the lease: read it rather than compute it again
        if store.reuse and world == 1 and (not mine or store.get(key, touch=False)):
            hit = _read(store, key, load, what)
            if hit is not None:
                return hit
        t0 = time.perf_counter()
        value = compute()
        compute_s = time.perf_counter() - t0
        if publish:
            try:
                entry = store.put(key, lambda d: save(value, d), meta=meta, compute_s=compute_s)
                log.info("store: published %s as %s", what, entry.describe())
            except OSError as e:
                log.warning("store: %s computed but not published (%s)", what, e)
    return value, None


# ------------------------------------------------------------------------------- evaluations
EVALUATION_FILE = "evaluation.json"


def save_eval(value, payload: Path) -> None:
    """An (EvalResult, setup) pair as JSON (floats by repr: they read back bit for bit)."""
    res, setup = value
    record = {
        "metrics": res.metrics,
        "samples": res.samples,
        "per_prompt": res.per_prompt,
        "unavailable": res.unavailable,
        "setup": setup,
    }
    (payload / EVALUATION_FILE).write_text(json.dumps(record))


def load_eval(payload: Path):
    from rft.eval.evaluate import EvalResult

    r = json.loads((payload / EVALUATION_FILE).read_text())
    return EvalResult(r["metrics"], r["samples"], r["per_prompt"], r["unavailable"]), r["setup"]


def cached_evaluation(
    store: ResultStore | None, key: Key, compute: Callable[[], tuple], *, what: str = "evaluation"
):
    """``compute()`` = ``evaluate_split(...)`` → ((EvalResult, setup), Reuse | None).
    A collective under DDP (every rank calls it)."""
    return cached(store, key, compute, save=save_eval, load=load_eval, what=what, collective=True)


# ---------------------------------------------------------------------------------- policies
def cached_policy(
    store: ResultStore | None,
    key: Key,
    dest: str | Path,
    train: Callable[[Path], None],
    *,
    what: str = "warm_start",
) -> tuple[Path, Reuse | None]:
    """A policy folder at ``dest``: the entry's files linked (or copied) there, else
    ``train(dest)``, which must leave a complete folder at ``dest`` (save_pretrained), then
    published. Runs on one process (the warm start runs before any process group)."""
    from rft.io import atomic_dir

    dest = Path(dest)

    def compute() -> Path:
        train(dest)
        return dest

    def load(payload: Path) -> Path:
        with atomic_dir(dest) as tmp:
            link_or_copy_tree(payload, tmp)
        return dest

    return cached(
        store, key, compute, save=lambda p, d: link_or_copy_tree(p, d), load=load, what=what
    )


# ----------------------------------------------------------------------------------- tensors
TENSOR_FILE = "value.pt"


def save_tensor(value, payload: Path) -> None:
    import torch

    torch.save(value, payload / TENSOR_FILE)


def load_tensor(payload: Path):
    import torch

    # weights_only: a shared folder must not run pickled code; tensors, dicts, lists and
    # numbers load
    return torch.load(payload / TENSOR_FILE, map_location="cpu", weights_only=True)


def cached_tensor(
    store: ResultStore | None,
    key: Key,
    compute: Callable[[], Any],
    *,
    what: str,
    collective: bool = False,
):
    """``compute()`` → tensors (or dicts / lists of tensors and numbers), torch.save'd:
    π_ref log-probs, reward scores of offline data, a V_ref head's state dict."""
    return cached(
        store, key, compute, save=save_tensor, load=load_tensor, what=what, collective=collective
    )
