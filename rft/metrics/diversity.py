"""Diversity of a set of outputs, as RL4LMs reports it (GEM-metrics' ``NGramStats`` and
``MSTTR``; docs/algorithms.md §12).

All statistics are over the whole set, on nltk Treebank word tokens, lowercased (GEM's
tokenization). With c(g) the count of n-gram g over all outputs and T_n = Σ_g c(g):

- ``distinct_n`` = #{g : c(g) > 0} / T_n (n = 1, 2; rft.eval.metrics.distinct_n on these tokens;
  the evaluation's own distinct-n splits on whitespace and keeps case)
- ``vocab_size`` = #{distinct unigrams}
- ``unique_n`` = #{g : c(g) = 1}, n-grams seen exactly once (n = 1, 2)
- ``entropy_n`` = -Σ_g (c(g)/T_n) log2 (c(g)/T_n), in bits (n = 1, 2, 3)
- ``msttr`` = the mean type-token ratio of the consecutive, non-overlapping 100-token windows of
  the concatenated outputs, the last partial window dropped (Johnson 1944); undefined below one
  full window: then reported in ``unavailable`` rather than as a number
- ``mean_length`` = mean tokens per output (the one statistic with a per-output value)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from rft.eval.metrics import distinct_n, word_ngrams
from rft.metrics.base import MetricScores, words

MSTTR_WINDOW = 100


def entropy(counts: Counter) -> float:
    """Shannon entropy in bits of the distribution ``counts`` / its total."""
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def msttr(tokens: Sequence[str], window: int = MSTTR_WINDOW) -> float | None:
    """Mean type-token ratio of full ``window``-token segments; None without one."""
    ttrs = [
        len(set(tokens[i : i + window])) / window
        for i in range(0, len(tokens) - window + 1, window)
    ]
    return sum(ttrs) / len(ttrs) if ttrs else None


def diversity(completions: Sequence[str], msttr_window: int = MSTTR_WINDOW) -> MetricScores:
    tokens = [[w.lower() for w in words(t)] for t in completions]
    # word tokens hold no whitespace: joined by spaces they round-trip through word_ngrams
    texts = [" ".join(t) for t in tokens]
    grams = {n: Counter(g for t in texts for g in word_ngrams(t, n)) for n in (1, 2, 3)}
    out = MetricScores()
    for n in (1, 2):
        out.add(f"distinct_{n}", corpus=distinct_n(texts, n))
    out.add("vocab_size", corpus=len(grams[1]))
    for n in (1, 2):
        out.add(f"unique_{n}", corpus=sum(1 for c in grams[n].values() if c == 1))
    for n in (1, 2, 3):
        out.add(f"entropy_{n}", corpus=entropy(grams[n]))
    flat = [w for t in tokens for w in t]
    m = msttr(flat, msttr_window)
    if m is None:
        out.unavailable["msttr"] = (
            f"MSTTR needs at least one {msttr_window}-token window; the outputs have "
            f"{len(flat)} tokens"
        )
    else:
        out.add("msttr", corpus=m)
    out.add("mean_length", per_example=[len(t) for t in tokens])
    return out
