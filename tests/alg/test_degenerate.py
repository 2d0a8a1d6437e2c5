"""Runs that cannot learn are named (rft/degenerate.py): a warning the first iteration it shows,
an error under strict=true.

What the reward alone shows (every completion of a batch scored alike) is checked where the
reward is called (rft/reward/base.py, tests/integration/test_one_door.py). What only the
algorithm sees is called from the algorithms: every group of a batch without a spread, dynamic
sampling that keeps no group (rft/alg/group.py), a KL penalty that outweighs the reward
(rft/alg/ppo.py).
"""

from __future__ import annotations

import logging

import pytest

from rft.degenerate import DegenerateRunError, degenerate, is_strict
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


def test_every_group_without_a_spread_is_an_error_under_strict(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, "alg=grpo", *GROUP), "strict=true")
    with pytest.raises(DegenerateRunError, match="group"):
        train(cfg, run_dir=tmp_path / "run")


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
