"""Training-curve plots from history.jsonl."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rft.io import read_history  # noqa: E402

PANELS = [
    ("reward", ["reward/mean", "val/reward_mean", "test/reward_mean", "test_init/reward_mean"]),
    ("KL to reference (per token)", ["objective/kl"]),
    ("KL coefficient β", ["objective/kl_coef"]),
    ("value loss", ["loss/value"]),
    ("policy loss", ["loss/policy"]),
    ("SFT loss", ["sft/loss"]),
    ("offline: policy NLL of the data", ["policy/nll"]),
    ("guided: reward by who generated", ["guided/reward_policy_only", "guided/reward_guide_only"]),
    ("guided: restarts", ["guided/restart_share", "guided/policy_token_share"]),
]
SMOOTH_MIN_POINTS = 8  # training series at least this long also get a smoothed line


def ema(values: list[float], alpha: float) -> list[float]:
    """Bias-corrected exponential moving average (as TensorBoard's smoothing, without the
    bias of starting at 0)."""
    out, m, w = [], 0.0, 0.0
    for v in values:
        m = alpha * m + (1 - alpha) * v
        w = alpha * w + (1 - alpha)
        out.append(m / w)
    return out


def plot_curves(history_path: Path, out_path: Path, title: str = "") -> Path | None:
    rows = read_history(history_path)
    panels = [(t, [k for k in keys if any(k in r for r in rows)]) for t, keys in PANELS]
    panels = [(t, ks) for t, ks in panels if ks]
    if not panels:
        return None
    n = len(panels)
    cols = min(3, n)
    fig, axes = plt.subplots(
        (n + cols - 1) // cols,
        cols,
        figsize=(4.2 * cols, 3.2 * ((n + cols - 1) // cols)),
        squeeze=False,
    )
    for ax, (t, keys) in zip(axes.flat, panels):
        for k in keys:
            pts = [(r["iteration"], r[k]) for r in rows if k in r]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            evaluation = k.startswith(("val/", "test"))
            if not evaluation and len(pts) >= SMOOTH_MIN_POINTS:
                # Per-iteration training statistics are noisy (a few dozen episodes): the raw
                # line stays, faint, under a smoothed one whose window grows with the run.
                (raw,) = ax.plot(xs, ys, "-", alpha=0.3, linewidth=0.8)
                alpha = 1 - 1 / max(2.0, len(pts) / 10)
                ax.plot(xs, ema(ys, alpha), "-", color=raw.get_color(), label=f"{k} (smoothed)")
                continue
            style = "o" if len(pts) <= 2 else "-o" if evaluation else "-"
            ax.plot(xs, ys, style, label=k, markersize=3)
        ax.set_title(t)
        ax.set_xlabel("iteration / step")
        ax.grid(alpha=0.3)
        if len(keys) > 1 or ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)
