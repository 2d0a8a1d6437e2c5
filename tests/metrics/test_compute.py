"""compute_metrics, the contract: the keys each name gives, per-example lengths, SPICE reported
unavailable, clear errors for unknown names, missing references or concepts; import is light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rft.errors import ConfigError, DataError
from rft.metrics import KEYS, METRICS, PER_EXAMPLE, MetricScores, compute_metrics
from rft.metrics.compute import NEEDS_META

PROMPTS = ["generate a sentence with: dog frisbee catch.", "generate a sentence with: apple tree."]
COMPLETIONS = ["A dog catches a frisbee in the park.", ""]
REFERENCES = [["The dog caught the frisbee.", "A dog jumps to catch a frisbee."], ["Apples."]]
CONCEPTS = [["dog", "frisbee", "catch"], ["apple", "tree"]]


def test_every_metric_gives_its_keys_with_one_score_per_completion(wordnet_reader):
    """Every metric that reads only texts (ToTTo's and the intent metric read Example.meta:
    tests/metrics/test_grue_metrics.py); BLEURT is n/a without its package and checkpoint."""
    names = [m for m in METRICS if m not in NEEDS_META]
    s = compute_metrics(names, PROMPTS, COMPLETIONS, REFERENCES, CONCEPTS)
    assert isinstance(s, MetricScores)
    na = {"spice", "msttr"} | ({"bleurt"} & set(s.unavailable))
    want = {k for name in names for k in KEYS[name]} - na
    assert set(s.corpus) == want
    assert set(s.per_example) == want & PER_EXAMPLE
    for key, per in s.per_example.items():
        assert len(per) == 2, key
        assert per[1] == 0.0, key  # the empty completion scores 0 everywhere, without a crash
        assert s.corpus[key] == pytest.approx(sum(per) / 2), key
    assert set(s.unavailable) == na and "Java" in s.unavailable["spice"]


def test_single_string_references_are_one_reference_each():
    a = compute_metrics(["rouge"], ["p"], ["the cat"], ["the cat sat"])
    b = compute_metrics(["rouge"], ["p"], ["the cat"], [["the cat sat"]])
    assert a.per_example == b.per_example


def test_unknown_names_and_options_name_the_choices():
    with pytest.raises(ConfigError, match="meteor"):
        compute_metrics(["meteorr"], ["p"], ["x"], [["x"]])
    with pytest.raises(ConfigError, match="wordnet_dir"):
        compute_metrics(["rouge"], ["p"], ["x"], [["x"]], wordnet_dri="/x")


@pytest.mark.parametrize("refs", [None, [None], [[]], [[None]]])
def test_missing_references_are_an_error_not_a_zero(refs):
    with pytest.raises(DataError, match="needs reference texts"):
        compute_metrics(["rouge"], ["p"], ["x"], refs)


def test_length_mismatch_is_an_error():
    with pytest.raises(DataError, match="2 reference lists for 1 completions"):
        compute_metrics(["rouge"], ["p"], ["x"], [["a"], ["b"]])


def test_importing_rft_metrics_loads_no_heavy_library():
    code = (
        "import sys, rft.metrics; heavy = {'nltk', 'spacy', 'torch', 'rouge_score', "
        "'bert_score', 'sacrebleu', 'pycocoevalcap', 'transformers'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
