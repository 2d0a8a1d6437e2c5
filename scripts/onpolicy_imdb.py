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
import math
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


def _per_prompt(path: Path) -> tuple[dict, dict]:
    d = json.loads(path.read_text())
    pp = d["per_prompt"]
    rewards = {
        i: st.mean(r) if isinstance(r, list) else r for i, r in zip(pp["prompt_id"], pp["reward"])
    }
    return rewards, d["metrics"]


def _evals(run_dir: Path) -> tuple[tuple[dict, dict], tuple[dict, dict]]:
    files = sorted((run_dir / "eval").glob("test_*.json"))
    init = [f for f in files if "init" in f.name]
    final = [f for f in files if "init" not in f.name]
    return _per_prompt(init[0]), _per_prompt(final[-1])


def _paired(a: dict, b: dict) -> tuple[float, float]:
    d = [a[i] - b[i] for i in sorted(set(a) & set(b))]
    return st.mean(d), st.stdev(d) / math.sqrt(len(d))


def table(out: Path) -> None:
    runs, inits = {}, {}
    for alg in ALGS:
        for seed in SEEDS:
            name = f"{alg}_s{seed}"
            if (out / name / "metrics.json").is_file():
                (inits[name], _), runs[name] = _evals(out / name)
    first = next(iter(runs))
    i0, m0 = _evals(out / first)[0]
    for name, init in inits.items():  # the comparison rests on one start for all runs
        assert init == i0, f"{name}: its initial evaluation differs from {first}'s"
    print(
        f"initial policy: test reward {m0['test_init/reward_mean']:.4f} ±"
        f" {m0['test_init/reward_mean_se']:.4f}, perplexity {m0['test_init/perplexity']:.2f}\n"
    )
    print(
        "| run | test reward ± SE | Δ vs initial (paired) | Δ vs PPO, same seed (paired) |"
        " perplexity | distinct-2 | KL/seq, last it. | update s (6 it.) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (pr, m) in runs.items():
        hist = [json.loads(x) for x in open(out / name / "history.jsonl")]
        its = [x for x in hist if "time/iteration_s" in x]
        di = _paired(pr, i0)
        ppo = "ppo_s" + name[-1]
        dp = _paired(pr, runs[ppo][0]) if not name.startswith("ppo") and ppo in runs else None
        print(
            f"| {name} | {m['test/reward_mean']:.4f} ± {m['test/reward_mean_se']:.4f}"
            f" | {di[0]:+.4f} ± {di[1]:.4f} | "
            + (f"{dp[0]:+.4f} ± {dp[1]:.4f}" if dp else "—")
            + f" | {m['test/perplexity']:.2f} ± {m['test/perplexity_se']:.2f}"
            f" | {m['test/distinct_2']:.3f} | {its[-1]['objective/kl_seq']:.3f}"
            f" | {sum(x['time/update_s'] for x in its):.0f} |"
        )
    print(
        "\n| algorithm | test reward, mean of 2 seeds (± half their gap) |"
        " Δ vs initial, pooled (paired) | Δ vs PPO, pooled (paired) |"
    )
    print("|---|---|---|---|")
    for alg in ALGS:
        names = [f"{alg}_s{s}" for s in SEEDS if f"{alg}_s{s}" in runs]
        if len(names) < len(SEEDS):
            continue
        v = [runs[n][1]["test/reward_mean"] for n in names]
        pooled = {i: st.mean(runs[n][0][i] for n in names) for i in runs[names[0]][0]}
        di = _paired(pooled, i0)
        line = f"| {alg} | {st.mean(v):.4f} ± {abs(v[0] - v[1]) / 2:.4f} | {di[0]:+.4f} ± {di[1]:.4f} | "
        ppo = [f"ppo_s{s}" for s in SEEDS]
        if alg != "ppo" and all(p in runs for p in ppo):
            pp = {i: st.mean(runs[p][0][i] for p in ppo) for i in pooled}
            d = _paired(pooled, pp)
            line += f"{d[0]:+.4f} ± {d[1]:.4f} |"
        else:
            line += "— |"
        print(line)
    for name in runs:
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
