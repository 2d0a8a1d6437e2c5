"""Text metrics inside an evaluation (rft.eval.text): what rft.metrics returns reaches the
split metrics with standard errors over prompts, the per-prompt lists and the sample table.
rft.metrics itself is tested in tests/metrics; here it is replaced by a fake whose numbers are
known, so the wiring is checked exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rft.metrics
from rft.eval.evaluate import evaluate_policy
from rft.eval.text import references_of, text_metrics
from rft.task.base import Example
from tests.test_eval import eval_kwargs, models, word_reward


class FakeScores:
    def __init__(self, corpus, per_example, unavailable=None):
        self.corpus, self.per_example, self.unavailable = corpus, per_example, unavailable or {}


def fake_compute(calls):
    """A "metric": per completion, its word count plus 10 × the number of references; a corpus
    statistic without per-completion scores; and an unavailable one."""

    def compute(names, prompts, completions, references, concepts=None, **_):
        calls.append((names, prompts, completions, references, concepts))
        per = [len(c.split()) + 10 * len(r) for c, r in zip(completions, references)]
        return FakeScores(
            {"words": float(np.mean(per)), "corpus_only": 0.5, "distinct_2": -1.0},
            {"words": per},
            {"spice": "needs Java"},
        )

    return compute


def ex(n):
    return [
        Example(
            prompt=f"generate a sentence with: dog frisbee{i}.",
            reference=f"ref {i}",
            references=[f"ref {i}", "another"] if i % 2 else [],
            meta={"concepts": ["dog", f"frisbee{i}"]},
        )
        for i in range(n)
    ]


def test_references_of_prefers_the_grouped_references():
    e = ex(2)
    assert references_of(e[0]) == ["ref 0"] and references_of(e[1]) == ["ref 1", "another"]
    assert references_of(Example(prompt="p")) == []


def test_text_metrics_se_is_over_prompts_and_lists_are_prompt_major(monkeypatch):
    calls = []
    monkeypatch.setattr(rft.metrics, "compute_metrics", fake_compute(calls), raising=False)
    examples = ex(3)
    texts = ["a", "a b", "a b c", "a", "a b c d", "a b"]  # 3 prompts × K=2
    tm = text_metrics(["words"], examples, texts, k=2)
    (names, prompts, completions, refs, concepts) = calls[0]
    assert names == ["words"] and completions == texts
    assert prompts == [e.prompt for e in examples for _ in range(2)]
    assert refs[2] == ["ref 1", "another"] and refs[0] == ["ref 0"]
    assert concepts[4] == ["dog", "frisbee2"]
    per = [11, 12, 23, 21, 14, 12]
    assert tm.per_sample["words"] == per
    assert tm.per_prompt["words"] == [[11, 12], [23, 21], [14, 12]]
    means = np.array([11.5, 22.0, 13.0])
    assert tm.metrics["words_se"] == pytest.approx(means.std(ddof=1) / math.sqrt(3))
    # a corpus-only statistic gets no standard error rather than a wrong one
    assert tm.metrics["corpus_only"] == 0.5 and "corpus_only_se" not in tm.metrics
    assert tm.unavailable == {"spice": "needs Java"}


def test_evaluation_reports_text_metrics_in_metrics_samples_and_per_prompt(monkeypatch):
    calls = []
    monkeypatch.setattr(rft.metrics, "compute_metrics", fake_compute(calls), raising=False)
    cfg, policy, ref = models()
    examples = ex(4)
    res = evaluate_policy(
        policy,
        ref,
        word_reward,
        examples,
        n_samples=100,
        samples_per_prompt=2,
        metrics=["words"],
        **eval_kwargs(cfg),
    )
    per = [
        len(s["completion"].split()) + 10 * len(references_of(e))
        for s, e in zip(res.samples, [e for e in examples for _ in range(2)])
    ]
    assert [s["words"] for s in res.samples] == per
    assert res.per_prompt["metrics"]["words"] == [per[i : i + 2] for i in range(0, 8, 2)]
    assert res.metrics["words"] == pytest.approx(np.mean(per))
    assert "references" not in res.samples[1]  # example 0 has a single reference
    assert res.samples[2]["references"] == ["ref 1", "another"]
    # distinct-n stays the evaluation's own (with its jackknife SE), not the metric's copy
    assert res.metrics["distinct_2"] >= 0 and "distinct_2_se" in res.metrics
    assert res.unavailable == {"spice": "needs Java"}


def test_no_metrics_no_call(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("compute_metrics called without metrics")

    monkeypatch.setattr(rft.metrics, "compute_metrics", boom, raising=False)
    cfg, policy, ref = models()
    res = evaluate_policy(policy, ref, word_reward, ex(2), **eval_kwargs(cfg))
    assert "metrics" not in res.per_prompt
