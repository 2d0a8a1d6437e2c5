"""Small made-up copies of the five GRUE datasets in the files' real layouts (the hub's Parquet
shards, JSON lines, UnifiedQA's TSVs, DailyDialog's release text files), written by the tests
themselves into a temporary folder: no third-party text is committed."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------- CNN/DailyMail
CNN = {
    "train": [
        {
            "article": "The town fair opened on Monday . Crowds came early .",
            "highlights": "Fair opens .\nCrowds early .",
            "id": "a1",
        },
        {
            "article": "A cat climbed the old oak tree .",
            "highlights": "Cat climbs tree .",
            "id": "a2",
        },
        {"article": "Rain fell all week in the valley .", "highlights": "A wet week .", "id": "a3"},
    ],
    "validation": [
        {
            "article": "The bridge will close for repairs .",
            "highlights": "Bridge closes .",
            "id": "v1",
        }
    ],
    "test": [
        {"article": "A new library opened downtown .", "highlights": "Library opens .", "id": "t1"}
    ],
}


def write_cnn(root: Path) -> Path:
    """``root/cnn_dailymail/3.0.0/<split>-0000i-of-0000n.parquet`` as the hub repository holds
    them, the train split in two shards."""
    d = root / "cnn_dailymail" / "3.0.0"
    write_parquet(d / "train-00000-of-00002.parquet", CNN["train"][:2])
    write_parquet(d / "train-00001-of-00002.parquet", CNN["train"][2:])
    write_parquet(d / "validation-00000-of-00001.parquet", CNN["validation"])
    write_parquet(d / "test-00000-of-00001.parquet", CNN["test"])
    return root


# --------------------------------------------------------------------------------- ToTTo
def cell(value: str, header: bool = False, span: int = 1) -> dict:
    return {"column_span": span, "is_header": header, "row_span": 1, "value": value}


def annotations(*finals: str) -> list[dict]:
    return [
        {
            "original_sentence": f"orig {f}",
            "sentence_after_deletion": f,
            "sentence_after_ambiguity": f,
            "final_sentence": f,
        }
        for f in finals
    ]


FILMOGRAPHY = [
    [cell("Year", True), cell("Title", True), cell("Role", True)],
    [cell("2005"), cell("Film X"), cell("Lead")],
]
# a spanning header ("Stats" over two columns) and a row header ("2001")
SEASONS = [
    [cell("Season", True), cell("Stats", True, 2)],
    [cell("Team", True), cell("Goals", True), cell("Apps", True)],
    [cell("2001", True), cell("Foo FC"), cell("12"), cell("30")],
]


def totto_row(table, cells, page, section, finals, overlap="True", section_text="") -> dict:
    return {
        "id": 0,
        "table_page_title": page,
        "table_webpage_url": "http://example.org",
        "table_section_title": section,
        "table_section_text": section_text,
        "table": table,
        "highlighted_cells": cells,
        "example_id": "1",
        "sentence_annotations": annotations(*finals),
        "overlap_subset": overlap,
    }


TOTTO = {
    "train": [
        totto_row(
            FILMOGRAPHY,
            [[1, 0], [1, 2]],
            "Jane Doe",
            "Filmography",
            ["Jane Doe played the lead in 2005."],
        ),
        totto_row(SEASONS, [[2, 2]], "Foo FC", "", ["Foo FC scored 12 goals in 2001."]),
    ],
    "validation": [
        totto_row(SEASONS, [[2, 1], [2, 3]], "", "Stats", ["A.", "B.", "C."], overlap="False"),
    ],
    "test": [  # the hub hides the test references
        {
            **totto_row(FILMOGRAPHY, [[1, 1]], "Jane Doe", "Filmography", []),
            "overlap_subset": "none",
        }
    ],
}


def write_totto(root: Path) -> Path:
    d = root / "totto" / "data"
    for split, rows in TOTTO.items():
        write_parquet(d / f"{split}-00000-of-00001.parquet", rows)
    return root


# ---------------------------------------------------------------------------- NarrativeQA
SUMMARY = "Bob is a cat. He likes fish."  # one line, as UnifiedQA writes it
NQA = {
    "train.tsv": [
        ("Who is Bob?", SUMMARY, "A cat"),
        ("Who is Bob?", SUMMARY, "Bob is a cat "),
        ("What does Bob like?", SUMMARY, "Fish"),
        ("What does Bob like?", SUMMARY, "fish."),
    ],
    "dev.tsv": [
        ("Where is Ann?", "Ann is at home.", "At home"),
        ("Where is Ann?", "Ann is at home.", "home"),
    ],
    "test.tsv": [
        ("Is it late?", "It is late.", "Yes"),
        ("Is it late?", "It is late.", "yes it is"),
    ],
}


def write_narrative_qa(root: Path) -> Path:
    """UnifiedQA's lines: f"{question} \\\\n {summary} \\t {answer} \\n" (backslash-n literal)."""
    d = root / "narrative_qa"
    d.mkdir(parents=True, exist_ok=True)
    for name, rows in NQA.items():
        (d / name).write_text("".join(f"{q} \\n {s} \t {a} \n" for q, s, a in rows))
    return root


# ----------------------------------------------------------------------------- IWSLT2017
IWSLT = {
    "train": [
        {"translation": {"de": "Guten Morgen.", "en": "Good morning."}},
        {"translation": {"de": "Danke schön.", "en": "Thank you very much."}},
    ],
    "validation": [{"translation": {"de": "Hallo Welt.", "en": "Hello world."}}],
    "test": [{"translation": {"de": "Bis morgen.", "en": "See you tomorrow."}}],
}


def write_iwslt(root: Path) -> Path:
    """The layout of the hub's Parquet export of the loading script:
    ``iwslt2017-de-en/<split>/0000.parquet``."""
    d = root / "iwslt2017" / "iwslt2017-de-en"
    for split, rows in IWSLT.items():
        write_parquet(d / split / "0000.parquet", rows)
    return root


# ---------------------------------------------------------------------------- DailyDialog
DIALOGS = {
    "train": [
        # 7 turns: turns 5 and 6 are targets with context_size 5
        (
            [
                "Hi .",
                "Hello !",
                "How are you ?",
                "Fine , thanks .",
                "Good .",
                "Want tea ?",
                "Yes please .",
            ],
            [2, 1, 2, 1, 1, 3, 4],
            [0, 0, 0, 4, 0, 0, 4],
        ),
        # 5 turns: no target
        (["A .", "B .", "C .", "D .", "E ."], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]),
        (["u0", "u1", "u2", "u3", "u4", "u5"], [1, 2, 3, 4, 1, 2], [1, 2, 3, 4, 5, 6]),
    ],
    "validation": [(["v0", "v1", "v2", "v3", "v4", "v5"], [1, 1, 1, 1, 1, 3], [0, 0, 0, 0, 0, 0])],
    "test": [(["t0", "t1", "t2", "t3", "t4", "t5"], [1, 1, 1, 1, 1, 4], [0, 0, 0, 0, 0, 0])],
}


def release_lines(dialogs) -> dict[str, str]:
    """The release's three files for one split: ' __eou__ ' after every utterance (its spacing),
    labels each followed by a space."""
    text = act = emo = ""
    for turns, acts, emotions in dialogs:
        text += "".join(f"{t} __eou__ " for t in turns) + "\n"
        act += "".join(f"{a} " for a in acts) + "\n"
        emo += "".join(f"{e} " for e in emotions) + "\n"
    return {"dialogues": text, "dialogues_act": act, "dialogues_emotion": emo}


def write_daily_dialog(root: Path) -> Path:
    for split, dialogs in DIALOGS.items():
        d = root / "daily_dialog" / split
        d.mkdir(parents=True, exist_ok=True)
        for stem, text in release_lines(dialogs).items():
            (d / f"{stem}_{split}.txt").write_text(text)
    return root


def hub_dialog_rows(dialogs) -> list[dict]:
    """What the hub's loading script yields for the release lines above."""
    rows = []
    for turns, acts, emotions in dialogs:
        line = "".join(f"{t} __eou__ " for t in turns) + "\n"
        rows.append({"dialog": line.split("__eou__")[:-1], "act": acts, "emotion": emotions})
    return rows


def columns_of(row: dict) -> list[dict]:
    """A ToTTo row's sentence annotations as a list of dicts."""
    from rft.task.files import columns

    return columns(row["sentence_annotations"])
