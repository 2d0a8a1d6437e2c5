"""``compute_metrics``: every requested metric over one set of completions, in one call each
(the contract in rft/metrics/__init__.py; definitions in docs/algorithms.md §12 and each
metric's module)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass
class _Inputs:
    """What one metric call reads."""

    prompts: list
    completions: list
    refs: list
    concepts: list | None
    options: dict
    meta: list | None


def _compute_one(name, out, prompts, completions, refs, concepts, options, meta=None) -> None:
    _COMPUTE[name](out, _Inputs(prompts, completions, refs, concepts, options, meta))


def _spice(out, x: _Inputs) -> None:
    out.unavailable["spice"] = SPICE_UNAVAILABLE


def _meteor(out, x: _Inputs) -> None:
    from rft.metrics.meteor import meteor

    out.add("meteor", meteor(x.completions, x.refs, x.options.get("wordnet_dir")))


def _rouge(out, x: _Inputs) -> None:
    from rft.metrics.rouge import rouge

    for key, scores in rouge(x.completions, x.refs).items():
        out.add(key, scores)


def _bleu(out, x: _Inputs) -> None:
    from rft.metrics.bleu import nmt_bleu, sacrebleu

    out.add("bleu4", corpus=nmt_bleu(x.completions, x.refs))
    tokenize = x.options.get("sacrebleu_tokenize", "13a")
    out.add("sacrebleu", corpus=sacrebleu(x.completions, x.refs, tokenize))


def _cider(out, x: _Inputs) -> None:
    from rft.metrics.cider import CiderIdf, cider_d

    groups = x.options.get("cider_idf_references")
    out.add("cider", cider_d(x.completions, x.refs, CiderIdf(groups) if groups else None))


def _bertscore(out, x: _Inputs) -> None:
    from rft.metrics.bertscore import NUM_LAYERS, bertscore_f1

    o = x.options
    f1 = bertscore_f1(
        x.completions,
        x.refs,
        model=o.get("bertscore_model"),
        num_layers=o.get("bertscore_num_layers", NUM_LAYERS),
        batch_size=o.get("bertscore_batch_size", 64),
        device=o.get("bertscore_device"),
    )
    out.add("bertscore", f1)


def _coverage(out, x: _Inputs) -> None:
    from rft.metrics.coverage import coverage

    if x.concepts is None or any(c is None for c in x.concepts):
        raise DataError(
            "coverage needs each example's concepts (Example.meta['concepts']), but none "
            "were given: use a task that provides them (task=commongen) or drop coverage."
        )
    out.add("coverage", coverage(x.completions, x.concepts))


def _diversity(out, x: _Inputs) -> None:
    from rft.metrics.diversity import MSTTR_WINDOW, diversity

    d = diversity(x.completions, x.options.get("msttr_window", MSTTR_WINDOW))
    out.corpus.update(d.corpus)
    out.per_example.update(d.per_example)
    out.unavailable.update(d.unavailable)


def _ter(out, x: _Inputs) -> None:
    from rft.metrics.ter import ter

    out.add("ter", corpus=ter(x.completions, x.refs))


def _chrf(out, x: _Inputs) -> None:
    from rft.metrics.chrf import chrf

    out.add("chrf", corpus=chrf(x.completions, x.refs))


def _rouge_l_max(out, x: _Inputs) -> None:
    from rft.metrics.rouge_l_max import rouge_l_max

    out.add("rouge_l_max", rouge_l_max(x.completions, x.refs))


def _parent_totto(out, x: _Inputs) -> None:
    from rft.metrics.totto import totto_parent

    res = totto_parent(x.completions, [m["raw_table"] for m in x.meta])
    for key, value in res["corpus"].items():
        out.add(key, res["per_example"].get(key), corpus=value)


def _bleu_totto(out, x: _Inputs) -> None:
    from rft.metrics.totto import totto_bleu

    for key, value in totto_bleu(x.completions, [m["raw_table"] for m in x.meta]).items():
        out.add(key, corpus=value)


def _intent_accuracy(out, x: _Inputs) -> None:
    from rft.metrics.intent import MODEL, intent_accuracy

    o = x.options
    scores = intent_accuracy(
        x.prompts,
        x.completions,
        [m["intent"][0] for m in x.meta],
        model=o.get("intent_model", MODEL),
        batch_size=o.get("intent_batch_size", 32),
        device=o.get("intent_device"),
    )
    out.add("intent_accuracy", scores)


def _bleurt(out, x: _Inputs) -> None:
    from rft.metrics.bleurt import CHECKPOINT, bleurt

    o = x.options
    scores = bleurt(
        x.completions,
        x.refs,
        checkpoint=o.get("bleurt_checkpoint", CHECKPOINT),
        batch_size=o.get("bleurt_batch_size", 32),
        device=o.get("bleurt_device"),
    )
    out.add("bleurt", scores)


# How each name of METRICS is computed (a new metric: its function here, its keys in KEYS).
_COMPUTE = {
    "spice": _spice,
    "meteor": _meteor,
    "rouge": _rouge,
    "bleu": _bleu,
    "cider": _cider,
    "bertscore": _bertscore,
    "coverage": _coverage,
    "diversity": _diversity,
    "ter": _ter,
    "chrf": _chrf,
    "rouge_l_max": _rouge_l_max,
    "parent_totto": _parent_totto,
    "bleu_totto": _bleu_totto,
    "intent_accuracy": _intent_accuracy,
    "bleurt": _bleurt,
}
