"""The content-addressed result store: one folder of immutable entries, shared by the jobs of a
sweep and across sweeps, safe with concurrent writers on a shared filesystem.

Layout (``<root>`` = ``store.path``)::

    <root>/v1/entries/<d[:2]>/<d>/manifest.json   d = the key's digest (rft.store.key)
                                  payload/…       the result: files and folders
                                  .used           touched on every read (prune's "last used")
    <root>/v1/tmp/                                entries being written or removed
    <root>/v1/locks/<d>.lock                      a job computing d right now (``lease``)

Publishing (``put``): the payload is written into a fresh folder under ``tmp/`` (same
filesystem), every file and folder is fsynced, the manifest (what the key was made of, when,
which run, the size and an xxh3-128 checksum of every file, and a checksum of the manifest
itself) is written last, and the folder is renamed to its address in one ``rename``. A reader
therefore sees no entry or a complete one, never a torn one. If the address is already taken
(another process published the same key first), the other entry is kept when it verifies and
this one is dropped: two concurrent publishers leave exactly one valid entry. An entry that
fails verification (a truncated copy, a disk error, a file edited in place) is moved aside and
replaced.

Reading (``get``) verifies the manifest's and every file's checksum (xxh3 reads ~10 GB/s: a
0.5 GB policy costs well under a second, mostly the disk) and treats a bad entry as a miss, so
the caller recomputes and republishes it.

Computing once (``lease``): jobs of a sweep that start together would all compute the same
missing entry; the first takes ``locks/<d>.lock`` (O_EXCL create, atomic on local filesystems
and NFSv3+), heartbeats it while it computes, and the others wait for the entry to appear. A lock
whose holder died (its heartbeat stopped for ``stale_s``, or its pid is gone on this host) is
taken over.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from rft.store.key import Key, canonical_json

log = logging.getLogger(__name__)

LAYOUT = "v1"
MANIFEST = "manifest.json"
PAYLOAD = "payload"
USED = ".used"
CHUNK = 8 << 20  # bytes read at a time when hashing a file


def default_store_path() -> Path:
    """Where ``store.path=null`` points: ``$RFT_STORE_DIR``, else ``$RFT_CACHE_DIR/store``,
    else ``~/.cache/rft/store`` (next to rft's model cache)."""
    if os.environ.get("RFT_STORE_DIR"):
        return Path(os.environ["RFT_STORE_DIR"]).expanduser()
    return Path(os.environ.get("RFT_CACHE_DIR", Path.home() / ".cache" / "rft")) / "store"


# ------------------------------------------------------------------------------- file helpers
def hash_file(path: Path) -> str:
    """xxh3-128 of a file's bytes, hex."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries (created, renamed files) durable; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _payload_files(payload: Path) -> list[Path]:
    return sorted(p for p in payload.rglob("*") if p.is_file() or p.is_symlink())


def seal_payload(payload: Path) -> dict[str, dict[str, Any]]:
    """fsync every file and folder under ``payload``; returns {relative path: {size, xxh3}}.
    Symbolic links are refused: an entry must hold its own bytes."""
    files = {}
    for p in _payload_files(payload):
        if p.is_symlink():
            raise ValueError(f"{p}: a store entry cannot hold symbolic links (copy the file)")
        with open(p, "rb") as f:
            os.fsync(f.fileno())
        files[p.relative_to(payload).as_posix()] = {"size": p.stat().st_size, "xxh3": hash_file(p)}
    for d in sorted({p.parent for p in payload.rglob("*")} | {payload}, reverse=True):
        _fsync_dir(d)
    return files


def link_or_copy_tree(src: Path, dst: Path) -> None:
    """Fill ``dst`` with ``src``'s files: hard links where the filesystem allows (no second copy
    of a 0.5 GB policy; entries are never modified in place), else copies."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.rglob("*")):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:  # another filesystem, or links not allowed: copy
            shutil.copy2(p, target)


def manifest_checksum(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return xxhash.xxh3_128(canonical_json(body).encode()).hexdigest()


# ------------------------------------------------------------------------------------- entries
@dataclass
class Entry:
    """A published entry: its folder and its manifest."""

    path: Path
    manifest: dict

    @property
    def digest(self) -> str:
        return self.manifest["key"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def parts(self) -> dict:
        return self.manifest["parts"]

    @property
    def payload(self) -> Path:
        return self.path / PAYLOAD

    @property
    def size(self) -> int:
        return int(self.manifest.get("size", 0))

    @property
    def created(self) -> float:
        return float(self.manifest.get("created_unix", 0.0))

    @property
    def origin(self) -> dict:
        return self.manifest.get("origin") or {}

    @property
    def compute_s(self) -> float | None:
        return self.manifest.get("compute_s")

    @property
    def meta(self) -> dict:
        return self.manifest.get("meta") or {}

    def last_used(self) -> float:
        """When the entry was last read (or published)."""
        try:
            return max(self.created, (self.path / USED).stat().st_mtime)
        except OSError:
            return self.created

    def describe(self) -> str:
        run = self.origin.get("run") or f"{self.origin.get('host', '?')}:{self.origin.get('pid')}"
        return f"{self.kind} {self.digest[:12]} (from {run}, {self.manifest.get('created', '?')})"


def check_entry(folder: Path) -> tuple[dict | None, str | None]:
    """(manifest, None) when the entry at ``folder`` is complete and intact, else
    (manifest or None, what is wrong)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None, "no manifest"
    except (OSError, ValueError) as e:
        return None, f"unreadable manifest ({e})"
    if not isinstance(manifest, dict) or manifest.get("checksum") != manifest_checksum(manifest):
        return None, "manifest checksum mismatch"
    if manifest.get("key") != folder.name:
        return manifest, f"manifest key {manifest.get('key')} != folder {folder.name}"
    payload, want = folder / PAYLOAD, manifest.get("files", {})
    have = {p.relative_to(payload).as_posix() for p in _payload_files(payload)}
    if have != set(want):
        missing, extra = sorted(set(want) - have), sorted(have - set(want))
        return manifest, f"payload files differ (missing {missing[:3]}, unexpected {extra[:3]})"
    for rel, info in want.items():
        p = payload / rel
        try:
            size = p.stat().st_size
            if size != info["size"]:
                return manifest, f"{rel}: size {size} != {info['size']}"
            if hash_file(p) != info["xxh3"]:
                return manifest, f"{rel}: checksum mismatch"
        except OSError as e:  # removed under our feet (prune) or unreadable
            return manifest, f"{rel}: {e}"
    return manifest, None


class ResultStore:
    """A store folder. ``reuse`` / ``publish`` / ``wait`` are the run's policy (store.* knobs),
    read by rft.store.cached; the methods here always work (``rft cache`` uses them).
    ``origin``: what published entries record as their source (the run folder)."""

    def __init__(
        self,
        root: str | Path,
        *,
        reuse: bool = True,
        publish: bool = True,
        wait: bool = True,
        origin: str | None = None,
    ):
        self.root = Path(root).expanduser()
        self.reuse, self.publish, self.wait = reuse, publish, wait
        self.origin = origin
        self.reused: list = []  # rft.store.cached.Reuse records of this run's hits, in order
        base = self.root / LAYOUT
        self.entries_dir, self.tmp_dir, self.locks_dir = (
            base / "entries",
            base / "tmp",
            base / "locks",
        )

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r}, reuse={self.reuse}, publish={self.publish})"

    def entry_dir(self, digest: str) -> Path:
        return self.entries_dir / digest[:2] / digest

    # -------------------------------------------------------------------------------- read
    def get(self, key: Key | str, *, touch: bool = True) -> Entry | None:
        """The verified entry of ``key``, or None (absent, or corrupt: logged, then recomputed
        and replaced by the caller's ``put``)."""
        digest = key.digest if isinstance(key, Key) else key
        folder = self.entry_dir(digest)
        if not folder.is_dir():
            return None
        manifest, problem = check_entry(folder)
        if problem is not None:
            if problem != "no manifest":  # "no manifest": a removal in progress
                log.warning("store: ignoring %s (%s); recomputing it", folder, problem)
            return None
        if touch:
            with contextlib.suppress(OSError):
                (folder / USED).touch()
        return Entry(folder, manifest)

    def scan(self) -> Iterator[tuple[Path, dict | None]]:
        """Every entry folder with its manifest (None where unreadable); not verified."""
        if not self.entries_dir.is_dir():
            return
        for shard in sorted(self.entries_dir.iterdir()):
            if not shard.is_dir():
                continue
            for folder in sorted(shard.iterdir()):
                if not folder.is_dir():
                    continue
                try:
                    manifest = json.loads((folder / MANIFEST).read_text())
                except (OSError, ValueError):
                    manifest = None
                yield folder, manifest if isinstance(manifest, dict) else None

    def entries(self, kind: str | None = None) -> list[Entry]:
        """The entries with a readable manifest (of ``kind`` if given); not verified."""
        return [
            Entry(f, m)
            for f, m in self.scan()
            if m is not None and (kind is None or m.get("kind") == kind)
        ]

    def nearest(self, key: Key) -> tuple[Entry, list[str]] | None:
        """The entry of ``key.kind`` whose components differ from ``key``'s in the fewest places
        (the most recent among equals), with those components' names; None without one."""
        best = None
        for e in self.entries(key.kind):
            d = key.diff(e.parts)
            rank = (len(d), -e.created)
            if best is None or rank < best[0]:
                best = (rank, e, d)
        return None if best is None else (best[1], best[2])

    def explain_miss(self, key: Key) -> str:
        """One line for the log: why ``key`` has no entry, in terms of its components."""
        near = self.nearest(key)
        if near is None:
            return f"no {key.kind} entry in {self.root} yet"
        e, d = near
        if not d:
            return f"entry {e.digest[:12]} has the same components but is not usable"
        return f"the nearest {key.kind} entry ({e.digest[:12]}, {e.origin.get('run', '?')}) differs in {', '.join(d[:8])}"

    # ------------------------------------------------------------------------------- write
    def put(
        self,
        key: Key,
        write: Callable[[Path], None],
        *,
        meta: dict | None = None,
        compute_s: float | None = None,
    ) -> Entry:
        """Publish the result that ``write(payload_dir)`` writes under ``key``; returns the
        entry now at the address (this one, or an intact one another process published first)."""
        digest = key.digest
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        stage = self.tmp_dir / f"{digest}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            (stage / PAYLOAD).mkdir(parents=True)
            write(stage / PAYLOAD)
            files = seal_payload(stage / PAYLOAD)
            now = time.time()
            manifest = {
                "format": 1,
                "key": digest,
                "kind": key.kind,
                "parts": key.parts,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "created_unix": now,
                "origin": self._origin(),
                "compute_s": compute_s,
                "files": files,
                "size": sum(f["size"] for f in files.values()),
                "meta": meta or {},
            }
            manifest["checksum"] = manifest_checksum(manifest)
            with open(stage / MANIFEST, "w") as f:
                f.write(json.dumps(manifest, indent=1, sort_keys=True))
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(stage)
            return self._publish(stage, digest, manifest)
        finally:
            shutil.rmtree(stage, ignore_errors=True)  # gone after a publish; a leftover otherwise

    def _origin(self) -> dict:
        o = {"run": self.origin, "host": socket.gethostname(), "pid": os.getpid()}
        if os.environ.get("SLURM_JOB_ID"):
            o["slurm_job"] = os.environ["SLURM_JOB_ID"]
        return o

    def _publish(self, stage: Path, digest: str, manifest: dict) -> Entry:
        final = self.entry_dir(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                os.rename(stage, final)
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                theirs, problem = check_entry(final)
                if problem is None:  # another process published the same key first: keep it
                    return Entry(final, theirs)
                if problem == "no manifest" and not (final / PAYLOAD).exists():
                    time.sleep(0.05)  # a removal is in progress: let it finish, then retry
                log.warning("store: replacing %s (%s)", final, problem)
                self._discard(final)
                continue
            _fsync_dir(final.parent)
            return Entry(final, manifest)
        raise OSError(f"store: could not publish {final} (another process keeps replacing it)")

    def _discard(self, folder: Path) -> None:
        """Remove an entry folder: first renamed away (atomic: readers miss it from then on)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        trash = self.tmp_dir / f"{folder.name}.removed.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.rename(folder, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def remove(self, entry: Entry | Path) -> None:
        self._discard(entry.path if isinstance(entry, Entry) else Path(entry))

    def leftovers(self, older_than_s: float, now: float | None = None) -> list[Path]:
        """Staging folders and locks untouched for ``older_than_s`` (a killed writer's)."""
        now = time.time() if now is None else now
        out = []
        for d in (self.tmp_dir, self.locks_dir):
            if d.is_dir():
                for p in sorted(d.iterdir()):
                    with contextlib.suppress(OSError):
                        if now - p.stat().st_mtime > older_than_s:
                            out.append(p)
        return out

    # ------------------------------------------------------------------------------- lease
    @contextlib.contextmanager
    def lease(
        self,
        key: Key,
        *,
        wait: bool | None = None,
        poll_s: float = 1.0,
        stale_s: float = 120.0,
        max_wait_s: float | None = None,
    ) -> Iterator[bool]:
        """Hold the right to compute ``key``: yields True when this process should compute it
        (it holds the lock, or does not wait), False when another process published it while
        this one waited (read it with ``get``). See the module docstring."""
        wait = self.wait if wait is None else wait
        try:
            self.locks_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a read-only store: compute without a lock
            log.warning("store: no lock for %s (%s); computing it here", key.describe(), e)
            yield True
            return
        lock = self.locks_dir / f"{key.digest}.lock"
        got = self._acquire(lock, key, wait, poll_s, stale_s, max_wait_s)
        if got != "held":
            yield got == "compute"
            return
        with _holding(lock, stale_s):
            yield True

    def _acquire(
        self, lock: Path, key: Key, wait: bool, poll_s: float, stale_s: float, max_wait_s
    ) -> str:
        """Take ``lock`` ("held"), or decide without it: "compute" (no lock to be had, not
        waiting, or waited long enough) or "published" (another process published the key)."""
        waited_since, last_beat = time.monotonic(), None
        announced = False
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except PermissionError as e:
                log.warning("store: no lock for %s (%s); computing it here", key.describe(), e)
                return "compute"
            except FileExistsError:
                if not wait:
                    return "compute"
                if self.get(key, touch=False) is not None:
                    return "published"
                holder = _read_lock(lock)
                beat = _mtime(lock)
                if beat != (last_beat[0] if last_beat else None):
                    last_beat = (beat, time.monotonic())
                dead = _holder_dead(holder) or (
                    last_beat is not None and time.monotonic() - last_beat[1] > stale_s
                )
                if dead and _read_lock(lock) == holder:  # still the same holder
                    log.warning(
                        "store: taking over the stale lock of %s (%s)", key.describe(), holder
                    )
                    _break_lock(lock)
                    continue
                if max_wait_s is not None and time.monotonic() - waited_since > max_wait_s:
                    return "compute"
                if not announced:
                    log.info(
                        "store: %s is being computed by %s; waiting for it",
                        key.describe(),
                        holder.get("run") or holder,
                    )
                    announced = True
                time.sleep(poll_s)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({**self._origin(), "since": time.time()}, f)
            return "held"


@contextlib.contextmanager
def _holding(lock: Path, stale_s: float) -> Iterator[None]:
    """While the lock is held: its heartbeat (so waiters see the holder alive); then release."""
    stop = threading.Event()
    beater = threading.Thread(target=_heartbeat, args=(lock, stop, stale_s / 4), daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _read_lock(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}


def _mtime(p: Path) -> float | None:
    try:
        return p.stat().st_mtime
    except OSError:
        return None


def _holder_dead(holder: dict) -> bool:
    """Whether the lock's holder is a process of this host that no longer exists."""
    if holder.get("host") != socket.gethostname() or not holder.get("pid"):
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False


def _break_lock(lock: Path) -> None:
    """Remove a stale lock; only one of several waiters doing this at once succeeds in the
    rename, the others find the lock gone, and all race fairly for a new one."""
    aside = lock.with_name(f"{lock.name}.stale.{os.getpid()}.{secrets.token_hex(4)}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(lock, aside)
        aside.unlink()


def _heartbeat(lock: Path, stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        with contextlib.suppress(OSError):
            os.utime(lock)
