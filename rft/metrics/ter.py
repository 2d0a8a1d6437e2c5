"""TER (translation edit rate, Snover et al. 2006) with ``sacrebleu``, as RL4LMs computes it
through HF's ``ter`` script (docs/grue-tasks.md §2.2).

``sacrebleu.metrics.TER(normalized=False, no_punct=False, asian_support=False,
case_sensitive=False)`` corpus score divided by 100: the edits (insertions, deletions,
substitutions and block shifts) needed to turn each completion into its closest reference, over
the average reference length, **case-insensitive** (HF's default; the sacreBLEU command line is
case-sensitive). Lower is better, and it can exceed 1. ``segment_ter`` scores each completion
alone; RL4LMs' ``ter`` reward is 1 - that (rft.reward.textgen.TerReward).
"""

from __future__ import annotations

from collections.abc import Sequence

from rft.metrics.bleu import _ref_streams


def _ter():
    from sacrebleu.metrics import TER

    return TER(normalized=False, no_punct=False, asian_support=False, case_sensitive=False)


def ter(completions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus TER / 100."""
    return float(_ter().corpus_score(list(completions), _ref_streams(references)).score) / 100.0


def segment_ter(completions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """TER / 100 of each completion alone against its references."""
    metric = _ter()
    return [
        float(metric.corpus_score([h], [[r] for r in refs]).score) / 100.0
        for h, refs in zip(completions, references)
    ]
