"""rft.diagnostics.compare: low-std shares and their paired change, by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rft.diagnostics.compare import compare, load_extraction, main
from rft.errors import DataError


def write_run(folder, prompts, R):
    folder.mkdir(parents=True)
    np.save(folder / "rewards.npy", np.asarray(R, dtype=np.float32))
    (folder / "samples.jsonl").write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in prompts)
    )
    return folder


def test_shares_and_paired_change_by_hand(tmp_path):
    prompts = ["a", "b", "c", "d"]
    # stds (population, K=2): before .0 .0 .1 .0 -> 3 of 4 low; after .1 .0 .2 .2 -> 1 of 4 low
    before = [[0.1, 0.1], [0.5, 0.5], [0.2, 0.4], [0.3, 0.3]]
    after = [[0.2, 0.4], [0.6, 0.6], [0.1, 0.5], [0.0, 0.4]]
    b = write_run(tmp_path / "b", prompts, before)
    a = write_run(tmp_path / "a", prompts, after)
    res = compare({"before": load_extraction(b), "after": load_extraction(a)}, 0.05)
    assert res["runs"]["before"]["low_std_share"] == 0.75
    assert res["runs"]["after"]["low_std_share"] == 0.25
    q = res["runs"]["after"]["paired"]
    # d = -1, 0, 0, -1: mean -0.5, SE = std(ddof=1) / 2 = 0.57735 / 2
    assert q["share_change"] == -0.5 and q["left_low_std"] == 2 and q["entered_low_std"] == 0
    assert q["share_change_se"] == pytest.approx(np.std([-1, 0, 0, -1], ddof=1) / 2)
    out = tmp_path / "cmp.png"
    assert main([f"before={b}", f"after={a}", "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and json.loads(out.with_suffix(".json").read_text())["runs"]


def test_other_prompts_are_not_paired_and_a_wrong_folder_is_named(tmp_path):
    b = write_run(tmp_path / "b", ["a", "b"], [[0, 1], [0, 0]])
    a = write_run(tmp_path / "a", ["x", "y"], [[0, 1], [0, 0]])
    res = compare({"b": load_extraction(b), "a": load_extraction(a)}, 0.05)
    assert res["runs"]["a"]["paired"] is None
    with pytest.raises(DataError, match="not an extraction run"):
        load_extraction(tmp_path)
