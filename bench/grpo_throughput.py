"""GRPO throughput: rft's alg=grpo side by side with TRL's GRPOTrainer on the same CPU.

Setting (both sides): SmolLM2-135M (rft's offline conversion, one folder for both), IMDB
prompts (GRUE: the last 64 tokens of a review's first half, the prompts rft draws, in its
order), VADER reward ((compound + 1) / 2 of the completion), 8 prompts × G = 4 completions ×
48 new tokens (min = max) per step, one optimizer step per generation batch on all 32
completions, 8 sequences per forward/backward, top-k 50 sampling at temperature 1, bf16
autocast over fp32 weights (fp32 on a CPU without native bf16 matmuls, where rft's
hardware.precision=auto trains in fp32; both sides always share one precision), β = 0.04 KL to a frozen reference in the loss (k3 estimator, as
GRPO), lr 2e-5 (constant), max_grad_norm 1.0, no gradient checkpointing.

    python bench/grpo_throughput.py                      # both sides, 4 steps (1 warm-up)
    python bench/grpo_throughput.py --skip-peer          # rft only
    python bench/grpo_throughput.py --steps 6 -- alg.micro_batch_size=16   # extra rft overrides

The two sides run one after the other, each in its own process (peak RSS is that process's
ru_maxrss): rft's own train(cfg) in this venv, TRL in a separate venv this script creates
(default ~/.cache/rft/bench-venvs/trl, --trl-venv or $RFT_BENCH_TRL_VENV), with torch==2.13.0
installed first and the versions pinned below. Without a network, or when the install fails,
the TRL side is skipped and the report says why. Seconds per step are wall-clock, from the end
of one step to the end of the next, the first --warmup steps excluded.

Target: rft at least 2x TRL's episodes/s at no more than 60 % of its peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER = REPO / "bench" / "peers" / "trl_grpo.py"

# Verified together on CPU with torch 2.13.0 (the local CPU wheel, installed first).
TORCH_SPEC = "torch==2.13.0"
TRL_SPECS = [
    "trl==1.16.0",
    "transformers==5.25.0",
    "accelerate==1.16.0",
    "datasets==5.2.0",
    "vaderSentiment==3.3.2",
]

PROMPTS, G, NEW_TOKENS, MICRO_BATCH = 8, 4, 48, 8
BETA, LR, MAX_GRAD_NORM, TOP_K, TEMPERATURE = 0.04, 2e-5, 1.0, 50, 1.0
TARGET_SPEEDUP, TARGET_MEMORY_SHARE = 2.0, 0.60

RFT_OVERRIDES = [
    "task=imdb",
    "alg=grpo",
    "model=smollm2_135m",
    "logger=none",
    f"alg.rollout_prompts={PROMPTS}",
    f"alg.samples_per_prompt={G}",
    f"alg.minibatch_size={PROMPTS * G}",
    f"alg.micro_batch_size={MICRO_BATCH}",
    "alg.update_epochs=1",
    f"task.max_new_tokens={NEW_TOKENS}",
    f"task.min_new_tokens={NEW_TOKENS}",
    f"alg.generation.top_k={TOP_K}",
    f"alg.generation.temperature={TEMPERATURE}",
    f"alg.kl.beta={BETA}",
    "alg.kl.placement=loss",
    "alg.kl.estimator=k3",
    f"alg.lr={LR}",
    f"alg.max_grad_norm={MAX_GRAD_NORM}",
    "eval.before_training=false",
    "alg.eval_every=0",
    "task.n_test_prompts=8",
    "task.n_eval_prompts=8",
    "checkpoint.every_n_iterations=1000",
    "checkpoint.save_policy=false",
]


# ------------------------------------------------------------------------------ helpers
def log(msg: str) -> None:
    print(f"[grpo-bench] {msg}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def summary(per_step_s: list[float], episodes: int) -> dict:
    eps = [episodes / s for s in per_step_s]
    return {
        "episodes_per_s": statistics.mean(eps),
        "episodes_per_s_min": min(eps),
        "episodes_per_s_max": max(eps),
        "step_s": statistics.mean(per_step_s),
        "step_s_min": min(per_step_s),
        "step_s_max": max(per_step_s),
    }


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import rft  # noqa: F401  (registers the config schemas)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


# ------------------------------------------------------------------------------ rft side
def rft_worker(out: Path, overrides: list[str], warmup: int) -> None:
    """Run in a child process: rft's train(cfg), then its history rows and peak RSS."""
    import resource

    import torch
    import transformers

    from rft.config import choice
    from rft.plots import read_history
    from rft.train import train

    cfg = compose(overrides)
    episodes = int(cfg.alg.rollout_prompts) * int(cfg.alg.samples_per_prompt)
    with tempfile.TemporaryDirectory(prefix="rft-grpo-bench-") as tmp:
        run_dir = Path(tmp)
        t0 = time.perf_counter()
        train(cfg, run_dir=run_dir)
        wall = time.perf_counter() - t0
        rows = [r for r in read_history(run_dir / "history.jsonl") if "time/iteration_s" in r]
    # wall time of iteration i: between the history rows of iterations i-1 and i (everything
    # the loop does, as TRL's step-end to step-end); the module's own phase sum beside it
    elapsed = [r["time/elapsed_s"] for r in rows]
    wall_per_step = [elapsed[0]] + [b - a for a, b in zip(elapsed, elapsed[1:])]
    phase_sum = [r["time/iteration_s"] for r in rows]
    timed = slice(warmup, None)

    def mean(key):
        vals = [r[key] for r in rows[timed] if key in r]
        return statistics.mean(vals) if vals else None

    report = {
        "side": "rft",
        "episodes_per_step": episodes,
        "steps": len(rows),
        "warmup_steps": warmup,
        "steps_timed": len(rows[timed]),
        **summary(wall_per_step[timed], episodes),
        "step_s_all": wall_per_step,
        "phase_sum_s_all": phase_sum,
        "phase_sum": summary(phase_sum[timed], episodes),
        "phase_s": {p: mean(f"time/{p}_s") for p in ("rollout", "reward", "score", "update")},
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "train_wall_s": wall,
        "completion_lengths": [r.get("completion/mean_length") for r in rows],
        "rewards": [r.get("reward/mean") for r in rows],
        "kl_k3": [r.get("kl/k3") for r in rows],
        "settings": {
            "overrides": overrides,
            "precision": str(cfg.hardware.precision),
            "micro_batch_size": int(cfg.alg.micro_batch_size),
            "minibatch_size": int(cfg.alg.minibatch_size),
            "gradient_checkpointing": bool(cfg.model.gradient_checkpointing),
            "kl": {
                "placement": choice(cfg.alg.kl.placement),
                "estimator": choice(cfg.alg.kl.estimator),
                "beta": float(cfg.alg.kl.beta),
            },
            "aggregation": choice(cfg.alg.aggregation),
            "advantage": choice(cfg.alg.advantage),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "torch_threads": torch.get_num_threads(),
    }
    out.write_text(json.dumps(report, indent=1))


def prepare(overrides: list[str], steps: int, prompts_json: Path) -> tuple[str, dict]:
    """Convert SmolLM2 (once, rft's cache) and write the prompt texts rft will draw in its
    first ``steps`` iterations, each cut to its last prompt_max_tokens tokens as rft cuts it.
    Returns (model folder, prompt facts)."""
    from hydra.utils import instantiate
    from transformers import AutoTokenizer

    from rft.config import choice
    from rft.model.load import _smollm2_folder, prepare_tokenizer
    from rft.rollout.prompts import IterationSampler, encode_prompts

    cfg = compose(overrides)
    folder = _smollm2_folder(cfg.model.cache_dir)
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(str(folder)))
    task = instantiate(cfg.task, _convert_="none")
    texts, same = [], 0
    for it in range(steps):
        sampler = IterationSampler(
            len(task.train), int(cfg.alg.rollout_prompts), int(cfg.seed), epoch_fn=lambda it=it: it
        )
        (indices,) = list(sampler)
        prompts = [task.train[i].prompt for i in indices]
        ids, mask = encode_prompts(
            tok,
            prompts,
            int(cfg.task.prompt_max_tokens),
            truncation=choice(cfg.task.prompt_truncation),
        )
        for row, m in zip(ids, mask):
            kept = row[m.bool()].tolist()
            text = tok.decode(kept)
            texts.append(text)
            # TRL tokenizes the text again (with the tokenizer's defaults): the same ids?
            same += tok(text)["input_ids"] == kept
    prompts_json.write_text(json.dumps(texts))
    facts = {
        "n": len(texts),
        "max_tokens": int(cfg.task.prompt_max_tokens),
        "retokenized_identically": f"{same}/{len(texts)}",
        "source": "rft's IterationSampler draws (seed, iteration), task.train prompts",
    }
    return str(folder), facts


LOADS: dict[str, list[float] | None] = {}  # 1/5/15-min load averages around each side


def run_child(cmd: list[str], timeout: float, name: str) -> tuple[bool, str]:
    log(f"{name}: {' '.join(cmd)}")
    LOADS[f"{name}_before"] = load_average()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, timeout=timeout, text=True, capture_output=True)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    finally:
        LOADS[f"{name}_after"] = load_average()
    log(f"{name}: exit {proc.returncode} after {time.perf_counter() - t0:.0f} s")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        return False, f"exit {proc.returncode}:\n{tail}"
    return True, ""


# ------------------------------------------------------------------------------ TRL venv
def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_trl_venv(venv: Path, timeout: float) -> tuple[Path | None, str]:
    """(the venv's python, "") or (None, why not). Reuses a venv made with the same pins."""
    marker = venv / "rft-bench-specs.json"
    specs = [TORCH_SPEC, *TRL_SPECS]
    py = venv_python(venv)
    if py.is_file() and marker.is_file():
        try:
            if json.loads(marker.read_text()) == specs:
                return py, ""
        except ValueError:
            pass
    log(f"creating the TRL venv {venv} ({', '.join(specs)}); torch first, the CPU wheel")
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    steps = [
        [base, "-m", "venv", str(venv)],
        [str(py), "-m", "pip", "install", "-q", TORCH_SPEC],
        [str(py), "-m", "pip", "install", "-q", *TRL_SPECS],
        [str(py), "-c", "import torch, trl, transformers, datasets, vaderSentiment"],
    ]
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, timeout=timeout, text=True, capture_output=True)
        except subprocess.TimeoutExpired:
            return None, f"`{' '.join(cmd[2:])}` timed out after {timeout:.0f} s"
        except OSError as e:
            return None, f"`{' '.join(cmd)}`: {e}"
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            err = [ln for ln in lines if "ERROR" in ln or "Error" in ln] or lines[-3:]
            return None, (
                f"`{' '.join(cmd[2:])}` failed (no network to the package index?): "
                + " | ".join(err[-3:])
            )
    marker.write_text(json.dumps(specs))
    return py, ""


# ------------------------------------------------------------------------------ main
def bench_precision() -> str:
    """What hardware.precision=auto becomes for a CPU run here (rft.device.resolve_precision)."""
    from omegaconf import OmegaConf

    from rft.device import resolve_precision

    return resolve_precision(OmegaConf.create({"accelerator": "cpu", "precision": "auto"}))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per side")
    ap.add_argument("--warmup", type=int, default=1, help="first steps excluded from timing")
    ap.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results" / "grpo_throughput.json",
        help="write the JSON report here too",
    )
    ap.add_argument("--skip-peer", action="store_true", help="rft only, no TRL")
    ap.add_argument(
        "--trl-venv",
        type=Path,
        default=Path(
            os.environ.get(
                "RFT_BENCH_TRL_VENV", Path.home() / ".cache" / "rft" / "bench-venvs" / "trl"
            )
        ),
        help="the TRL venv (created when missing)",
    )
    ap.add_argument(
        "--install-timeout", type=float, default=1800, help="seconds per pip step at most"
    )
    ap.add_argument("--timeout", type=float, default=7200, help="seconds per side at most")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for both sides (default: torch's, one per core)",
    )
    ap.add_argument("--rft-worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for the rft side")
    args = ap.parse_args(argv)
    if args.warmup < 1 or args.steps <= args.warmup:
        ap.error("need --warmup >= 1 and --steps > --warmup")
    sys.path.insert(0, str(REPO))
    shared = (
        REPO.parent / "shared" / "data"
    )  # this workplace's IMDB copy, when RFT_DATA_DIR is unset
    if "RFT_DATA_DIR" not in os.environ and (shared / "imdb").is_dir():
        os.environ["RFT_DATA_DIR"] = str(shared)  # the rft child inherits it
    overrides = RFT_OVERRIDES + [f"alg.n_iterations={args.steps}"]
    if args.threads:
        overrides.append(f"hardware.torch_threads={args.threads}")
    overrides += list(args.overrides)
    # Both sides in one precision: the one rft's hardware.precision=auto picks on this CPU (bf16
    # autocast where it multiplies bf16 natively, fp32 elsewhere: rft.device), unless set.
    set_precision = [o.split("=", 1)[1] for o in overrides if o.startswith("hardware.precision=")]
    precision = set_precision[-1] if set_precision else bench_precision()
    if not set_precision:
        overrides.append(f"hardware.precision={precision}")
    peer_precision = "bf16" if precision.startswith("bf16") else "fp32"

    if args.rft_worker:
        rft_worker(args.rft_worker, overrides, args.warmup)
        return {}

    report: dict = {
        "benchmark": "grpo_throughput",
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "setting": {
            "model": "SmolLM2-135M-Instruct (rft's GGUF conversion, fp32 weights)",
            "task": "IMDB, GRUE prompts (last 64 tokens of a review's first half)",
            "reward": "VADER (compound + 1) / 2 of the completion",
            "prompts_per_step": PROMPTS,
            "completions_per_prompt": G,
            "episodes_per_step": PROMPTS * G,
            "new_tokens": f"min = max = {NEW_TOKENS}",
            "optimizer_steps_per_generation_batch": 1,
            "sequences_per_forward_backward": MICRO_BATCH,
            "sampling": f"top_k {TOP_K}, temperature {TEMPERATURE}",
            "precision": (
                "bf16 autocast over fp32 weights (rft: Lightning bf16-mixed)"
                if peer_precision == "bf16"
                else "fp32 (this CPU has no native bf16 matmul: rft's hardware.precision=auto)"
            ),
            "kl": f"beta {BETA} to a frozen reference, in the loss, k3 estimator (GRPO)",
            "lr": LR,
            "max_grad_norm": MAX_GRAD_NORM,
        },
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_average(),
        },
    }
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        tmp = Path(tmp)
        prompts_json = tmp / "prompts.json"
        log("preparing the model folder and the prompts")
        model_dir, report["prompts"] = prepare(overrides, args.steps, prompts_json)
        report["model_dir"] = model_dir

        # rft first, in its own process
        rft_json = tmp / "rft.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--rft-worker", str(rft_json)]
        cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        cmd += list(args.overrides)
        ok, why = run_child(cmd, args.timeout, "rft")
        report["rft"] = json.loads(rft_json.read_text()) if ok else {"failed": why}

        # then TRL, in its own venv and process
        if args.skip_peer:
            report["peer"] = "skipped (--skip-peer)"
        else:
            py, why = ensure_trl_venv(args.trl_venv.expanduser(), args.install_timeout)
            if py is None:
                log(f"TRL side skipped: {why}")
                report["peer"] = f"skipped ({why})"
            else:
                trl_json = tmp / "trl.json"
                cmd = [str(py), str(PEER), "--model", model_dir, "--prompts", str(prompts_json)]
                cmd += ["--out", str(trl_json), "--steps", str(args.steps)]
                cmd += ["--warmup", str(args.warmup), "--prompts-per-step", str(PROMPTS)]
                cmd += ["--num-generations", str(G), "--micro-batch", str(MICRO_BATCH)]
                cmd += ["--new-tokens", str(NEW_TOKENS), "--beta", str(BETA), "--lr", str(LR)]
                cmd += ["--max-grad-norm", str(MAX_GRAD_NORM), "--top-k", str(TOP_K)]
                cmd += ["--temperature", str(TEMPERATURE), "--precision", peer_precision]
                cmd += ["--threads", str(args.threads)] if args.threads else []
                ok, why = run_child(cmd, args.timeout, "trl")
                if ok:
                    report["peer"] = "trl"
                    report["trl"] = json.loads(trl_json.read_text())
                    report["trl"]["venv"] = str(args.trl_venv)
                else:
                    report["peer"] = f"failed ({why})"
    report["machine"]["load_average_after"] = load_average()
    report["machine"]["load_average_around_each_side"] = LOADS

    rft_side, trl_side = report.get("rft", {}), report.get("trl", {})
    if "episodes_per_s" in rft_side and "episodes_per_s" in trl_side:
        speedup = rft_side["episodes_per_s"] / trl_side["episodes_per_s"]
        memory = rft_side["peak_rss_gb"] / trl_side["peak_rss_gb"]
        report["ratios"] = {
            "episodes_per_s_rft_over_trl": speedup,
            "peak_rss_rft_over_trl": memory,
        }
        report["targets"] = {
            f"speedup_at_least_{TARGET_SPEEDUP:g}x": speedup >= TARGET_SPEEDUP,
            f"memory_at_most_{TARGET_MEMORY_SHARE:.0%}": memory <= TARGET_MEMORY_SHARE,
        }
        report["targets"]["pass"] = all(report["targets"].values())
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return report


if __name__ == "__main__":
    main()
