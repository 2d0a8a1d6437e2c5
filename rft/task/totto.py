"""ToTTo table-to-text as RL4LMs builds it for GRUE (``ToTTo`` data pool and
``task_utils/totto/preprocess_utils.py``, after google-research/language's ToTTo baseline
preprocessing; docs/grue-tasks.md §1.2).

Given a Wikipedia table, its titles and a set of highlighted cells, write one sentence about the
highlighted cells.

- prompt (``representation=subtable``, every GRUE config) = the highlighted subtable linearised
  twice with no separator, first without and then with the page and section titles:
  ``lin(sub, None, None) + lin(sub, page_title, section_title)``, where ``lin`` writes
  ``<page_title> P </page_title> <section_title> S </section_title> <table> `` (titles only when
  non-empty), then per highlighted cell, in the order of ``highlighted_cells``, ``<cell> v ``,
  its column headers ``<col_header> h </col_header> ``, its row headers
  ``<row_header> h </row_header> `` and ``</cell> ``, and finally ``</table>``;
- headers (``with_heuristic_headers``): a cell's row headers are the header cells left of it in
  its row (raw cell index, row spans ignored); its column headers are the header cells of every
  row above it whose column span, offset by the spans of the cells before them in their row,
  overlaps the cell's own;
- ``representation=fulltable``: every cell, ``<row> ... </row>`` per row, the highlighted ones in
  ``<highlighted_cell> ... </highlighted_cell> `` (RL4LMs' unused alternative);
- references = every annotation's ``final_sentence`` (1 in train, up to 3 in dev); the raw hub row
  is kept in ``meta["raw_table"]`` with ``sentence_annotations`` as a list of dicts and
  ``overlap_subset`` as a bool (what PARENT and ToTTo's BLEU read: rft.metrics.totto);
- splits: the hub's train / validation / test. **The test references are hidden** (the hub's
  test rows have no annotations; RL4LMs sets them to ``[""]``), so reference-based scores mean
  something only on the dev set: where the test split has no references, test = the validation
  split (the ToTTo dev set, on which GRUE's ToTTo numbers must have been computed), with a
  warning. A copy whose test rows carry references keeps its test split;
- lengths: prompts ≤ 512 tokens, cut on the LEFT (GRUE sets no truncation side for ToTTo, and
  RL4LMs' default keeps the end of the prompt), 10-50 new tokens.

Data: ``datasets.load_dataset("google-research-datasets/totto")`` (RL4LMs: ``totto``), or a local
folder with the hub's files, or the release's JSON lines (``totto_train_data.jsonl``,
``totto_dev_data.jsonl``, ``unlabeled_totto_test_data.jsonl``): ``task.data_dir`` or
$RFT_DATA_DIR holding ``totto/``.

Data: Parikh et al., "ToTTo: A Controlled Table-To-Text Generation Dataset", EMNLP 2020.
"""

from __future__ import annotations

import copy
import logging

from rft.config import choice
from rft.errors import DataError
from rft.task.base import Example, Task, data_folder, load_hub_dataset
from rft.task.files import columns, hub_rows, read_split, require_columns, split_files

log = logging.getLogger(__name__)

FOLDER = "totto"
COLUMNS = ("table", "highlighted_cells", "table_page_title", "table_section_title")
FILES = "the hub's {train,validation,test} files or totto_{train,dev}_data.jsonl"


# ------------------------------------------------------------------ linearisation (pure)
def adjusted_col_offsets(table: list[list[dict]]) -> list[list[tuple[int, int]]]:
    """(start, end) of every cell in column units: the spans of the cells before it in its row
    added up; row spans are ignored (as the ToTTo baseline does)."""
    out = []
    for row in table:
        start, spans = 0, []
        for cell in row:
            spans.append((start, start + int(cell["column_span"])))
            start += int(cell["column_span"])
        out.append(spans)
    return out


def row_headers(table, offsets, r: int, c: int) -> list[dict]:
    """The header cells left of cell (r, c) in its row, in order."""
    return [table[r][i] for i in range(c) if table[r][i]["is_header"]]


def col_headers(table, offsets, r: int, c: int) -> list[dict]:
    """The header cells of the rows above r whose adjusted span overlaps cell (r, c)'s."""
    start, end = offsets[r][c]
    return [
        cell
        for rr in range(r)
        for cell, (s, e) in zip(table[rr], offsets[rr])
        if s < end and e > start and cell["is_header"]
    ]


def highlighted_subtable(table, cells) -> list[dict]:
    """Each highlighted cell with its heuristic row and column headers, in the given order."""
    offsets = adjusted_col_offsets(table)
    return [
        {
            "cell": table[r][c],
            "row_headers": row_headers(table, offsets, r, c),
            "col_headers": col_headers(table, offsets, r, c),
        }
        for r, c in cells
    ]


def _titles(page_title, section_title) -> str:
    out = f"<page_title> {page_title} </page_title> " if page_title else ""
    return out + (f"<section_title> {section_title} </section_title> " if section_title else "")


def _cell(value: str, cols: list[dict], rows: list[dict], tag: str = "cell") -> str:
    out = f"<{tag}> {value} "
    out += "".join(f"<col_header> {h['value']} </col_header> " for h in cols)
    out += "".join(f"<row_header> {h['value']} </row_header> " for h in rows)
    return out + f"</{tag}> "


def linearize_subtable(subtable, page_title=None, section_title=None) -> str:
    """The highlighted cells with their headers as one string (module docstring)."""
    body = "".join(
        _cell(item["cell"]["value"], item["col_headers"], item["row_headers"]) for item in subtable
    )
    return f"{_titles(page_title, section_title)}<table> {body}</table>"


def linearize_full_table(table, cells, page_title=None, section_title=None) -> str:
    """Every cell, row by row, the highlighted ones marked (``representation=fulltable``)."""
    offsets = adjusted_col_offsets(table)
    marked = {(int(r), int(c)) for r, c in cells}
    rows = ""
    for r, row in enumerate(table):
        items = "".join(
            _cell(
                cell["value"],
                col_headers(table, offsets, r, c),
                row_headers(table, offsets, r, c),
                "highlighted_cell" if (r, c) in marked else "cell",
            )
            for c, cell in enumerate(row)
        )
        rows += f"<row> {items}</row> "
    return f"{_titles(page_title, section_title)}<table> {rows}</table>"


def totto_prompt(row: dict, representation: str = "subtable") -> str:
    """GRUE's prompt of one ToTTo row: the linearisation without, then with, the titles."""
    table, cells = row["table"], [tuple(c) for c in row["highlighted_cells"]]
    page, section = row["table_page_title"], row["table_section_title"]
    if representation == "fulltable":
        return linearize_full_table(table, cells) + linearize_full_table(
            table, cells, page, section
        )
    sub = highlighted_subtable(table, cells)
    return linearize_subtable(sub) + linearize_subtable(sub, page, section)


def raw_table(row: dict) -> dict:
    """The row as RL4LMs keeps it in ``meta_data["raw_table"]``: ``sentence_annotations`` as a
    list of dicts, ``overlap_subset`` a bool (the hub stores the string "True" / "False")."""
    out = copy.deepcopy(dict(row))
    out["sentence_annotations"] = columns(row.get("sentence_annotations"))
    flag = row.get("overlap_subset")
    out["overlap_subset"] = flag is True or str(flag) == "True"
    out["highlighted_cells"] = [[int(r), int(c)] for r, c in row["highlighted_cells"]]
    return out


# ------------------------------------------------------------------------------------ task
class TottoTask(Task):
    name = "totto"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        super().__init__(cfg)
        folder, looked_in = data_folder(cfg, FOLDER, lambda p: bool(split_files(p, "train")))
        splits = ("train", "validation", "test")
        if folder is not None:
            rows = {s: read_split(folder, s, "ToTTo") for s in splits[:2]}
            rows["test"] = (
                read_split(folder, "test", "ToTTo") if split_files(folder, "test") else []
            )
        else:
            ds = load_hub_dataset(cfg.hub_id, FOLDER, None, FILES, looked_in)
            rows = {s: hub_rows(ds, s, cfg.hub_id) if s in ds else [] for s in splits}
        rep = choice(cfg.representation)
        self.train, self.val, test = ([self._example(*r, rep) for r in rows[s]] for s in splits)
        for data in (self.train, self.val):
            empty = [e for e in data if not e.references]
            if empty:
                raise DataError(
                    f"{empty[0].meta['where']}: no final_sentence in its "
                    "sentence_annotations; every train and validation example needs one. Copy the "
                    "hub's files again."
                )
        if not any(e.references for e in test):
            log.warning(
                "ToTTo: the test split has no references (hidden by the benchmark); task.test = "
                "the validation (dev) split, %d examples, as GRUE's ToTTo numbers are dev numbers.",
                len(self.val),
            )
            test = self.val
        self.test = test
        self.check()

    def _example(self, where: str, row: dict, representation: str) -> Example:
        require_columns(row, COLUMNS, where)
        table = row["table"]
        for r, c in row["highlighted_cells"]:
            if not (0 <= r < len(table) and 0 <= c < len(table[r])):
                raise DataError(
                    f"{where}: highlighted cell [{r}, {c}] is outside the table "
                    f"({len(table)} rows). Copy the hub's files again."
                )
        meta_row = raw_table(row)
        refs = [a["final_sentence"] for a in meta_row["sentence_annotations"]]
        meta = {"raw_table": meta_row, "where": where}
        prompt = totto_prompt(row, representation)
        return Example(prompt, reference=refs[0] if refs else None, meta=meta, references=refs)
