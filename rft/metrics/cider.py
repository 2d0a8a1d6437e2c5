"""CIDEr-D with ``pycocoevalcap`` (Vedantam et al. 2015; docs/algorithms.md §12).

pycocoevalcap's ``Cider`` is CIDEr-D, the algorithm RL4LMs copies: tf-idf vectors of 1..4-grams,
the hypothesis count clipped by the reference's, a Gaussian length penalty (σ = 6), the mean over
n and over references, ×10. Texts are spaCy tokens, lowercased, joined by spaces: RL4LMs
tokenizes with ``en_core_web_sm`` (not on PyPI; ``spacy.blank("en")`` has the same tokenizer
and gives the same token texts) and does not lowercase, while the CommonGen and COCO evaluations
lowercase; rft follows the latter.

Where the idf comes from:
- default: the references of the evaluated set itself (one document per example: all its
  references), as pycocoevalcap and RL4LMs do. A completion's score then depends on the rest of
  the set; repeating every example K times (K samples per prompt) leaves the idf unchanged.
  RL4LMs keys examples by prompt text, so samples of one prompt overwrite each other there;
  rft keys them by position.
- ``idf_references``: a fixed corpus of reference groups (e.g. the train references), counted
  once; the per-example scores then depend on nothing else in the batch.

The corpus value is the mean of the per-example scores (pycocoevalcap's own corpus score). An
empty completion scores 0, and so does every completion of a set of one example with the
default idf (every n-gram then has idf log(1/1) = 0).
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

    def __init__(self, reference_groups: Sequence[Sequence[str]]):
        from pycocoevalcap.cider.cider_scorer import CiderScorer

        scorer = CiderScorer(n=N, sigma=SIGMA)
        for refs in reference_groups:
            scorer.cook_append(None, [tokenize(r) for r in refs])
        scorer.compute_doc_freq()
        self.document_frequency = dict(scorer.document_frequency)
        self.n_documents = len(scorer.crefs)
        if self.n_documents < 2:
            raise ValueError("a fixed CIDEr idf needs at least 2 reference groups")


@functools.cache
def _fixed_idf_scorer_class():
    """A ``CiderScorer`` whose idf is a ``CiderIdf``'s: pycocoevalcap's maths, only the document
    frequencies and the corpus size (``ref_len`` = log of it) come from elsewhere."""
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
    """One CIDEr-D per completion; idf over ``references`` themselves unless ``idf`` is given."""
    from pycocoevalcap.cider.cider import Cider

    if not completions:
        return []
    gts = {i: [tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [tokenize(h)] for i, h in enumerate(completions)}
    if idf is None:
        if not any(r.split() for refs in gts.values() for r in refs):
            return [0.0] * len(completions)  # no reference n-gram at all: nothing can match
        _, scores = Cider(n=N, sigma=SIGMA).compute_score(gts, res)
        return [float(s) for s in scores]
    scorer = _fixed_idf_scorer_class()(idf)
    for i in gts:
        scorer += (res[i][0], gts[i])
    _, scores = scorer.compute_score()
    return [float(s) for s in scores]
