"""Compare reward-std extractions of the same prompts (e.g. before and after SFT): one scatter
of per-prompt reward std against mean with every extraction overlaid, and the low-std shares
with the paired change (the same prompts in each, so prompts that moved are counted).

    python -m rft.diagnostics.compare before=outputs/<extract run> after=outputs/<extract run> \\
        [--threshold 0.05] [--out std_vs_mean_compare.png]

Each run folder is a `mode=extract` output (rewards.npy [N, K], samples.jsonl). Razin et al.'s
reading: a prompt whose reward std under the policy is small gets a small expected gradient;
after a short SFT far fewer prompts should sit below the threshold.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from rft.errors import DataError


def load_extraction(folder: str | Path) -> tuple[list[str], np.ndarray]:
    """(prompts, rewards [N, K]) of one extraction folder."""
    folder = Path(folder)
    rewards, samples = folder / "rewards.npy", folder / "samples.jsonl"
    if not rewards.is_file() or not samples.is_file():
        raise DataError(
            f"{folder}: not an extraction run (expected rewards.npy and samples.jsonl; make one "
            "with `python run.py mode=extract ...`)."
        )
    prompts = [json.loads(line)["prompt"] for line in samples.read_text().splitlines() if line]
    return prompts, np.load(rewards).astype(np.float64)


def compare(runs: dict[str, tuple[list[str], np.ndarray]], threshold: float) -> dict:
    """Per run: low-std share, mean reward, median std; with ≥ 2 runs on the same prompts, for
    each later run against the first: prompts that left / entered the low-std set, and the
    paired standard error of the change in share (over prompts)."""
    labels = list(runs)
    first_prompts = runs[labels[0]][0]
    out: dict = {"threshold": threshold, "runs": {}}
    low = {}
    for label, (_, R) in runs.items():
        std = R.std(axis=1)  # population std over the K samples, as the extraction logs it
        low[label] = std < threshold
        out["runs"][label] = {
            "n_prompts": int(R.shape[0]),
            "k_samples": int(R.shape[1]),
            "reward_mean": float(R.mean()),
            "std_median": float(np.median(std)),
            "low_std_share": float(low[label].mean()),
        }
    for label in labels[1:]:
        if runs[label][0] != first_prompts:
            out["runs"][label]["paired"] = None  # different prompts: shares compare unpaired
            continue
        d = low[label].astype(float) - low[labels[0]].astype(float)
        n = d.size
        out["runs"][label]["paired"] = {
            "share_change": float(d.mean()),
            "share_change_se": float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
            "left_low_std": int((d < 0).sum()),
            "entered_low_std": int((d > 0).sum()),
        }
    return out


def plot_compare(runs: dict[str, tuple[list[str], np.ndarray]], threshold: float, path) -> Path:
    from rft.diagnostics.plots import new_figure, save_figure

    fig, (ax,) = new_figure(width=6.0, height=4.5)
    for label, (_, R) in runs.items():
        std = R.std(axis=1)
        share = float((std < threshold).mean())
        ax.scatter(
            R.mean(axis=1), std, s=12, alpha=0.55, label=f"{label}: {share:.0%} < {threshold:g}"
        )
    ax.axhline(threshold, color="tab:red", ls="--", lw=1)
    ax.set_xlabel("mean reward per prompt")
    ax.set_ylabel("reward std per prompt")
    n = next(iter(runs.values()))[1].shape[0]
    ax.set_title(f"per-prompt reward std vs mean ({n} prompts)")
    ax.legend(loc="upper left", fontsize="small")
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rft.diagnostics.compare",
        description="Overlay reward-std extractions (label=folder ...) and compare their "
        "low-std shares on the same prompts.",
    )
    p.add_argument("runs", nargs="+", help="label=<mode=extract run folder>, first = baseline")
    p.add_argument(
        "--threshold", type=float, default=0.05, help="low-std threshold (diag.std_threshold)"
    )
    p.add_argument("--out", default="std_vs_mean_compare.png", help="the PNG to write")
    a = p.parse_args(argv)
    runs = {}
    for spec in a.runs:
        label, sep, folder = spec.partition("=")
        if not sep:
            p.error(f"{spec!r}: write label=<folder>, e.g. before=outputs/extract_0")
        runs[label] = load_extraction(folder)
    res = compare(runs, a.threshold)
    path = plot_compare(runs, a.threshold, a.out)
    Path(a.out).with_suffix(".json").write_text(json.dumps(res, indent=1))
    for label, r in res["runs"].items():
        line = f"{label}: low-std share {r['low_std_share']:.3f} of {r['n_prompts']} prompts (K={r['k_samples']}), mean reward {r['reward_mean']:.3f}"
        if r.get("paired"):
            q = r["paired"]
            line += f"; change {q['share_change']:+.3f} ± {q['share_change_se']:.3f} (paired), {q['left_low_std']} left, {q['entered_low_std']} entered"
        print(line)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
