"""Files rft writes and reads back: atomic writes and history.jsonl.

Every file a later run (a resume, ``rft report``, a sweep job sharing a cache) reads is written
under a temporary name in the same folder and renamed into place, so a kill or a full disk at
any moment leaves either the old or the new complete file, never a half-written one. The
temporary name carries the process id: ranks or jobs writing the same file at once never share
a temporary file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
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

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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
    """One JSON row at the end of a JSON-lines file (a kill cuts at most this line)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def truncate_history(path: str | Path, last_step: int) -> None:
    """Drop the rows of ``path`` whose ``iteration`` is past ``last_step`` (a resumed run
    recomputes them); atomic."""
    path = Path(path)
    if not path.is_file():
        return
    rows = [r for r in read_history(path) if r.get("iteration", 0) <= last_step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
