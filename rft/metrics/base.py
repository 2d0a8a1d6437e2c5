"""What every text metric shares: the result type, the unavailable-metric error, reference checks
and nltk's word tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rft.errors import DataError, RFTError


class MetricUnavailable(RFTError):
    """A metric cannot be computed on this machine (a missing package or data file): the message
    says why and gives the command that fixes it. Never replaced by a 0."""


@dataclass
class MetricScores:
    """``corpus``: key -> the value as papers report it over the whole set; ``per_example``:
    key -> one score per completion (only where the metric has one); ``unavailable``: name ->
    why it was not computed."""

    corpus: dict[str, float] = field(default_factory=dict)
    per_example: dict[str, list[float]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, per_example: Sequence[float] | None = None, corpus=None) -> None:
        """Record one key: its per-completion scores (corpus = their mean unless given)."""
        if per_example is not None:
            self.per_example[key] = [float(v) for v in per_example]
            if corpus is None:
                n = len(self.per_example[key])
                corpus = sum(self.per_example[key]) / n if n else 0.0
        self.corpus[key] = float(corpus)


def reference_lists(references: Sequence, what: str, prompts: Sequence[str] | None = None):
    """Each example's references as a non-empty list of strings (a single string is one
    reference). None or an empty list raises DataError naming the example: a metric against
    no reference is undefined, not 0."""
    out = []
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            refs = [refs]
        refs = [r for r in (refs or []) if r is not None]
        if not refs:
            shown = f" (prompt {prompts[i][:80]!r})" if prompts is not None else ""
            raise DataError(
                f"{what} needs reference texts, but example {i}{shown} has none. Use a task "
                "whose examples carry references (e.g. task=commongen), or drop the metric."
            )
        out.append([str(r) for r in refs])
    return out


def words(text: str) -> list[str]:
    """nltk's Treebank word tokens. ``preserve_line=True`` skips the sentence splitter, which
    needs punkt data that is not available offline (docs/offline-assets.md); the texts here are
    single sentences anyway."""
    from nltk.tokenize import word_tokenize

    return word_tokenize(text, preserve_line=True)
