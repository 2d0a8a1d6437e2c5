"""ROUGE: F-measures by hand, stemming, the best reference per type, and rouge-score itself."""

from __future__ import annotations

import pytest

from rft.metrics import compute_metrics
from rft.metrics.rouge import rouge


def f(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def test_f_measures_by_hand():
    s = rouge(["the cat sat"], [["the cat sat down"]])
    assert s["rouge1"] == [pytest.approx(f(3 / 3, 3 / 4))]  # 6/7
    assert s["rouge2"] == [pytest.approx(f(2 / 2, 2 / 3))]  # 0.8
    assert s["rougeL"] == [pytest.approx(f(3 / 3, 3 / 4))]  # LCS 3
    assert s["rougeLsum"] == s["rougeL"]  # one line: the same
    # "a b c d" vs "a x b d": LCS "a b d" (3), P = R = 3/4; bigrams ab bc cd vs ax xb bd: none
    s = rouge(["a b c d"], [["a x b d"]])
    assert s["rougeL"] == [pytest.approx(0.75)] and s["rouge2"] == [0.0]
    assert s["rouge1"] == [pytest.approx(0.75)]  # a, b, d of 4 each side


def test_stemmed_and_lowercased():
    # "Cats" ~ "cat", "running" ~ "runs" after Porter stemming (tokens longer than 3 chars)
    assert rouge(["Cats running"], [["cat runs"]])["rouge1"] == [pytest.approx(1.0)]


def test_best_reference_per_type_and_library_equality():
    from rouge_score import rouge_scorer

    hyp = "a boy picks apples from the tree"
    refs = [
        "the boy picked apples",
        "apples fall from a tree",
        "a boy is picking apples from trees",
    ]
    got = rouge([hyp], [refs])
    sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for t in got:
        each = [sc.score(r, hyp)[t].fmeasure for r in refs]
        assert got[t] == [pytest.approx(max(each))]


def test_empty_completion_scores_zero_and_corpus_is_the_mean():
    s = compute_metrics(["rouge"], ["p", "q"], ["the cat sat", ""], [["the cat sat down"], ["x"]])
    assert set(s.corpus) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert s.per_example["rouge1"] == [pytest.approx(6 / 7), 0.0]
    assert s.corpus["rouge1"] == pytest.approx(3 / 7)
