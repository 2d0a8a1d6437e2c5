"""Concept coverage (RLGF, CommonGen; docs/algorithms.md §12).

Per completion: the share of its concepts found in it, comparing Porter stems (nltk's
``PorterStemmer``, no data needed): concepts are lowercased and stemmed and deduplicated by stem
(RLGF takes the set too); the output's words are its lowercased ``\\w+`` runs, stemmed. RLGF
splits the output on single spaces, so a concept followed by punctuation ("frisbee.") does not
count there; rft counts it. A concept of several words counts when each of its words is found.
The corpus value is the mean over completions. An empty completion covers nothing (0).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from rft.errors import DataError

_WORD = re.compile(r"\w+")


@functools.cache
def _stemmer():
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stem(word)


def stems(text: str) -> list[str]:
    """The Porter stems of a text's lowercased word runs."""
    return [_stem(w) for w in _WORD.findall(text.lower())]


def coverage(completions: Sequence[str], concepts: Sequence[Sequence[str]]) -> list[float]:
    """One coverage in [0, 1] per completion."""
    out = []
    for i, (text, cs) in enumerate(zip(completions, concepts)):
        wanted = {tuple(stems(c)) for c in cs} - {()}
        if not wanted:
            raise DataError(f"coverage needs concepts, but example {i} has none ({cs!r}).")
        have = set(stems(text))
        out.append(sum(all(w in have for w in c) for c in wanted) / len(wanted))
    return out
