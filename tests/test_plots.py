import json

import pytest
from matplotlib.figure import Figure

from rft.plots import ema, plot_curves


def test_ema_is_bias_corrected_and_matches_a_naive_weighted_mean():
    assert ema([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])  # no pull towards 0
    xs, a = [1.0, 5.0, -2.0, 4.0], 0.7
    for t in range(len(xs)):  # weights a^(t-i) over the points so far, normalised
        w = [a ** (t - i) for i in range(t + 1)]
        assert ema(xs, a)[t] == pytest.approx(sum(wi * x for wi, x in zip(w, xs)) / sum(w))


@pytest.fixture
def saved_figures(monkeypatch):
    """Every matplotlib Figure saved during the test (Figure.savefig still writes the file)."""
    figs, save = [], Figure.savefig

    def capture(fig, *args, **kwargs):
        figs.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    return figs


def lines_by_label(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_plot_curves_draws_training_and_guided_panels(tmp_path, saved_figures):
    # What was plotted, read back from the saved Figure: one panel per logged PANELS group in
    # PANELS order, each line the history values of its key against "iteration". Catches a
    # panel plotting another key or other rows (the y data), a series plotted against its row
    # index instead of the iteration, an evaluation key that gets smoothed, the smoothed line
    # not being the EMA, a panel for a key never logged, and empty axes.
    rows = [
        {"iteration": i, "reward/mean": 0.5 + 0.01 * i, "guided/restart_share": 0.6 - 0.02 * i}
        for i in range(20)
    ]
    rows += [{"iteration": 10 * j, "val/reward_mean": 0.3 + 0.1 * j} for j in (1, 2, 3)]
    rows += [{"iteration": 2 * j + 1, "loss/policy": -0.1 * j} for j in range(4)]  # short: raw
    rows.append({"iteration": 20, "test/reward_mean": 0.7})
    hist = tmp_path / "history.jsonl"
    hist.write_text("\n".join(json.dumps(r) for r in rows) + "\n{cut by a kill")
    out = plot_curves(hist, tmp_path / "curves.png", title="t")
    assert out == tmp_path / "curves.png" and out.stat().st_size > 1000
    (fig,) = saved_figures
    assert fig._suptitle.get_text() == "t"
    axes = fig.axes
    assert [ax.get_title() for ax in axes if ax.axison] == [
        "reward",
        "policy loss",
        "guided: restarts",
    ]
    assert [ax.axison for ax in axes] == [True, True, True]  # 3 panels: one row of 3
    reward, policy, guided = axes
    assert all(ax.get_xlabel() == "iteration / step" for ax in axes)

    its = list(range(20))
    train = [0.5 + 0.01 * i for i in its]
    lines = reward.get_lines()
    # 20 ≥ SMOOTH_MIN_POINTS training points: a faint raw line, then its EMA in the same colour
    raw, smooth = lines[0], lines_by_label(reward)["reward/mean (smoothed)"]
    assert list(raw.get_xdata()) == its and list(raw.get_ydata()) == pytest.approx(train)
    assert raw.get_alpha() == 0.3 and smooth.get_color() == raw.get_color()
    assert list(smooth.get_xdata()) == its
    assert list(smooth.get_ydata()) == pytest.approx(
        ema(train, 1 - 1 / 2.0)
    )  # window max(2, 20/10)
    val, test = (
        lines_by_label(reward)["val/reward_mean"],
        lines_by_label(reward)["test/reward_mean"],
    )
    assert list(val.get_xdata()) == [10, 20, 30]  # evaluations: never smoothed, with markers
    assert list(val.get_ydata()) == pytest.approx([0.4, 0.5, 0.6])
    assert val.get_linestyle() == "-" and val.get_marker() == "o"
    assert list(test.get_xdata()) == [20] and list(test.get_ydata()) == [0.7]
    assert test.get_linestyle() == "None" and test.get_marker() == "o"  # one point: a dot
    assert [t.get_text() for t in reward.get_legend().get_texts()] == [
        "reward/mean (smoothed)",
        "val/reward_mean",
        "test/reward_mean",
    ]

    (pl,) = policy.get_lines()  # 4 points < SMOOTH_MIN_POINTS: the raw line only
    assert pl.get_label() == "loss/policy" and list(pl.get_xdata()) == [1, 3, 5, 7]
    assert list(pl.get_ydata()) == pytest.approx([0.0, -0.1, -0.2, -0.3])

    g = lines_by_label(guided)["guided/restart_share (smoothed)"]
    assert list(g.get_xdata()) == its
    assert list(g.get_ydata()) == pytest.approx(ema([0.6 - 0.02 * i for i in its], 0.5))
    assert "guided/policy_token_share" not in lines_by_label(guided)  # not logged: not drawn

    assert plot_curves(tmp_path / "missing.jsonl", tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists() and len(saved_figures) == 1


def test_plot_curves_turns_off_unused_axes(tmp_path, saved_figures):
    # 4 panels in a 2 x 3 grid: the last two axes are hidden, not left as empty frames
    keys = ["reward/mean", "objective/kl", "objective/kl_coef", "loss/value"]
    hist = tmp_path / "history.jsonl"
    hist.write_text(
        "\n".join(json.dumps({"iteration": i, **dict.fromkeys(keys, i)}) for i in range(3))
    )
    plot_curves(hist, tmp_path / "c.png")
    (fig,) = saved_figures
    assert [ax.axison for ax in fig.axes] == [True] * 4 + [False] * 2
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["reward", "KL to reference (per token)", "KL coefficient β", "value loss"]
    for ax, k in zip(fig.axes, keys):
        (line,) = ax.get_lines()
        assert line.get_label() == k and list(line.get_ydata()) == [0, 1, 2]
    assert all(not ax.get_lines() for ax in fig.axes[4:])
