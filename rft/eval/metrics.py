"""Text metrics for evaluation: distinct-n and corpus perplexity."""

from __future__ import annotations

import math


def word_ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    """The word n-grams of one text (whitespace-split).

    >>> word_ngrams("a b c", 2)
    [('a', 'b'), ('b', 'c')]
    """
    w = text.split()
    return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over the whole set (Li et al. 2016).

    >>> distinct_n(["a b a b"], 1), distinct_n(["a b a b"], 2)
    (0.5, 0.6666666666666666)
    """
    total, unique = 0, set()
    for t in texts:
        grams = word_ngrams(t, n)
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def perplexity(total_nll: float, total_tokens: int) -> float:
    """exp(mean token NLL) over a corpus (not a mean of per-text perplexities)."""
    return math.exp(total_nll / total_tokens) if total_tokens else float("nan")
