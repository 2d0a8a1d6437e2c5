"""chrF (Popović 2015) with ``sacrebleu``, as RL4LMs computes it through HF's ``chrf`` script
(docs/grue-tasks.md §2.3).

``sacrebleu.metrics.CHRF(char_order=6, word_order=0, beta=2, lowercase=False, whitespace=False,
eps_smoothing=False)`` corpus score divided by 100: the character 1-6-gram F-score with recall
weighted β = 2, against the best reference. That is plain chrF, not chrF++ (word_order 2).
``segment_chrf`` scores each completion alone (RL4LMs' ``chrf`` reward, unused by GRUE).
"""

from __future__ import annotations

from collections.abc import Sequence

from rft.metrics.bleu import _ref_streams


def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF(
        char_order=6, word_order=0, beta=2, lowercase=False, whitespace=False, eps_smoothing=False
    )


def chrf(completions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus chrF / 100."""
    return float(_chrf().corpus_score(list(completions), _ref_streams(references)).score) / 100.0


def segment_chrf(completions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """chrF / 100 of each completion alone against its references."""
    metric = _chrf()
    return [
        float(metric.corpus_score([h], [[r] for r in refs]).score) / 100.0
        for h, refs in zip(completions, references)
    ]
