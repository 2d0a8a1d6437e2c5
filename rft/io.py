"""Files rft writes and reads back: atomic writes, history.jsonl, and a full disk.

Every file a later run (a resume, ``rft report``, a sweep job sharing a cache) reads is written
under a temporary name in the same folder and renamed into place, so a kill or a full disk at
any moment leaves either the old or the new complete file, never a half-written one. The
temporary name carries the process id: ranks or jobs writing the same file at once never share
a temporary file.

A full disk during any of these writes (a checkpoint, the policy export, evaluation files,
history.jsonl, metrics.json) is one ``DiskFullError`` that names the folder and the last
checkpoint, whatever the writer raised: an ``OSError`` (ENOSPC), safetensors' own error, or
torch's ``RuntimeError`` (``torch.save`` reports a failed write without its errno).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rft.errors import DiskFullError

# ------------------------------------------------------------------------------ a full disk
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# what writers that do not raise an OSError say: safetensors ("I/O error: No space left on
# device (os error 28)"), Rust and C++ layers quoting strerror
DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "os error 28", "os error 122")
# torch.save into a path fails in its C++ zip writer with only "unexpected pos ..." or
# "iostream error": a full disk is then told apart from other failures by the free space left
TORCH_WRITER_TEXT = (
    "inline_container",
    "pytorchstreamwriter",
    "iostream error",
    "file write failed",
)
NEARLY_FULL = 1 << 20  # bytes: a write that failed with less than this free ran out of space


def is_disk_full(exc: BaseException, folder: str | Path | None = None) -> bool:
    """Whether ``exc`` (or an exception in its cause / context chain) says the disk is full.

    ``folder``: where the failed write went. Only with it does a bare torch writer failure
    count, and only when that folder's file system has (almost) no free space left; any other
    RuntimeError is not a full disk.
    """
    seen: set[int] = set()
    chain: list[BaseException | None] = [exc]
    torch_writer = False
    while chain:
        e = chain.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return True
        text = str(e).lower()
        if any(t in text for t in DISK_FULL_TEXT):
            return True
        torch_writer |= isinstance(e, RuntimeError) and any(t in text for t in TORCH_WRITER_TEXT)
        chain += [e.__cause__, e.__context__]
    if torch_writer and folder is not None:
        try:
            return shutil.disk_usage(_existing(Path(folder))).free < NEARLY_FULL
        except OSError:
            return False
    return False


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def format_bytes(n: float) -> str:
    """``26.3 MiB``, ``1.6 GiB``: binary units, three significant figures at most.

    >>> format_bytes(27_577_000), format_bytes(1.6 * 1024**3), format_bytes(512)
    ('26.3 MiB', '1.6 GiB', '512 B')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" or abs(n) >= 100 else f"{n:.3g} {unit}"


def last_checkpoint(path: str | Path) -> tuple[Path, int] | None:
    """(state.ckpt, step) of the run folder a written file belongs to: the nearest of the
    file's folder and its two parents that holds ``checkpoints/state.json`` (the file itself
    may be in ``checkpoints/``). None before the first save."""
    folder = Path(path).parent
    for d in [folder, *list(folder.parents)[:2]]:
        meta = d / "state.json" if d.name == "checkpoints" else d / "checkpoints" / "state.json"
        if meta.is_file():
            try:
                return meta.parent / "state.ckpt", int(json.loads(meta.read_text())["step"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
    return None


def disk_full_error(path: str | Path, what: str = "", need: int | None = None) -> DiskFullError:
    """The one message of a full disk: the folder, what was written, the last checkpoint (intact:
    saves are atomic) and that the same command resumes from it once there is room."""
    path = Path(path)
    found = last_checkpoint(path)
    kept = (
        f"the previous checkpoint ({found[0]}, step {found[1]}) is intact"
        if found
        else "no checkpoint had been written yet, so a rerun starts from the beginning"
    )
    size = f" (one save needs about {format_bytes(need)})" if need else ""
    return DiskFullError(
        f"no space left on the device while writing {what or path.name} in {path.parent}"
        f"{size}; {kept}. Free some space there (old outputs/ and multirun/ folders each hold "
        "a checkpoints/state.ckpt) and rerun the same command: it resumes from the last "
        "complete checkpoint."
    )


@contextlib.contextmanager
def disk_full_as_error(path: str | Path, what: str = "", need: int | None = None) -> Iterator[None]:
    """Turn a full disk while writing ``path`` into one DiskFullError; anything else passes."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:
        if is_disk_full(e, Path(path).parent):
            raise disk_full_error(path, what, need) from None
        raise


def ensure_dir(folder: str | Path, key: str) -> Path:
    """``folder`` created (with its parents) for the setting ``key`` that names it; a folder
    that cannot be made (a file in the way, no permission, a read-only or full disk) is one
    ConfigError naming the key, not an OSError from deep inside a run."""
    from rft.errors import ConfigError

    folder = Path(folder).expanduser()
    with disk_full_as_error(folder / ".", f"{folder.name}/"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if e.errno in DISK_FULL_ERRNOS:
                raise
            raise ConfigError(
                f"{key}={str(folder)!r}: the folder cannot be created ({e.strerror or e}: "
                f"{e.filename or folder}). Point {key} at a folder you can write to."
            ) from None
    return folder


# ------------------------------------------------------------------------------ atomic writes
def temp_sibling(path: Path) -> Path:
    """The temporary name ``path`` is written under before the rename: ``.<name>.tmp-<pid>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, commit: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success rename it onto ``path``.

    On an exception the temporary file is removed (a half-written file only takes space) and the
    exception propagates; ``path`` is untouched. ``commit=False`` writes nothing into place
    (DDP ranks other than 0 take part in a collective save but do not own the file)."""
    path = Path(path)
    with disk_full_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
    except BaseException as e:
        # before the temporary file is removed: a torch writer failure is told apart from a
        # full disk by the space left (rft.io.is_disk_full)
        full = isinstance(e, Exception) and not isinstance(e, DiskFullError)
        full = full and is_disk_full(e, path.parent)
        tmp.unlink(missing_ok=True)
        if full:
            raise disk_full_error(path) from None
        raise
    if commit:
        os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj: Any, **dumps_kwargs) -> None:
    """JSON to ``path`` atomically; ``dumps_kwargs`` go to json.dumps (default: indent=1,
    sorted keys, as metrics.json has always been written)."""
    kwargs = {"indent": 1, "sort_keys": True, **dumps_kwargs}
    write_text_atomic(path, json.dumps(obj, **kwargs))


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    import torch  # only the writers of tensors need it

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # a file object, not the path: torch's own writer then fails on a full disk with the
        # OSError (ENOSPC) in the exception's context, not a bare "unexpected pos" RuntimeError
        torch.save(obj, f)


@contextlib.contextmanager
def atomic_dir(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success swap it in for ``folder``.

    A kill at any moment leaves either the old or the new complete folder (the old one is
    ``<folder>.old`` during the swap); on an exception the temporary folder is removed."""
    folder = Path(folder)
    tmp = temp_sibling(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
    except BaseException as e:
        full = isinstance(e, Exception) and not isinstance(e, DiskFullError)
        full = full and is_disk_full(e, folder.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full_error(folder, f"{folder.name}/") from None
        raise
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------ history.jsonl
def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (history.jsonl, diagnostics.jsonl); [] when it is absent.

    Blank lines and a line cut by a kill (or still being written by a running job) are skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """One JSON row at the end of a JSON-lines file (a kill cuts at most this line). A write
    that fails (a full disk) is undone: the file is cut back to its earlier rows, so a resumed
    run appends after a complete line."""
    data = (json.dumps(row) + "\n").encode()
    with disk_full_as_error(path):
        # unbuffered: a failed write is seen here, not again when a buffer is flushed at close
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)


def truncate_history(path: str | Path, last_step: int) -> None:
    """Drop the rows of ``path`` whose ``iteration`` is past ``last_step`` (a resumed run
    recomputes them); atomic."""
    path = Path(path)
    if not path.is_file():
        return
    rows = [r for r in read_history(path) if r.get("iteration", 0) <= last_step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
