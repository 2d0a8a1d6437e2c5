"""Standard errors for evaluation metrics (docs/algorithms.md §13). Pure numpy, no models.

An evaluation scores K completions for each of n prompts. The n prompts are the independent
units: the K samples of one prompt share its difficulty, so they are not n·K independent draws.
Every standard error here is therefore computed over prompts (a cluster estimate):

- a mean of per-sample values (reward, completion length) is the mean of the per-prompt means
  m_i; its standard error is std(m_i, ddof=1) / sqrt(n). With K = 1 this is the textbook
  std / sqrt(n); with K > 1 it includes both the prompt-to-prompt spread and the sampling
  noise left after averaging K completions.
- a ratio of sums (corpus perplexity = exp(Σ NLL / Σ tokens)) uses the delta method on the
  per-prompt sums.
- a corpus statistic without a closed form (distinct-n) uses the leave-one-prompt-out
  jackknife.
- a paired difference between two policies evaluated on the same prompts (with the same
  sampling seed) is the mean of the per-prompt differences d_i = a_i - b_i, with standard error
  std(d_i, ddof=1) / sqrt(n): prompt difficulty cancels, so it is smaller than the two
  unpaired errors combined by as much as prompts differ in difficulty.

With n < 2 prompts no spread can be estimated: the standard error is NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rft.eval.metrics import word_ngrams


def per_prompt_means(values: Sequence[float], k: int) -> np.ndarray:
    """[n·K] prompt-major values -> [n] per-prompt means.

    >>> per_prompt_means([1.0, 0.0, 0.5, 0.5], 2).tolist()
    [0.5, 0.5]
    """
    v = np.asarray(values, dtype=np.float64)
    if k < 1 or v.size % k:
        raise ValueError(f"{v.size} values are not a whole number of prompts × {k} samples")
    return v.reshape(-1, k).mean(axis=1)


def sem(x: Sequence[float]) -> float:
    """Standard error of the mean of independent values: std(ddof=1) / sqrt(n).

    >>> round(sem([0.0, 1.0, 2.0, 3.0]), 6)
    0.645497
    """
    x = np.asarray(x, dtype=np.float64)
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")


def clustered_mean(values: Sequence[float], k: int) -> tuple[float, float]:
    """(mean, standard error over prompts) of prompt-major values with K samples per prompt."""
    m = per_prompt_means(values, k)
    return float(m.mean()) if m.size else float("nan"), sem(m)


def ratio_se(num: Sequence[float], den: Sequence[float]) -> tuple[float, float]:
    """r = Σ num / Σ den over clusters, and its delta-method standard error
    sqrt(n / (n - 1) · Σ (num_i - r · den_i)²) / Σ den."""
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    r = float(a.sum() / b.sum())
    n = a.size
    if n < 2:
        return r, float("nan")
    return r, float(math.sqrt(n / (n - 1) * ((a - r * b) ** 2).sum()) / b.sum())


def perplexity_se(nll: Sequence[float], lengths: Sequence[int], k: int) -> tuple[float, float]:
    """Corpus perplexity exp(Σ NLL / Σ tokens) and its standard error over prompts (delta
    method: SE(exp r) ≈ exp(r) · SE(r))."""
    per_nll = np.asarray(nll, dtype=np.float64).reshape(-1, k).sum(1)
    per_len = np.asarray(lengths, dtype=np.float64).reshape(-1, k).sum(1)
    r, se = ratio_se(per_nll, per_len)
    return math.exp(r), math.exp(r) * se


def distinct_n_jackknife(texts: Sequence[str], k: int, n: int) -> tuple[float, float]:
    """distinct-n (unique / all word n-grams over the whole set) and its leave-one-prompt-out
    jackknife standard error. One pass: removing prompt i loses the n-grams that occur only in
    its K texts. Same n-grams as ``rft.eval.metrics.distinct_n``.

    Four one-text prompts, unigrams a b | a c | b b | d e: 5 unique of 8; leaving each prompt
    out gives 5/6, 4/6, 5/6, 3/6, so SE = sqrt(3/4 · Σ (θ_i - 0.7083)²) = 0.2394.

    >>> d, se = distinct_n_jackknife(["a b", "a c", "b b", "d e"], 1, 1)
    >>> round(d, 4), round(se, 4)
    (0.625, 0.2394)
    """
    clusters = [
        Counter(g for t in texts[i : i + k] for g in word_ngrams(t, n))
        for i in range(0, len(texts), k)
    ]
    total_counts: Counter = Counter()
    for c in clusters:
        total_counts.update(c)
    total, unique = sum(total_counts.values()), len(total_counts)
    d = unique / total if total else 0.0
    m = len(clusters)
    if m < 2:
        return d, float("nan")
    loo = np.empty(m)
    for i, c in enumerate(clusters):
        t_i = total - sum(c.values())
        u_i = unique - sum(1 for g, cnt in c.items() if total_counts[g] == cnt)
        loo[i] = u_i / t_i if t_i else 0.0
    return d, float(math.sqrt((m - 1) / m * ((loo - loo.mean()) ** 2).sum()))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """mean(a_i - b_i) and its standard error over the paired units (prompts).

    >>> [round(x, 6) for x in paired_difference([0.5, 0.7, 0.9], [0.4, 0.5, 0.9])]
    [0.1, 0.057735]
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in shape: {a.shape} vs {b.shape}")
    d = a - b
    return float(d.mean()), sem(d)
