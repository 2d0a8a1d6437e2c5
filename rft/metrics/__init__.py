"""Text-generation metrics (CommonGen and similar tasks), each computed by the library made for it.

CONTRACT (shared by rft.eval, rft.reward.textgen and the tests; keep these names and shapes):

    compute_metrics(names, prompts, completions, references, concepts=None, meta=None,
                    **options) -> MetricScores

- ``names``: metric names from ``METRICS`` (e.g. ["meteor", "rouge", "bleu", "cider", "spice",
  "bertscore", "coverage", "diversity"]); one name may give several keys (rouge → rouge1,
  rouge2, rougeL, rougeLsum; bleu → bleu4 (tensorflow/nmt), sacrebleu; diversity → distinct_1,
  distinct_2, vocab_size, unique_1, unique_2, entropy_1..., msttr, mean_length).
- ``prompts``, ``completions``: lists of N strings; ``references``: N lists of reference strings
  (several per concept set); ``concepts``: N lists of concept words (coverage), or None;
  ``meta``: N ``Example.meta`` dicts, or None (ToTTo's ``parent_totto`` and ``bleu_totto`` read
  the raw table, ``intent_accuracy`` the gold intent).
- The other GRUE tasks' metrics (docs/grue-tasks.md §2): ``ter``, ``chrf``, ``rouge_l_max``
  (NarrativeQA), ``parent_totto`` and ``bleu_totto`` (ToTTo, overall / overlap / non-overlap),
  ``intent_accuracy`` (DailyDialog, the hub classifier) and ``bleurt``; the last two are
  reported in ``MetricScores.unavailable`` (n/a, never 0) where their model cannot be loaded.
- Returns ``MetricScores(corpus={key: float}, per_example={key: list[float] of length N})``:
  ``corpus`` holds the metric as the papers report it over the whole set; ``per_example`` holds a
  per-completion score wherever one exists (METEOR, ROUGE, CIDEr-D, BERTScore, coverage),
  whose mean is (or, for BLEU-like corpus metrics, is not) the corpus value.
- An unavailable metric (SPICE; METEOR without WordNet) raises ``MetricUnavailable`` with the
  reason and the fix when asked for explicitly, except that ``spice`` is reported in
  ``MetricScores.unavailable`` ({name: reason}) instead of raising.

Keys each name gives: ``KEYS``; the ones with per-example scores: ``PER_EXAMPLE``; options (flat
keyword arguments) and the metric each tunes: ``OPTIONS``. Heavy libraries (nltk, spaCy,
rouge-score, pycocoevalcap, bert-score) are imported only when their metric is computed.
"""

from rft.metrics.base import MetricScores, MetricUnavailable
from rft.metrics.compute import KEYS, METRICS, OPTIONS, PER_EXAMPLE, compute_metrics

__all__ = [
    "KEYS",
    "METRICS",
    "OPTIONS",
    "PER_EXAMPLE",
    "MetricScores",
    "MetricUnavailable",
    "compute_metrics",
]
