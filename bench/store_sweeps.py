"""What the result store saves a sweep (issue #29): the same sweep with the store off and on,
side by side on the same machine, then the reports of both compared number for number.

    python bench/store_sweeps.py OUT --sweep lr [--budget cpu] [-- EXTRA OVERRIDES]
    python bench/store_sweeps.py OUT --sweep sft_budget --name again --store OUT/sft_budget/store \
        alg.lr=3e-5      # a second sweep against the store the first one filled

Runs two ``python run.py --multirun sweep=<name>`` processes at once (the same overrides; one
with ``store.reuse=false store.publish=false``, the other with a fresh store under OUT), each
job on one thread, so both see the same load. For each it records the wall time and the CPU
time of the whole process tree (``resource.getrusage(RUSAGE_CHILDREN)`` of a child that waits
for it), then runs ``rft report`` on both sweep folders and checks that every number of the
two reports' per-job tables is identical, and that the jobs' ``metrics.json`` agree on every
``test*/`` and ``reward/`` key. What each "after" job reused and the time it saved come from its
``metrics.json`` (``reused/*``). Writes OUT/<sweep>.json and prints a markdown table.

``--budget cpu`` (default) shrinks every job the same way in both arms (2 iterations, a
128-completion test evaluation) so the pair finishes in well under an hour on 2 cores; the
saving per job is one initial evaluation (and a warm start where jobs share one), whatever the
budget, so the ratio at the full budget follows from the phase times (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_BUDGET = (
    "alg.n_iterations=2",
    "alg.eval_every=0",
    "task.n_test_prompts=64",
    "eval.samples_per_prompt=2",
    "hardware.torch_threads=1",
    "logger=none",
)
TIMED = """
import resource, subprocess, sys, time, json
t = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"rc": rc, "wall_s": time.perf_counter() - t, "cpu_s": ru.ru_utime + ru.ru_stime},
          open(sys.argv[1], "w"))
"""


def start(
    arm: str, out: Path, sweep: str, overrides: list[str], name: str, store_dir: Path
) -> subprocess.Popen:
    sweep_dir = out / name / arm
    store = (
        ["store.reuse=false", "store.publish=false"]
        if arm == "before"
        else [f"store.path={store_dir}"]
    )
    cmd = [sys.executable, "run.py", "--multirun", f"sweep={sweep}", *overrides, *store]
    cmd.append(f"hydra.sweep.dir={sweep_dir}")
    log = open(out / name / f"{arm}.log", "w")
    timed = [sys.executable, "-c", TIMED, str(out / name / f"{arm}.time.json"), *cmd]
    print(" ".join(cmd), flush=True)
    return subprocess.Popen(timed, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def job_metrics(sweep_dir: Path) -> dict[str, dict]:
    return {
        p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))
    }


NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]\d+)?")


def report_numbers(sweep_dir: Path) -> list[str]:
    """The numbers of report.md's tables, in order (paths and times left out)."""
    cmd = [sys.executable, "-m", "rft.report", str(sweep_dir)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    rows = [x for x in (sweep_dir / "report.md").read_text().splitlines() if x.startswith("|")]
    return NUMBER.findall("\n".join(rows))


def compare(out: Path, sweep: str) -> dict:  # sweep: the pair's folder name under out
    before, after = (job_metrics(out / sweep / arm) for arm in ("before", "after"))
    keys = lambda m: {k for k in m if k.startswith(("test", "reward/"))}  # noqa: E731
    differing = [
        (job, k)
        for job in before
        for k in keys(before[job]) | keys(after.get(job, {}))
        if before[job].get(k) != after.get(job, {}).get(k)
    ]
    reused = {
        job: {k[len("reused/") :]: v for k, v in m.items() if k.startswith("reused/")}
        for job, m in after.items()
    }
    nb, na = (report_numbers(out / sweep / arm) for arm in ("before", "after"))
    times = {
        arm: json.loads((out / sweep / f"{arm}.time.json").read_text())
        for arm in ("before", "after")
    }
    return {
        "jobs": len(before),
        "times": times,
        "metrics_identical": not differing and set(before) == set(after),
        "differing": differing[:20],
        "report_numbers_identical": nb == na and len(nb) > 0,
        "report_numbers": len(nb),
        "reused": reused,
    }


def table(sweep: str, r: dict) -> str:
    b, a = r["times"]["before"], r["times"]["after"]
    saved = [
        sum(v for k, v in job.items() if k.endswith("_saved_s")) for job in r["reused"].values()
    ]
    lines = [
        f"| sweep={sweep} ({r['jobs']} jobs) | wall s | CPU s |",
        "|---|---|---|",
        f"| store off | {b['wall_s']:.0f} | {b['cpu_s']:.0f} |",
        f"| store on | {a['wall_s']:.0f} | {a['cpu_s']:.0f} |",
        f"| on / off | {a['wall_s'] / b['wall_s']:.3f} | {a['cpu_s'] / b['cpu_s']:.3f} |",
        "",
        f"jobs reusing something: {sum(1 for s in saved if s > 0)} of {len(saved)}; "
        f"time the reused results had cost (sum of reused/*_saved_s): {sum(saved):.0f} s; "
        f"metrics.json identical: {r['metrics_identical']}; report numbers identical: "
        f"{r['report_numbers_identical']} ({r['report_numbers']} numbers)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--sweep", default="lr")
    p.add_argument("--budget", choices=["cpu", "full"], default="cpu")
    p.add_argument("--name", help="folder under OUT for this pair (default: the sweep's name)")
    p.add_argument(
        "--store",
        type=Path,
        help="the 'on' arm's store (default: a fresh OUT/<name>/store); name an earlier"
        " pair's store to measure a second sweep against what the first one published",
    )
    p.add_argument("extra", nargs="*", help="more overrides for both arms")
    args = p.parse_intermixed_args(argv)
    name = args.name or args.sweep
    store_dir = args.store or args.out / name / "store"
    (args.out / name).mkdir(parents=True, exist_ok=True)
    overrides = [*(CPU_BUDGET if args.budget == "cpu" else ()), *args.extra]
    env_ok = os.environ.get("RFT_DATA_DIR")
    if not env_ok:
        print("set RFT_DATA_DIR (README 'Run')", file=sys.stderr)
        return 2
    t = time.time()
    procs = [
        start(arm, args.out, args.sweep, overrides, name, store_dir) for arm in ("before", "after")
    ]
    rcs = [q.wait() for q in procs]
    if any(rcs):
        print(f"a sweep failed ({rcs}): see {args.out / name}/*.log", file=sys.stderr)
        return 1
    r = compare(args.out, name)
    r["overrides"] = overrides
    r["store"] = str(store_dir)
    r["elapsed_s"] = time.time() - t
    (args.out / f"{name}.json").write_text(json.dumps(r, indent=1))
    print(table(args.sweep, r))
    return 0 if r["metrics_identical"] and r["report_numbers_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
