"""Diversity statistics, each by hand on a tiny corpus."""

from __future__ import annotations

import math

import pytest

from rft.metrics import compute_metrics
from rft.metrics.diversity import diversity, entropy, msttr

# tokens (lowercased Treebank words): [a, dog, runs, .] [a, cat, runs] [a, dog, .]
TEXTS = ["A dog runs.", "a cat runs", "A dog."]


def test_each_statistic_by_hand():
    d = diversity(TEXTS)
    c = d.corpus
    # unigrams: a x3, dog x2, runs x2, . x2, cat x1 -> 10 tokens, 5 types
    assert c["vocab_size"] == 5
    assert c["distinct_1"] == pytest.approx(5 / 10)
    assert c["unique_1"] == 1  # only "cat" occurs once
    p1 = [3 / 10, 2 / 10, 2 / 10, 2 / 10, 1 / 10]
    assert c["entropy_1"] == pytest.approx(-sum(p * math.log2(p) for p in p1))
    # bigrams: (a dog) x2, (dog runs), (runs .), (a cat), (cat runs), (dog .) -> 7, 6 types
    assert c["distinct_2"] == pytest.approx(6 / 7)
    assert c["unique_2"] == 5
    p2 = [2 / 7] + [1 / 7] * 5
    assert c["entropy_2"] == pytest.approx(-sum(p * math.log2(p) for p in p2))
    # trigrams: (a dog runs) (dog runs .) (a cat runs) (a dog .): 4 distinct, uniform -> 2 bits
    assert c["entropy_3"] == pytest.approx(2.0)
    assert c["mean_length"] == pytest.approx(10 / 3)
    assert d.per_example["mean_length"] == [4, 3, 3]
    # 10 tokens < one 100-token window: MSTTR is undefined, reported as unavailable
    assert "msttr" not in c and "100-token window" in d.unavailable["msttr"]


def test_msttr_by_hand():
    # windows of 4: [a a b c] -> 3/4, [d d d d] -> 1/4; the partial [e] is dropped
    assert msttr(list("aabcdddde"), window=4) == pytest.approx((3 / 4 + 1 / 4) / 2)
    assert msttr(list("abc"), window=4) is None
    s = compute_metrics(["diversity"], ["p"] * 3, TEXTS, None, msttr_window=5)
    # windows of 5 of the concatenated tokens: [a dog runs . a] -> 4/5, [cat runs a dog .] -> 5/5
    assert s.corpus["msttr"] == pytest.approx(0.9) and "msttr" not in s.unavailable


def test_entropy_of_a_uniform_and_an_empty_distribution():
    from collections import Counter

    assert entropy(Counter("abcd")) == pytest.approx(2.0)
    assert entropy(Counter()) == 0.0


def test_empty_outputs_do_not_crash():
    d = diversity(["", ""])
    assert d.corpus["distinct_1"] == 0.0 and d.corpus["vocab_size"] == 0
    assert d.corpus["mean_length"] == 0.0
