import json

import pytest

from rft.plots import ema, plot_curves


def test_ema_is_bias_corrected_and_matches_a_naive_weighted_mean():
    assert ema([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])  # no pull towards 0
    xs, a = [1.0, 5.0, -2.0, 4.0], 0.7
    for t in range(len(xs)):  # weights a^(t-i) over the points so far, normalised
        w = [a ** (t - i) for i in range(t + 1)]
        assert ema(xs, a)[t] == pytest.approx(sum(wi * x for wi, x in zip(w, xs)) / sum(w))


def test_plot_curves_draws_training_and_guided_panels(tmp_path):
    rows = [
        {"iteration": i, "reward/mean": 0.5 + 0.01 * i, "guided/restart_share": 0.6}
        for i in range(20)
    ]
    rows.append({"iteration": 20, "test/reward_mean": 0.7})
    hist = tmp_path / "history.jsonl"
    hist.write_text("\n".join(json.dumps(r) for r in rows) + "\n{cut by a kill")
    out = plot_curves(hist, tmp_path / "curves.png", title="t")
    assert out is not None and out.stat().st_size > 1000
    assert plot_curves(tmp_path / "missing.jsonl", tmp_path / "none.png") is None
