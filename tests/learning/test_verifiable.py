"""GRPO on a reasoning-gym task with verifier rewards, end to end on a tiny model
(rft.train.train): it learns (the learning-test pattern: its objective moves well beyond the
seed-to-seed spread while the sign-flipped control does not), the evaluation reports the
task's pass@k and format-error share, and a killed run resumes identically.

The task: chain_sum with two one-digit terms; the policy is a tiny GPT-2 over a word-level
vocabulary of the answer tags, the digits and three filler words
(tests/task/verifiable_helpers.answer_tokenizer); the reward is reasoning-gym's scorer (binary)
plus 0.5 × the answer-format reward, a weighted_sum as a user would write it. The measured
objective is the format share, 1 - test/format_error_share, which the task's own check computes
in the evaluation."""

from __future__ import annotations

import pytest

from rft.alg.group import GroupPG
from rft.train import train
from tests.conftest import compose_cfg, history, run_killed_then_resumed
from tests.task.verifiable_helpers import answer_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return answer_tokenizer(tmp_path_factory.mktemp("answer_tok"))


def overrides(tok, *extra: str, flip: bool = False) -> list[str]:
    w_correct, w_format = (-1.0, -0.5) if flip else (1.0, 0.5)
    return [
        "task=reasoning_gym",
        "task.generators=[{name:chain_sum,min_terms:2,max_terms:2,min_digits:1,max_digits:1}]",
        "task.drop_train_overlap=false",  # 100 distinct problems: the test reuses them
        "task.n_train=200",
        "task.n_val=16",
        "task.n_test=32",
        "task.n_eval_prompts=8",
        "task.n_test_prompts=32",
        "task.max_new_tokens=6",
        "task.min_new_tokens=6",
        "task.prompt_max_tokens=32",
        "task.pass_k=[1,2]",
        "model=tiny",
        f"model.tiny.tokenizer={tok}",
        "logger=none",
        "hardware=cpu_fp32",
        "eval.samples_per_prompt=2",
        "eval.batch_size=64",
        "checkpoint.every_n_iterations=100",
        "reward=weighted_sum",
        "~reward.terms.sentiment",
        f"+reward.terms.correct={{weight:{w_correct},reward:"
        "{_target_:rft.reward.verify.ReasoningGymReward,binary:true}}",
        f"+reward.terms.format={{weight:{w_format},reward:"
        "{_target_:rft.reward.verify.AnswerFormatReward}}",
        "alg=grpo",
        "alg.rollout_prompts=8",
        "alg.samples_per_prompt=4",
        "alg.minibatch_size=8",
        "alg.lr=3e-3",
        "alg.eval_every=0",
        *extra,
    ]


# Format share (1 - test/format_error_share) after 12 iterations of 8 prompts × G = 4
# (seeds 0/1/2; flipped control in brackets); untrained 0.094 (test_init):
#   grpo  0.719 0.766 0.594  [0.031 0.031 0.047]
# (pass@1 rises from 0 to 0.016-0.031: two random digits rarely sum right.)
INIT_FORMAT = 0.094


def test_grpo_learns_the_answer_format_and_the_flipped_reward_does_not(tok, tmp_path):
    m = train(compose_cfg(*overrides(tok, "alg.n_iterations=12")), run_dir=tmp_path / "run")
    assert 1 - m["test_init/format_error_share"] == pytest.approx(INIT_FORMAT, abs=1e-3)
    good = 1 - m["test/format_error_share"]
    assert good > INIT_FORMAT + 0.35, good
    for key in (
        "test/pass@1",
        "test/pass@1_se",
        "test/pass@2",
        "test/maj@2",
        "test/format_error_share_se",
    ):
        assert key in m, key
    flipped = train(
        compose_cfg(*overrides(tok, "alg.n_iterations=12", flip=True)), run_dir=tmp_path / "flip"
    )
    assert 1 - flipped["test/format_error_share"] < INIT_FORMAT + 0.03


def test_a_killed_run_resumes_identically(tok, tmp_path, monkeypatch):
    over = overrides(
        tok, "alg.n_iterations=4", "checkpoint.every_n_iterations=2", "alg.eval_every=2"
    )
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")
    resumed = run_killed_then_resumed(over, GroupPG, 3, tmp_path / "resumed", monkeypatch)
    for key in ("test/reward_mean", "test/pass@1", "test/format_error_share"):
        assert resumed[key] == pytest.approx(full[key], rel=1e-6), key
    h_full = [r for r in history(tmp_path / "full") if "loss/policy" in r]
    h_res = [r for r in history(tmp_path / "resumed") if "loss/policy" in r]
    assert [r["iteration"] for r in h_res] == [1, 2, 3, 4]
    for a, b in zip(h_full, h_res):
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], rel=1e-6)
        assert a["loss/policy"] == pytest.approx(b["loss/policy"], rel=1e-4, abs=1e-6)
