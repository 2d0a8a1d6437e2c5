"""The other GRUE tasks' metrics (docs/grue-tasks.md §2): SacreBLEU / TER / chrF with RL4LMs'
settings against hand computations and sacrebleu called directly, ROUGE-L-max against hand
values and py-rouge itself, PARENT against the reference vector computed with RL4LMs' code,
ToTTo's subsets, and the intent / BLEURT metrics: their glue, and n/a (never 0) offline."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import types

import pytest
import sacrebleu as sb

from rft.errors import DataError
from rft.metrics import bleurt as bleurt_mod
from rft.metrics import compute_metrics
from rft.metrics import intent as intent_mod
from rft.metrics.bleu import sacrebleu, segment_sacrebleu
from rft.metrics.chrf import chrf, segment_chrf
from rft.metrics.parent import parent
from rft.metrics.rouge_l_max import rouge_l_f, rouge_l_max
from rft.metrics.ter import segment_ter, ter
from rft.metrics.totto import tokens, totto_bleu, totto_parent
from rft.task.totto import raw_table
from tests.task import grue_fixtures as fx


# ------------------------------------------------------------------- SacreBLEU, TER, chrF
def test_sacrebleu_by_hand_and_as_hf_calls_it():
    # p1..p4 = 5/6, 3/5, 2/4, 1/3, equal lengths: BLEU = (1/12)^(1/4)
    h, r = "the cat sat on the mat", "the cat sat on a mat"
    assert segment_sacrebleu([h], [[r]]) == pytest.approx([(1 / 12) ** 0.25])
    hyps = ["„Hallo“, sagte er.", "Das kostet 1.000 Euro!"]
    refs = [["„Hallo“ sagte er."], ["Das kostet 1.000 Euro."]]
    for tok in ("13a", "intl"):
        direct = sb.corpus_bleu(
            hyps, [[x[0] for x in refs]], smooth_method="exp", smooth_value=None, force=False,
            lowercase=False, tokenize=tok, use_effective_order=False,
        )  # fmt: skip
        assert sacrebleu(hyps, refs, tok) == pytest.approx(direct.score / 100)
    assert sacrebleu(hyps, refs, "intl") != sacrebleu(hyps, refs, "13a")
    # the reward is corpus BLEU of one segment, not sentence_bleu (effective order)
    seg = segment_sacrebleu(["the cat"], [["the cat sat"]])[0]
    assert seg == pytest.approx(sb.corpus_bleu(["the cat"], [["the cat sat"]]).score / 100)
    assert seg != pytest.approx(sb.sentence_bleu("the cat", ["the cat sat"]).score / 100)


def test_ter_by_hand_case_insensitive_and_the_library():
    assert segment_ter(["The Cat sat"], [["the cat sat on the mat"]]) == [0.5]  # 3 inserts / 6
    hyps, refs = ["a b c d", "x y"], [["a b d c", "a b c"], ["x y z"]]
    lib = sb.metrics.TER(case_sensitive=False).corpus_score(
        hyps, [["a b d c", "x y z"], ["a b c", None]]
    )
    assert ter(hyps, refs) == pytest.approx(lib.score / 100)
    assert ter(["A"], [["a"]]) == 0.0


def test_chrf_is_plain_chrf_with_beta_2():
    assert segment_chrf(["the cat"], [["the cat"]]) == [pytest.approx(1.0)]
    assert segment_chrf(["xyz"], [["abc"]]) == [0.0]
    hyps, refs = ["the cat sat", "a dog"], [["the cat sat on the mat"], ["the dog"]]
    lib = sb.metrics.CHRF(char_order=6, word_order=0, beta=2).corpus_score(
        hyps, [["the cat sat on the mat", "the dog"]]
    )
    assert chrf(hyps, refs) == pytest.approx(lib.score / 100)
    plus = sb.metrics.CHRF(word_order=2).corpus_score(hyps, [["the cat sat on the mat", "the dog"]])
    assert chrf(hyps, refs) != pytest.approx(plus.score / 100)


# ------------------------------------------------------------------------------ ROUGE-L-max
def test_rouge_l_max_by_hand():
    # LCS 3 of 3 completion and 6 reference tokens: P = 1, R = 0.5^(1/1.2), F = 2PR / (P + R)
    r = 0.5 ** (1 / 1.2)
    assert rouge_l_f("the cat sat", "the cat sat on the mat") == pytest.approx(2 * r / (1 + r))
    assert rouge_l_max(["the cat sat"], [["zzz", "the cat sat on the mat"]]) == [
        pytest.approx(2 * r / (1 + r))
    ]
    assert rouge_l_max([""], [["a cat"]]) == [0.0]  # an empty completion: 0
    # lower-cased, punctuation dropped, stemmed ("cats" -> "cat"): a full match
    assert rouge_l_f("Cats!", "cat") == pytest.approx(1.0)


def pyrouge_or_skip():
    """py-rouge's own Rouge class, with the two things it cannot get here shimmed:
    ``pkg_resources.resource_filename`` and punkt (its texts carry no punctuation by then)."""
    spec = importlib.util.find_spec("rouge")
    if spec is None or spec.origin is None:
        pytest.skip("py-rouge is not installed (pip install py-rouge==1.1)")
    folder = os.path.dirname(spec.origin)
    shim = types.SimpleNamespace(resource_filename=lambda _name, f: os.path.join(folder, f))
    sys.modules.setdefault("pkg_resources", shim)
    import nltk
    from rouge.rouge import Rouge

    Rouge.tokenize_text = staticmethod(
        lambda text, language="english": nltk.word_tokenize(text, language, preserve_line=True)
    )
    return Rouge(
        metrics=["rouge-l"], max_n=4, limit_length=True, length_limit=100,
        length_limit_type="words", apply_avg=True, apply_best=True, alpha=0.5,
        weight_factor=1.2, stemming=True,
    )  # fmt: skip


PAIRS = [
    ("the cat sat", "the cat sat on the mat"),
    ("He cannot go, they said.", "they said he can not go"),
    ("Running dogs were running\nfast home", "the dog runs home\nvery fast"),
    ("wanna gonna go", "want to go"),
    ("abc " * 120, "abc def " * 30),  # past the 100-word limit
    ("the the the cat", "the cat the"),
    ("", "an answer"),
    ("a b c d e", "e d c b a"),
]


def test_rouge_l_max_equals_py_rouge(monkeypatch):
    rouge = pyrouge_or_skip()
    for hyp, ref in PAIRS:
        want = rouge.get_scores(hyp, [ref])["rouge-l"]["f"]
        assert rouge_l_f(hyp, ref) == pytest.approx(want, abs=1e-12), (hyp, ref)


# ------------------------------------------------------------------------------------ PARENT
G = "jane doe played the lead in 2005 .".split()
R = "in 2005 , jane doe played the lead role in film x .".split()
T_P = [
    (["a"], v.split())
    for v in ("year", "title", "role", "2005", "film x", "lead", "jane doe", "filmography")
]
T_R = [(["a"], v.split()) for v in ("2005", "lead", "jane doe", "filmography")]


def test_parent_reference_vector():
    """docs/grue-tasks.md §2.6, computed with RL4LMs' parent() on these tokens."""
    assert parent(G, [R], T_P, T_R) == pytest.approx((0.79645, 0.37157, 0.50673), abs=5e-6)
    assert parent(G, [R], T_P, T_R, lambda_weight=0.5) == pytest.approx(
        (0.79645, 0.46958, 0.59082), abs=5e-6
    )
    null = ["<null>"]  # a padding reference: table-only recall, and here it wins
    assert parent(G, [R, null, null], T_P, T_R) == pytest.approx((0.47287, 0.75, 0.58003), abs=5e-6)


def test_parent_edge_rules():
    # no n-gram of the prediction: P = 0, F = 0
    assert parent([], [R], T_P, T_R)[0] == 0.0 and parent([], [R], T_P, T_R)[2] == 0.0
    # an empty recall table: recall is the reference recall alone (lambda 0)
    assert parent(G, [G], T_P, [])[1] == pytest.approx(1.0)


def totto_tables():
    return [raw_table(r) for r in fx.TOTTO["train"] + fx.TOTTO["validation"]]


def test_totto_parent_subsets_and_bleu():
    raws = totto_tables()  # overlap: the two train rows; non-overlap: the validation row
    preds = ["Jane Doe played the lead in 2005.", "", "Foo FC had 30 apps."]
    res = totto_parent(preds, raws)
    per = res["per_example"]["parent_overall_f"]
    assert len(per) == 3 and per[1] == pytest.approx(
        parent(
            ["<", "null", ">"],
            [tokens("foo fc scored 12 goals in 2001."), ["<", "null", ">"], ["<", "null", ">"]],
            *_tables(raws[1]),
        )[2]
    )
    c = res["corpus"]
    assert c["parent_overall_f"] == pytest.approx(sum(per) / 3)
    assert c["parent_overlap_f"] == pytest.approx((per[0] + per[1]) / 2)
    assert c["parent_non_overlap_f"] == pytest.approx(per[2])
    # the first prediction, by hand from the table: lower-cased, detokenised "2005." -> 13a
    assert tokens("jane doe played the lead in 2005.") == G
    bleu = totto_bleu(preds, raws)
    direct = sb.corpus_bleu(
        ["jane doe played the lead in 2005.", "<null>", "foo fc had 30 apps."],
        [
            ["jane doe played the lead in 2005.", "foo fc scored 12 goals in 2001.", "a."],
            ["<null>", "<null>", "b."],
            ["<null>", "<null>", "c."],
        ],
    )
    assert bleu["totto_bleu_overall"] == pytest.approx(direct.score / 100)
    assert set(bleu) == {"totto_bleu_overall", "totto_bleu_overlap", "totto_bleu_non_overlap"}
    # no non-overlap example: its keys are left out, not 0
    assert "totto_bleu_non_overlap" not in totto_bleu(preds[:2], raws[:2])
    assert "parent_non_overlap_f" not in totto_parent(preds[:2], raws[:2])["corpus"]


def _tables(raw):
    from rft.metrics.totto import parent_tables, parse_table

    prec, rec = parent_tables(raw)
    return parse_table(prec), parse_table(rec)


def test_totto_parent_tables_follow_the_scripts():
    from rft.metrics.totto import parent_tables

    raw = raw_table({**fx.TOTTO["train"][0], "table_section_text": "A | B"})
    prec, rec = parent_tables(raw)
    assert prec == [
        "header|||Year", "header|||Title", "header|||Role", "cell|||2005", "cell|||Film X",
        "cell|||Lead", "page_title|||Jane Doe", "section_title|||Filmography",
        "section_text|||A - B",
    ]  # fmt: skip
    assert rec == [
        "cell|||2005", "cell|||Lead", "page_title|||Jane Doe", "section_title|||Filmography"
    ]  # fmt: skip


def test_totto_metrics_through_compute_metrics_need_the_table():
    raws = totto_tables()
    s = compute_metrics(
        ["parent_totto", "bleu_totto"], ["p"] * 3, ["a", "b", "c"], None,
        meta=[{"raw_table": r} for r in raws],
    )  # fmt: skip
    assert len(s.per_example["parent_overall_f"]) == 3 and "totto_bleu_overlap" in s.corpus
    with pytest.raises(
        DataError, match=r"parent_totto reads each example's 'raw_table'.*task=totto"
    ):
        compute_metrics(["parent_totto"], ["p"], ["a"], [["a"]])


# ----------------------------------------------------------------------- intent accuracy
def test_intent_classifier_input():
    p = "Hi . <EOU> How are you ? <EOU> Fine .  <EOU>"
    assert intent_mod.classifier_input(p, "Great !") == " Fine .  Great !"


class FakeTokenizer:
    def __call__(self, texts, **kw):
        import torch

        self.texts = list(texts)
        return {"input_ids": torch.tensor([[len(t)] for t in texts])}


class FakeClassifier:
    """Predicts label = number of '!' in the input, mod 4."""

    def __init__(self, tok):
        self.tok = tok

    def __call__(self, input_ids):
        import torch

        labels = [t.count("!") % 4 for t in self.tok.texts]
        return types.SimpleNamespace(
            logits=torch.nn.functional.one_hot(torch.tensor(labels), 4).float()
        )


def test_intent_accuracy_glue(monkeypatch):
    import torch

    tok = FakeTokenizer()
    monkeypatch.setattr(
        intent_mod,
        "classifier",
        lambda model, device: (tok, FakeClassifier(tok), torch.device("cpu")),
    )
    prompts = ["a <EOU> b  <EOU>"] * 3
    # labels 1, 0, 2; gold intents (acts) 2, 2, 3 -> labels 1, 1, 2
    scores = intent_mod.intent_accuracy(prompts, ["x !", "y", "z !!"], [2, 2, 3], batch_size=2)
    assert scores == [1.0, 0.0, 1.0]
    assert tok.texts == [" b  z !!"]  # the last batch: the last utterance + the completion
    s = compute_metrics(["intent_accuracy"], prompts, ["x !", "y", "z !!"], None,
                        meta=[{"intent": [2]}, {"intent": [2]}, {"intent": [3]}])  # fmt: skip
    assert s.corpus["intent_accuracy"] == pytest.approx(2 / 3)


def test_intent_accuracy_offline_is_na_not_zero(tmp_path):
    intent_mod.classifier.cache_clear()
    s = compute_metrics(
        ["intent_accuracy", "diversity"], ["a <EOU>"], ["b"], None, meta=[{"intent": [1]}],
        intent_model=str(tmp_path / "no-model"),
    )  # fmt: skip
    assert "intent_accuracy" not in s.corpus and "distinct_1" in s.corpus
    assert "could not be loaded" in s.unavailable["intent_accuracy"]
    assert "n/a, not 0" in s.unavailable["intent_accuracy"]


def test_intent_accuracy_loads_a_local_classifier_folder(tmp_path):
    """The load path with a real (tiny, random) 4-way classifier saved in a folder."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from rft.model.load import ASSETS, _tiny_tokenizer

    tok = _tiny_tokenizer(str(ASSETS / "gpt2-tokenizer"))
    tok.pad_token = tok.eos_token
    conf = GPT2Config(n_layer=1, n_embd=16, n_head=2, num_labels=4, pad_token_id=tok.eos_token_id)
    GPT2ForSequenceClassification(conf).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    intent_mod.classifier.cache_clear()
    scores = intent_mod.intent_accuracy(
        ["a <EOU>"] * 4, ["b"] * 4, [1, 2, 3, 4], model=str(tmp_path)
    )
    assert sum(scores) == 1.0  # one input, one predicted label: one gold intent in four matches


# ---------------------------------------------------------------------------------- BLEURT
def test_bleurt_without_its_package_is_na(monkeypatch):
    monkeypatch.setitem(sys.modules, "bleurt_pytorch", None)  # import fails
    bleurt_mod.scorer.cache_clear()
    s = compute_metrics(["bleurt"], ["p"], ["a"], [["a"]])
    assert s.corpus == {} and "bleurt-pytorch" in s.unavailable["bleurt"]
    bleurt_mod.scorer.cache_clear()


def test_bleurt_scores_pairs_and_keeps_the_best_reference(monkeypatch):
    import torch

    class Tok:
        @classmethod
        def from_pretrained(cls, name):
            return cls()

        def __call__(self, refs, hyps, **kw):
            self.pairs = list(zip(refs, hyps))
            return {"input_ids": torch.zeros(len(refs), 1)}

    class Net:
        tok = None

        @classmethod
        def from_pretrained(cls, name):
            return cls()

        def eval(self):
            return self

        def to(self, dev):
            return self

        def __call__(self, input_ids):  # score = shared words
            s = [len(set(r.split()) & set(h.split())) for r, h in Net.tok.pairs]
            return types.SimpleNamespace(logits=torch.tensor(s, dtype=torch.float).view(-1, 1))

    tok = Tok()
    Net.tok = tok
    fake = types.SimpleNamespace(
        BleurtTokenizer=types.SimpleNamespace(from_pretrained=lambda n: tok),
        BleurtForSequenceClassification=Net,
    )
    monkeypatch.setitem(sys.modules, "bleurt_pytorch", fake)
    bleurt_mod.scorer.cache_clear()
    out = bleurt_mod.bleurt(["a b c", "x"], [["a", "a b"], ["y"]], batch_size=2)
    assert out == [2.0, 0.0] and not math.isinf(out[1])
    bleurt_mod.scorer.cache_clear()


def test_evaluation_text_metrics_pass_meta_and_the_tasks_options():
    """rft.eval.text.text_metrics (what every evaluation calls): ToTTo's metrics get each
    example's table, DailyDialog's intent its gold intent, and task.metric_options reach
    rft.metrics (sacrebleu_tokenize)."""
    from rft.eval.text import text_metrics
    from rft.task.base import Example

    raws = totto_tables()
    examples = [
        Example(
            "p",
            references=[a["final_sentence"] for a in r["sentence_annotations"]],
            meta={"raw_table": r},
        )
        for r in raws
    ]
    texts = ["Jane Doe played the lead in 2005.", "", "Foo FC had 30 apps."]
    tm = text_metrics(["parent_totto"], examples, texts, 1)
    assert tm.metrics["parent_overall_f"] == pytest.approx(
        totto_parent(texts, raws)["corpus"]["parent_overall_f"]
    )
    de = [Example("p", references=["„Hallo“ sagte er."])]
    intl = text_metrics(["bleu"], de, ["„Hallo“, sagte er."], 1, {"sacrebleu_tokenize": "intl"})
    t13a = text_metrics(["bleu"], de, ["„Hallo“, sagte er."], 1)
    assert intl.metrics["sacrebleu"] == pytest.approx(
        sacrebleu(["„Hallo“, sagte er."], [["„Hallo“ sagte er."]], "intl")
    )
    assert intl.metrics["sacrebleu"] != t13a.metrics["sacrebleu"]
