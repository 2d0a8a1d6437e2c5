"""BLEU-4 (tensorflow/nmt): a hand computation on two sentences, a naive loop on random corpora,
the shortest-reference brevity penalty, no smoothing; sacreBLEU against the library."""

from __future__ import annotations

import math
import random

import pytest

from rft.metrics import compute_metrics
from rft.metrics.bleu import nmt_bleu, sacrebleu, sentence_nmt_bleu

HYPS = ["the cat sat on the mat", "a dog runs"]
REFS = [["the cat sat on a mat", "a cat sat on the mat today"], ["a dog runs fast"]]


def test_two_sentences_by_hand():
    # clipped matches / possible per order, summed over both sentences:
    #   1-grams: "the" x2 clipped to 1 (each reference has one) -> 5/6, plus 3/3 -> 8/9
    #   2-grams: 5/5 (on the, the mat from the 2nd reference) + 2/2 -> 7/7
    #   3-grams: 4/4 + 1/1; 4-grams: 3/3 + 0/0 ("a dog runs" has none) -> 1, 1
    # lengths: c = 6 + 3 = 9, r = min(6, 7) + 4 = 10 -> BP = exp(1 - 10/9)
    want = math.exp(1 - 10 / 9) * (8 / 9) ** 0.25
    assert nmt_bleu(HYPS, REFS) == pytest.approx(want, rel=1e-12)


def test_brevity_penalty_uses_the_shortest_reference():
    # c = 7 between r = 5 and 8: the closest reference (8) would give exp(1 - 8/7); the
    # shortest (5) gives BP = 1, and every n-gram matches the longer reference
    assert nmt_bleu(["a b c d e f g"], [["a b c d e", "a b c d e f g h"]]) == pytest.approx(1.0)
    # c = 4 < r = 5: BP = exp(1 - 5/4), all precisions 1
    assert nmt_bleu(["a b c d"], [["a b c d e", "a b c d e f"]]) == pytest.approx(
        math.exp(1 - 5 / 4)
    )


def test_no_smoothing_zero_without_a_4gram_match_and_empty_outputs():
    assert nmt_bleu(["a dog"], [["a dog"]]) == 0.0  # no 4-gram at all
    assert nmt_bleu(["a b c e"], [["a b c d"]]) == 0.0  # 4-gram precision 0
    assert nmt_bleu(["", ""], [["a b"], ["c d"]]) == 0.0
    assert sentence_nmt_bleu(HYPS, REFS) == [nmt_bleu([h], [r]) for h, r in zip(HYPS, REFS)]
    assert sentence_nmt_bleu(HYPS, REFS)[1] == 0.0


def naive_bleu(hyps, refs_list):
    """The same definition, one n-gram at a time with list.count."""
    num, den, c, r = [0] * 4, [0] * 4, 0, 0
    for hyp, refs in zip(hyps, refs_list):
        h, rs = hyp.split(), [x.split() for x in refs]
        c += len(h)
        r += min(len(x) for x in rs)
        for n in range(1, 5):
            grams = [tuple(h[i : i + n]) for i in range(len(h) - n + 1)]
            den[n - 1] += len(grams)
            for g in set(grams):
                in_refs = [
                    [tuple(x[i : i + n]) for i in range(len(x) - n + 1)].count(g) for x in rs
                ]
                num[n - 1] += min(grams.count(g), max(in_refs))
    if min(num) == 0:
        return 0.0
    geo = math.exp(sum(math.log(a / b) for a, b in zip(num, den)) / 4)
    return geo * (1.0 if c > r else math.exp(1 - r / c))


def test_equals_a_naive_loop_on_random_corpora():
    rng = random.Random(0)
    vocab = "a b c".split()  # small: many n-gram matches, repeats, clipping
    nonzero = 0
    for _ in range(200):
        n = rng.randint(1, 4)
        refs = [
            [" ".join(rng.choices(vocab, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 3))]
            for _ in range(n)
        ]
        hyps = [" ".join(rng.choices(vocab, k=rng.randint(0, 12))) for _ in range(n)]
        want = naive_bleu(hyps, refs)
        nonzero += want > 0
        assert nmt_bleu(hyps, refs) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert nonzero > 50  # the comparison was not all zeros


def test_sacrebleu_equals_the_library_with_varying_reference_counts():
    import sacrebleu as sb

    got = sacrebleu(HYPS, REFS)
    streams = [[REFS[0][0], REFS[1][0]], [REFS[0][1], None]]
    assert got == pytest.approx(sb.corpus_bleu(HYPS, streams).score / 100)
    one_ref = [[r[0]] for r in REFS]
    assert sacrebleu(HYPS, one_ref) == pytest.approx(
        sb.corpus_bleu(HYPS, [[r[0] for r in REFS]]).score / 100
    )


def test_compute_metrics_bleu_keys_are_corpus_only():
    s = compute_metrics(["bleu"], ["p", "q"], HYPS, REFS)
    assert set(s.corpus) == {"bleu4", "sacrebleu"} and s.per_example == {}
    assert s.corpus["bleu4"] == pytest.approx(math.exp(1 - 10 / 9) * (8 / 9) ** 0.25)
