"""BLEU-4 as RL4LMs computes it (tensorflow/nmt ``compute_bleu``), plus sacreBLEU
(docs/algorithms.md §12).

``nmt_bleu`` (Papineni et al. 2002, the tensorflow/nmt variant behind HF's "bleu" metric that
RL4LMs calls): whitespace tokens, case kept; for each order n = 1..4 the clipped n-gram matches
(a completion's n-gram count clipped by the largest count in any one of its references) and the
possible matches are summed over the whole corpus; BLEU = BP · exp(mean_n log p_n), 0 when any
p_n is 0 (no smoothing); the brevity penalty compares the total completion length c with the
summed length r of each example's SHORTEST reference: BP = 1 if c > r else exp(1 - r/c).
A sentence-level value (``sentence_nmt_bleu``, RL4LMs' BLEU reward) is the same formula on a
corpus of one, and is 0 whenever the completion shares no 4-gram with a reference.

``sacrebleu``: ``sacrebleu.corpus_bleu`` as HF's ``sacrebleu`` script calls it for RL4LMs'
``sacre_bleu`` metric (exp smoothing, no effective order, case kept, ``tokenize``: 13a unless the
task says otherwise, GRUE IWSLT and DailyDialog: intl), divided by 100 as RL4LMs does, so both keys
are in [0, 1]. Examples with fewer references than others leave a gap (None) in that reference
stream, which sacreBLEU skips; HF's script refuses such input (ml-rlgrad averages groups of equal
reference counts instead).

``segment_sacrebleu`` is RL4LMs' ``sacre_bleu`` reward: the same corpus BLEU of one completion
alone (so exp smoothing and no effective order: not ``sacrebleu.sentence_bleu``, whose default is
effective order).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

MAX_ORDER = 4


def ngram_counts(tokens: Sequence[str], max_order: int = MAX_ORDER) -> Counter:
    """Counts of every n-gram of order 1..max_order (tuples)."""
    return Counter(
        tuple(tokens[i : i + n])
        for n in range(1, max_order + 1)
        for i in range(len(tokens) - n + 1)
    )


def nmt_bleu(
    completions: Sequence[str], references: Sequence[Sequence[str]], max_order: int = MAX_ORDER
) -> float:
    """Corpus BLEU of tensorflow/nmt (see the module docstring)."""
    matches = [0] * max_order
    possible = [0] * max_order
    hyp_len = ref_len = 0
    for hyp, refs in zip(completions, references):
        h = hyp.split()
        rs = [r.split() for r in refs]
        hyp_len += len(h)
        ref_len += min(len(r) for r in rs)
        clip = Counter()
        for r in rs:
            clip |= ngram_counts(r, max_order)  # | keeps the max count over references
        for gram, c in (ngram_counts(h, max_order) & clip).items():
            matches[len(gram) - 1] += c
        for n in range(1, max_order + 1):
            possible[n - 1] += max(0, len(h) - n + 1)
    if min(matches) == 0:  # some p_n = 0 (also: every completion empty)
        return 0.0
    log_precision = sum(math.log(m / p) for m, p in zip(matches, possible)) / max_order
    bp = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return bp * math.exp(log_precision)


def sentence_nmt_bleu(
    completions: Sequence[str], references: Sequence[Sequence[str]], max_order: int = MAX_ORDER
) -> list[float]:
    """``nmt_bleu`` of each completion on its own."""
    return [nmt_bleu([h], [r], max_order) for h, r in zip(completions, references)]


def _ref_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacreBLEU's layout: stream j holds every example's j-th reference (None where an example
    has fewer, which sacreBLEU skips)."""
    k = max(len(r) for r in references)
    return [[r[j] if j < len(r) else None for r in references] for j in range(k)]


def sacrebleu(
    completions: Sequence[str], references: Sequence[Sequence[str]], tokenize: str = "13a"
) -> float:
    """sacreBLEU corpus BLEU / 100, RL4LMs' settings (module docstring)."""
    import sacrebleu as sb

    bleu = sb.corpus_bleu(
        list(completions),
        _ref_streams(references),
        smooth_method="exp",
        smooth_value=None,
        force=False,
        lowercase=False,
        tokenize=tokenize,
        use_effective_order=False,
    )
    return float(bleu.score) / 100.0


def segment_sacrebleu(
    completions: Sequence[str], references: Sequence[Sequence[str]], tokenize: str = "13a"
) -> list[float]:
    """``sacrebleu`` of each completion alone against its references (RL4LMs' reward)."""
    return [sacrebleu([h], [list(r)], tokenize) for h, r in zip(completions, references)]


def sentence_sacrebleu(
    completions: Sequence[str], references: Sequence[Sequence[str]]
) -> list[float]:
    """sacreBLEU's sentence BLEU (exp smoothing, its sentence-level default) / 100."""
    import sacrebleu as sb

    return [
        float(sb.sentence_bleu(h, list(r)).score) / 100.0 for h, r in zip(completions, references)
    ]
