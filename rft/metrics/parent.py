"""PARENT (Dhingra et al., "Handling Divergent Reference Texts when Evaluating Table-to-Text
Generation", ACL 2019), as ToTTo's evaluation computes it (``totto_parent_eval.py``, which RL4LMs
ships; docs/grue-tasks.md §2.6). No package provides it: this is that code's algorithm.

Inputs are token lists (rft.metrics.totto prepares ToTTo's: lower-cased, Moses-detokenised,
13a-tokenised). A table is a list of entries ``(attribute tokens, value tokens)``: the precision
table T_p (every cell, the titles and the section text) and the recall table T_r (the
highlighted cells and the titles). With V the set of value tokens of T_p and, for a prediction
G and one reference R:

- entailment weight of an n-gram g: w(g) = |{t ∈ g : t ∈ V}| / |g| (word overlap, no smoothing);
- for n = 1..4, with n-gram counts c_G and c_R:
  P_n = Σ_g c_G(g)·[p_g + (1 - p_g)·w(g)] / Σ_g c_G(g), p_g = min(1, c_R(g) / c_G(g))
  (0 when G has no n-gram); R_n = Σ_g c_R(g)·w(g)·min(1, c_G(g) / c_R(g)) / Σ_g c_R(g)·w(g)
  (1 when the denominator is 0);
- a zero P_n or R_n becomes ε = 1e-5 for n = 2..4 only; P = exp(¼ Σ log P_n) if every P_n > 0,
  else 0; R_ref = exp(¼ Σ log R_n) if every R_n > 0, else ε;
- table recall R_T = mean over T_r of LCS(v, G) / |v| (ε if 0); λ = 1 - mean over T_r of
  LCS(v, R) / |v| (one per reference; ``lambda_weight`` fixes it instead);
- recall = R_ref^(1 - λ) · R_T^λ, F = 2PR / (P + R + 1e-8);
- over the references, the (P, R, F) of the one with the highest F (the first on ties). A
  ``<null>`` padding reference has no table n-grams, so R_n = 1 and λ = 1: its F is table-only
  and can win.

Stated rules where ToTTo's script would fail: a table entry whose value has no tokens is left out
(the script divides by zero); an empty recall table gives R_T = 1 and λ = 0 (recall = R_ref).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

Entry = tuple[list[str], list[str]]  # (attribute tokens, value tokens)
SMOOTHING = 1e-5
MAX_ORDER = 4


def _ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def lcs_length(x: Sequence[str], y: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    prev = [0] * (len(y) + 1)
    for a in x:
        cur = [0]
        for j, b in enumerate(y, 1):
            cur.append(prev[j - 1] + 1 if a == b else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def parent_one(
    prediction: Sequence[str],
    reference: Sequence[str],
    values: set[str],
    recall_table: Sequence[Entry],
    lambda_weight: float | None = None,
    smoothing: float = SMOOTHING,
    max_order: int = MAX_ORDER,
) -> tuple[float, float, float]:
    """(P, R, F) of one prediction against one reference (module docstring); ``values``: the
    precision table's value tokens."""

    def weight(g) -> float:
        return sum(t in values for t in g) / len(g)

    precisions, recalls = [], []
    for n in range(1, max_order + 1):
        c_g, c_r = _ngram_counts(prediction, n), _ngram_counts(reference, n)
        num = den = 0.0
        for g, c in c_g.items():
            p_g = min(1.0, c_r.get(g, 0) / c)
            num += c * (p_g + (1.0 - p_g) * weight(g))
            den += c
        precisions.append(num / den if den else 0.0)
        num = den = 0.0
        for g, c in c_r.items():
            w = weight(g)
            num += c * w * min(1.0, c_g.get(g, 0) / c)
            den += c * w
        recalls.append(num / den if den else 1.0)
    for n in range(1, max_order):  # orders 2..max_order
        precisions[n] = precisions[n] or smoothing
        recalls[n] = recalls[n] or smoothing
    w = 1.0 / max_order
    p = (
        0.0
        if any(x == 0 for x in precisions)
        else math.exp(math.fsum(w * math.log(x) for x in precisions))
    )
    r_ref = (
        smoothing
        if any(x == 0 for x in recalls)
        else math.exp(math.fsum(w * math.log(x) for x in recalls))
    )
    entries = [v for _, v in recall_table if v]
    if entries:
        r_table = sum(lcs_length(v, prediction) / len(v) for v in entries) / len(entries)
        r_table = r_table or smoothing
        lam = (
            1.0 - sum(lcs_length(v, reference) / len(v) for v in entries) / len(entries)
            if lambda_weight is None
            else lambda_weight
        )
    else:
        r_table, lam = 1.0, 0.0 if lambda_weight is None else lambda_weight
    recall = math.exp((1.0 - lam) * math.log(r_ref) + lam * math.log(r_table))
    return p, recall, 2.0 * p * recall / (p + recall + 1e-8)


def parent(
    prediction: Sequence[str],
    references: Sequence[Sequence[str]],
    precision_table: Sequence[Entry],
    recall_table: Sequence[Entry],
    lambda_weight: float | None = None,
    smoothing: float = SMOOTHING,
    max_order: int = MAX_ORDER,
) -> tuple[float, float, float]:
    """(P, R, F) of one prediction: those of its best reference by F (the first on ties).

    >>> g = "jane doe played the lead in 2005 .".split()
    >>> r = "in 2005 , jane doe played the lead role in film x .".split()
    >>> t_p = [([k], v.split()) for k, v in [("h", "year"), ("h", "title"), ("h", "role"),
    ...        ("c", "2005"), ("c", "film x"), ("c", "lead"), ("p", "jane doe"), ("s", "filmography")]]
    >>> [round(x, 5) for x in parent(g, [r], t_p, t_p[3:4] + t_p[5:])]
    [0.79645, 0.37157, 0.50673]
    """
    values = {t for _, v in precision_table for t in v}
    scores = [
        parent_one(prediction, ref, values, recall_table, lambda_weight, smoothing, max_order)
        for ref in references
    ]
    return max(scores, key=lambda s: s[2])  # max() keeps the first of equal F-scores
