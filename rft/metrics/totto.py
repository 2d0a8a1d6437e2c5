"""ToTTo's official BLEU and PARENT, overall and on the overlap / non-overlap subsets, as RL4LMs
runs ToTTo's evaluation scripts (``totto_bleu_eval.sh``, ``totto_parent_eval.sh`` and their
``prepare_*_for_eval.py``; docs/grue-tasks.md §2.6), in process.

Each example comes with its raw ToTTo row (``Example.meta["raw_table"]``, rft.task.totto):

- predictions: lower-cased, an empty one becomes ``<null>`` (a newline inside one becomes a
  space: the scripts read one prediction per line);
- references: the row's ``final_sentence``s, lower-cased and **padded to 3 with the literal
  ``<null>``** (mode ``test``, RL4LMs' default);
- PARENT tables, entries ``attribute|||value`` (``|`` in a value becomes ``-``, empty values are
  skipped): the precision table holds every cell (``header`` or ``cell``), the page title, the
  section title and the section text; the recall table the highlighted cells and the two titles;
- every text goes through the Moses detokenizer (``detokenizer.perl -l en`` there;
  ``sacremoses.MosesDetokenizer("en")`` here, each tab-separated table entry on its own: close
  to the Perl script, not guaranteed identical), then PARENT tokenises with sacreBLEU's 13a
  tokenizer on the stripped, lower-cased text (rft.metrics.parent, λ from the table, ε 1e-5);
- BLEU: sacreBLEU's defaults (13a, exp smoothing) against the three reference streams, / 100;
- subsets: an example is in the overlap subset when its ``overlap_subset`` is true, else in the
  non-overlap one. RL4LMs scores an empty subset 0.0; rft leaves its keys out (no examples, no
  score).

Keys: ``totto_bleu_{overall,overlap,non_overlap}`` and
``parent_{overall,overlap,non_overlap}_{precision,recall,f}``; the ``parent_overall_*`` keys have
per-example scores (RL4LMs returns the overall per-example F). The reward ``parent`` is one
example's F (rft.reward.textgen.ParentReward).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from rft.metrics.base import MetricUnavailable
from rft.metrics.parent import Entry, parent

NULL = "<null>"
SUBSETS = ("overall", "overlap", "non_overlap")


@functools.cache
def _detokenizer():
    try:
        from sacremoses import MosesDetokenizer
    except ImportError:
        raise MetricUnavailable(
            "ToTTo's BLEU and PARENT detokenise with Moses: pip install sacremoses==0.2.0 "
            "(pip install -e . does it)."
        ) from None
    return MosesDetokenizer(lang="en")


def detok(line: str) -> str:
    """One line through the Moses detokenizer (split on single spaces, as the Perl script)."""
    return _detokenizer().detokenize([t for t in line.split(" ") if t])


@functools.cache
def _tok13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def tokens(text: str) -> list[str]:
    """PARENT's tokens: 13a on the stripped, lower-cased text, split on spaces."""
    return _tok13a()(text.strip().lower()).split()


def prediction_line(text: str) -> str:
    text = " ".join(text.split("\n")).strip()
    return detok((text or NULL).lower())


def reference_lines(raw: dict) -> list[str]:
    refs = [a["final_sentence"] for a in raw["sentence_annotations"]]
    refs = (refs + [NULL] * 3)[:3]  # the scripts write three reference files
    return [detok(r.lower()) for r in refs]


def _entry(attribute: str, value: str) -> str:
    return f"{attribute}|||{value.replace('|', '-')}"


def parent_tables(raw: dict) -> tuple[list[str], list[str]]:
    """(precision entries, recall entries) of one ToTTo row, as ``attribute|||value`` strings."""
    prec = []
    for row in raw["table"]:
        for cell in row:
            if cell["value"].strip():
                prec.append(
                    _entry("header" if cell["is_header"] else "cell", cell["value"].strip())
                )
    rec = []
    for r, c in raw["highlighted_cells"]:
        cell = raw["table"][r][c]
        if cell["value"].strip():
            rec.append(_entry("header" if cell["is_header"] else "cell", cell["value"].strip()))
    titles = [
        ("page_title", raw.get("table_page_title")),
        ("section_title", raw.get("table_section_title")),
    ]
    for name, value in titles:
        if value:
            prec.append(_entry(name, value))
            rec.append(_entry(name, value))
    if raw.get("table_section_text"):
        prec.append(_entry("section_text", raw["table_section_text"]))
    return prec, rec


def parse_table(entries: list[str]) -> list[Entry]:
    """Lower-cased, detokenised, 13a-tokenised (attribute, value) pairs, as ToTTo's reader."""
    out = []
    for entry in entries:
        attribute, _, value = detok(entry.lower()).partition("|||")
        out.append((tokens(attribute), tokens(value)))
    return out


def _subset_masks(raw_tables: Sequence[dict]) -> dict[str, list[bool]]:
    overlap = [bool(t.get("overlap_subset")) for t in raw_tables]
    return {
        "overall": [True] * len(raw_tables),
        "overlap": overlap,
        "non_overlap": [not o for o in overlap],
    }


def totto_parent(completions: Sequence[str], raw_tables: Sequence[dict]) -> dict:
    """{"corpus": {key: value}, "per_example": {key: [per completion]}} of PARENT."""
    scores = []
    for text, raw in zip(completions, raw_tables):
        prec, rec = parent_tables(raw)
        refs = [tokens(r) for r in reference_lines(raw)]
        scores.append(
            parent(tokens(prediction_line(text)), refs, parse_table(prec), parse_table(rec))
        )
    corpus, per_example = {}, {}
    for subset, mask in _subset_masks(raw_tables).items():
        chosen = [s for s, m in zip(scores, mask) if m]
        if not chosen:
            continue
        for i, stat in enumerate(("precision", "recall", "f")):
            corpus[f"parent_{subset}_{stat}"] = sum(s[i] for s in chosen) / len(chosen)
    for i, stat in enumerate(("precision", "recall", "f")):
        per_example[f"parent_overall_{stat}"] = [s[i] for s in scores]
    return {"corpus": corpus, "per_example": per_example}


def totto_bleu(completions: Sequence[str], raw_tables: Sequence[dict]) -> dict[str, float]:
    """ToTTo's BLEU / 100 overall and per subset (keys ``totto_bleu_<subset>``)."""
    import sacrebleu

    preds = [prediction_line(t) for t in completions]
    refs = [reference_lines(raw) for raw in raw_tables]
    out = {}
    for subset, mask in _subset_masks(raw_tables).items():
        p = [x for x, m in zip(preds, mask) if m]
        if not p:
            continue
        r = [x for x, m in zip(refs, mask) if m]
        streams = [[x[j] for x in r] for j in range(3)]
        out[f"totto_bleu_{subset}"] = float(sacrebleu.corpus_bleu(p, streams).score) / 100.0
    return out
