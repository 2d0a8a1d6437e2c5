"""A local copy of a hub dataset: the data files the hub serves, read without the hub.

The GRUE tasks (rft.task.cnn_dailymail, totto, iwslt2017, daily_dialog) load their data with
``datasets.load_dataset(hub_id, config)`` where a network is there (``task.source=hub``). Offline,
``task.data_dir`` names a folder holding the same files the hub repository holds: its Parquet
shards (``3.0.0/train-00000-of-00003.parquet``, ``data/validation-00000-of-00001.parquet``), the
``refs/convert/parquet`` export of a script dataset (``iwslt2017-de-en/test/0000.parquet``) or
JSON-lines files with the same columns. A file belongs to a split when a part of its path (a
folder name, or a ``-``/``_``/``.`` separated piece of its file name) is one of that split's
names, e.g. ``totto_dev_data.jsonl`` for ``validation`` (alias ``dev``).

Rows come back as plain dicts with the hub's columns. Nested columns read from Parquet keep
Arrow's shape (a list of structs is a list of dicts); ``datasets`` turns a ``Sequence`` of dicts
into a dict of lists instead, so a task that reads such a column accepts both (``columns``).
"""

from __future__ import annotations

import re
from pathlib import Path

from rft.errors import DataError
from rft.task.base import read_jsonl_objects

SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".json")
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "dev", "valid"),
    "test": ("test",),
}
_PIECES = re.compile(r"[-_.]")


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def split_files(folder: Path, split: str) -> list[Path]:
    """The data files of ``split`` under ``folder`` (searched recursively), in name order."""
    names = SPLIT_ALIASES.get(split, (split,))
    out = []
    for path in sorted(folder.rglob("*")):
        suffix = _suffix(path)
        if suffix is None or not path.is_file():
            continue
        rel = path.relative_to(folder)
        pieces = [*rel.parts[:-1], *_PIECES.split(rel.name[: -len(suffix)].lower())]
        if any(n in pieces for n in names):
            out.append(path)
    return out


def read_rows(path: Path) -> list[dict]:
    """Every row of one Parquet or JSON-lines file, as dicts. A file that cannot be read is a
    DataError naming it."""
    if _suffix(path) == ".parquet":
        try:
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 - a damaged file: name it
            raise DataError(
                f"{path}: not a readable Parquet file ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}). Copy it again from the hub."
            ) from None
    return [row for _, row in read_jsonl_objects(path)]


def read_split(folder: Path, split: str, what: str) -> list[tuple[str, dict]]:
    """(where, row) for every row of ``split`` in ``folder``, where = "<file> row <i>" for
    messages; no file for the split is a DataError naming the folder and the file names looked
    for (``what``: the task's name for messages)."""
    files = split_files(folder, split)
    if not files:
        names = "/".join(SPLIT_ALIASES.get(split, (split,)))
        raise DataError(
            f"task.data_dir={str(folder)!r}: no {what} file for the {split!r} split (looked for "
            f"*.parquet / *.jsonl files whose name or folder says {names}, e.g. "
            f"{split}-00000-of-00001.parquet, as the hub repository holds them). Copy the hub's "
            "data files into that folder."
        )
    rows: list[tuple[str, dict]] = []
    for path in files:
        rows += [(f"{path} row {i}", row) for i, row in enumerate(read_rows(path))]
    if not rows:
        raise DataError(f"{files[0]}: no rows (the {split!r} split of {what} is empty).")
    return rows


def hub_rows(ds, split: str, hub_id: str) -> list[tuple[str, dict]]:
    """(where, row) for every row of a hub split, as ``read_split`` gives a local one."""
    return [(f"hub:{hub_id}/{split} row {i}", row) for i, row in enumerate(ds[split])]


def require_columns(row: dict, columns: tuple[str, ...], where: str) -> None:
    """A row missing a column the task reads is a DataError naming it and the columns found."""
    missing = [c for c in columns if c not in row]
    if missing:
        raise DataError(
            f"{where}: no column {missing[0]!r} (columns: {sorted(row)}). The files must hold the "
            f"hub dataset's columns ({', '.join(columns)})."
        )


def columns(value) -> list[dict]:
    """A ``Sequence`` of dicts as a list of dicts, whether it came as one (Parquet, JSON) or
    as a dict of lists (``datasets``)."""
    if isinstance(value, dict):
        keys = list(value)
        n = len(value[keys[0]]) if keys else 0
        return [{k: value[k][i] for k in keys} for i in range(n)]
    return list(value or [])
