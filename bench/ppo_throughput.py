"""PPO throughput benchmark: rollout tokens/s, update tokens/s, episodes/s and peak memory.

Runs a few real PPO iterations through the same train(cfg) path as run.py and reports the
per-phase timings that the PPO module logs, averaged over iterations after the first (warm-up).

    python bench/ppo_throughput.py                       # the issue's CPU target setting
    python bench/ppo_throughput.py --iterations 4 -- hardware=gpu alg.rollout_prompts=256
    python bench/ppo_throughput.py --out bench/results/cpu.json

Target (2-core CPU, SmolLM2-135M, 32 episodes x 48 new tokens, 2 epochs, minibatch 8):
at least 0.4 episodes/s and at most 5 GB peak memory. Measured: 0.70-0.73 episodes/s, 4.98 GB
(docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULTS = [
    "task=imdb",
    "alg=ppo",
    "model=smollm2_135m",
    "logger=none",
    "alg.rollout_prompts=32",
    "alg.samples_per_prompt=1",
    "alg.update_epochs=2",
    "alg.minibatch_size=8",
    "task.max_new_tokens=48",
    "task.min_new_tokens=48",
    "alg.eval_every=0",
    "eval.before_training=false",
    "task.n_eval_prompts=8",
    "task.n_test_prompts=8",
    "checkpoint.every_n_iterations=1000",
    "checkpoint.save_policy=false",
]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--iterations", type=int, default=3, help="PPO iterations to run (first is warm-up)"
    )
    ap.add_argument("--out", type=Path, default=None, help="write the JSON report here too")
    ap.add_argument(
        "overrides", nargs="*", help="Hydra overrides applied after the benchmark defaults"
    )
    args = ap.parse_args(argv)

    from hydra import compose, initialize_config_dir

    import rft  # noqa: F401
    from rft.plots import read_history
    from rft.train import train

    overrides = DEFAULTS + [f"alg.n_iterations={args.iterations}"] + list(args.overrides)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    # The run leaves a checkpoint of the full model (GBs for SmolLM2): keep only the
    # history we read, so repeated benchmarks do not fill the disk.
    with tempfile.TemporaryDirectory(prefix="rft-bench-") as tmp:
        run_dir = Path(tmp)
        t0 = time.perf_counter()
        train(cfg, run_dir=run_dir)
        wall = time.perf_counter() - t0
        rows = [r for r in read_history(run_dir / "history.jsonl") if "time/update_s" in r]
    timed = rows[1:] or rows

    def mean(key):
        return statistics.mean(r[key] for r in timed)

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB (Linux)
    report = {
        "episodes_per_s": mean("time/episodes_per_s"),
        "rollout_tokens_per_s": mean("time/rollout_tokens_per_s"),
        "update_tokens_per_s": mean("time/update_tokens_per_s"),
        "iteration_s": mean("time/iteration_s"),
        "phase_s": {p: mean(f"time/{p}_s") for p in ("rollout", "reward", "score", "update")},
        "completion_tokens_mean": mean("completion/tokens"),
        # rollout.backend=vllm: the weight sync before each rollout (inside phase_s.rollout)
        **(
            {"weight_sync_s": mean("time/weight_sync_s")}
            if all("time/weight_sync_s" in r for r in timed)
            else {}
        ),
        "peak_memory_gb": peak_gb,
        # what hardware.precision=auto became on this machine (rft.device.resolve_precision)
        "precision": str(cfg.hardware.precision),
        "iterations_timed": len(timed),
        "wall_s": wall,
        "overrides": overrides,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    import torch

    if torch.cuda.is_available():
        report["peak_cuda_memory_gb"] = torch.cuda.max_memory_allocated() / 1024**3
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return report


if __name__ == "__main__":
    main()
