"""Reward-matrix statistics against numpy, and the files written by save_extraction."""

import json

import numpy as np
import pytest
import torch

from rft.diagnostics.plots import plot_std_vs_gradnorm
from rft.diagnostics.reward_stats import low_std_share, per_prompt_stats, save_extraction, summarize

# 4 prompts x 3 samples; row 1 has zero std (every sample scored the same).
R = np.array(
    [
        [0.0, 1.0, 1.0],
        [0.5, 0.5, 0.5],
        [0.0, 0.0, 0.3],
        [1.0, -1.0, 0.2],
    ]
)


def test_per_prompt_stats_match_numpy():
    s = per_prompt_stats(R)
    np.testing.assert_allclose(s["mean"], R.mean(axis=1))
    np.testing.assert_allclose(s["std"], R.std(axis=1, ddof=0))
    assert s["std"][1] == 0.0
    # hand-computed: row 0 has p = 2/3 of ones, std = sqrt(p(1-p)) = sqrt(2)/3
    assert s["std"][0] == pytest.approx(np.sqrt(2) / 3)


def test_torch_input_gives_same_stats():
    s_np = per_prompt_stats(R)
    s_t = per_prompt_stats(torch.tensor(R, dtype=torch.float32, requires_grad=True))
    np.testing.assert_allclose(s_t["std"], s_np["std"], rtol=1e-6)


def test_low_std_share_is_strict():
    std = R.std(axis=1)  # [0.471, 0, 0.141, 0.817]
    assert low_std_share(std, 0.1) == 0.25
    assert low_std_share(std, std[2]) == 0.25  # strictly below: the row at the threshold is not low
    assert low_std_share(std, 1.0) == 1.0


def test_summarize_keys_and_values():
    out = summarize(R, threshold=0.2)
    std = R.std(axis=1)
    assert out["reward/mean"] == pytest.approx(R.mean())
    assert out["reward/std_per_prompt_mean"] == pytest.approx(std.mean())
    assert out["reward/low_std_share"] == pytest.approx(0.5)
    for q in (10, 50, 90):
        assert out[f"reward/std_per_prompt_p{q}"] == pytest.approx(np.percentile(std, q))
    assert (out["n_prompts"], out["k_samples"]) == (4, 3)


def test_rejects_non_matrix():
    with pytest.raises(ValueError, match=r"\[N prompts, K samples\]"):
        per_prompt_stats(np.zeros(5))


def test_save_extraction_writes_files(tmp_path):
    prompts = [f"prompt {i}" for i in range(4)]
    texts = [[f"c{i}{j}" for j in range(3)] for i in range(4)]
    summary = save_extraction(tmp_path, prompts, texts, torch.tensor(R), threshold=0.2)

    rewards = np.load(tmp_path / "rewards.npy")
    assert rewards.shape == (4, 3) and rewards.dtype == np.float32
    np.testing.assert_allclose(rewards, R, rtol=1e-6)

    lines = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    assert lines[2]["prompt"] == "prompt 2" and lines[2]["completions"] == ["c20", "c21", "c22"]
    assert lines[1]["std"] == 0.0 and lines[3]["rewards"] == [1.0, -1.0, 0.2]

    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "reward_std_vs_mean.png").stat().st_size > 0


def test_save_extraction_checks_lengths(tmp_path):
    with pytest.raises(ValueError, match="texts must be 4 lists of 3"):
        save_extraction(tmp_path, ["p"] * 4, [["a", "b", "c"]] * 3 + [["a"]], R, 0.2)


def test_plot_std_vs_gradnorm(tmp_path):
    records = [
        {"iteration": 0, "std": [0.0, 0.1, 0.4], "grad_norm": [0.0, 0.01, 0.3]},
        {"iteration": 5, "std": [0.2, 0.3], "grad_norm": [0.05, 0.1]},
    ]
    path = plot_std_vs_gradnorm(records, tmp_path / "g.png")
    assert path.stat().st_size > 0
