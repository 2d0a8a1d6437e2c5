"""``compute_metrics``: every requested metric over one set of completions, in one call each
(the contract in rft/metrics/__init__.py; definitions in docs/algorithms.md §12 and each
metric's module)."""

from __future__ import annotations

from collections.abc import Sequence

from rft.errors import ConfigError, DataError
from rft.metrics.base import MetricScores, MetricUnavailable, reference_lists

METRICS = (
    "meteor",
    "rouge",
    "bleu",
    "cider",
    "spice",
    "bertscore",
    "coverage",
    "diversity",
    # the other GRUE tasks' metrics (docs/grue-tasks.md §2)
    "ter",
    "chrf",
    "rouge_l_max",
    "parent_totto",
    "bleu_totto",
    "intent_accuracy",
    "bleurt",
)
_PARENT_KEYS = tuple(
    f"parent_{subset}_{stat}"
    for subset in ("overall", "overlap", "non_overlap")
    for stat in ("precision", "recall", "f")
)

# name -> the keys it produces (per_example: the ones marked in PER_EXAMPLE)
KEYS = {
    "meteor": ("meteor",),
    "rouge": ("rouge1", "rouge2", "rougeL", "rougeLsum"),
    "bleu": ("bleu4", "sacrebleu"),
    "cider": ("cider",),
    "spice": ("spice",),
    "bertscore": ("bertscore",),
    "coverage": ("coverage",),
    "diversity": (
        "distinct_1",
        "distinct_2",
        "vocab_size",
        "unique_1",
        "unique_2",
        "entropy_1",
        "entropy_2",
        "entropy_3",
        "msttr",
        "mean_length",
    ),
    "ter": ("ter",),
    "chrf": ("chrf",),
    "rouge_l_max": ("rouge_l_max",),
    "parent_totto": _PARENT_KEYS,
    "bleu_totto": ("totto_bleu_overall", "totto_bleu_overlap", "totto_bleu_non_overlap"),
    "intent_accuracy": ("intent_accuracy",),
    "bleurt": ("bleurt",),
}
PER_EXAMPLE = {
    "meteor",
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "cider",
    "bertscore",
    "coverage",
    "mean_length",
    "rouge_l_max",
    "parent_overall_precision",
    "parent_overall_recall",
    "parent_overall_f",
    "intent_accuracy",
    "bleurt",
}
NEEDS_REFERENCES = {"meteor", "rouge", "bleu", "cider", "bertscore", "ter", "chrf"}
NEEDS_REFERENCES |= {"rouge_l_max", "bleurt"}
# name -> the Example.meta key it reads (the ToTTo row; the DailyDialog gold intent)
NEEDS_META = {"parent_totto": "raw_table", "bleu_totto": "raw_table", "intent_accuracy": "intent"}
# reported in MetricScores.unavailable (n/a) instead of raising where they cannot run here
NOT_AVAILABLE_IS_NA = {"intent_accuracy", "bleurt"}

SPICE_UNAVAILABLE = (
    "SPICE needs Java and the Stanford CoreNLP jars, which no Python package provides; "
    "not computed (n/a, never 0)"
)

# option -> the metric it tunes
OPTIONS = {
    "wordnet_dir": "meteor",  # nltk data folder with corpora/wordnet (rft.metrics.wordnet)
    "cider_idf_references": "cider",  # reference groups for a fixed idf (default: the set's own)
    "bertscore_model": "bertscore",  # model folder (default: all-MiniLM-L6-v2)
    "bertscore_num_layers": "bertscore",
    "bertscore_batch_size": "bertscore",
    "bertscore_device": "bertscore",
    "msttr_window": "diversity",
    "sacrebleu_tokenize": "bleu",  # sacreBLEU's tokenizer: 13a (default) | intl (GRUE IWSLT, dialog)
    "intent_model": "intent_accuracy",  # classifier hub id or folder (rft.metrics.intent.MODEL)
    "intent_batch_size": "intent_accuracy",
    "intent_device": "intent_accuracy",
    "bleurt_checkpoint": "bleurt",  # ported checkpoint hub id or folder (rft.metrics.bleurt)
    "bleurt_batch_size": "bleurt",
    "bleurt_device": "bleurt",
}


def compute_metrics(
    names: Sequence[str],
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence | None,
    concepts: Sequence[Sequence[str]] | None = None,
    meta: Sequence[dict] | None = None,
    **options,
) -> MetricScores:
    """The metrics ``names`` of N completions (see the package docstring for the shapes);
    ``meta``: N ``Example.meta`` dicts, for the metrics that read them (``NEEDS_META``).

    >>> s = compute_metrics(["coverage", "spice"], ["p"], ["A dog runs."], [["x"]], [["dog", "cat"]])
    >>> s.corpus, s.per_example, sorted(s.unavailable)
    ({'coverage': 0.5}, {'coverage': [0.5]}, ['spice'])
    """
    names = list(dict.fromkeys(names))  # in order, once each
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"unknown text metric(s) {unknown}: choose from {list(METRICS)}")
    bad = [k for k in options if k not in OPTIONS]
    if bad:
        raise ConfigError(f"unknown metric option(s) {bad}: known are {sorted(OPTIONS)}")
    completions = ["" if c is None else str(c) for c in completions]
    n = len(completions)
    if len(prompts) != n:
        raise DataError(f"{len(prompts)} prompts for {n} completions")
    if references is not None and len(references) != n:
        raise DataError(f"{len(references)} reference lists for {n} completions")
    if concepts is not None and len(concepts) != n:
        raise DataError(f"{len(concepts)} concept lists for {n} completions")
    if meta is not None and len(meta) != n:
        raise DataError(f"{len(meta)} meta dicts for {n} completions")

    out = MetricScores()
    refs = None
    for name in names:
        if name in NEEDS_REFERENCES and refs is None:
            if references is None:
                raise DataError(f"{name} needs reference texts, but none were given.")
            refs = reference_lists(references, "text metrics " + str(names), prompts)
        if name in NEEDS_META:
            _check_meta(name, meta)
        try:
            _compute_one(name, out, prompts, completions, refs, concepts, options, meta)
        except MetricUnavailable as e:
            if name not in NOT_AVAILABLE_IS_NA:
                raise
            out.unavailable[name] = str(e)
    return out


def _check_meta(name: str, meta) -> None:
    key = NEEDS_META[name]
    if meta is None or any(m is None or key not in m for m in meta):
        task = "task=totto" if key == "raw_table" else "task=daily_dialog"
        raise DataError(
            f"{name} reads each example's {key!r} (Example.meta), but the task gives none: use "
            f"{task} or drop {name} from task.metrics."
        )


def _compute_one(name, out, prompts, completions, refs, concepts, options, meta=None) -> None:
    if name == "spice":
        out.unavailable["spice"] = SPICE_UNAVAILABLE
    elif name == "meteor":
        from rft.metrics.meteor import meteor

        out.add("meteor", meteor(completions, refs, options.get("wordnet_dir")))
    elif name == "rouge":
        from rft.metrics.rouge import rouge

        for key, scores in rouge(completions, refs).items():
            out.add(key, scores)
    elif name == "bleu":
        from rft.metrics.bleu import nmt_bleu, sacrebleu

        out.add("bleu4", corpus=nmt_bleu(completions, refs))
        tokenize = options.get("sacrebleu_tokenize", "13a")
        out.add("sacrebleu", corpus=sacrebleu(completions, refs, tokenize))
    elif name == "cider":
        from rft.metrics.cider import CiderIdf, cider_d

        groups = options.get("cider_idf_references")
        out.add("cider", cider_d(completions, refs, CiderIdf(groups) if groups else None))
    elif name == "bertscore":
        from rft.metrics.bertscore import NUM_LAYERS, bertscore_f1

        f1 = bertscore_f1(
            completions,
            refs,
            model=options.get("bertscore_model"),
            num_layers=options.get("bertscore_num_layers", NUM_LAYERS),
            batch_size=options.get("bertscore_batch_size", 64),
            device=options.get("bertscore_device"),
        )
        out.add("bertscore", f1)
    elif name == "coverage":
        from rft.metrics.coverage import coverage

        if concepts is None or any(c is None for c in concepts):
            raise DataError(
                "coverage needs each example's concepts (Example.meta['concepts']), but none "
                "were given: use a task that provides them (task=commongen) or drop coverage."
            )
        out.add("coverage", coverage(completions, concepts))
    elif name == "diversity":
        from rft.metrics.diversity import MSTTR_WINDOW, diversity

        d = diversity(completions, options.get("msttr_window", MSTTR_WINDOW))
        out.corpus.update(d.corpus)
        out.per_example.update(d.per_example)
        out.unavailable.update(d.unavailable)
    elif name == "ter":
        from rft.metrics.ter import ter

        out.add("ter", corpus=ter(completions, refs))
    elif name == "chrf":
        from rft.metrics.chrf import chrf

        out.add("chrf", corpus=chrf(completions, refs))
    elif name == "rouge_l_max":
        from rft.metrics.rouge_l_max import rouge_l_max

        out.add("rouge_l_max", rouge_l_max(completions, refs))
    elif name == "parent_totto":
        from rft.metrics.totto import totto_parent

        res = totto_parent(completions, [m["raw_table"] for m in meta])
        for key, value in res["corpus"].items():
            out.add(key, res["per_example"].get(key), corpus=value)
    elif name == "bleu_totto":
        from rft.metrics.totto import totto_bleu

        for key, value in totto_bleu(completions, [m["raw_table"] for m in meta]).items():
            out.add(key, corpus=value)
    elif name == "intent_accuracy":
        from rft.metrics.intent import MODEL, intent_accuracy

        scores = intent_accuracy(
            prompts,
            completions,
            [m["intent"][0] for m in meta],
            model=options.get("intent_model", MODEL),
            batch_size=options.get("intent_batch_size", 32),
            device=options.get("intent_device"),
        )
        out.add("intent_accuracy", scores)
    elif name == "bleurt":
        from rft.metrics.bleurt import CHECKPOINT, bleurt

        scores = bleurt(
            completions,
            refs,
            checkpoint=options.get("bleurt_checkpoint", CHECKPOINT),
            batch_size=options.get("bleurt_batch_size", 32),
            device=options.get("bleurt_device"),
        )
        out.add("bleurt", scores)
