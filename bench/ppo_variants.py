"""PPO at the bench setting, side by side: HF vs vLLM rollouts, full finetuning vs LoRA, and the
update step against this machine's measured matmul peak (issue #16).

    python bench/ppo_variants.py                          # hf, lora, lora_gc (and vllm if found)
    python bench/ppo_variants.py --variants hf,vllm --vllm-python .venv-vllm/bin/python
    python bench/ppo_variants.py --iterations 4 --out bench/results/ppo_variants.json

Each variant is one `bench/ppo_throughput.py` run (the same train(cfg) path as run.py) in its own
process, one after the other, so each peak RSS is its own; the first iteration is warm-up. The
vLLM variant runs under `--vllm-python` (a venv with the `vllm` extra, README "vLLM rollouts"),
and is skipped with the reason when that interpreter cannot import vllm.

FLOPs (dense matmuls only, what the peak measures): a token through the policy costs 2·N_body
forward, plus 2·N_head at completion positions (the LM head runs only where log-probs are
needed); backward is twice the forward for full finetuning and, with LoRA, the activation
gradients only (once the forward; adapter FLOPs are negligible at r = 16). Attention scores,
norms and softmaxes are left out, so the utilisation is a slight underestimate. The peak is the
best of several 2048² matmuls in the dtype the policy trains under (``update_peak_dtype``: bf16
under bf16 autocast, fp32 where hardware.precision=auto picks 32-true because the CPU has no
native bf16 matmul) on the same threads. A dtype the CPU only runs in PyTorch's scalar fallback
is not timed (minutes per matmul); its peak is null, with the reason in ``matmul_peak_note``.

Targets (issue #16, CPU): vLLM rollout tokens/s ≥ 2× HF (weight sync included); update ≥ 60 %
of the bf16 peak; LoRA r = 16 peak memory ≤ 60 % of full finetuning at ≥ 0.8× its episodes/s.
Both LoRA rows are reported against the same full-finetuning run: ``lora`` (adapters only) and
``lora_gc`` (adapters plus model.gradient_checkpointing, as one runs LoRA to save memory).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THROUGHPUT = REPO / "bench" / "ppo_throughput.py"

VARIANTS = {
    "hf": [],
    "vllm": ["rollout.backend=vllm"],
    "lora": ["model.lora.r=16"],
    # LoRA as one runs it to save memory: recomputed activations too (the full-finetuning
    # comparison stays the plain hf variant; recomputation is not counted in its FLOPs)
    "lora_gc": ["model.lora.r=16", "model.gradient_checkpointing=true"],
}


def matmul_peak_gflops(dtype_name: str, threads: int, n: int = 2048, reps: int = 8) -> float:
    """Best GFLOP/s of n×n matmuls in ``dtype_name`` on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def policy_param_counts(overrides: list[str]) -> dict[str, int]:
    """N_body (every matmul weight but the LM head) and N_head of the benchmarked policy."""
    from hydra import compose, initialize_config_dir

    import rft  # noqa: F401
    from rft.model.load import load_model

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    model, _ = load_model(cfg.model)
    head = model.get_output_embeddings().weight
    embed = model.get_input_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    body = total - embed.numel() - (0 if head is embed else head.numel())
    # norms and biases are counted in body: < 0.1 % of SmolLM2's matmul weights
    return {"n_body": body, "n_head": head.numel(), "n_total": total}


def run_variant(python: str, overrides: list[str], iterations: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="rft-variant-") as tmp:
        out = Path(tmp) / "r.json"
        cmd = [python, str(THROUGHPUT), "--iterations", str(iterations), "--out", str(out)]
        cmd += [f"hardware.torch_threads={threads}", *overrides]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            return {"error": f"exit {proc.returncode}", "log_tail": tail, "cmd": cmd}
        report = json.loads(out.read_text())
        report["process_wall_s"] = time.perf_counter() - t0
        return report


def update_flops(report: dict, counts: dict, lora: bool) -> float:
    """Matmul FLOPs of one iteration's update (module docstring), from the logged tokens."""
    ov = {k: v for k, v in (o.split("=", 1) for o in report["overrides"] if "=" in o)}
    epochs = int(ov.get("alg.update_epochs", 4))
    episodes = int(ov.get("alg.rollout_prompts", 32)) * int(ov.get("alg.samples_per_prompt", 1))
    seq_tokens = report["update_tokens_per_s"] * report["phase_s"]["update"] / epochs
    completion_tokens = report["completion_tokens_mean"] * episodes
    fwd = 2 * counts["n_body"] * seq_tokens + 2 * counts["n_head"] * completion_tokens
    return epochs * fwd * (2 if lora else 3)


def has_vllm(python: str) -> str | None:
    """None when ``python`` imports vllm, else why not."""
    if not Path(python).exists():
        return f"{python} not found"
    proc = subprocess.run([python, "-c", "import vllm"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"{python} cannot import vllm: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--variants",
        default="hf,vllm,lora,lora_gc",
        help="comma-separated: hf, vllm, lora, lora_gc (LoRA + model.gradient_checkpointing)",
    )
    ap.add_argument("--iterations", type=int, default=3, help="PPO iterations (first: warm-up)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    ap.add_argument(
        "--vllm-python",
        default=os.environ.get("RFT_VLLM_PYTHON", str(REPO / ".venv-vllm" / "bin" / "python")),
        help="interpreter of a venv with the vllm extra (default .venv-vllm/, as README 'vLLM rollouts' makes it; env RFT_VLLM_PYTHON)",
    )
    ap.add_argument("--out", type=Path, default=None, help="write the JSON report here too")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every variant")
    args = ap.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"--variants: unknown {unknown}; choose from {sorted(VARIANTS)}")

    sys.path.insert(0, str(REPO))
    from bench.ppo_throughput import DEFAULTS

    counts = policy_param_counts(DEFAULTS + list(args.overrides))
    import torch

    from rft.device import native_cpu_matmul

    peak = {
        d: matmul_peak_gflops(d, args.threads) if native_cpu_matmul(getattr(torch, d)) else None
        for d in ("bfloat16", "float32")
    }
    result: dict = {
        "matmul_peak_gflops": peak,
        **(
            {
                "matmul_peak_note": f"bfloat16 not timed: no native bf16 matmul on this CPU "
                f"({torch.backends.cpu.get_cpu_capability()})"
            }
            if peak["bfloat16"] is None
            else {}
        ),
        "params": counts,
        "threads": args.threads,
        "iterations": args.iterations,
        "variants": {},
    }
    for name in names:
        python = sys.executable
        if name == "vllm":
            why = has_vllm(args.vllm_python)
            if why:
                result["variants"][name] = {"skipped": why}
                print(f"[bench] vllm skipped: {why}", file=sys.stderr)
                continue
            python = args.vllm_python
        print(f"[bench] {name} ...", file=sys.stderr)
        rep = run_variant(
            python, VARIANTS[name] + list(args.overrides), args.iterations, args.threads
        )
        if "error" not in rep:
            flops = update_flops(rep, counts, lora=name.startswith("lora"))
            rep["update_gflops"] = flops / 1e9
            rep["update_gflop_per_s"] = flops / rep["phase_s"]["update"] / 1e9
            dtype = (
                "bfloat16" if str(rep.get("precision", "bf16")).startswith("bf16") else "float32"
            )
            rep["update_peak_dtype"] = dtype
            if peak[dtype]:
                rep["update_utilisation"] = rep["update_gflop_per_s"] / peak[dtype]
        result["variants"][name] = rep
    v = result["variants"]
    ok = {k: r for k, r in v.items() if "episodes_per_s" in r}
    ratios = {}
    if "hf" in ok and "vllm" in ok:
        ratios["vllm_vs_hf_rollout_tokens_per_s"] = (
            ok["vllm"]["rollout_tokens_per_s"] / ok["hf"]["rollout_tokens_per_s"]
        )
        ratios["vllm_vs_hf_episodes_per_s"] = (
            ok["vllm"]["episodes_per_s"] / ok["hf"]["episodes_per_s"]
        )
    for lora in ("lora", "lora_gc"):
        if "hf" in ok and lora in ok:
            ratios[f"{lora}_vs_full_peak_memory"] = (
                ok[lora]["peak_memory_gb"] / ok["hf"]["peak_memory_gb"]
            )
            ratios[f"{lora}_vs_full_episodes_per_s"] = (
                ok[lora]["episodes_per_s"] / ok["hf"]["episodes_per_s"]
            )
    result["ratios"] = ratios
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return result


if __name__ == "__main__":
    main()
