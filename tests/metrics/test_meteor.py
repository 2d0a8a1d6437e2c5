"""METEOR: hand-computed values of nltk's formula, the library itself on fixed strings, the max
over references, and an empty completion."""

from __future__ import annotations

import pytest

from rft.metrics import compute_metrics
from rft.metrics.meteor import meteor


def by_hand(m: int, hyp_len: int, ref_len: int, chunks: int) -> float:
    """nltk's METEOR: F = PR / (αP + (1-α)R), penalty = γ (chunks/m)^β, α .9, β 3, γ .5."""
    p, r = m / hyp_len, m / ref_len
    f = p * r / (0.9 * p + 0.1 * r)
    return f * (1 - 0.5 * (chunks / m) ** 3)


def test_exact_matches_by_hand(wordnet_reader):
    # 3 matches in one chunk, hypothesis 3 words, reference 4
    assert meteor(["a dog runs"], [["a dog runs fast"]]) == [pytest.approx(by_hand(3, 3, 4, 1))]
    # the same words in another order: 3 chunks
    assert meteor(["runs a dog"], [["a dog runs fast"]]) == [
        pytest.approx(by_hand(3, 3, 4, 2))  # "runs" | "a dog": 2 chunks
    ]


def test_stem_matches_by_hand_and_case_is_ignored(wordnet_reader):
    # dogs~dog and run~runs match by Porter stem: 2 matches, 1 chunk, F = 1, penalty 0.5/8
    assert meteor(["Dogs RUN"], [["dog runs"]]) == [pytest.approx(1 - 0.5 / 8)]


def test_equals_nltk_on_fixed_strings_with_synonyms(wordnet_reader):
    from nltk.tokenize import word_tokenize
    from nltk.translate.meteor_score import meteor_score

    hyp = "The kid is glad to see a big puppy."
    refs = ["The child is happy to see a large dog.", "A boy looks at a puppy."]
    want = meteor_score(
        [word_tokenize(r, preserve_line=True) for r in refs],
        word_tokenize(hyp, preserve_line=True),
        wordnet=wordnet_reader,
        alpha=0.9,
        beta=3.0,
        gamma=0.5,
    )
    assert meteor([hyp], [refs]) == [pytest.approx(want, abs=1e-12)]
    assert 0.3 < want < 1.0  # synonyms (kid~child, glad~happy, big~large) did match


def test_max_over_references_and_batch_equals_one_by_one(wordnet_reader):
    hyps = ["a dog runs", "the cat sleeps on the mat", ""]
    refs = [["the cat sleeps", "a dog runs fast"], ["a cat is asleep on a mat"], ["x"]]
    batch = meteor(hyps, refs)
    assert batch[0] == pytest.approx(by_hand(3, 3, 4, 1))  # the better of the two references
    assert batch == [meteor([h], [r])[0] for h, r in zip(hyps, refs)]
    assert batch[2] == 0.0  # empty completion: no matches


def test_compute_metrics_meteor_key_and_mean(wordnet_reader):
    s = compute_metrics(["meteor"], ["p", "q"], ["a dog runs", ""], [["a dog runs fast"], ["x"]])
    assert s.per_example["meteor"] == [pytest.approx(by_hand(3, 3, 4, 1)), 0.0]
    assert s.corpus["meteor"] == pytest.approx(by_hand(3, 3, 4, 1) / 2)
