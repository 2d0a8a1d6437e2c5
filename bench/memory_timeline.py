"""Where a run's memory goes: resident memory over time, labelled by training phase.

Runs the PPO or GRPO bench setting through the same train(cfg) path as run.py, samples every
10 ms the process's RSS and glibc's own accounting (``mallinfo2``: bytes live in malloc, and
bytes freed but kept by it rather than returned to the system), and labels each sample with
the phase running then (generate, score, update, ...). Prints the peak of each per phase and
the timeline at every phase change; with --out, writes them as JSON.

    python bench/memory_timeline.py                           # PPO bench setting, 2 iterations
    python bench/memory_timeline.py --bench grpo              # GRPO bench setting
    python bench/memory_timeline.py -- model.lora.r=16        # any Hydra override
    python bench/memory_timeline.py --trim                    # malloc_trim(0) at each phase start

RSS minus (live + freed-but-kept) is the libraries and file-mapped weights. On a system without
glibc only the RSS is sampled. Timings under the sampler are not benchmark timings.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAGE = os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):
        return None


LIBC = _glibc()


def sample() -> tuple[float, float | None, float | None]:
    """(RSS, malloc live, malloc freed-but-kept) in GB."""
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * PAGE / 1e9
    if LIBC is None:
        return rss, None, None
    m = LIBC.mallinfo2()
    return rss, (m.uordblks + m.hblkhd) / 1e9, m.fordblks / 1e9


# the methods whose calls label the samples: (module, class or None for a module function,
# method); a phase inside another (generate inside evaluate) takes the inner label
PHASES = [
    ("rft.train", None, "build_reward"),
    ("rft.train", None, "load_trained_policy"),
    ("rft.train", None, "reference_policy"),
    ("rft.alg.base", "RFTModule", "evaluate"),
    ("rft.model.policy", "PolicyLM", "generate"),
    ("rft.alg.ppo", "PPO", "score_rollout"),
    ("rft.alg.ppo", "PPO", "ppo_update"),
    ("rft.alg.group", "GroupPG", "score"),
    ("rft.alg.group", "GroupPG", "update"),
]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bench", choices=["ppo", "grpo"], default="ppo", help="which bench setting")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    ap.add_argument("--interval", type=float, default=0.01, help="seconds between samples")
    ap.add_argument("--trim", action="store_true", help="malloc_trim(0) as each phase starts")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON report here too")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides after the bench setting's")
    args = ap.parse_args(argv)

    label = ["imports"]
    samples: list[tuple[float, str, float, float | None, float | None]] = []
    stop = threading.Event()

    def sampler():
        t0 = time.perf_counter()
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, label[0], *sample()))
            time.sleep(args.interval)

    threading.Thread(target=sampler, daemon=True).start()

    import importlib

    from hydra import compose, initialize_config_dir

    import rft  # noqa: F401  (registers the config schemas)
    from rft.train import train

    if args.bench == "grpo":
        from bench.grpo_throughput import RFT_OVERRIDES as base
    else:
        from bench.ppo_throughput import DEFAULTS as base

    def labelled(fn, name):
        def call(*a, **k):
            if args.trim and LIBC is not None:
                LIBC.malloc_trim(0)
            prev, label[0] = label[0], name
            try:
                return fn(*a, **k)
            finally:
                label[0] = prev

        return call

    for module, cls, method in PHASES:
        owner = importlib.import_module(module)
        owner = getattr(owner, cls) if cls else owner
        setattr(owner, method, labelled(getattr(owner, method), method))

    overrides = list(base) + [
        f"alg.n_iterations={args.iterations}",
        f"hardware.torch_threads={args.threads}",
        *args.overrides,
    ]
    if "RFT_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "data").is_dir():
        os.environ["RFT_DATA_DIR"] = str(REPO.parent / "shared" / "data")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    label[0] = "other"
    with tempfile.TemporaryDirectory(prefix="rft-memory-") as tmp:
        train(cfg, run_dir=Path(tmp))
    stop.set()

    peaks: dict[str, dict[str, float]] = {}
    changes = []
    last = None
    for t, name, rss, live, kept in samples:
        p = peaks.setdefault(name, {"rss_gb": 0.0, "live_gb": 0.0, "kept_gb": 0.0})
        if rss > p["rss_gb"]:  # the memory at the moment of the phase's peak RSS
            p.update({"at_peak_t_s": t, "at_peak_live_gb": live, "at_peak_kept_gb": kept})
        p["rss_gb"] = max(p["rss_gb"], rss)
        if live is not None:
            p["live_gb"] = max(p["live_gb"], live)
            p["kept_gb"] = max(p["kept_gb"], kept)
        if name != last:
            changes.append(
                {"t_s": t, "phase": name, "rss_gb": rss, "live_gb": live, "kept_gb": kept}
            )
            last = name
    print(
        f"{'phase':<20}{'peak RSS':>9}{'peak live':>10}{'peak kept':>10}"
        f"   at the peak RSS: {'t (s)':>6}{'live':>6}{'kept':>6}   (GB)"
    )
    for name, p in peaks.items():
        at = [p.get("at_peak_live_gb"), p.get("at_peak_kept_gb")]
        at = "".join(f"{x:>6.2f}" if x is not None else f"{'-':>6}" for x in at)
        print(
            f"{name:<20}{p['rss_gb']:>9.2f}{p['live_gb']:>10.2f}{p['kept_gb']:>10.2f}"
            f"   {'':>16}{p.get('at_peak_t_s', 0.0):>6.1f}{at}"
        )
    report = {
        "benchmark": "memory_timeline",
        "bench": args.bench,
        "overrides": overrides,
        "trim": args.trim,
        "glibc": LIBC is not None,
        "peaks_by_phase": peaks,
        "phase_changes": changes,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
