"""Figures for the vanishing-gradient diagnostics; PNG only, no maths beyond plotting.

Figures are built with `matplotlib.figure.Figure` and the Agg canvas directly, never pyplot, so
importing this module neither needs a display nor changes the global backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Floor for values drawn on log axes: a float64 std or grad norm can still be exactly 0.
LOG_FLOOR = 1e-12


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 4.0):
    """A constrained-layout Figure on an Agg canvas with `ncols` axes side by side."""
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save as PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_std_vs_mean(
    mean: Any,
    std: Any,
    threshold: float,
    path: str | Path,
    low_share: float | None = None,
    title: str | None = None,
) -> Path:
    """The paper's Figure 1: per-prompt reward std (y) against mean reward (x).

    Args:
        mean, std: shape [N], one point per prompt.
        threshold: drawn as a horizontal line; prompts below it get (nearly) no gradient.
        low_share: share of prompts below the threshold, shown in the title (computed if None).
    """
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    if low_share is None:
        low_share = float(np.mean(std < threshold))
    fig, (ax,) = new_figure()
    # Discrete rewards (e.g. 0/1 with K samples) put many prompts on one point: draw each
    # distinct point once, its area proportional to how many prompts sit there.
    pts, counts = np.unique(np.stack([mean, std], axis=1).round(12), axis=0, return_counts=True)
    sizes = 10 + 290 * counts / counts.max() if counts.max() > 1 else 10
    ax.scatter(pts[:, 0], pts[:, 1], s=sizes, alpha=0.5, edgecolors="none")
    if counts.max() > 1:
        ax.text(
            0.02,
            0.97,
            f"largest point: {counts.max()} prompts",
            transform=ax.transAxes,
            fontsize="small",
            va="top",
        )
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("mean reward per prompt")
    ax.set_ylabel("reward std per prompt")
    ax.set_title(title or f"{len(std)} prompts, {low_share:.1%} with std < {threshold:g}")
    ax.legend(loc="upper right")
    return save_figure(fig, path)


def _scatter_std_grad(ax, records: list[dict], key: str = "grad_norm", cmap: str = "viridis"):
    """Log-log scatter of grad norm against std, one colour per record's iteration.

    If records carry "reward" (mean reward in [0, 1]), inputs with reward >= 0.5 are drawn as
    triangles: a small std there means "solved", not "stuck".
    """
    iters = [r["iteration"] for r in records]
    lo, hi = min(iters), max(iters)
    sc = None
    for r in records:
        std = np.maximum(np.asarray(r["std"], dtype=float), LOG_FLOOR)
        g = np.maximum(np.asarray(r[key], dtype=float), LOG_FLOOR)
        c = np.full(len(std), r["iteration"], dtype=float)
        solved = (
            np.asarray(r["reward"], dtype=float) >= 0.5
            if "reward" in r
            else np.zeros(len(std), bool)
        )
        for mask, marker in ((~solved, "o"), (solved, "^")):
            if mask.any():
                sc = ax.scatter(
                    std[mask], g[mask], c=c[mask], marker=marker, cmap=cmap,
                    vmin=lo, vmax=max(hi, lo + 1), s=12, alpha=0.7, edgecolors="none",
                )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("reward std under the model")
    return sc


def plot_std_vs_gradnorm(records: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Online diagnostic: per-prompt gradient norm against reward std, coloured by iteration.

    Args:
        records: [{"iteration": int, "std": [P], "grad_norm": [P]}, ...], one per probe time.
    """
    if not records:
        raise ValueError("plot_std_vs_gradnorm needs at least one record")
    fig, (ax,) = new_figure()
    sc = _scatter_std_grad(ax, records)
    ax.set_ylabel("policy-gradient norm")
    ax.set_title(title or "per-prompt gradient norm vs reward std")
    fig.colorbar(sc, ax=ax, label="iteration")
    return save_figure(fig, path)


# --- the controlled experiment (rft.diagnostics.controlled) --------------------------------------


def plot_controlled_curves(results: dict, path: str | Path) -> Path:
    """Train reward (expected reward = mean π(B|x)) and accuracy vs step, SFT vs RFT."""
    fig, axes = new_figure(ncols=2)
    for method, color in (("sft", "tab:blue"), ("rft", "tab:orange")):
        log = results[method]
        axes[0].plot(log["step"], log["reward"], color=color, label=method.upper())
        axes[1].plot(log["step"], log["accuracy"], color=color, label=method.upper())
    axes[0].set_ylabel("train reward  E_{y~π}[R(x, y)]")
    axes[1].set_ylabel("train accuracy on labelling B")
    for ax in axes:
        ax.set_xlabel("finetuning step")
        ax.set_ylim(-0.02, 1.02)
        ax.legend()
    cfg = results["config"]
    fig.suptitle(
        f"finetuning to a new labelling: {cfg['optimizer']} lr={cfg['lr']:g}, same for both"
    )
    return save_figure(fig, path)


def plot_controlled_std_vs_grad(results: dict, path: str | Path) -> Path:
    """Per-input gradient norm vs reward std at the probe checkpoints, RFT next to SFT.

    The dashed line c·std² (c the largest ratio seen) is the shape of the bound for a 0/1
    reward: ||∂V/∂logits|| <= sqrt(2)·std², so RFT's gradient dies with the std; SFT's does not.
    """
    fig, axes = new_figure(ncols=2)
    rft, sft = results["rft"]["probes"], results["sft"]["probes"]
    sc = _scatter_std_grad(axes[0], rft, "grad_norm")
    _scatter_std_grad(axes[1], sft, "sft_grad_norm")
    std = np.maximum(np.concatenate([r["std"] for r in rft]), LOG_FLOOR)
    g = np.maximum(np.concatenate([r["grad_norm"] for r in rft]), LOG_FLOOR)
    c = float(np.max(g / std**2))
    xs = np.geomspace(std.min(), std.max(), 50)
    axes[0].plot(xs, c * xs**2, "k--", lw=1, label=f"{c:.3g}·std²")
    axes[0].legend(loc="lower right")
    axes[0].set_ylabel("RFT: ||∇θ Σ_y π(y|x) R(x, y)||  (exact)")
    axes[1].set_ylabel("SFT: ||∇θ log π(B(x)|x)||")
    axes[0].set_title("RFT: gradient vanishes with the std")
    axes[1].set_title("SFT: large while unsolved (●), whatever the std")
    axes[1].scatter([], [], marker="o", c="gray", s=12, label="π(B|x) < 0.5")
    axes[1].scatter([], [], marker="^", c="gray", s=12, label="π(B|x) ≥ 0.5 (solved)")
    axes[1].legend(loc="lower right")
    fig.colorbar(sc, ax=axes, label="finetuning step (each run's own model)")
    return save_figure(fig, path)


def plot_controlled_low_std(results: dict, path: str | Path) -> Path:
    """Reward curves split by the input's reward std under the pretrained model."""
    fig, (ax,) = new_figure(width=6.0)
    q = results["config"]["low_std_quantile"]
    for method, color in (("sft", "tab:blue"), ("rft", "tab:orange")):
        log = results[method]
        ax.plot(
            log["step"],
            log["reward_low_std"],
            color=color,
            label=f"{method.upper()}, low initial std",
        )
        ax.plot(
            log["step"],
            log["reward_rest"],
            color=color,
            ls="--",
            label=f"{method.upper()}, the rest",
        )
    ax.set_xlabel("finetuning step")
    ax.set_ylabel("train reward (mean π(B(x)|x))")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"inputs in the lowest {q:.0%} of initial std (≤ {results['initial']['low_std_cut']:.2g}) vs the rest"
    )
    ax.legend(loc="center right")
    return save_figure(fig, path)
