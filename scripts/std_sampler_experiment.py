"""Controlled comparison: uniform prompts vs std-aware prompts vs DAPO's dynamic sampling.

    python scripts/std_sampler_experiment.py OUT_DIR [--seeds 0 1 2] [--budget 10240]

Why this case. Razin et al. (docs/algorithms.md §5): a prompt whose reward does not vary under
the policy gives no expected gradient. Here most train prompts are like that by construction:
on the word task (tests/learning/words.py: a 16-word vocabulary, half of it GOOD) a prompt whose
first word is "happy" is SOLVED (reward 1 whatever is generated), one whose first word is "sad"
is UNSOLVABLE (reward 0), and only the rest are INFORMATIVE (reward = share of GOOD words, which
a random policy already spreads around 0.5). A group-normalised advantage is exactly 0 on the
constant prompts, so a uniform draw spends about (1 - informative share) of its generated tokens
on groups that cannot move the policy. Std-aware sampling (rft/rollout/std_sampler.py) learns
which prompts those are and stops drawing them (down to its floor); DAPO's dynamic sampling
(alg.dynamic_sampling=true) draws them, generates, and then discards their groups.

What is compared. Each method runs alg=grpo with the same batch (8 prompts × G = 4, 8 tokens
each) until it has GENERATED the same number of tokens (``--budget``; the run is stopped after
the iteration that reaches it, so dynamic sampling, which generates up to 4 rounds per
iteration, runs fewer iterations). Progress is the mean reward on held-out INFORMATIVE prompts
(task val = test file), evaluated with a fixed sampling seed every few iterations; reported:
generated tokens to reach ``--target`` (linear interpolation between evaluations; "not
reached" counts are shown), the reward at the budget, and the zero-std share of the drawn
groups per iteration (for dynamic sampling: of the first draw of each iteration, before the
filter). Mean ± standard error over seeds (SE = sample std / √n).

Writes OUT_DIR/results.json, OUT_DIR/std_sampler_experiment.png and one run folder per method
and seed (OUT_DIR/runs/<method>_s<seed>: config.yaml, history.jsonl, ...). Finished runs are
reused when the script is run again with the same settings (delete OUT_DIR/runs to redo them).
Runs go one after another on one torch thread (hardware.torch_threads=1).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/...`: make rft, tests and scripts importable
    sys.path.insert(0, str(REPO))

SOLVED_WORD, UNSOLVABLE_WORD = "happy", "sad"
G, PROMPTS_PER_BATCH, NEW_TOKENS = 4, 8, 8

METHODS = {
    "uniform": ["alg.prompt_sampling=uniform"],
    "std_aware": ["alg.prompt_sampling=std_aware"],
    "dynamic": ["alg.prompt_sampling=uniform", "alg.dynamic_sampling=true"],
}


def mixed_reward(prompts, completions, references=None) -> list[float]:
    """1 for a SOLVED prompt (first word "happy"), 0 for an UNSOLVABLE one ("sad"), else the
    share of GOOD words in the completion (tests.learning.words.good_share).

    >>> mixed_reward(["happy x", "sad x", "fun x"], ["bad bad", "good good", "good bad"])
    [1.0, 0.0, 0.5]
    """
    from tests.learning.words import good_share

    share = good_share(prompts, completions)
    out = []
    for p, s in zip(prompts, share):
        first = p.split()[0] if p.split() else ""
        out.append(1.0 if first == SOLVED_WORD else 0.0 if first == UNSOLVABLE_WORD else s)
    return out


def write_data(folder: Path, n_train: int, informative_share: float, n_eval: int) -> dict:
    """The word tokenizer, a train file (a minority of informative prompts, the rest split
    evenly between solved and unsolvable) and an eval file of informative prompts only. Fixed
    seed: every method and seed trains on the same prompts."""
    from tests.learning.words import VOCAB, build_word_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    others = [w for w in VOCAB if w not in (SOLVED_WORD, UNSOLVABLE_WORD)]

    def prompt(first: str | None) -> str:
        words = [rng.choice(VOCAB) for _ in range(rng.randint(2, 5))]
        return " ".join([first or rng.choice(others), *words])

    n_inf = round(informative_share * n_train)
    kinds = ["informative"] * n_inf
    kinds += ["solved"] * ((n_train - n_inf) // 2)
    kinds += ["unsolvable"] * (n_train - len(kinds))
    rng.shuffle(kinds)
    first = {"informative": None, "solved": SOLVED_WORD, "unsolvable": UNSOLVABLE_WORD}

    def write(path: Path, ks: list[str]) -> Path:
        with open(path, "w") as f:
            for k in ks:
                ref = " ".join(rng.choice(VOCAB) for _ in range(6))  # unused by RL
                f.write(
                    json.dumps({"prompt": prompt(first[k]), "reference": ref, "kind": k}) + "\n"
                )
        return path

    return {
        "tok": build_word_tokenizer(folder / "tok"),
        "train": write(folder / "train.jsonl", kinds),
        "eval": write(folder / "eval_informative.jsonl", ["informative"] * n_eval),
        "n_informative": n_inf,
    }


def overrides(data: dict, method: str, seed: int, args) -> list[str]:
    every = 1 if method == "dynamic" else args.eval_every  # dynamic: ~2-4× tokens / iteration
    return [
        "alg=grpo",
        f"seed={seed}",
        "task=jsonl",
        f"task.path={data['train']}",
        f"task.val_path={data['eval']}",
        f"task.test_path={data['eval']}",
        f"task.max_new_tokens={NEW_TOKENS}",
        f"task.min_new_tokens={NEW_TOKENS}",
        f"task.n_eval_prompts={args.n_eval}",
        f"task.n_test_prompts={args.n_eval}",
        "model=tiny",
        f"model.tiny.tokenizer={data['tok']}",
        "logger=none",
        "hardware=cpu_fp32",
        "hardware.torch_threads=1",
        "reward=custom",
        "reward._target_=scripts.std_sampler_experiment.mixed_reward",
        f"alg.n_iterations={args.max_iterations}",
        f"alg.rollout_prompts={PROMPTS_PER_BATCH}",
        f"alg.samples_per_prompt={G}",
        f"alg.minibatch_size={PROMPTS_PER_BATCH * G}",
        f"alg.micro_batch_size={PROMPTS_PER_BATCH * G}",
        f"alg.score_batch_size={PROMPTS_PER_BATCH * G}",
        f"alg.lr={args.lr}",
        f"alg.eval_every={every}",
        f"alg.std_sampler.floor={args.floor}",
        "eval.perplexity=false",
        "eval.samples_per_prompt=4",
        "eval.val_samples_per_prompt=4",
        "eval.n_samples_table=1",
        "checkpoint.every_n_iterations=1000",
        "checkpoint.save_policy=false",
        *METHODS[method],
        *args.override,
    ]


def stop_at_budget(budget: int):
    """Make GroupPG stop after the iteration whose generated-token total reaches ``budget``
    (Lightning finishes that epoch, then the final test evaluation runs). A patch of this
    process only: the module has no token-budget knob."""
    from rft.alg.group import GroupPG

    original = GroupPG.training_step

    def training_step(self, batch, batch_idx):
        out = original(self, batch, batch_idx)
        if self.generated_tokens_total >= budget:
            self.trainer.should_stop = True
        return out

    GroupPG.training_step = training_step


def compose_cfg(*overrides: str):
    """The run's config, composed as run.py would (tests/conftest.py does the same)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import rft  # noqa: F401  (registers the config schemas)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def settings_of(args) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def run_one(data: dict, method: str, seed: int, args, run_dir: Path) -> None:
    from rft.train import train

    settings = {**settings_of(args), "method": method, "seed": seed}
    done = run_dir / "settings.json"
    if (run_dir / "metrics.json").is_file() and done.is_file():
        if json.loads(done.read_text()) == settings:
            return
    t0 = time.perf_counter()
    train(compose_cfg(*overrides(data, method, seed, args)), run_dir=run_dir)
    done.write_text(json.dumps(settings))
    print(f"  {method} seed {seed}: {time.perf_counter() - t0:.0f}s", flush=True)


def read_run(run_dir: Path) -> dict:
    """Per-iteration generated-token totals and zero-std shares, and the eval curve as
    (generated tokens, reward) with the initial evaluation at 0 tokens."""
    rows = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    tokens = {0: 0.0}
    it_rows = [r for r in rows if "rollout/generated_tokens_total" in r]
    for r in it_rows:
        tokens[r["iteration"]] = r["rollout/generated_tokens_total"]
    curve = []
    for r in rows:
        for key in ("test_init/reward_mean", "val/reward_mean", "test/reward_mean"):
            if key in r:
                curve.append((tokens[r["iteration"]], r[key]))
    curve.sort()
    return {
        "iterations": len(it_rows),
        "tokens": [r["rollout/generated_tokens_total"] for r in it_rows],
        "zero_std_share": [r["group/zero_std_share"] for r in it_rows],
        "sampling_rounds": [r.get("rollout/sampling_rounds", 1.0) for r in it_rows],
        "curve": curve,
    }


def tokens_to_target(curve: list[tuple[float, float]], target: float) -> float | None:
    """Generated tokens at which the eval reward first reaches ``target``, interpolated
    linearly between the evaluation before and the one that reaches it; None if never."""
    for i, (t1, r1) in enumerate(curve):
        if r1 >= target:
            if i == 0:
                return t1
            t0, r0 = curve[i - 1]
            return t0 + (t1 - t0) * (target - r0) / (r1 - r0)
    return None


def reward_at(curve: list[tuple[float, float]], tokens: float) -> float:
    """The eval reward at ``tokens`` generated tokens (linear between evaluations)."""
    for (t0, r0), (t1, r1) in zip(curve, curve[1:]):
        if t0 <= tokens <= t1:
            return r0 if t1 == t0 else r0 + (r1 - r0) * (tokens - t0) / (t1 - t0)
    return curve[-1][1]


def mean_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = sum(xs) / n
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n) if n > 1 else math.nan
    return m, se


def summarise(runs: dict, args) -> dict:
    out = {}
    for method, by_seed in runs.items():
        ttt = {s: tokens_to_target(r["curve"], args.target) for s, r in by_seed.items()}
        reached = [v for v in ttt.values() if v is not None]
        at_budget = [reward_at(r["curve"], args.budget) for r in by_seed.values()]
        gain = [reward_at(r["curve"], args.budget) - r["curve"][0][1] for r in by_seed.values()]
        zero = [sum(r["zero_std_share"]) / len(r["zero_std_share"]) for r in by_seed.values()]
        # after the first 4 iterations: the std-aware sampler has seen half the train prompts
        zero_late = [
            sum(r["zero_std_share"][4:]) / max(1, len(r["zero_std_share"][4:]))
            for r in by_seed.values()
        ]
        out[method] = {
            "tokens_to_target": ttt,
            "tokens_to_target_mean_se": mean_se(reached),
            "reached": f"{len(reached)}/{len(by_seed)}",
            "reward_at_budget_mean_se": mean_se(at_budget),
            "gain_at_budget_mean_se": mean_se(gain),
            "zero_std_share_mean_se": mean_se(zero),
            "zero_std_share_after_it4_mean_se": mean_se(zero_late),
            "iterations_mean": sum(r["iterations"] for r in by_seed.values()) / len(by_seed),
            "tokens_generated_mean": sum(r["tokens"][-1] for r in by_seed.values()) / len(by_seed),
        }
    return out


def fmt(ms: tuple[float, float], digits: int = 3) -> str:
    m, se = ms
    if math.isnan(m):
        return "—"
    return f"{m:.{digits}f} ± {se:.{digits}f}" if not math.isnan(se) else f"{m:.{digits}f}"


def table(summary: dict, args) -> str:
    head = (
        f"| method | tokens to reward {args.target} | reached | reward at {args.budget} tokens"
        " | gain over init | zero-std share (all its) | zero-std share (its ≥ 5) | iterations"
        " | tokens generated |"
    )
    lines = [head, "|" + "---|" * 9]
    for m, s in summary.items():
        lines.append(
            f"| {m} | {fmt(s['tokens_to_target_mean_se'], 0)} | {s['reached']}"
            f" | {fmt(s['reward_at_budget_mean_se'])} | {fmt(s['gain_at_budget_mean_se'])}"
            f" | {fmt(s['zero_std_share_mean_se'], 2)} | {fmt(s['zero_std_share_after_it4_mean_se'], 2)}"
            f" | {s['iterations_mean']:.1f} | {s['tokens_generated_mean']:.0f} |"
        )
    return "\n".join(lines)


def plot(runs: dict, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"uniform": "tab:gray", "std_aware": "tab:blue", "dynamic": "tab:orange"}
    for method, by_seed in runs.items():
        for i, r in enumerate(by_seed.values()):
            t, y = zip(*r["curve"])
            ax1.plot(t, y, color=colors[method], alpha=0.8, label=method if i == 0 else None)
            ax2.plot(
                r["tokens"],
                r["zero_std_share"],
                color=colors[method],
                alpha=0.6,
                marker=".",
                label=method if i == 0 else None,
            )
    ax1.axhline(args.target, color="k", lw=0.8, ls="--", label=f"target {args.target}")
    ax1.set(xlabel="generated tokens", ylabel="reward on informative eval prompts")
    ax1.set_title("eval reward vs generated tokens (one line per seed)")
    ax2.set(xlabel="generated tokens", ylabel="group/zero_std_share of the drawn groups")
    ax2.set_title("zero-std share per iteration")
    for ax in (ax1, ax2):
        ax.axvline(args.budget, color="k", lw=0.5)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for results.json, the plot and the runs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--budget", type=int, default=10240, help="generated tokens per run")
    ap.add_argument("--target", type=float, default=0.7, help="eval reward to reach")
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--informative-share", type=float, default=0.25)
    ap.add_argument("--n-eval", type=int, default=32, help="informative eval prompts (× 4 samples)")
    ap.add_argument("--eval-every", type=int, default=2, help="iterations (dynamic: every one)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--floor", type=float, default=0.02, help="alg.std_sampler.floor")
    ap.add_argument(
        "--override", nargs="*", default=[], help="more Hydra overrides for every run (ablations)"
    )
    args = ap.parse_args(argv)
    per_iteration = PROMPTS_PER_BATCH * G * NEW_TOKENS
    args.max_iterations = math.ceil(args.budget / per_iteration)  # uniform hits it exactly
    args.out.mkdir(parents=True, exist_ok=True)
    data = write_data(args.out / "data", args.n_train, args.informative_share, args.n_eval)
    stop_at_budget(args.budget)
    runs: dict[str, dict] = {}
    for method in args.methods:
        for seed in args.seeds:
            run_dir = args.out / "runs" / f"{method}_s{seed}"
            run_one(data, method, seed, args, run_dir)
            runs.setdefault(method, {})[seed] = read_run(run_dir)
    summary = summarise(runs, args)
    text = table(summary, args)
    print(text)
    settings = settings_of(args)
    settings["n_informative_train"] = data["n_informative"]
    write = {"settings": settings, "summary": summary, "runs": runs, "table": text}
    (args.out / "results.json").write_text(json.dumps(write, indent=1))
    plot(runs, args, args.out / "std_sampler_experiment.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'std_sampler_experiment.png'}")


if __name__ == "__main__":
    main()
