"""Concept coverage by hand: Porter stems, punctuation, deduplicated concepts, empty text."""

from __future__ import annotations

import pytest

from rft.errors import DataError
from rft.metrics import compute_metrics
from rft.metrics.coverage import coverage


def test_coverage_by_hand():
    concepts = [["dog", "frisbee", "catch"]] * 4
    texts = [
        "The dogs are catching a frisbee.",  # dog~dogs, catch~catching, "frisbee." counts: 3/3
        "A dog caught it.",  # caught is not a stem of catch: 1/3
        "Frisbees!",  # 1/3
        "",  # 0
    ]
    assert coverage(texts, concepts) == pytest.approx([1.0, 1 / 3, 1 / 3, 0.0])


def test_concepts_deduplicated_by_stem_and_multiword_concepts():
    # run / running share the stem "run": two concepts, not three
    assert coverage(["He runs."], [["run", "running", "dog"]]) == [0.5]
    assert coverage(["a t-shirt"], [["t-shirt"]]) == [1.0]
    assert coverage(["a shirt"], [["t-shirt"]]) == [0.0]


def test_no_concepts_is_an_error_not_a_zero():
    with pytest.raises(DataError, match="concepts"):
        coverage(["a dog"], [[]])
    with pytest.raises(DataError, match="concepts"):
        compute_metrics(["coverage"], ["p"], ["a dog"], None, concepts=None)


def test_compute_metrics_coverage_needs_no_references():
    s = compute_metrics(["coverage"], ["p", "q"], ["a dog", "x"], None, [["dog"], ["cat", "x"]])
    assert s.per_example["coverage"] == [1.0, 0.5] and s.corpus["coverage"] == 0.75
