"""CIDEr-D: a naive implementation of the formula, pycocoevalcap itself per example, the spaCy
lowercased tokens, where the idf comes from (the evaluated set, or a fixed corpus)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from rft.metrics import compute_metrics
from rft.metrics.cider import CiderIdf, cider_d, tokenize

GENS = [
    "The dog is the boy's cat.",
    "A boy is picking apples from trees and put them into bags.",
    "A man throws a frisbee to his dog in the park.",
]
REFS = [
    ["The dog is the boy's cat.", "The dog eats the cat of the boy."],
    ["A boy is picking apples from trees."],
    ["A dog catches a frisbee.", "The man throws the frisbee and the dog catches it in a park."],
]


def grams(words: list[str]) -> Counter:
    return Counter(tuple(words[i : i + n]) for n in range(1, 5) for i in range(len(words) - n + 1))


def naive_cider_d(gens, refs, sigma=6.0):
    """Vedantam et al.'s CIDEr-D written out: tf-idf per order n, idf = log(N / df) over the
    set's reference groups, hypothesis weights clipped by the reference's, cosine per n times a
    Gaussian length penalty, mean over n, mean over references, x10."""
    gens = [tokenize(g).split() for g in gens]
    refs = [[tokenize(r).split() for r in rs] for rs in refs]
    df = Counter(g for rs in refs for g in set().union(*(grams(r) for r in rs)))
    big_n = len(refs)

    def vec(words):
        return {
            g: c * (math.log(big_n) - math.log(max(1.0, df[g]))) for g, c in grams(words).items()
        }

    scores = []
    for h, rs in zip(gens, refs):
        vh, total = vec(h), 0.0
        for r in rs:
            vr = vec(r)
            per_n = []
            for n in range(1, 5):
                hn = {g: w for g, w in vh.items() if len(g) == n}
                rn = {g: w for g, w in vr.items() if len(g) == n}
                dot = sum(min(w, rn.get(g, 0.0)) * rn.get(g, 0.0) for g, w in hn.items())
                norms = math.sqrt(sum(w * w for w in hn.values())) * math.sqrt(
                    sum(w * w for w in rn.values())
                )
                cos = dot / norms if norms else 0.0
                per_n.append(cos * math.exp(-((len(h) - len(r)) ** 2) / (2 * sigma**2)))
            total += sum(per_n) / 4
        scores.append(10 * total / len(rs))
    return scores


def test_tokens_are_spacy_lowercased():
    assert tokenize("The Dog's frisbee, caught!") == "the dog 's frisbee , caught !"
    assert tokenize("  two   spaces ") == "two spaces"


def test_equals_the_naive_formula():
    got = cider_d(GENS, REFS)
    assert got == pytest.approx(naive_cider_d(GENS, REFS), rel=1e-9)
    assert got[0] > got[2] > 0  # the exact copy of a reference scores highest


def test_per_example_equals_pycocoevalcap_in_order():
    from pycocoevalcap.cider.cider import Cider

    gts = {f"id{i}": [tokenize(r) for r in rs] for i, rs in enumerate(REFS)}
    res = {f"id{i}": [tokenize(g)] for i, g in enumerate(GENS)}
    mean, scores = Cider(n=4, sigma=6.0).compute_score(gts, res)
    s = compute_metrics(["cider"], ["p"] * 3, GENS, REFS)
    assert s.per_example["cider"] == pytest.approx(list(scores), rel=1e-12)
    assert s.corpus["cider"] == pytest.approx(mean, rel=1e-12)


def test_idf_is_over_the_evaluated_set_unless_fixed():
    base = cider_d(GENS, REFS)
    # another example's references change the idf, hence example 0's score
    other = cider_d(GENS, [REFS[0], REFS[1], ["The dog is in the park."]])
    assert other[0] != pytest.approx(base[0])
    # a fixed idf from the same groups gives the same numbers, and keeps them per example
    idf = CiderIdf(REFS)
    assert cider_d(GENS, REFS, idf) == pytest.approx(base, rel=1e-12)
    assert cider_d(GENS[:1], REFS[:1], idf) == pytest.approx(base[:1], rel=1e-12)


def test_k_samples_per_prompt_leave_the_idf_unchanged():
    k = 3
    rep_g = [g for g in GENS for _ in range(k)]
    rep_r = [r for r in REFS for _ in range(k)]
    assert cider_d(rep_g, rep_r) == pytest.approx(
        [s for s in cider_d(GENS, REFS) for _ in range(k)]
    )


def test_empty_completion_and_a_set_of_one():
    assert cider_d(["", GENS[1]], [REFS[0], REFS[1]])[0] == 0.0
    assert cider_d(GENS[:1], REFS[:1]) == [0.0]  # one example: every idf is log(1/1) = 0
