"""The verifier rewards (rft/reward/verify.py) on known right, wrong and malformed answers;
their unparsable share through build_reward and weighted_sum; reasoning-gym's scorers that
evaluate model text run in the sandbox, never in this process; bad settings name the key."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.errors import ConfigError, RewardError
from rft.reward import answers, build_reward
from rft.reward.verify import (
    AnswerFormatReward,
    ExactMatchReward,
    Gold,
    MathVerifyReward,
    ReasoningGymReward,
)

P = ["p"]


def rg_entry(name: str, seed: int = 3, **knobs) -> dict:
    import reasoning_gym

    e = reasoning_gym.create_dataset(name, seed=seed, size=1, **knobs)[0]
    return {"question": e["question"], "answer": e["answer"], "metadata": e["metadata"]}


# ------------------------------------------------------------------------------ extraction
@settings(derandomize=True, max_examples=60)
@given(
    st.text(alphabet=st.characters(blacklist_characters="<>{}#\\", blacklist_categories=("Cs",))),
    st.sampled_from(["tag", "boxed"]),
)
def test_a_rendered_answer_is_extracted_back(answer, fmt):
    text = f"some reasoning 1 + 1\n{answers.render(answer, fmt)}"
    assert answers.extract(text, fmt) == answer.strip()


def test_the_last_answer_wins_and_a_missing_one_is_none():
    assert answers.extract("<answer>1</answer> then <answer>2</answer>", "tag") == "2"
    assert answers.extract("\\boxed{1} and \\boxed{{2}}", "boxed") == "{2}"
    assert answers.extract("#### 3\n#### 4", "hash") == "4"
    for fmt, text in [("tag", "<answer>3"), ("boxed", "\\boxed{3"), ("hash", "### 3")]:
        assert answers.extract(text, fmt) is None


# ------------------------------------------------------------------------------ format
def test_format_reward_right_wrong_malformed():
    r = AnswerFormatReward("boxed")
    assert r(P * 3, ["so \\boxed{4}", "4", "\\boxed{4"], None) == [1.0, 0.0, 0.0]
    assert r.pop_stats() == {"unparsable_share": 2 / 3, "correct_share": 1 / 3}
    assert r.pop_stats() == {}  # popped: nothing scored since


# ------------------------------------------------------------------------------ exact match
def test_exact_match_right_wrong_malformed():
    r = ExactMatchReward("tag")
    comps = [
        "<answer>1,000</answer>",  # right: numbers compare as numbers
        "<answer> 1000.0 </answer>",  # right
        "<answer>999</answer>",  # wrong
        "1000",  # malformed: no tag
        "<answer>1000",  # malformed: unclosed
    ]
    assert r(P * 5, comps, ["1000"] * 5) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert r.pop_stats()["unparsable_share"] == pytest.approx(2 / 5)
    words = ExactMatchReward("tag", case_sensitive=True)
    assert words(P * 2, ["<answer>Paris</answer>", "<answer>paris</answer>"], ["Paris"] * 2) == [
        1,
        0,
    ]


def test_exact_match_takes_a_list_of_references_and_refuses_none():
    r = ExactMatchReward("tag")
    assert r(P, ["<answer>7</answer>"], [["7", "seven"]]) == [1.0]
    with pytest.raises(RewardError, match="completion 0 has none: the task gives no references"):
        r(P, ["<answer>7</answer>"], [None])


# ------------------------------------------------------------------------------ math-verify
def test_math_verify_right_wrong_malformed():
    r = MathVerifyReward("boxed")
    comps = [
        "so it is \\boxed{\\frac{1}{2}}",  # right: 1/2 = 0.5
        "\\boxed{0.50}",  # right
        "\\boxed{2}",  # wrong
        "the answer is 0.5",  # malformed: no \boxed
        "\\boxed{",  # malformed: unclosed
    ]
    assert r(P * 5, comps, ["0.5"] * 5) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert r.pop_stats()["unparsable_share"] == pytest.approx(2 / 5)


def test_math_verify_any_searches_the_whole_completion_gsm8k_style():
    r = MathVerifyReward("any")
    assert r(P * 3, ["The answer is 18.", "#### 18", "I think 10. No wait, 12"], ["18"] * 3) == [
        1.0,
        1.0,
        0.0,
    ]


def test_math_verify_any_reads_a_marked_answer_first():
    """math-verify's own search finds nothing in "<answer>3</answer>": "any" must read the tag
    (the format SFT teaches on reasoning-gym tasks), then boxed and ####, before searching."""
    r = MathVerifyReward("any")
    comps = [
        "<answer>3</answer>",
        "<answer>-28</answer>",
        "5 + 7 = 12, so <answer>3</answer>",  # the marked answer wins over the last number
        "\\boxed{3}",
        "<answer></answer> so it is 3",  # an empty tag: search the text
        "<answer>4</answer>",
    ]
    assert r(P * 6, comps, ["3", "-28", "3", "3", "3", "3"]) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_math_verify_does_not_pay_for_the_problem_restated():
    """GRPO on chain_sum with format=any learned to reply "7 + 8 =": math-verify keeps the
    expression unevaluated and verifies it equal to the gold 15. A numeric gold now needs a
    number (or a plain fraction); an expression gold is compared as before."""
    r = MathVerifyReward("any")
    comps = [
        "7 + 8 =",  # the hack, any format
        "3 * 5 =",
        "so 7 + 8 = 15",  # working, then the number: right
        "\\frac{30}{2}",  # sympy evaluates it: a number
        "15.0",
    ]
    assert r(P * 5, comps, ["15"] * 5) == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert MathVerifyReward("tag")(
        P * 2, ["<answer>7+8</answer>", "<answer>15</answer>"], ["15"] * 2
    ) == [
        0.0,
        1.0,
    ]
    assert r(P * 2, ["1/2", "3/4"], ["0.5", "0.5"]) == [1.0, 0.0]  # a plain fraction is a number
    assert MathVerifyReward("tag")(P, ["<answer>1+x</answer>"], ["x+1"]) == [1.0]


def test_math_verify_hash_format_reads_the_gsm8k_line():
    r = MathVerifyReward("hash")
    assert r(P * 3, ["4 + 14 = 18\n#### 18", "#### 1,018", "18"], ["18", "1018", "18"]) == [1, 1, 0]


def test_math_verify_gives_up_on_an_exponent_tower_within_its_timeout():
    r = MathVerifyReward("boxed", timeout_s=1)
    t0 = time.monotonic()
    assert r(P, ["\\boxed{9^{9^{9^{9}}}}"], ["42"]) == [0.0]
    assert time.monotonic() - t0 < 10


def test_math_verify_refuses_an_empty_gold_answer():
    # (math-verify keeps any other text as a string to compare, so only "" cannot parse)
    with pytest.raises(RewardError, match="gold answer '' does not parse"):
        MathVerifyReward("tag")(P, ["<answer>1</answer>"], [""])


# ------------------------------------------------------------------------------ reasoning-gym
def test_reasoning_gym_scorer_right_wrong_malformed_partial_and_binary():
    e = rg_entry("basic_arithmetic", seed=5)  # the default scorer: exact string, else partial
    gold = Gold(e["answer"], e)
    wrong = "1" + e["answer"]  # contains the oracle: partial credit len(oracle)/len(answer)
    comps = [f"<answer>{e['answer']}</answer>", f"<answer>{wrong}</answer>", e["answer"]]
    partial = ReasoningGymReward("tag")(P * 3, comps, [gold] * 3)
    assert partial == [1.0, pytest.approx(len(e["answer"]) / len(wrong)), 0.0]
    binary = ReasoningGymReward("tag", binary=True)
    assert binary(P * 3, comps, [gold] * 3) == [1.0, 0.0, 0.0]
    assert binary.pop_stats() == {"unparsable_share": 1 / 3, "correct_share": 1 / 3}


def test_reasoning_gym_needs_the_entry():
    with pytest.raises(RewardError, match="carries none. Use task=reasoning_gym"):
        ReasoningGymReward("tag")(P, ["<answer>4</answer>"], ["4"])


def test_countdown_answers_are_scored_in_the_sandbox_never_here(monkeypatch, tmp_path):
    """countdown's scorer runs sympy's parse_expr (eval) on the answer: here it must not."""
    import sympy.parsing.sympy_parser as sp

    def tripwire(*a, **k):
        raise AssertionError("parse_expr ran on model text in the trainer process")

    monkeypatch.setattr(sp, "parse_expr", tripwire)
    import reasoning_gym.games.countdown as cd

    monkeypatch.setattr(cd, "parse_expr", tripwire)
    e = rg_entry("countdown", seed=1)
    marker = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {marker}')"
    comps = [
        f"<answer>{e['answer']}</answer>",
        "<answer>1 + 1</answer>",
        f"<answer>{evil}</answer>",
    ]
    r = ReasoningGymReward("tag", binary=True)
    assert r(P * 3, comps, [Gold(e["answer"], e)] * 3) == [1.0, 0.0, 0.0]
    assert not marker.exists()
    stats = r.pop_stats()
    assert stats["sandboxed_answers"] == 3


def test_a_sandboxed_scorer_that_breaks_costs_only_its_own_answer():
    e = rg_entry("countdown", seed=1)
    # countdown's parse_expr runs this: it ends the scoring process of the whole batch, so
    # each answer is scored again in its own run
    killer = "__import__('os')._exit(0)"
    comps = [f"<answer>{e['answer']}</answer>", f"<answer>{killer}</answer>"]
    r = ReasoningGymReward("tag", binary=True)
    assert r(P * 2, comps, [Gold(e["answer"], e)] * 2) == [1.0, 0.0]
    assert r.pop_stats()["sandboxed_failed_share"] == 0.5


# ------------------------------------------------------------------------------ through the config
def test_unparsable_share_reaches_the_training_log_keys():
    r = build_reward({"_target_": "rft.reward.verify.ExactMatchReward", "format": "tag"})
    r(P * 4, ["<answer>1</answer>", "1", "x", "<answer>2</answer>"], ["1"] * 4)
    assert r.pop_stats() == {"reward/unparsable_share": 0.5, "reward/correct_share": 0.25}
    plain = build_reward({"_target_": "rft.reward.basic.length_reward"})
    plain(P, ["a b"], [None])
    assert plain.pop_stats() == {}


def test_weighted_sum_of_correctness_and_format_names_each_terms_stats():
    r = build_reward(
        {
            "_target_": "rft.reward.combine.WeightedSum",
            "terms": {
                "correct": {
                    "weight": 1.0,
                    "reward": {"_target_": "rft.reward.verify.ExactMatchReward"},
                },
                "format": {
                    "weight": 0.1,
                    "reward": {"_target_": "rft.reward.verify.AnswerFormatReward"},
                },
            },
        }
    )
    out = r(P * 3, ["<answer>1</answer>", "<answer>2</answer>", "1"], ["1"] * 3)
    assert out.tolist() == pytest.approx([1.1, 0.1, 0.0])
    stats = r.pop_stats()
    assert stats["reward/correct/correct_share"] == pytest.approx(1 / 3)
    assert stats["reward/format/unparsable_share"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "reward,message",
    [
        ("exact_match", "reward.format='nope': choose one of"),
        ("math_verify", "reward.format='nope': choose one of"),
        ("reasoning_gym", "reward.format='nope': choose one of"),
    ],
)
def test_bad_format_names_the_key(reward, message):
    from tests.conftest import compose_cfg

    cfg = compose_cfg(f"reward={reward}", "reward.format=nope")
    with pytest.raises(ConfigError, match=message):
        build_reward(cfg.reward)


def test_reward_format_follows_the_task():
    from tests.conftest import compose_cfg

    cfg = compose_cfg("task=gsm8k", "reward=math_verify")
    assert build_reward(cfg.reward).fn.format == "hash"
    cfg = compose_cfg("task=imdb", "reward=math_verify")  # a task without answer_format
    assert build_reward(cfg.reward).fn.format == "any"


def test_no_stray_files_from_sandboxed_scoring():
    before = {p for p in Path("/tmp").glob("rft-sandbox-*")}
    e = rg_entry("countdown", seed=2)
    ReasoningGymReward("tag")(P, [f"<answer>{e['answer']}</answer>"], [Gold(e["answer"], e)])
    assert {p for p in Path("/tmp").glob("rft-sandbox-*")} <= before
    assert os.path.exists("/tmp")


def test_a_sandbox_python_that_cannot_import_the_scorers_is_an_error_not_zeros(monkeypatch):
    from dataclasses import replace

    from rft import sandbox

    iso = sandbox.isolation()
    other = replace(iso, python_version=(iso.python_version[0], iso.python_version[1] + 1))
    monkeypatch.setattr(sandbox, "isolation", lambda uid=sandbox.NOBODY: other)
    e = rg_entry("countdown", seed=1)
    with pytest.raises(RewardError, match="cannot import this Python"):
        ReasoningGymReward("tag")(P, [f"<answer>{e['answer']}</answer>"], [Gold(e["answer"], e)])
