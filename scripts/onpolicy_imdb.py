"""PPO, A2C and TRPO on IMDB from the same start, two seeds, equal episodes (issue #28;
docs/results.md "A2C and TRPO against PPO on IMDB").

    python scripts/onpolicy_imdb.py run OUT      # the six runs, one after another (resumable)
    python scripts/onpolicy_imdb.py table OUT    # the tables of docs/results.md

Every run: 6 iterations x 32 episodes (192), the same 256 test prompts with one sample each,
evaluated before and after with the fixed evaluation seed. TRPO is CPU-sized (Fisher-vector
products on 1/8 of the episodes, at most 5 conjugate-gradient steps); its actor step is still
bounded by max_kl. ``run`` skips a run whose metrics.json exists; a run folder without one
resumes from its last checkpoint. Differences are paired per prompt (same prompts, same
sampling seed): against the initial policy, and against PPO of the same seed.
"""

from __future__ import annotations

import json
import resource
import statistics as st
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMON = [
    "task=imdb",
    "logger=none",
    "hardware.torch_threads=1",
    "task.n_test_prompts=256",
    "eval.samples_per_prompt=1",
    "alg.n_iterations=6",
    "alg.eval_every=0",
]
ALGS = {
    "ppo": ["alg=ppo"],
    "a2c": ["alg=a2c"],
    "trpo": ["alg=trpo", "alg.cg_max_steps=5", "alg.fisher_fraction=0.125"],
}
SEEDS = (0, 1)


def run(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:
        for alg, overrides in ALGS.items():
            name = f"{alg}_s{seed}"
            if (out / name / "metrics.json").is_file():
                continue
            cmd = [sys.executable, "run.py", *COMMON, *overrides, f"seed={seed}"]
            cmd.append(f"hydra.run.dir={out / name}")
            print(" ".join(cmd[1:]), flush=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            with open(out / f"{name}.log", "a") as log:
                rc = subprocess.call(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            line = f"{name}: rc {rc}, wall {time.perf_counter() - t:.0f} s, CPU {cpu:.0f} s"
            print(line, flush=True)
            with open(out / "times.txt", "a") as f:
                f.write(line + "\n")


def table(out: Path) -> None:
    from rft.report import load_evals, paired, pooled_paired  # rft report's pairing, reused

    names = [f"{a}_s{s}" for a in ALGS for s in SEEDS if (out / f"{a}_s{s}/metrics.json").is_file()]
    evals = {n: load_evals(out / n) for n in names}
    metrics = {n: json.loads((out / n / "metrics.json").read_text()) for n in names}
    init = evals[names[0]]["test_init"]
    for n in names:  # the comparison rests on one start for all runs
        same = evals[n]["test_init"]["reward"] == init["reward"]
        assert same, f"{n}: its initial evaluation differs from {names[0]}'s"
    m0 = metrics[names[0]]
    print(
        f"initial policy: test reward {m0['test_init/reward_mean']:.4f} ±"
        f" {m0['test_init/reward_mean_se']:.4f}, perplexity {m0['test_init/perplexity']:.2f}\n"
    )
    print(
        "| run | test reward ± SE | Δ vs initial (paired) | Δ vs PPO, same seed (paired) |"
        " perplexity | distinct-2 | KL/seq, last it. | update s (6 it.) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    pm = lambda p: f"{p.diff:+.4f} ± {p.se:.4f}" if p else "—"  # noqa: E731
    for n in names:
        m = metrics[n]
        its = [json.loads(x) for x in open(out / n / "history.jsonl")]
        its = [x for x in its if "time/iteration_s" in x]
        ppo = "ppo_s" + n[-1]
        vs_ppo = paired(evals[n]["test"], evals[ppo]["test"]) if ppo in evals and ppo != n else None
        print(
            f"| {n} | {m['test/reward_mean']:.4f} ± {m['test/reward_mean_se']:.4f}"
            f" | {pm(paired(evals[n]['test'], init))} | {pm(vs_ppo)}"
            f" | {m['test/perplexity']:.2f} ± {m['test/perplexity_se']:.2f}"
            f" | {m['test/distinct_2']:.3f} | {its[-1]['objective/kl_seq']:.3f}"
            f" | {sum(x['time/update_s'] for x in its):.0f} |"
        )
    print(
        "\n| algorithm | test reward, mean of 2 seeds (± half their gap) |"
        " Δ vs initial, pooled (paired) | Δ vs PPO, pooled (paired) |"
    )
    print("|---|---|---|---|")
    for alg in ALGS:
        runs = [f"{alg}_s{s}" for s in SEEDS]
        if not all(r in evals for r in runs):
            continue
        v = [metrics[r]["test/reward_mean"] for r in runs]
        vs_init = pooled_paired([(evals[r]["test"], init) for r in runs])
        ppos = [f"ppo_s{s}" for s in SEEDS]
        vs_ppo = None
        if alg != "ppo" and all(p in evals for p in ppos):
            vs_ppo = pooled_paired(
                [(evals[r]["test"], evals[p]["test"]) for r, p in zip(runs, ppos)]
            )
        print(
            f"| {alg} | {st.mean(v):.4f} ± {abs(v[0] - v[1]) / 2:.4f} | {pm(vs_init)} | {pm(vs_ppo)} |"
        )
    for name in names:
        if name.startswith("trpo"):
            its = [json.loads(x) for x in open(out / name / "history.jsonl")]
            its = [x for x in its if "trpo/kl_after" in x]
            keys = (
                "trpo/line_search_tries",
                "trpo/step_fraction",
                "trpo/kl_after",
                "trpo/cg_residual",
            )
            print(
                f"\n{name}: "
                + "; ".join(f"{k}=" + ",".join(f"{x[k]:.3g}" for x in its) for k in keys)
            )


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "table"):
        sys.exit(__doc__)
    {"run": run, "table": table}[sys.argv[1]](Path(sys.argv[2]))
