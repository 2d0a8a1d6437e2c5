"""ROUGE-L-max, NarrativeQA's metric in GRUE (UnifiedQA's ``evaluate_narrativeqa.py`` as RL4LMs
runs it with py-rouge 1.1; docs/grue-tasks.md §2.5).

Per completion: the maximum over its references of py-rouge's ROUGE-L F of (completion,
[reference]) with GRUE's arguments ``Rouge(metrics=["rouge-l"], limit_length=True,
length_limit=100, length_limit_type="words", apply_avg=True, apply_best=True, alpha=0.5,
weight_factor=1.2, stemming=True)``; the corpus value is the mean over completions. For one text:

1. sentences = its lines (``\\n``); the first 100 whitespace words in total are kept;
2. per sentence: lower-case, every ``[^A-Za-z0-9]`` becomes a space, nltk's word tokens (on
   such text a whitespace split, except that "gonna" / "wanna" / ... are split as nltk does and
   "cannot" is kept whole), every token longer than 3 characters stemmed: py-rouge's WordNet
   exception table first (its ``wordnet_key_value*.txt``, read from the installed py-rouge
   package), else nltk's Porter stemmer in ``ORIGINAL_ALGORITHM`` mode;
3. summary-level LCS: for each reference sentence the union of its LCS hits with every
   completion sentence, each hit counted while the completion still has that token left (py-rouge
   decrements the reference's count under the wrong key, so only the completion's count limits
   the hits; reproduced);
4. P = hits / completion tokens, R = hits / reference tokens, both raised to the power
   1 / weight_factor = 1 / 1.2 (py-rouge applies it to ROUGE-L too whenever weight_factor ≠ 1),
   F = P·R / ((1 - α)·P + α·R) with α = 0.5, and 0 when P or R is 0 (an empty completion: 0).

py-rouge itself cannot be imported here (it needs ``pkg_resources``, gone from current
setuptools, and nltk's punkt data for ``word_tokenize``), so these steps are reimplemented
(tests/metrics/test_rouge_l_max.py checks them against py-rouge run with both shimmed).
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

from rft.metrics.base import MetricUnavailable

LENGTH_LIMIT = 100  # words
ALPHA = 0.5
WEIGHT_FACTOR = 1.2
_REMOVE = re.compile("[^A-Za-z0-9]")
_TABLES = ("wordnet_key_value.txt", "wordnet_key_value_special_cases.txt")


@functools.cache
def stem_table() -> dict[str, str]:
    """py-rouge's WordNet exception table (word -> stem), from the installed package's files."""
    spec = importlib.util.find_spec("rouge")  # never imported: its __init__ needs pkg_resources
    folder = Path(list(spec.submodule_search_locations)[0]) if spec and spec.origin else None
    if folder is None or not all((folder / name).is_file() for name in _TABLES):
        raise MetricUnavailable(
            "rouge_l_max stems with py-rouge's WordNet table, read from the py-rouge package, "
            "which is not installed: pip install py-rouge==1.1 (pip install -e . does it)."
        )
    table: dict[str, str] = {}
    for name in _TABLES:
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                key, value = line.strip().split("|")
                table[key] = value
    return table


@functools.cache
def _porter():
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer("ORIGINAL_ALGORITHM")


def _stem(token: str) -> str:
    if len(token) <= 3:
        return token
    table = stem_table()
    return table[token] if token in table else _porter().stem(token)


def sentences(text: str, limit: int = LENGTH_LIMIT) -> list[str]:
    """One text as py-rouge's ROUGE-L sees it: its lines, cut to ``limit`` words, each lower-cased,
    cleaned, tokenised and stemmed (steps 1-2 of the module docstring)."""
    from nltk.tokenize import word_tokenize

    kept, n = [], 0
    for line in text.split("\n"):
        tokens = line.strip().split()
        if n + len(tokens) < limit:
            kept.append(" ".join(tokens))
            n += len(tokens)
        else:
            kept.append(" ".join(tokens[: limit - n]))
            break
    out = []
    for line in kept:
        line = _REMOVE.sub(" ", line.lower()).strip()
        # no punctuation is left, so punkt's sentence split (which preserve_line skips) is a no-op
        tokens = word_tokenize(line.replace("cannot", "_cannot_"), preserve_line=True)
        out.append(" ".join(_stem(t) for t in tokens).replace("_cannot_", "cannot"))
    return out


def _lcs_dirs(x: list[str], y: list[str]) -> dict:
    """py-rouge's LCS table directions (ties go up: '^')."""
    vals: dict = collections.defaultdict(int)
    dirs: dict = {}
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            if x[i - 1] == y[j - 1]:
                vals[i, j] = vals[i - 1, j - 1] + 1
                dirs[i, j] = "|"
            elif vals[i - 1, j] >= vals[i, j - 1]:
                vals[i, j] = vals[i - 1, j]
                dirs[i, j] = "^"
            else:
                vals[i, j] = vals[i, j - 1]
                dirs[i, j] = "<"
    return dirs


def _mark(mask: list[int], dirs: dict, m: int, n: int) -> None:
    while m and n:
        d = dirs[m, n]
        if d == "|":
            m, n = m - 1, n - 1
            mask[m] = 1
        elif d == "^":
            m -= 1
        else:
            n -= 1


def lcs_counts(hyp: list[str], ref: list[str]) -> tuple[int, int, int]:
    """(completion tokens, reference tokens, hits) of py-rouge's summary-level ROUGE-L (step 3)."""
    hyp_counts = collections.Counter(t for s in hyp for t in s.split())
    n_hyp = sum(hyp_counts.values())
    n_ref = sum(len(s.split()) for s in ref)
    hits = 0
    for ref_sentence in ref:
        tokens = ref_sentence.split()
        mask = [0] * len(tokens)
        for hyp_sentence in hyp:
            h = hyp_sentence.split()
            _mark(mask, _lcs_dirs(tokens, h), len(tokens), len(h))
        for i, hit in enumerate(mask):
            if hit and hyp_counts[tokens[i]] > 0:
                hyp_counts[tokens[i]] -= 1
                hits += 1
    return n_hyp, n_ref, hits


def rouge_l_f(completion: str, reference: str) -> float:
    """py-rouge's ROUGE-L F of one completion against one reference, GRUE's arguments."""
    n_hyp, n_ref, hits = lcs_counts(sentences(completion), sentences(reference))
    p = (hits / n_hyp if n_hyp else 0.0) ** (1.0 / WEIGHT_FACTOR)
    r = (hits / n_ref if n_ref else 0.0) ** (1.0 / WEIGHT_FACTOR)
    return 0.0 if p == 0.0 or r == 0.0 else p * r / ((1 - ALPHA) * p + ALPHA * r)


def rouge_l_max(completions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """One ROUGE-L-max per completion: the best ROUGE-L F over its references.

    >>> [round(v, 5) for v in rouge_l_max(["the cat sat"], [["a dog", "the cat sat on the mat"]])]
    [0.71896]
    """
    stem_table()  # fail early, with the fix, where py-rouge's table is missing
    return [max(rouge_l_f(h, r) for r in refs) for h, refs in zip(completions, references)]
