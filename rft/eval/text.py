"""Text metrics in an evaluation: the task's ``task.metrics`` (METEOR, ROUGE, CIDEr-D, ...)
computed by rft.metrics over a whole split's completions, with standard errors over prompts.

An evaluation holds K completions per prompt, prompt-major (rft.eval.evaluate). Each completion
is scored against all of its prompt's references (``Example.references``, else its single
``reference``), and coverage against the prompt's concepts (``Example.meta["concepts"]``).

- A metric with a per-completion score (METEOR, ROUGE, CIDEr-D, BERTScore, coverage) reports
  the corpus value rft.metrics returns and the standard error of the per-prompt means of the
  per-completion scores (docs/algorithms.md §13). For CIDEr-D the idf is taken over the
  evaluated set once, so that error leaves out the idf's own sampling noise.
- A corpus-only statistic (BLEU-4, sacreBLEU, vocabulary size, entropy, MSTTR) has no
  per-completion score: no standard error is given (``_se`` absent) rather than a wrong one.
  distinct-1/2 keep the leave-one-prompt-out jackknife error the evaluation already computes.
- Unavailable metrics (SPICE here; the DailyDialog intent classifier and BLEURT without their
  hub models) are listed in ``unavailable`` with the reason; they never become a 0.
- ``Example.meta`` goes to the metrics that read it (ToTTo's raw table, the gold intent) and the
  task's ``metric_options`` (e.g. ``sacrebleu_tokenize: intl``) to rft.metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rft.eval import stats
from rft.task.base import Example


@dataclass
class TextMetrics:
    """Split-level values (``metrics``: key, key_se), per-prompt lists of K scores for paired
    comparisons (``per_prompt``: key -> n lists), per-sample scores for the sample table
    (``per_sample``: key -> n·K floats) and the metrics that could not be computed."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_prompt: dict[str, list[list[float]]] = field(default_factory=dict)
    per_sample: dict[str, list[float]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def references_of(e: Example) -> list[str]:
    """All gold completions of an example: its grouped references, else its one reference."""
    if e.references:
        return list(e.references)
    return [e.reference] if e.reference else []


def text_metrics(
    names: list[str], examples: list[Example], texts: list[str], k: int, options: dict | None = None
) -> TextMetrics:
    """Score ``texts`` (n·K, prompt-major, K per example) with the metrics ``names``;
    ``options``: the task's ``metric_options`` (rft.metrics OPTIONS)."""
    out = TextMetrics()
    if not names or not examples:
        return out
    from rft.metrics import compute_metrics

    if len(texts) != len(examples) * k:
        raise ValueError(f"{len(texts)} completions for {len(examples)} prompts × {k}")
    rep = [e for e in examples for _ in range(k)]
    concepts = [e.meta.get("concepts") for e in rep]
    scores = compute_metrics(
        list(names),
        [e.prompt for e in rep],
        list(texts),
        [references_of(e) for e in rep],
        concepts=concepts if all(c is not None for c in concepts) else None,
        meta=[e.meta for e in rep],
        **dict(options or {}),
    )
    for key, value in scores.corpus.items():
        out.metrics[key] = float(value)
        per = scores.per_example.get(key)
        if per is not None:
            out.metrics[f"{key}_se"] = stats.clustered_mean(per, k)[1]
            out.per_sample[key] = [float(v) for v in per]
            out.per_prompt[key] = [
                [float(v) for v in per[i * k : (i + 1) * k]] for i in range(len(examples))
            ]
    out.unavailable = dict(getattr(scores, "unavailable", {}) or {})
    return out
