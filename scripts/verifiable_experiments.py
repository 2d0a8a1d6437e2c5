"""The experiments of issue #26 on verifiable rewards (SmolLM2-135M-Instruct on a CPU):

    python scripts/verifiable_experiments.py pick OUT                  # 1. choose the difficulty
    python scripts/verifiable_experiments.py vanishing OUT --task NAME # 2. GRPO vs SFT → GRPO
    python scripts/verifiable_experiments.py remedies OUT --task NAME  # 3. samplers side by side
    python scripts/verifiable_experiments.py humaneval OUT             # 4. HumanEval pass@1/10
    python scripts/verifiable_experiments.py <any> OUT --smoke         # the same on a tiny model

Every run composes ``experiment=rg_grpo`` (or ``humaneval_eval``) plus the overrides below and
runs in this process (``rft.train.train``), one after another; a finished run (metrics.json and
the same settings) is reused when the script runs again. Each command writes OUT/<command>.md
(the table, with the exact settings) and OUT/<command>.json; ``remedies`` also a plot.

1. ``pick``: ``mode=extract`` on the train split for each candidate task (``CANDIDATES``: a
   reasoning-gym generator at a difficulty, and the reward that checks it), K = G samples per
   prompt with the binary reward: the pass rates' spread and the zero-std share. Choose a
   candidate whose pass rates span 0 to 1 with more than half of the prompts at zero std.
2. ``vanishing`` (Razin et al., docs/algorithms.md §5): the zero-std share of the initial
   policy and of an SFT policy (``alg=sft`` on ``--sft-frac`` of a full train split's solutions
   for ``--sft-steps`` steps; that split's seeds start at ``--sft-task-seed``, away from the
   GRPO runs' val and test problems), measured on the first ``--pool`` train problems, then
   GRPO from each on those problems for the same generated-token budget, per seed: test pass@1
   before and after (with SE, paired over prompts), the two arms' final test pass@1 paired over
   prompts (same seed, same evaluation) and the zero-std share of the drawn groups per
   iteration. Its GRPO-from-init runs are ``remedies``' uniform runs (one folder).
3. ``remedies``: GRPO at the same token budget with uniform prompts, DAPO's dynamic sampling
   (the filter alone, on GRPO), the std-aware sampler and the p(1-p) (learnability) sampler:
   generated tokens to a val pass@1 target, pass@1 at the budget, the zero-std share per
   iteration (plot), each method's final test pass@1 paired over prompts with uniform's of the
   same seed. ``learnability`` is ``alg.prompt_sampling=learnability`` (rft/alg/group.py: the
   std-aware sampler's bookkeeping with the weight p(1-p) of the running pass rate). The train
   split is the first ``--pool`` problems: at a CPU's budget a run draws a few dozen prompts,
   so a sampler that learns online would meet almost every prompt once, and draw uniformly.
   With ``--seed-samplers`` (the default) both samplers start from the initial policy's
   extraction of the whole pool (``runs/extract_init``, the one ``vanishing`` measures): an
   up-front cost in generated tokens, stated beside the table, shared by the seeds.
4. ``humaneval``: ``experiment=humaneval_eval`` (pass@1 and pass@10, n = 10), then a short
   GRPO run on HumanEval with the sandboxed reward: time/reward_s over time/iteration_s.

Budgets are generated tokens: a run stops after the iteration that reaches ``--budget``
(scripts/std_sampler_experiment.py's patch of GroupPG), so dynamic sampling, which generates
more per iteration, runs fewer iterations. The learning curve is val pass@1 every
``--eval-every`` iterations, starting from the initial policy's test pass@1 (same
distribution, other prompts); the headline numbers are the final test evaluation's.

Sizes: ``--test-prompts``/``--test-samples``/``--val-prompts`` shrink the evaluations (the
experiment's 200 × 8 test samples take tens of minutes per run on one CPU core),
``--he-problems``/``--he-max-new-tokens`` the HumanEval evaluation. Every command writes a
table of its runs' wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/...`: make rft and scripts importable
    sys.path.insert(0, str(REPO))

from scripts.std_sampler_experiment import (  # noqa: E402
    compose_cfg,
    mean_se,
    reward_at,
    stop_at_budget,
    tokens_to_target,
)

# The alg knobs this script sets, in one place (the algorithm schemas are being renamed).
ALG = {
    "iterations": "alg.n_iterations",
    "prompts": "alg.rollout_prompts",
    "G": "alg.samples_per_prompt",
    "minibatch": "alg.minibatch_size",
    "lr": "alg.lr",
    "eval_every": "alg.eval_every",
    "prompt_sampling": "alg.prompt_sampling",
    "dynamic_sampling": "alg.dynamic_sampling",
    "sft_steps": "alg.max_steps",
    "sft_frac": "alg.data_frac",
}

# name -> overrides of experiment=rg_grpo: a generator at a difficulty and its check
CANDIDATES = {
    "chain_sum_2t_1-2d": [
        "task.generators=[{name:chain_sum,min_terms:2,max_terms:2,min_digits:1,max_digits:2}]"
    ],
    "chain_sum_2t_2d": [
        "task.generators=[{name:chain_sum,min_terms:2,max_terms:2,min_digits:2,max_digits:2}]"
    ],
    "chain_sum_3t_1-2d": [
        "task.generators=[{name:chain_sum,min_terms:3,max_terms:3,min_digits:1,max_digits:2}]"
    ],
    "basic_arith_2t_1d": [
        "task.generators=[{name:basic_arithmetic,min_terms:2,max_terms:2,min_digits:1,"
        "max_digits:1,allow_parentheses:false,allow_negation:false}]"
    ],
    "leg_counting_1-2": ["task.generators=[{name:leg_counting,min_animals:1,max_animals:2}]"],
    # the same problems checked by math-verify's own search of the whole reply ("final answer
    # is", \\boxed{}, else the last number): SmolLM2-135M rarely writes the <answer> tag (7 of
    # 256 replies on chain_sum_2t_1-2d), so the tag-format checks above score ~0 everywhere
    "chain_sum_2t_1-2d_any": [
        "task.generators=[{name:chain_sum,min_terms:2,max_terms:2,min_digits:1,max_digits:2}]",
        "reward=math_verify",
        "reward.format=any",
    ],
    # the tag instruction's example (<answer>42</answer>) is copied: "42" is SmolLM2's most
    # frequent wrong answer; this one asks for the number alone
    "chain_sum_2t_1-2d_num": [
        "task.generators=[{name:chain_sum,min_terms:2,max_terms:2,min_digits:1,max_digits:2}]",
        "task.instruction='Reply with the final answer only: one number.'",
        "reward=math_verify",
        "reward.format=any",
    ],
    "leg_counting_1_any": [
        "task.generators=[{name:leg_counting,min_animals:1,max_animals:1}]",
        "reward=math_verify",
        "reward.format=any",
    ],
}

SMOKE = [
    "model=tiny",
    "task.n_train=64",
    "task.n_val=8",
    "task.n_test=8",
    "task.n_eval_prompts=8",
    "task.n_test_prompts=8",
    "task.max_new_tokens=8",
    "task.drop_train_overlap=false",
    "eval.samples_per_prompt=2",
    "eval.val_samples_per_prompt=2",
    "task.pass_k=[1,2]",
    "diag.k_samples=4",
    "logger=none",
    "hardware=cpu_fp32",
]


# ------------------------------------------------------------------------------ runs
def run(out: Path, name: str, overrides: list[str], settings: dict) -> Path:
    """Train ``overrides`` into OUT/runs/<name> unless a finished run with the same settings is
    there; returns the run folder."""
    run_dir = out / "runs" / name
    USED.append(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    # one process per run folder: a second driver on the same OUT (another seed, say) waits for
    # the run it also needs, then reuses it
    with open(run_dir.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _run_locked(run_dir, overrides, settings)


def _run_locked(run_dir: Path, overrides: list[str], settings: dict) -> Path:
    from rft.train import train

    name = run_dir.name
    stamp = run_dir / "settings.json"
    settings = {**settings, "overrides": overrides, "runs_version": RUNS_VERSION}
    if (run_dir / "metrics.json").is_file() and stamp.is_file():
        if json.loads(stamp.read_text()) == settings:
            return run_dir
    t0, c0 = time.perf_counter(), time.process_time()
    train(compose_cfg(*overrides), run_dir=run_dir)
    gc.collect()  # the runs share this process: free the last one's models before the next
    stamp.write_text(json.dumps(settings))
    t = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    (run_dir / "timing.json").write_text(json.dumps(t))
    print(f"  {name}: {t['wall_s']:.0f}s wall, {t['cpu_s']:.0f}s CPU", flush=True)
    return run_dir


# Part of every run's settings stamp: bump it when a change to rft makes finished runs stale, so
# the driver reruns them instead of reusing them. 2: math_verify reads tags in format=any and no
# longer pays for the problem restated ("7 + 8 =").
RUNS_VERSION = 2

USED: list[Path] = []  # the run folders a command used, for its timing table


def timings() -> str:
    """Wall and CPU seconds of each run the command used (as first computed: a reused run keeps
    the timing of the process that made it)."""
    rows = []
    for d in dict.fromkeys(USED):
        f = d / "timing.json"
        if f.is_file():
            t = json.loads(f.read_text())
            rows.append(f"| {d.name} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} |")
    if not rows:
        return ""
    return "\n\n| run | wall s | CPU s |\n|---|---|---|\n" + "\n".join(rows)


def base(args, experiment: str = "rg_grpo", evaluates: bool = True) -> list[str]:
    return [
        f"experiment={experiment}",
        f"hardware.torch_threads={args.threads}",
        *(SMOKE if args.smoke else []),
        *(eval_sizes(args) if experiment == "rg_grpo" and evaluates else []),
        *args.override,
    ]


def eval_sizes(args) -> list[str]:
    """The evaluation's sizes where the command line sets them (else the experiment's: 200 test
    prompts × 8 samples, 64 val prompts × 1): a CPU cannot afford those in every run."""
    out = []
    if args.test_prompts:
        out.append(f"task.n_test_prompts={args.test_prompts}")
    if args.test_samples:
        k = args.test_samples
        out += [
            f"eval.samples_per_prompt={k}",
            f"task.pass_k=[{','.join(map(str, sorted({1, k})))}]",
        ]
    if args.val_prompts:
        out.append(f"task.n_eval_prompts={args.val_prompts}")
    return out


def grpo(args, seed: int, *extra: str) -> list[str]:
    return [
        *base(args),
        f"seed={seed}",
        f"{ALG['prompts']}={args.prompts}",
        f"{ALG['G']}={args.G}",
        f"{ALG['minibatch']}={args.prompts * args.G}",
        f"alg.micro_batch_size={args.micro_batch}",
        f"{ALG['lr']}={args.lr}",
        f"{ALG['eval_every']}={args.eval_every}",
        f"{ALG['iterations']}={args.max_iterations}",
        "checkpoint.every_n_iterations=1000",
        *extra,
    ]


def task_overrides(args) -> list[str]:
    if args.task not in CANDIDATES:
        raise SystemExit(f"--task {args.task!r}: choose one of {list(CANDIDATES)}")
    return CANDIDATES[args.task]


def extraction_stats(run_dir: Path) -> dict:
    """Pass-rate spread of a mode=extract run (binary rewards: pass = reward 1)."""
    R = np.load(run_dir / "rewards.npy")
    p = (R >= 1.0).mean(1)
    return {
        "n_prompts": int(R.shape[0]),
        "k": int(R.shape[1]),
        "pass_rate_mean": float(p.mean()),
        "zero_std_share": float((R.std(1) == 0).mean()),
        "all_fail_share": float((p == 0).mean()),
        "all_pass_share": float((p == 1).mean()),
        "pass_rate_quantiles": [float(q) for q in np.quantile(p, [0.1, 0.25, 0.5, 0.75, 0.9])],
        "pass_rate_max": float(p.max()),
    }


def history(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# The pass@1 the tables report: the task's own check ("pass@1": the answer in the task's
# format), or, for a candidate whose reward searches the whole reply (reward.format=any), the
# reward itself ("reward": math-verify's 0/1 verdict, the mean over samples = pass@1 under the
# check GRPO trains on). The task's tag check would read 0 for a policy that never writes the tag
# (evaluate.check_answer_formats warns about exactly this). Set in main from --task.
SCORE = {"per_prompt": "pass@1", "metric": "pass@1", "name": "pass@1"}


def score_for(cfg) -> dict:
    """The score a composed run config's tables use: pass@1 under the task's own answer check,
    unless a verifier reward reads answers in another format (the mismatch the run warns about
    at start, rft.eval.evaluate.answer_format_mismatches); then the task's check reads 0 for a
    policy that never writes its format, and the reward's own 0/1 verdict (test/reward_mean) is
    the score."""
    from rft.eval.evaluate import answer_format_mismatches

    other = sorted({fmt for _, fmt, _ in answer_format_mismatches(cfg)})
    if other:
        return {
            "per_prompt": "reward",
            "metric": "reward_mean",
            "name": f"pass@1 ({', '.join(other)})",
        }
    return {"per_prompt": "pass@1", "metric": "pass@1", "name": "pass@1"}


def m_score(m: dict, split: str) -> tuple[float, float]:
    """(mean, SE) of the score in a run's metrics for split test_init / test / val."""
    k = f"{split}/{SCORE['metric']}"
    return (m[k], m[f"{k}_se"])


def per_prompt(run_dir: Path, prefix: str) -> dict:
    """The per-prompt scores of a run's last evaluation file eval/<prefix>*.json (test_0: the
    final test evaluation, test_init_: the initial one)."""
    return json.loads(sorted((run_dir / "eval").glob(f"{prefix}*.json"))[-1].read_text())[
        "per_prompt"
    ]


def paired_pass1(run_dir: Path) -> tuple[float, float]:
    """Final minus initial test score of one run, paired over prompts (rft report's pairing)."""
    from rft.report import paired

    p = paired(
        per_prompt(run_dir, "test_0"), per_prompt(run_dir, "test_init_"), SCORE["per_prompt"]
    )
    return (p.diff, p.se) if p else (math.nan, math.nan)


def paired_runs(a: Path, b: Path) -> tuple[float, float]:
    """Run a's final test pass@1 minus run b's, paired over the test prompts: both runs of the
    same seed, evaluated on the same prompts with the same evaluation seed."""
    from rft.report import paired

    p = paired(per_prompt(a, "test_0"), per_prompt(b, "test_0"), SCORE["per_prompt"])
    return (p.diff, p.se) if p else (math.nan, math.nan)


def pool(args) -> list[str]:
    """The first --pool train problems as the train split (reasoning-gym's item j is the same
    problem whatever task.n_train is)."""
    return [f"task.n_train={args.pool}"]


def extract(args, task: list[str], name: str, *extra: str) -> Path:
    """mode=extract on all --pool train problems (the first ones of the full train split) × K =
    G samples: the zero-std share of a policy (vanishing) and, for the initial policy, the seed
    of the prompt samplers' estimates on remedies' train pool, which is these problems."""
    ex = ["mode=extract", "diag.n_prompts=-1", f"diag.k_samples={args.G}"]
    over = [*base(args, evaluates=False), *task, *pool(args), *ex, *extra]  # no evaluation
    return run(args.out, name, over, {"cmd": "extract"})


def curve(run_dir: Path) -> dict:
    """Per-iteration token totals and zero-std shares, and (tokens, pass@1) points: the initial
    test evaluation at 0, then every val evaluation, then the final test evaluation."""
    rows = history(run_dir)
    tokens = {0: 0.0}
    its = [r for r in rows if "rollout/generated_tokens_total" in r]
    for r in its:
        tokens[r["iteration"]] = r["rollout/generated_tokens_total"]
    points = []
    for r in rows:
        for key in (f"{sp}/{SCORE['metric']}" for sp in ("test_init", "val", "test")):
            if key in r:
                points.append((tokens.get(r["iteration"], tokens[max(tokens)]), r[key]))
    return {
        "tokens": [r["rollout/generated_tokens_total"] for r in its],
        "zero_std_share": [r["group/zero_std_share"] for r in its],
        "reward_time_share": [
            r["time/reward_s"] / r["time/iteration_s"] for r in its if r.get("time/iteration_s")
        ],
        "curve": sorted(points),
    }


def fmt(ms, digits: int = 3) -> str:
    m, se = ms
    if m is None or math.isnan(m):
        return "—"
    return f"{m:.{digits}f} ± {se:.{digits}f}" if not math.isnan(se) else f"{m:.{digits}f}"


def write(out: Path, command: str, args, table: str, data: dict) -> None:
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    head = f"# {command}\n\n```\n{' '.join(sys.argv)}\n```\n\n"
    (out / f"{command}.md").write_text(head + table + timings() + "\n")
    (out / f"{command}.json").write_text(json.dumps({"settings": settings, **data}, indent=1))
    print(table)
    print(f"wrote {out / f'{command}.md'}")


# ------------------------------------------------------------------------------ commands
def cmd_pick(args) -> None:
    rows, data = [], {}
    for name, over in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        extra = ["mode=extract", f"diag.n_prompts={args.n_prompts}", f"diag.k_samples={args.G}"]
        d = run(args.out, f"pick_{name}", [*base(args), *over, *extra], {"cmd": "pick"})
        s = extraction_stats(d)
        data[name] = s
        q = ", ".join(f"{x:.2f}" for x in s["pass_rate_quantiles"])
        rows.append(
            f"| {name} | {s['pass_rate_mean']:.3f} | {s['zero_std_share']:.2f} |"
            f" {s['all_fail_share']:.2f} | {s['all_pass_share']:.2f} | {q} |"
            f" {s['pass_rate_max']:.2f} | {s['n_prompts']}×{s['k']} |"
        )
    table = (
        "| candidate | mean pass rate | zero-std share | all fail | all pass |"
        " pass-rate p10, p25, p50, p75, p90 | max | prompts × K |\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
    )
    write(args.out, "pick", args, table, {"candidates": data})


def cmd_vanishing(args) -> None:
    task = task_overrides(args)
    before = extract(args, task, "extract_init")
    # alg=sft cannot compose with experiment=rg_grpo (it sets GRPO knobs): the same task,
    # model and reward by hand, the task's lengths read from the experiment
    exp = compose_cfg(*base(args), *task)
    sft_base = [
        f"task={exp.task.name}",
        f"model={exp.model.name}",
        "reward=reasoning_gym_pass",
        f"task.max_new_tokens={exp.task.max_new_tokens}",
        f"hardware.torch_threads={args.threads}",
        *(SMOKE if args.smoke else []),
        *eval_sizes(args),
        *args.override,
    ]
    sft = run(
        args.out,
        "sft",
        [
            *sft_base,
            *task,
            # its train split from seeds disjoint from the pool's val and test problems
            f"task.seed={args.sft_task_seed}",
            "alg=sft",
            f"{ALG['sft_steps']}={args.sft_steps}",
            f"{ALG['sft_frac']}={args.sft_frac}",
            f"{ALG['eval_every']}=0",
            "eval.before_training=false",
            "task.n_test_prompts=4",  # its own test split is not the GRPO runs': a token check
        ],
        {"cmd": "vanishing"},
    )
    after = extract(args, task, "extract_sft", f"model.init_from={sft}")
    stop_at_budget(args.budget)
    arms = {"grpo_from_init": [], "grpo_after_sft": [f"model.init_from={sft}"]}
    run_name = {"grpo_from_init": "uniform", "grpo_after_sft": "grpo_after_sft"}
    results: dict = {"extract": {"init": extraction_stats(before), "sft": extraction_stats(after)}}
    rows = []
    curves: dict = {}
    for arm, extra in arms.items():
        per_seed = {}
        for seed in args.seeds:
            d = grpo_run(args, run_name[arm], seed, *extra)
            m, c = metrics(d), curve(d)
            curves.setdefault(arm, {})[seed] = c
            per_seed[seed] = {
                "pass1_init": m_score(m, "test_init"),
                "pass1_final": m_score(m, "test"),
                "gain_paired": paired_pass1(d),
                "zero_std_share_mean": float(np.mean(c["zero_std_share"])),
                "tokens": c["tokens"][-1],
                "iterations": len(c["tokens"]),
            }
            s = per_seed[seed]
            rows.append(
                f"| {arm} | {seed} | {fmt(s['pass1_init'])} | {fmt(s['pass1_final'])} |"
                f" {fmt(s['gain_paired'])} | {s['zero_std_share_mean']:.2f} | {s['tokens']:.0f} |"
            )
        results[arm] = per_seed
    diffs = {}
    for seed in args.seeds:
        a, b = (run_dir(args, run_name[arm], seed) for arm in ("grpo_after_sft", "grpo_from_init"))
        diffs[seed] = paired_runs(a, b)
    results["after_sft_minus_from_init"] = diffs
    rows.append("")
    rows.append(
        f"Final test {SCORE['name']}, GRPO after SFT minus GRPO from the initial model (same seed, same"
        " test prompts and evaluation seed; paired over prompts): "
        + "; ".join(f"seed {s}: {fmt(d)}" for s, d in diffs.items())
        + f"; mean over seeds {fmt(mean_se([d[0] for d in diffs.values()]))}."
    )
    for arm in arms:
        fin = [results[arm][s]["pass1_final"][0] for s in args.seeds]
        rows.append(f"{arm}: final test {SCORE['name']} mean ± SE over seeds {fmt(mean_se(fin))}.")
    e = results["extract"]
    table = (
        f"Extraction on {e['init']['n_prompts']} train prompts × K = {e['init']['k']}: zero-std "
        f"share {e['init']['zero_std_share']:.2f} (initial policy) → "
        f"{e['sft']['zero_std_share']:.2f} (after SFT, {args.sft_steps} steps on "
        f"{args.sft_frac:.0%} of a {exp.task.n_train}-problem train split's solutions); mean pass rate "
        f"{e['init']['pass_rate_mean']:.3f} → {e['sft']['pass_rate_mean']:.3f}.\n\n"
        f"| arm | seed | test {SCORE['name']} before | after | paired gain | zero-std share"
        " (mean over its.) | tokens generated |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write(args.out, "vanishing", args, table, results)
    plot_curves(curves, args, args.out / "vanishing.png")


REMEDIES = {
    "uniform": [f"{ALG['prompt_sampling']}=uniform"],
    "dapo_filter": [f"{ALG['prompt_sampling']}=uniform", f"{ALG['dynamic_sampling']}=true"],
    "std_aware": [f"{ALG['prompt_sampling']}=std_aware"],
    "learnability": [f"{ALG['prompt_sampling']}=learnability"],
}


def run_dir(args, method: str, seed: int) -> Path:
    return args.out / "runs" / f"{method}_pool{args.pool}_s{seed}"


def grpo_run(args, method: str, seed: int, *extra: str) -> Path:
    """GRPO on the task's first --pool train problems: vanishing's GRPO from the initial model
    is remedies' uniform run (the same folder, reused when both commands get the same flags).
    The pool: at a CPU's budget a run draws a few dozen prompts, so a sampler can only prefer
    prompts it knows on a pool it has measured."""
    task = [*task_overrides(args), *pool(args)]
    d = run_dir(args, method, seed)
    over = grpo(args, seed, *task, *REMEDIES.get(method, []), *extra)
    return run(args.out, d.name, over, {"cmd": "grpo"})


def cmd_remedies(args) -> None:
    seeded = []
    if args.seed_samplers:
        # the samplers' estimates start from the initial policy's extraction of the whole pool
        # (its tokens are an up-front cost the table states), not from "never seen"
        seeded = [
            f"alg.std_sampler.init_from={extract(args, task_overrides(args), 'extract_init')}"
        ]
    stop_at_budget(args.budget)
    runs: dict = {}
    for method in args.methods:
        over = seeded if method in ("std_aware", "learnability") else []
        for seed in args.seeds:
            d = grpo_run(args, method, seed, *over)
            m = metrics(d)
            runs.setdefault(method, {})[seed] = {
                **curve(d),
                "test_pass1": m_score(m, "test"),
                "test_init_pass1": m_score(m, "test_init"),
                "run": str(d),
            }
    rows = []
    summary = {}
    for method, by_seed in runs.items():
        ttt = [tokens_to_target(r["curve"], args.target) for r in by_seed.values()]
        reached = [t for t in ttt if t is not None]
        at = [reward_at(r["curve"], args.budget) for r in by_seed.values()]
        final = [r["test_pass1"][0] for r in by_seed.values()]
        zero = [float(np.mean(r["zero_std_share"])) for r in by_seed.values()]
        vs = {}
        if "uniform" in runs:
            for seed, r in by_seed.items():
                if seed in runs["uniform"]:
                    vs[seed] = paired_runs(Path(r["run"]), Path(runs["uniform"][seed]["run"]))
        summary[method] = {
            "tokens_to_target": ttt,
            "pass1_at_budget": mean_se(at),
            "test_pass1": mean_se(final),
            "test_pass1_per_seed": {s: r["test_pass1"] for s, r in by_seed.items()},
            "minus_uniform_per_seed": vs,
            "zero_std_share": mean_se(zero),
            "zero_std_share_per_seed": dict(zip(by_seed, zero)),
            "tokens": {s: r["tokens"][-1] for s, r in by_seed.items()},
            "iterations": {s: len(r["tokens"]) for s, r in by_seed.items()},
        }
        per_seed = "; ".join(f"{fmt(r['test_pass1'])}" for r in by_seed.values())
        diff = "; ".join(fmt(d) for d in vs.values()) if method != "uniform" else "—"
        rows.append(
            f"| {method} | {fmt(mean_se(reached), 0)} | {len(reached)}/{len(ttt)} |"
            f" {fmt(mean_se(at))} | {fmt(mean_se(final))} | {per_seed} | {diff} |"
            f" {fmt(mean_se(zero), 2)} |"
        )
    seeded_note = (
        " std_aware and learnability start from the initial policy's extraction"
        f" (all {args.pool} pool prompts × K = {args.G}, runs/extract_init)."
        if args.seed_samplers
        else ""
    )
    table = (
        f"Mean ± SE over seeds {args.seeds}; budget {args.budget} generated tokens.{seeded_note}"
        " Test pass@1 per seed: the final evaluation ± its SE over prompts; minus uniform: paired"
        " over the same test prompts, same seed, one entry per seed.\n\n"
        f"| sampling | tokens to val pass@1 {args.target} | reached | pass@1 at budget (curve) |"
        " test pass@1 | test pass@1 per seed | minus uniform per seed | zero-std share |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write(args.out, "remedies", args, table, {"summary": summary, "runs": runs})
    plot_curves(runs, args, args.out / "remedies.png", target=args.target)


def plot_curves(runs: dict, args, path: Path, target: float | None = None) -> None:
    """Left: the score against generated tokens (initial test, val evaluations, final test);
    right: the zero-std share of each iteration's groups. One colour per method or arm, one
    line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    palette = ["tab:gray", "tab:orange", "tab:blue", "tab:green", "tab:red"]
    colors = dict(zip(runs, palette))
    for method, by_seed in runs.items():
        for i, r in enumerate(by_seed.values()):
            t, y = zip(*r["curve"])
            lab = method if i == 0 else None
            ax1.plot(t, y, color=colors[method], alpha=0.8, label=lab)
            ax2.plot(r["tokens"], r["zero_std_share"], color=colors[method], marker=".", label=lab)
    if target is not None:
        ax1.axhline(target, color="k", lw=0.8, ls="--", label=f"target {target}")
    name = SCORE["name"]
    ax1.set(xlabel="generated tokens", ylabel=f"{name} (val; at 0 and the end: test)")
    ax2.set(xlabel="generated tokens", ylabel="group/zero_std_share")
    ax1.set_title(f"{name} vs generated tokens (one line per seed)")
    ax2.set_title("zero-std share of the drawn groups per iteration")
    for ax in (ax1, ax2):
        ax.axvline(args.budget, color="k", lw=0.5)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cmd_humaneval(args) -> None:
    from rft.sandbox import isolation

    ev_over = [*base(args, "humaneval_eval")]
    if args.he_problems:
        ev_over.append(f"task.n_problems={args.he_problems}")
    if args.he_max_new_tokens:
        ev_over.append(f"task.max_new_tokens={args.he_max_new_tokens}")
    if args.smoke:
        ev_over = [o for o in ev_over if not o.startswith("task.")] + [
            "task.n_problems=4",
            "task.max_new_tokens=16",
            "eval.samples_per_prompt=10",
        ]
    d = run(args.out, "humaneval_eval", ev_over, {"cmd": "humaneval"})
    m = metrics(d)
    train_over = [
        *[o for o in ev_over if o != "mode=evaluate"],
        "mode=train",
        "alg=grpo",
        f"{ALG['prompts']}={args.prompts}",
        f"{ALG['G']}={args.G}",
        f"{ALG['minibatch']}={args.prompts * args.G}",
        f"{ALG['iterations']}={args.iterations}",
        f"{ALG['eval_every']}=0",
        "eval.before_training=false",
        "eval.samples_per_prompt=1",
        "task.n_test_prompts=8",
        "checkpoint.every_n_iterations=1000",
    ]
    t = run(args.out, "humaneval_grpo", train_over, {"cmd": "humaneval"})
    rows = [r for r in history(t) if "time/iteration_s" in r]
    share = [r["time/reward_s"] / r["time/iteration_s"] for r in rows]
    data = {
        "pass@1": (m["test/pass@1"], m["test/pass@1_se"]),
        "pass@10": (m.get("test/pass@10"), m.get("test/pass@10_se")),
        "format_error_share": (m["test/format_error_share"], m["test/format_error_share_se"]),
        "reward_time_share": mean_se(share),
        "reward_s": mean_se([r["time/reward_s"] for r in rows]),
        "iteration_s": mean_se([r["time/iteration_s"] for r in rows]),
        "isolation": isolation().describe(),
    }
    table = (
        f"| problems × n | pass@1 | pass@10 | no code / syntax error | reward time / iteration"
        f" ({len(rows)} GRPO its., {args.prompts} × G = {args.G}) |\n|---|---|---|---|---|\n"
        f"| {m['test/n_prompts']} × {m['test/samples_per_prompt']} | {fmt(data['pass@1'])} |"
        f" {fmt(data['pass@10'])} | {fmt(data['format_error_share'])} |"
        f" {fmt(data['reward_time_share'], 2)} ({fmt(data['reward_s'], 1)} s of"
        f" {fmt(data['iteration_s'], 1)} s) |\n\n{data['isolation']}"
    )
    write(args.out, "humaneval", args, table, data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["pick", "vanishing", "remedies", "humaneval"])
    ap.add_argument("out", type=Path, help="folder for the runs, the tables and the plots")
    ap.add_argument("--task", default="chain_sum_2t_1-2d", help=f"one of {list(CANDIDATES)}")
    ap.add_argument("--only", nargs="*", default=[], help="pick: these candidates only")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--budget", type=int, default=131072, help="generated tokens per GRPO run")
    ap.add_argument("--target", type=float, default=0.3, help="remedies: val pass@1 to reach")
    ap.add_argument("--methods", nargs="+", default=list(REMEDIES), choices=list(REMEDIES))
    ap.add_argument("--prompts", type=int, default=8, help="prompts per GRPO batch")
    ap.add_argument("--G", type=int, default=8, help="samples per prompt (and extraction K)")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument(
        "--micro-batch", type=int, default=8, help="GRPO sequences per forward/backward (memory)"
    )
    ap.add_argument("--eval-every", type=int, default=5, help="iterations between val evals")
    ap.add_argument("--n-prompts", type=int, default=128, help="pick: train prompts extracted")
    ap.add_argument(
        "--pool",
        type=int,
        default=64,
        help="vanishing/remedies: the extractions' train problems (the first N); remedies' train split",
    )
    ap.add_argument("--sft-steps", type=int, default=30)
    ap.add_argument("--sft-frac", type=float, default=0.01, help="of the train solutions")
    ap.add_argument(
        "--sft-task-seed",
        type=int,
        default=100_000,
        help="vanishing: task.seed of the SFT data (train problems away from the pool's test)",
    )
    ap.add_argument("--iterations", type=int, default=3, help="humaneval: GRPO iterations timed")
    ap.add_argument("--test-prompts", type=int, help="task.n_test_prompts (rg_grpo: 200)")
    ap.add_argument("--test-samples", type=int, help="eval.samples_per_prompt (rg_grpo: 8)")
    ap.add_argument("--val-prompts", type=int, help="task.n_eval_prompts (reasoning_gym: 64)")
    ap.add_argument(
        "--seed-samplers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="remedies: std_aware and learnability start from the initial extraction's estimates",
    )
    ap.add_argument("--he-problems", type=int, help="humaneval: task.n_problems (all 164)")
    ap.add_argument("--he-max-new-tokens", type=int, help="humaneval: task.max_new_tokens (256)")
    ap.add_argument("--threads", type=int, default=2, help="hardware.torch_threads")
    ap.add_argument("--smoke", action="store_true", help="tiny model, tiny sizes: check the driver")
    ap.add_argument("--override", nargs="*", default=[], help="more Hydra overrides for every run")
    args = ap.parse_args(argv)
    if args.smoke:
        args.budget, args.n_prompts, args.G, args.prompts, args.pool = 256, 8, 4, 4, 16
        args.eval_every, args.iterations, args.threads = 2, 1, 1
    # an upper bound (every completion ≥ 1 token): the budget stops a run first
    args.max_iterations = math.ceil(args.budget / (args.prompts * args.G)) + 1
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command in ("vanishing", "remedies"):
        SCORE.update(score_for(compose_cfg(*base(args), *task_overrides(args))))
    {
        "pick": cmd_pick,
        "vanishing": cmd_vanishing,
        "remedies": cmd_remedies,
        "humaneval": cmd_humaneval,
    }[args.command](args)


if __name__ == "__main__":
    main()
