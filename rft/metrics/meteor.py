"""METEOR as GRUE reports it: nltk's ``meteor_score`` (docs/algorithms.md §12).

Per completion: the maximum over its references of nltk's sentence METEOR (Banerjee & Lavie
2005; nltk: exact, Porter-stem and WordNet-synonym matching, alpha 0.9, beta 3, gamma 0.5,
lowercased), on nltk Treebank word tokens. The corpus value is the mean over completions, as
in HF ``evaluate``'s meteor that RL4LMs calls. An empty completion scores 0 (no unigram
matches: METEOR is 0 by definition). Needs WordNet 3.0 (rft.metrics.wordnet); without it,
MetricUnavailable names the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rft.metrics import wordnet
from rft.metrics.base import words

ALPHA, BETA, GAMMA = 0.9, 3.0, 0.5  # nltk's defaults, which GRUE uses


def meteor(
    completions: Sequence[str],
    references: Sequence[Sequence[str]],
    wordnet_dir: str | Path | None = None,
) -> list[float]:
    """One METEOR per completion, max over its references (``references``: one list each)."""
    from nltk.translate.meteor_score import meteor_score

    wn = wordnet.load(wordnet_dir)
    tokens: dict[str, list[str]] = {}  # references repeat (K samples per prompt): tokenize once

    def tok(s: str) -> list[str]:
        if s not in tokens:
            tokens[s] = words(s)
        return tokens[s]

    out = []
    for hyp, refs in zip(completions, references):
        h = words(hyp)
        if not h:
            out.append(0.0)
            continue
        out.append(
            meteor_score([tok(r) for r in refs], h, wordnet=wn, alpha=ALPHA, beta=BETA, gamma=GAMMA)
        )
    return [float(v) for v in out]
