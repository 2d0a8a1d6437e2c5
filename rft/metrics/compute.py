"""``compute_metrics``: every requested metric over one set of completions, in one call each
(the contract in rft/metrics/__init__.py; definitions in docs/algorithms.md §12 and each
metric's module)."""

from __future__ import annotations

from collections.abc import Sequence

from rft.errors import ConfigError, DataError
from rft.metrics.base import MetricScores, reference_lists

METRICS = ("meteor", "rouge", "bleu", "cider", "spice", "bertscore", "coverage", "diversity")

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
}
NEEDS_REFERENCES = {"meteor", "rouge", "bleu", "cider", "bertscore"}

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
}


def compute_metrics(
    names: Sequence[str],
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence | None,
    concepts: Sequence[Sequence[str]] | None = None,
    **options,
) -> MetricScores:
    """The metrics ``names`` of N completions (see the package docstring for the shapes).

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

    out = MetricScores()
    refs = None
    for name in names:
        if name in NEEDS_REFERENCES and refs is None:
            if references is None:
                raise DataError(f"{name} needs reference texts, but none were given.")
            refs = reference_lists(references, "text metrics " + str(names), prompts)
        _compute_one(name, out, prompts, completions, refs, concepts, options)
    return out


def _compute_one(name, out, prompts, completions, refs, concepts, options) -> None:
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
        out.add("sacrebleu", corpus=sacrebleu(completions, refs))
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
