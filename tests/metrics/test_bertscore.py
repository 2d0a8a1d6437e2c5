"""BERTScore F1 on MiniLM: bert-score itself on fixed strings, the max over references, empty
texts, and one scorer per process. (Loading MiniLM on CPU takes a few seconds.)"""

from __future__ import annotations

import pytest

from rft.metrics import compute_metrics
from rft.metrics.bertscore import bertscore_f1, default_model, scorer

HYPS = ["a dog catches a frisbee", "the cat sleeps on the mat", ""]
REFS = [["the dog caught the frisbee", "a frisbee"], ["a cat is sleeping"], ["a ref"]]


def test_equals_bert_score_on_fixed_strings_max_over_references():
    from bert_score import BERTScorer

    ref = BERTScorer(model_type=default_model(), num_layers=6, rescale_with_baseline=False)
    got = bertscore_f1(HYPS, REFS)
    each = [[ref.score([h], [r])[2].item() for r in refs] for h, refs in zip(HYPS[:2], REFS[:2])]
    assert got[:2] == pytest.approx([max(e) for e in each], abs=1e-5)
    assert each[0][0] > each[0][1]  # the max picked the closer reference
    assert got[2] == 0.0  # empty candidate: bert-score's convention, without its crash
    assert 0.5 < got[0] < 1.0


def test_scorer_is_loaded_once_and_corpus_is_the_mean():
    assert scorer() is scorer()
    s = compute_metrics(["bertscore"], ["p"] * 3, HYPS, REFS)
    assert s.per_example["bertscore"] == pytest.approx(bertscore_f1(HYPS, REFS))
    assert s.corpus["bertscore"] == pytest.approx(sum(s.per_example["bertscore"]) / 3)


def test_a_copy_of_a_reference_scores_one_and_empty_references_are_skipped():
    assert bertscore_f1(["a dog runs"], [["", "a dog runs"]]) == [pytest.approx(1.0, abs=1e-5)]
    assert bertscore_f1(["a dog runs"], [[""]]) == [0.0]
