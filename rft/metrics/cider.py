"""CIDEr-D with ``pycocoevalcap`` (Vedantam et al. 2015; docs/algorithms.md §12).

pycocoevalcap's ``Cider`` is CIDEr-D, the algorithm RL4LMs copies: tf-idf vectors of 1..4-grams,
the hypothesis count clipped by the reference's, a Gaussian length penalty (σ = 6), the mean over
n and over references, ×10. Texts are spaCy tokens, lowercased, joined by spaces: RL4LMs
tokenizes with ``en_core_web_sm`` (not on PyPI; ``spacy.blank("en")`` has the same tokenizer
and gives the same token texts) and does not lowercase, while the CommonGen and COCO evaluations
lowercase; rft follows the latter.

Where the idf comes from (document frequencies over reference groups, one group = one
prompt's references):
- default: the distinct reference groups of the evaluated set itself. With one completion per
  prompt that is exactly pycocoevalcap's and RL4LMs' idf. With K completions per prompt, rft
  still counts each prompt once: pycocoevalcap fed all N·K rows would count each prompt's
  references K times, which leaves log(N/df) unchanged for n-grams the references contain but
  gives n-grams that no reference contains the weight log(N·K) instead of log(N), so scores
  would drift with K. (RL4LMs keys rows by prompt text, keeping one sample per prompt; TRIL's
  reward makes every row its own document.) A completion's score depends on the rest of the
  set through the idf; a set with a single prompt scores 0 everywhere (every idf is log 1 = 0).
- ``idf``: a fixed ``CiderIdf`` (e.g. over the train references), counted once; scores then
  depend on nothing else in the batch.

The corpus value is the mean of the per-example scores (pycocoevalcap's own corpus score). An
empty completion scores 0.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

N, SIGMA = 4, 6.0


@functools.cache
def _spacy_tokenizer():
    import spacy

    return spacy.blank("en").tokenizer


def tokenize(text: str) -> str:
    """spaCy token texts, lowercased, joined by single spaces."""
    return " ".join(t.text for t in _spacy_tokenizer()(text) if not t.is_space).lower()


class CiderIdf:
    """Document frequencies of a fixed reference corpus (one document per group of references),
    for CIDEr-D scores that do not depend on the rest of the batch."""

    def __init__(self, reference_groups: Sequence[Sequence[str]], tokenized: bool = False):
        from pycocoevalcap.cider.cider_scorer import CiderScorer

        scorer = CiderScorer(n=N, sigma=SIGMA)
        for refs in reference_groups:
            scorer.cook_append(None, list(refs) if tokenized else [tokenize(r) for r in refs])
        scorer.compute_doc_freq()  # pycocoevalcap's own counting
        self.document_frequency = dict(scorer.document_frequency)
        self.n_documents = len(scorer.crefs)
        if self.n_documents < 1:
            raise ValueError("a CIDEr idf needs at least one reference group")


@functools.cache
def _fixed_idf_scorer_class():
    """A ``CiderScorer`` whose idf is a ``CiderIdf``'s: pycocoevalcap's maths (tf-idf vectors,
    clipping, length penalty, x10), only the document frequencies and the number of documents
    (``ref_len`` = its log) come from the ``CiderIdf`` instead of the rows being scored."""
    from collections import defaultdict

    from pycocoevalcap.cider.cider_scorer import CiderScorer

    class FixedIdfCiderScorer(CiderScorer):
        # compute_cider() sets ref_len = log(number of examples scored); the fixed corpus's
        # size must win, so the assignment is ignored.
        ref_len = property(lambda self: self._fixed_ref_len, lambda self, value: None)

        def __init__(self, idf: CiderIdf):
            super().__init__(n=N, sigma=SIGMA)
            import numpy as np

            self._fixed_ref_len = float(np.log(float(idf.n_documents)))
            self.document_frequency = defaultdict(float, idf.document_frequency)

        def compute_score(self, option=None, verbose=0):
            import numpy as np

            score = self.compute_cider()  # no compute_doc_freq: the idf is fixed
            return np.mean(np.array(score)), np.array(score)

    return FixedIdfCiderScorer


def cider_d(
    completions: Sequence[str],
    references: Sequence[Sequence[str]],
    idf: CiderIdf | None = None,
) -> list[float]:
    """One CIDEr-D per completion; idf over the distinct reference groups of ``references``
    unless ``idf`` is given."""
    if not completions:
        return []
    refs = [[tokenize(r) for r in rs] for rs in references]
    if idf is None:
        idf = CiderIdf(list(dict.fromkeys(tuple(rs) for rs in refs)), tokenized=True)
    scorer = _fixed_idf_scorer_class()(idf)
    for hyp, rs in zip(completions, refs):
        scorer += (tokenize(hyp), rs)
    _, scores = scorer.compute_score()
    return [float(v) for v in scores]
