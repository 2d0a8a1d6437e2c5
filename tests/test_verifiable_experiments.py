"""scripts/verifiable_experiments.py end to end in its --smoke mode (the tiny model, tiny
budgets): every command runs and writes its table. The SmolLM2 runs are scheduled by hand."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


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
