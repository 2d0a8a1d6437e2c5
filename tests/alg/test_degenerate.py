"""Runs that cannot learn are named (rft/degenerate.py): a warning, an error under strict=true;
what chance can show only after degenerate_after completions in a row.

What the reward alone shows (every completion of a batch scored alike) is checked where the
reward is called (rft/reward/base.py, tests/integration/test_one_door.py). What only the
algorithm sees is called from the algorithms: every group of a batch without a spread, dynamic
sampling that keeps no group (rft/alg/group.py), a KL penalty that outweighs the reward
(rft/alg/ppo.py).
"""

from __future__ import annotations

import logging

import pytest

from rft.degenerate import DegenerateRunError, Streak, degenerate, evidence_needed, is_strict
from rft.reward.base import CheckedReward
from rft.train import train
from tests.conftest import PPO_SMALL, compose_cfg, tiny_overrides

GROUP = (
    "alg.n_iterations=2",
    "alg.rollout_prompts=4",
    "alg.samples_per_prompt=2",
    "alg.minibatch_size=8",
    "alg.micro_batch_size=8",
    "alg.eval_every=0",
    "eval.before_training=false",
    "reward=custom",
    "reward._target_=tests.alg.test_degenerate.prompt_reward",
)


def prompt_reward(prompts, completions, references=None) -> list[float]:
    """Depends on the prompt only: every group's G rewards are equal (std 0), while the batch as
    a whole has a spread (so the reward's own check does not fire)."""
    return [(len(p) % 7) / 7 for p in prompts]


def test_degenerate_warns_or_raises_by_strict(caplog):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"strict": False, "alg": {"lr": 1.0}})
    with caplog.at_level(logging.WARNING, logger="rft"):
        degenerate("nothing to learn here. Fix: this.", cfg.alg)  # a node: its root decides
    assert [r.getMessage() for r in caplog.records] == ["nothing to learn here. Fix: this."]
    cfg.strict = True
    assert is_strict(cfg.alg) and is_strict(True) and not is_strict(None)
    with pytest.raises(DegenerateRunError, match=r"^nothing to learn here\. Fix: this\. \(strict"):
        degenerate("nothing to learn here. Fix: this.", cfg.alg)


def test_a_streak_counts_completions_in_a_row_of_one_value():
    s = Streak()
    assert [s.add(4, True, 0.0), s.add(4, True, 0.0), s.add(3, True, 1.0)] == [4, 8, 3]
    assert [s.add(5, False), s.add(2, True), s.add(2, True)] == [0, 2, 4]


def test_a_pass_fail_reward_is_named_after_degenerate_after_alike_completions_in_a_row():
    """A hard task's all-fail batch is chance: under strict it must not stop the run; the same
    score over degenerate_after completions in a row, across batches, does."""
    from omegaconf import OmegaConf

    batches = iter([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    cfg = OmegaConf.create({"strict": True, "degenerate_after": 8, "reward": {}})
    assert evidence_needed(cfg.reward) == 8 and evidence_needed(None) == 128
    reward = CheckedReward(lambda p, c, r: next(batches), name="pass", cfg=cfg.reward)
    four = ["q"] * 4
    reward(four, four)  # 4 alike: chance
    reward(four, four)  # a pass: the streak ends
    reward(four, four)  # 4 alike again
    with pytest.raises(DegenerateRunError, match=r"^reward pass: the last 8 completions it"):
        reward(four, four)  # 8 in a row


def test_every_group_without_a_spread_is_an_error_under_strict(prompts_file, tmp_path):
    over = [*tiny_overrides(prompts_file, "alg=grpo", *GROUP), "strict=true"]
    # 8 completions an iteration: the default 128 in a row is not reached in 2 iterations
    train(compose_cfg(*over), run_dir=tmp_path / "chance")
    with pytest.raises(DegenerateRunError, match="every advantage of the last 8 completions"):
        train(compose_cfg(*over, "degenerate_after=8"), run_dir=tmp_path / "run")


def test_dynamic_sampling_that_keeps_no_group_is_an_error_under_strict(prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, "alg=dapo", *GROUP, "alg.max_sampling_rounds=2"),
        "strict=true",
    )
    with pytest.raises(DegenerateRunError, match="dynamic sampling"):
        train(cfg, run_dir=tmp_path / "run")


def test_a_dominating_kl_penalty_is_an_error_under_strict(prompts_file, tmp_path):
    over = tiny_overrides(
        prompts_file,
        *PPO_SMALL,
        "reward=custom",
        "reward._target_=rft.reward.basic.length_reward",
        "+reward.target_words=3",
        "alg.n_iterations=3",
        "alg.kl.kind=fixed",
        "alg.kl.beta=100",
    )
    with pytest.raises(DegenerateRunError, match="KL penalty outweighs"):
        train(compose_cfg(*over, "strict=true"), run_dir=tmp_path / "run")
