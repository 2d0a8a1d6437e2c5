"""ROUGE-1/2/L/Lsum with Google's ``rouge-score``, stemmed, F-measure (docs/algorithms.md §12).

Per completion and ROUGE type: the F-measure against the best of its references
(``RougeScorer.score_multi``, the reference with the highest F-measure), which is what HF
``evaluate``'s rouge computes when given a list of references per prediction and what RLGF's
CommonGen evaluation asks for (``use_single_ref: False``). RL4LMs' own default
(``use_single_ref=True``) scores against the first reference only; with CommonGen's grouped
references that would throw the others away. The corpus value is the mean over completions
(HF reports the bootstrap median of that mean, ``mid.fmeasure``: the same up to resampling
noise). rouge-score lowercases, keeps [a-z0-9] tokens and Porter-stems tokens longer than 3
characters; ``rougeLsum`` splits on newlines, so on one-line outputs it equals ``rougeL``. An
empty completion scores 0.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@functools.cache
def _scorer(types: tuple[str, ...]):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(types), use_stemmer=True)


def rouge(
    completions: Sequence[str],
    references: Sequence[Sequence[str]],
    types: Sequence[str] = ROUGE_TYPES,
) -> dict[str, list[float]]:
    """type -> one F-measure per completion, max over its references."""
    scorer = _scorer(tuple(types))
    out: dict[str, list[float]] = {t: [] for t in types}
    for hyp, refs in zip(completions, references):
        best = scorer.score_multi(list(refs), hyp)
        for t in types:
            out[t].append(float(best[t].fmeasure))
    return out
