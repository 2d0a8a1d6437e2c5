"""Reward statistics behind the vanishing-gradient diagnostic (Razin et al., ICLR 2024).

The expected policy gradient for a prompt x is bounded by a power of
STD_{y~π(·|x)}[R(x, y)]: when the reward barely varies among the model's own samples, the
prompt contributes almost no gradient, however far its mean reward is from optimal.
Given K scored samples for each of N prompts (a reward matrix R of shape [N, K]) these
functions estimate that std per prompt and summarise how many prompts sit below a threshold.

The maths (`per_prompt_stats`, `low_std_share`, `summarize`) is pure; `save_extraction` is the
only function that touches the file system.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rft.io import write_json_atomic

ArrayLike = Any  # np.ndarray | torch.Tensor | nested lists: anything `as_numpy` accepts

# Percentiles of the per-prompt std reported by `summarize`.
STD_PERCENTILES = (10, 50, 90)


def as_numpy(x: ArrayLike) -> np.ndarray:
    """Convert a torch tensor (any device, with or without grad), array or list to float64."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_matrix(R: ArrayLike) -> np.ndarray:
    R = as_numpy(R)
    if R.ndim != 2:
        raise ValueError(f"reward matrix must be [N prompts, K samples], got shape {R.shape}")
    if R.shape[1] < 1:
        raise ValueError("reward matrix needs at least one sample per prompt (K >= 1)")
    return R


def per_prompt_stats(R: ArrayLike) -> dict[str, np.ndarray]:
    """Mean and std of the reward over each prompt's samples.

    Args:
        R: rewards, shape [N, K] (N prompts, K samples each).
    Returns:
        {"mean": [N], "std": [N]}. The std is the population std (ddof=0): it is the plug-in
        estimate of STD_{y~π}[R(x, y)] used in the paper, and it is 0 (not NaN) for K = 1.
    """
    R = _check_matrix(R)
    return {"mean": R.mean(axis=1), "std": R.std(axis=1, ddof=0)}


def low_std_share(std: ArrayLike, threshold: float) -> float:
    """Fraction of prompts whose reward std is strictly below `threshold`.

    Args:
        std: per-prompt std, shape [N].
    """
    std = as_numpy(std).reshape(-1)
    if std.size == 0:
        raise ValueError("low_std_share needs at least one prompt")
    return float(np.mean(std < threshold))


def summarize(R: ArrayLike, threshold: float) -> dict[str, float]:
    """Scalar summary of a reward matrix R [N, K], keyed with the project's log names.

    Keys: `reward/mean` (over all N*K samples), `reward/std_per_prompt_mean`,
    `reward/low_std_share` (std < threshold), `reward/std_per_prompt_p{10,50,90}`, plus
    `reward/low_std_threshold`, `n_prompts` and `k_samples` so the file is self-describing.
    """
    R = _check_matrix(R)
    stats = per_prompt_stats(R)
    std = stats["std"]
    out = {
        "reward/mean": float(R.mean()),
        "reward/std_per_prompt_mean": float(std.mean()),
        "reward/low_std_share": low_std_share(std, threshold),
        "reward/low_std_threshold": float(threshold),
    }
    for q in STD_PERCENTILES:
        out[f"reward/std_per_prompt_p{q}"] = float(np.percentile(std, q))
    out["n_prompts"] = int(R.shape[0])
    out["k_samples"] = int(R.shape[1])
    return out


def rollout_reward_spread(scores, k: int, threshold: float) -> dict[str, float]:
    """The per-prompt reward spread of one rollout, for the training log.

    Args:
        scores: torch tensor (N·k,), prompt-major (the k samples of a prompt are adjacent).
        k: samples per prompt; below 2 there is no spread and the result is empty.
        threshold: ``diag.std_threshold``.
    Returns:
        ``reward/std_per_prompt`` (the mean over prompts of the population std), its
        percentiles ``reward/std_per_prompt_p{10,50,90}`` and ``reward/low_std_share``.
        Computed in the scores' own dtype (torch), as the log has always had them.
    """
    if k < 2:
        return {}
    std = scores.view(-1, k).std(-1, unbiased=False)  # (N,)
    q = std.quantile(std.new_tensor([p / 100 for p in STD_PERCENTILES])).tolist()
    out = {"reward/std_per_prompt": std.mean().item()}
    out.update({f"reward/std_per_prompt_p{p}": v for p, v in zip(STD_PERCENTILES, q)})
    out["reward/low_std_share"] = (std < threshold).float().mean().item()
    return out


def save_extraction(
    out_dir: str | Path,
    prompts: list[str],
    texts: list[list[str]],
    R: ArrayLike,
    threshold: float,
) -> dict[str, float]:
    """Write the result of a reward-std extraction and return its summary.

    Args:
        out_dir: folder to write into (created if missing).
        prompts: the N prompts.
        texts: texts[i] holds the K completions sampled for prompts[i].
        R: rewards, shape [N, K]; R[i, j] scores texts[i][j].
        threshold: std below which a prompt counts as "low std".
    Writes:
        rewards.npy (float32 [N, K]), samples.jsonl (one line per prompt: prompt, completions,
        rewards, mean, std), summary.json (`summarize`) and reward_std_vs_mean.png.
    """
    from rft.diagnostics.plots import plot_std_vs_mean  # matplotlib only when writing

    R = _check_matrix(R)
    n, k = R.shape
    if len(prompts) != n:
        raise ValueError(f"got {len(prompts)} prompts for a reward matrix with {n} rows")
    bad = [i for i, t in enumerate(texts) if len(t) != k]
    if len(texts) != n or bad:
        raise ValueError(
            f"texts must be {n} lists of {k} completions; "
            f"got {len(texts)} lists, wrong length at rows {bad[:5]}"
        )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = per_prompt_stats(R)
    summary = summarize(R, threshold)

    np.save(out_dir / "rewards.npy", R.astype(np.float32))
    with open(out_dir / "samples.jsonl", "w") as f:
        for i in range(n):
            line = {
                "prompt": prompts[i],
                "completions": list(texts[i]),
                "rewards": R[i].tolist(),
                "mean": float(stats["mean"][i]),
                "std": float(stats["std"][i]),
            }
            f.write(json.dumps(line) + "\n")
    write_json_atomic(out_dir / "summary.json", summary, indent=2, sort_keys=False)
    plot_std_vs_mean(
        stats["mean"],
        stats["std"],
        threshold,
        out_dir / "reward_std_vs_mean.png",
        low_share=summary["reward/low_std_share"],
    )
    return summary
