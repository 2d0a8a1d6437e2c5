"""The five other GRUE tasks (rft.task.cnn_dailymail, totto, narrative_qa, iwslt2017,
daily_dialog): prompts and references from made-up fixtures in the files' real layouts equal
what RL4LMs' data pools build (hand-built expected rows), the hub path, and one clear error for
missing data and bad files."""

from __future__ import annotations

import logging
import pickle
import sys
import types

import pytest

from rft.errors import ConfigError, DataError, instantiate
from rft.task.base import ReferenceList
from tests.conftest import compose_cfg
from tests.task import grue_fixtures as fx


def task(name: str, *overrides: str):
    return instantiate(compose_cfg(f"task={name}", *overrides).task, _convert_="none")


def fake_hub(monkeypatch, data=None, error: Exception | None = None) -> list:
    """``datasets.load_dataset`` replaced: returns ``data`` (split -> rows) or raises ``error``;
    the calls' arguments are recorded."""
    calls = []

    def load_dataset(*args):
        calls.append(args)
        if error is not None:
            raise error
        return data

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


# ------------------------------------------------------------------------- CNN/DailyMail
def test_cnn_dailymail_prompts_references_and_lengths(tmp_path):
    t = task("cnn_dailymail", f"task.data_dir={fx.write_cnn(tmp_path)}")
    assert (len(t.train), len(t.val), len(t.test)) == (3, 1, 1)  # both train shards, in order
    e = t.train[0]
    assert e.prompt == "Summarize: The town fair opened on Monday . Crowds came early ."
    assert e.references == ["Fair opens .\nCrowds early ."] and e.reference == e.references[0]
    assert t.train[2].prompt == "Summarize: Rain fell all week in the valley ."
    assert t.val[0].references == ["Bridge closes ."] and t.test[0].meta["id"] == "t1"
    assert (t.prompt_max_tokens, t.prompt_truncation) == (512, "right")
    assert (t.max_new_tokens, t.min_new_tokens) == (100, 50)
    assert [p.prompt for p in t.sft_pairs()] == [e.prompt for e in t.train]


def test_cnn_dailymail_from_the_hub(monkeypatch, tmp_path):
    calls = fake_hub(monkeypatch, fx.CNN)
    monkeypatch.delenv("RFT_DATA_DIR", raising=False)
    t = task("cnn_dailymail")
    assert calls == [("abisee/cnn_dailymail", "3.0.0")]
    assert t.train[1].prompt == "Summarize: A cat climbed the old oak tree ."
    assert t.test[0].references == ["Library opens ."]


@pytest.mark.parametrize(
    "name,hub,folder",
    [
        ("cnn_dailymail", r"'abisee/cnn_dailymail' \('3.0.0'\)", "cnn_dailymail"),
        ("totto", r"'google-research-datasets/totto'", "totto"),
        ("iwslt2017", r"'IWSLT/iwslt2017' \('iwslt2017-de-en'\)", "iwslt2017"),
        ("daily_dialog", r"'li2017dailydialog/daily_dialog'", "daily_dialog"),
    ],
)
def test_no_data_and_no_network_is_one_error_naming_folder_and_hub_id(
    monkeypatch, tmp_path, name, hub, folder
):
    fake_hub(monkeypatch, error=ConnectionError("offline"))
    monkeypatch.delenv("RFT_DATA_DIR", raising=False)
    with pytest.raises(
        DataError,
        match=rf"could not load the dataset {hub} from the hub \(ConnectionError: offline\)\. "
        rf"Without a network.*RFT_DATA_DIR=<folder holding {folder}/> or "
        rf"task.data_dir=<the {folder} folder>, holding",
    ):
        task(name)
    # a data folder (e.g. the one holding imdb/) without this task's files: the same error,
    # saying where it looked
    monkeypatch.setenv("RFT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=rf"No local copy in {tmp_path}/{folder} or {tmp_path}\."):
        task(name)


def test_source_local_without_the_files_names_the_folder(tmp_path):
    with pytest.raises(
        DataError, match=rf"task.source=local: no cnn_dailymail files in {tmp_path}"
    ):
        task("cnn_dailymail", f"task.data_dir={tmp_path}", "task.source=local")


def test_cnn_dailymail_bad_files_are_named(tmp_path):
    root = fx.write_cnn(tmp_path)
    d = root / "cnn_dailymail" / "3.0.0"
    (d / "test-00000-of-00001.parquet").unlink()
    with pytest.raises(DataError, match=r"no CNN/DailyMail file for the 'test' split.*test-00000"):
        task("cnn_dailymail", f"task.data_dir={root}")
    fx.write_parquet(d / "test-00000-of-00001.parquet", [{"text": "x", "summary": "y"}])
    with pytest.raises(
        DataError, match=r"row 0: no column 'article' \(columns: \['summary', 'text'\]\)"
    ):
        task("cnn_dailymail", f"task.data_dir={root}")
    (d / "test-00000-of-00001.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"test-00000-of-00001.parquet: not a readable Parquet"):
        task("cnn_dailymail", f"task.data_dir={root}")


# --------------------------------------------------------------------------------- ToTTo
SUB_JANE = (
    "<table> <cell> 2005 <col_header> Year </col_header> </cell> "
    "<cell> Lead <col_header> Role </col_header> </cell> </table>"
)
SUB_SEASON = (
    "<table> <cell> 12 <col_header> Stats </col_header> <col_header> Apps </col_header> "
    "<row_header> 2001 </row_header> </cell> </table>"
)
SUB_VAL = (  # "30" sits right of every header span of the rows above: no column header
    "<table> <cell> Foo FC <col_header> Stats </col_header> <col_header> Goals </col_header> "
    "<row_header> 2001 </row_header> </cell> <cell> 30 <row_header> 2001 </row_header> </cell> "
    "</table>"
)


def test_totto_linearisation_with_highlighted_cells_and_headers(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        t = task("totto", f"task.data_dir={fx.write_totto(tmp_path)}")
    # grue-tasks.md §1.2's toy table, verbatim: the subtable without, then with, the titles
    assert t.train[0].prompt == (
        "<table> <cell> 2005 <col_header> Year </col_header> </cell> <cell> Lead <col_header> "
        "Role </col_header> </cell> </table><page_title> Jane Doe </page_title> <section_title> "
        "Filmography </section_title> <table> <cell> 2005 <col_header> Year </col_header> "
        "</cell> <cell> Lead <col_header> Role </col_header> </cell> </table>"
    )
    titles = "<page_title> Jane Doe </page_title> <section_title> Filmography </section_title> "
    assert t.train[0].prompt == SUB_JANE + titles + SUB_JANE
    # a header spanning two columns, a row header, an empty section title left out
    assert t.train[1].prompt == SUB_SEASON + "<page_title> Foo FC </page_title> " + SUB_SEASON
    assert t.val[0].prompt == SUB_VAL + "<section_title> Stats </section_title> " + SUB_VAL
    assert t.train[0].references == ["Jane Doe played the lead in 2005."]
    assert t.val[0].references == ["A.", "B.", "C."]
    raw = t.val[0].meta["raw_table"]
    assert raw["overlap_subset"] is False and t.train[0].meta["raw_table"]["overlap_subset"] is True
    assert raw["sentence_annotations"][1]["final_sentence"] == "B."
    # the test references are hidden: the final evaluation scores the dev set, and says so
    assert t.test is t.val and "test split has no references" in caplog.text
    assert (t.prompt_max_tokens, t.prompt_truncation) == (512, "left")
    assert (t.max_new_tokens, t.min_new_tokens) == (50, 10)
    # what a reward gets: the references, carrying the table (PARENT reads it)
    refs = t.val[0].reward_references
    assert isinstance(refs, ReferenceList) and refs == ["A.", "B.", "C."]
    assert refs.meta["raw_table"]["table_section_title"] == "Stats"
    assert pickle.loads(pickle.dumps(refs)).meta == refs.meta


def test_totto_fulltable_and_the_hub_shape(monkeypatch, tmp_path):
    t = task("totto", f"task.data_dir={fx.write_totto(tmp_path)}", "task.representation=fulltable")
    full = (
        "<table> <row> <cell> Year </cell> <cell> Title <row_header> Year </row_header> </cell> "
        "<cell> Role <row_header> Year </row_header> <row_header> Title </row_header> </cell> "
        "</row> <row> <highlighted_cell> 2005 <col_header> Year </col_header> "
        "</highlighted_cell> <cell> Film X <col_header> Title </col_header> </cell> "
        "<highlighted_cell> Lead <col_header> Role </col_header> </highlighted_cell> </row> "
        "</table>"
    )
    titled = full.replace(
        "<table>",
        "<page_title> Jane Doe </page_title> <section_title> Filmography </section_title> <table>",
        1,
    )
    assert t.train[0].prompt == full + titled
    # datasets gives a Sequence of dicts as a dict of lists; test annotations are empty
    hub = {
        s: [
            {
                **r,
                "sentence_annotations": {
                    k: [a[k] for a in r["sentence_annotations"]] for k in fx.annotations("x")[0]
                },
            }
            for r in rows
        ]
        for s, rows in fx.TOTTO.items()
    }
    calls = fake_hub(monkeypatch, hub)
    monkeypatch.delenv("RFT_DATA_DIR", raising=False)
    h = task("totto")
    assert calls == [("google-research-datasets/totto",)]
    assert h.val[0].references == ["A.", "B.", "C."] and h.test is h.val
    assert h.train[1].prompt == SUB_SEASON + "<page_title> Foo FC </page_title> " + SUB_SEASON


def test_totto_bad_rows_are_named(tmp_path):
    root = fx.write_totto(tmp_path)
    bad = [fx.totto_row(fx.FILMOGRAPHY, [[2, 0]], "P", "S", ["x"])]
    fx.write_parquet(root / "totto" / "data" / "train-00000-of-00001.parquet", bad)
    with pytest.raises(DataError, match=r"row 0: highlighted cell \[2, 0\] is outside the table"):
        task("totto", f"task.data_dir={root}")
    fx.write_parquet(
        root / "totto" / "data" / "train-00000-of-00001.parquet",
        [fx.totto_row(fx.FILMOGRAPHY, [[1, 0]], "P", "S", [])],
    )
    with pytest.raises(DataError, match=r"train-00000-of-00001.parquet row 0: no final_sentence"):
        task("totto", f"task.data_dir={root / 'totto'}")


# ---------------------------------------------------------------------------- NarrativeQA
def test_narrative_qa_groups_answers_and_lowercases(tmp_path):
    t = task("narrative_qa", f"task.data_dir={fx.write_narrative_qa(tmp_path)}")
    assert (len(t.train), len(t.val), len(t.test)) == (2, 1, 1)
    e = t.train[0]
    # the literal backslash-n, the summary as written, the space before the tab kept
    assert e.prompt == "who is bob? \\n bob is a cat. he likes fish. "
    assert e.references == ["a cat", "bob is a cat"]
    assert t.train[1].references == ["fish", "fish."]
    assert t.val[0].prompt == "where is ann? \\n ann is at home. " and t.val[0].references == [
        "at home",
        "home",
    ]
    # SFT and offline rows: one per (question, answer), as RL4LMs' seq2seq SFT expands them
    assert [(p.prompt[:10], p.reference) for p in t.sft_pairs()] == [
        ("who is bob", "a cat"),
        ("who is bob", "bob is a cat"),
        ("what does ", "fish"),
        ("what does ", "fish."),
    ]
    assert (t.prompt_max_tokens, t.prompt_truncation, t.max_new_tokens) == (512, "right", 19)


def test_narrative_qa_hub_is_unifiedqas_storage(monkeypatch, tmp_path):
    import urllib.request

    fx.write_narrative_qa(tmp_path / "src")
    got = []

    def urlretrieve(url, dest):
        got.append(url)
        (tmp_path / "dl").mkdir(exist_ok=True)
        name = url.rsplit("/", 1)[1]
        dest_path = __import__("pathlib").Path(dest)
        dest_path.write_text((tmp_path / "src" / "narrative_qa" / name).read_text())

    monkeypatch.setattr(urllib.request, "urlretrieve", urlretrieve)
    monkeypatch.delenv("RFT_DATA_DIR", raising=False)
    t = task("narrative_qa", f"task.cache_dir={tmp_path / 'cache'}")
    base = "https://storage.googleapis.com/unifiedqa/data/narrativeqa"
    assert got == [f"{base}/train.tsv", f"{base}/dev.tsv", f"{base}/test.tsv"]
    assert t.train[0].references == ["a cat", "bob is a cat"]
    task("narrative_qa", f"task.cache_dir={tmp_path / 'cache'}")  # cached: no new download
    assert len(got) == 3

    def offline(url, dest):
        raise OSError("no network")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(
        DataError,
        match=rf"could not download {base}/train.tsv \(OSError\).*RFT_DATA_DIR=<folder holding "
        r"narrative_qa/>.*train.tsv, dev.tsv, test.tsv",
    ):
        task("narrative_qa", f"task.cache_dir={tmp_path / 'empty'}")


def test_narrative_qa_bad_tsv_is_named(tmp_path):
    root = fx.write_narrative_qa(tmp_path)
    (root / "narrative_qa" / "dev.tsv").write_text("just one column\nand another\n")
    with pytest.raises(DataError, match=r"dev.tsv: 1 tab-separated columns"):
        task("narrative_qa", f"task.data_dir={root}")
    (root / "narrative_qa" / "test.tsv").unlink()
    with pytest.raises(DataError, match=r"no test.tsv \(the test split\)"):
        task("narrative_qa", f"task.data_dir={root}")


# ----------------------------------------------------------------------------- IWSLT2017
def test_iwslt2017_prompt_and_reference(tmp_path):
    t = task("iwslt2017", f"task.data_dir={fx.write_iwslt(tmp_path)}")
    assert [e.prompt for e in t.train] == [
        "translate English to German: Good morning.",
        "translate English to German: Thank you very much.",
    ]
    assert t.train[1].references == ["Danke schön."] and t.test[0].references == ["Bis morgen."]
    assert (t.prompt_max_tokens, t.prompt_truncation) == (128, "right")
    assert (t.max_new_tokens, t.min_new_tokens) == (128, 0)
    assert t.cfg.metric_options["sacrebleu_tokenize"] == "intl"


def test_iwslt2017_wrong_language_names_the_knob(tmp_path):
    with pytest.raises(
        DataError, match=r"no 'fr' text \(languages: \['de', 'en'\]\).*task.target_language"
    ):
        task("iwslt2017", f"task.data_dir={fx.write_iwslt(tmp_path)}", "task.target_language=fr")


# ---------------------------------------------------------------------------- DailyDialog
EXPECTED_DIALOG = [  # (prompt, reference, intent, emotion, id), built by hand from RL4LMs' pool
    (
        "Hi . <EOU> Hello ! <EOU> How are you ? <EOU> Fine , thanks . <EOU> Good .  <EOU>",
        " Want tea ? <EOU>",
        3,
        0,
        5,
    ),
    (
        " Hello ! <EOU> How are you ? <EOU> Fine , thanks . <EOU> Good . <EOU> Want tea ?  <EOU>",
        " Yes please . <EOU>",
        4,
        4,
        6,
    ),
    ("u0 <EOU> u1 <EOU> u2 <EOU> u3 <EOU> u4  <EOU>", " u5 <EOU>", 2, 6, 17),
]


def dialog_rows(t):
    return [
        (e.prompt, e.reference, e.meta["intent"][0], e.meta["emotion"][0], e.meta["id"])
        for e in t.train
    ]


def test_daily_dialog_context_window_from_the_release_files(tmp_path):
    t = task("daily_dialog", f"task.data_dir={fx.write_daily_dialog(tmp_path)}")
    assert dialog_rows(t) == EXPECTED_DIALOG
    assert t.train[0].references == [t.train[0].reference]
    assert t.train[0].meta["intent"] == [3] and t.train[0].meta["emotion"] == [0]
    assert [e.reference for e in t.val + t.test] == [" v5 <EOU>", " t5 <EOU>"]
    assert (t.prompt_max_tokens, t.prompt_truncation, t.max_new_tokens, t.min_new_tokens) == (
        128,
        "left",
        20,
        2,
    )
    # a shorter window: every turn from the second on is a target
    t2 = task("daily_dialog", f"task.data_dir={tmp_path}", "task.context_size=1")
    assert t2.train[0].prompt == "Hi .  <EOU>" and t2.train[0].reference == " Hello ! <EOU>"
    assert len(t2.train) == 6 + 4 + 5


def test_daily_dialog_hub_rows_and_parquet_copy(monkeypatch, tmp_path):
    hub = {s: fx.hub_dialog_rows(d) for s, d in fx.DIALOGS.items()}
    calls = fake_hub(monkeypatch, hub)
    monkeypatch.delenv("RFT_DATA_DIR", raising=False)
    assert dialog_rows(task("daily_dialog")) == EXPECTED_DIALOG
    assert calls == [("li2017dailydialog/daily_dialog",)]
    for split, rows in hub.items():
        fx.write_parquet(tmp_path / "daily_dialog" / f"{split}-00000-of-00001.parquet", rows)
    assert dialog_rows(task("daily_dialog", f"task.data_dir={tmp_path}")) == EXPECTED_DIALOG


def test_daily_dialog_bad_files_are_named(tmp_path):
    root = fx.write_daily_dialog(tmp_path)
    act = root / "daily_dialog" / "validation" / "dialogues_act_validation.txt"
    act.write_text("1 1 1 \n")
    with pytest.raises(
        DataError,
        match=r"dialogues_validation.txt:1: 6 utterances, but line 1 of "
        r"dialogues_act_validation.txt has 3 acts",
    ):
        task("daily_dialog", f"task.data_dir={root}")
    act.write_text("1 1 x 1 1 3 \n")
    with pytest.raises(DataError, match=r"the labels must be integers"):
        task("daily_dialog", f"task.data_dir={root}")
    with pytest.raises(ConfigError, match=r"task.context_size=0: must be ≥ 1"):
        task("daily_dialog", f"task.data_dir={root}", "task.context_size=0")
