"""scripts/verifiable_experiments.py end to end in its --smoke mode (the tiny model, tiny
budgets): every command runs and writes its table. The SmolLM2 runs are scheduled by hand."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("command", ["pick", "vanishing", "remedies", "humaneval"])
def test_each_command_runs_on_the_tiny_model(command, tmp_path, monkeypatch):
    from rft.alg.group import GroupPG
    from scripts.verifiable_experiments import main

    # the driver patches GroupPG to stop at its token budget: undo that after the test
    monkeypatch.setattr(GroupPG, "training_step", GroupPG.training_step)

    extra = ["--only", "chain_sum_2t_1-2d"] if command == "pick" else ["--seeds", "0"]
    main([command, str(tmp_path), "--smoke", *extra])
    assert (tmp_path / f"{command}.md").read_text().count("|") > 10
    data = json.loads((tmp_path / f"{command}.json").read_text())
    assert data["settings"]["smoke"] is True
    if command in ("vanishing", "remedies"):
        assert (tmp_path / f"{command}.png").stat().st_size > 0


def test_candidates_searching_the_whole_reply_are_scored_by_their_reward():
    """A reward.format=any candidate's pass@1 under the task's tag check reads 0 for a policy
    that never writes the tag: its tables score the reward's own 0/1 verdict instead."""
    from scripts.std_sampler_experiment import compose_cfg
    from scripts.verifiable_experiments import CANDIDATES, score_for

    def score(*overrides):
        return score_for(compose_cfg("experiment=rg_grpo", *overrides))

    any_ = score(*CANDIDATES["chain_sum_2t_1-2d_any"])
    assert (any_["per_prompt"], any_["metric"], any_["name"]) == (
        "reward",
        "reward_mean",
        "pass@1 (any)",
    )
    assert score(*CANDIDATES["chain_sum_2t_1-2d"])["per_prompt"] == "pass@1"
    # the format read from the composed config, not from how the overrides spell it: a
    # weighted sum whose verifier term reads boxed answers on a tag task
    tag = CANDIDATES["chain_sum_2t_1-2d"]
    assert score(*tag, "reward.format=boxed")["name"] == "pass@1 (boxed)"
    assert score(*tag, "reward.format=tag")["per_prompt"] == "pass@1"
