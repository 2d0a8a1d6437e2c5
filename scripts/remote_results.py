"""The tables of docs/results.md "Remote models (issue #27)", from the run folders that
scripts/remote_experiments.sh writes under OUT:

    python scripts/remote_results.py guide OUT      # OUT/guide/<alg>_<local|remote>_s<seed>, ppo_s<seed>
    python scripts/remote_results.py judge OUT [--classifier DIR] [--judge-url URL]

``guide``: each run's final test reward ± SE; paired per-prompt differences (rft.report.paired)
against the SFT init, against ``ppo`` of the same seed, and remote − local of the same algorithm
and seed, each per seed and pooled over the seeds (rft.report.pooled_paired: each prompt's
difference averaged over the seeds first); the remote runs' guide accounting (``remote/guide/*``
in history.jsonl) and every row of a resumed run's cache hit rate.

``judge``: the PPO-on-the-judge runs (OUT/judge/ppo_s<seed>, all test completions kept by
``eval.n_samples_table``): the judge's score before and after, and the same completions rescored
by VADER and by the learned classifier (paired); then, over every completion, the judge's
agreement with VADER and with the classifier (Pearson, Spearman, agreement of the binarised
labels) and its unparsable answers, asked again through rft's JudgeReward with the run's
settings (a cache makes that free), and with the default chat template for comparison (needs
the judge server up). Writes OUT/guide.{md,json,png}, or OUT/judge_<runs>.{md,json} (``--runs ppo_lp_s``: the runs on the
logprob-weighted score).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rft.eval.stats import clustered_mean, sem  # noqa: E402
from rft.io import read_history  # noqa: E402
from rft.report import load_evals, paired, pooled_paired  # noqa: E402

SEEDS = (0, 1)


def fmt(x: float, se: float | None = None, sign: bool = False, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    s = f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"
    return s if se is None else f"{s} ± {se:.{nd}f}"


def mean_se(ev: dict) -> tuple[float, float]:
    rewards = [r for row in ev["reward"] for r in row]
    return clustered_mean(rewards, len(ev["reward"][0]))


def fmt_pair(p) -> str:
    return "—" if p is None else fmt(p.diff, p.se, sign=True)


# ------------------------------------------------------------------------------------ guide
CONDITIONS = [
    ("ppo", "ppo", None),
    ("ppo_pp, local guide", "ppo_pp", "local"),
    ("ppo_pp, served guide", "ppo_pp", "remote"),
    ("dlols, local guide", "dlols", "local"),
    ("dlols, served guide", "dlols", "remote"),
]


def run_name(alg: str, where: str | None, seed: int) -> str:
    return f"ppo_s{seed}" if where is None else f"{alg}_{where}_s{seed}"


def guide_tables(out: Path) -> tuple[str, dict]:
    root = out / "guide"
    evals = {}
    for _, alg, where in CONDITIONS:
        for s in SEEDS:
            d = root / run_name(alg, where, s)
            if (d / "metrics.json").is_file():
                evals[(alg, where, s)] = load_evals(d)
    res: dict = {"runs": {}, "pooled": {}}
    lines = [
        "| policy | test reward ± SE, seed 0 / 1 | Δ vs SFT init, seed 0 / 1 | pooled Δ vs init "
        "| Δ vs `ppo`, seed 0 / 1 | pooled Δ vs `ppo` |",
        "|---|---|---|---|---|---|",
    ]
    init = next((e["test_init"] for e in evals.values() if "test_init" in e), None)
    if init is not None:
        inits = {json.dumps(e["test_init"]["reward"]) for e in evals.values() if "test_init" in e}
        m, se = mean_se(init)
        res["init"] = {"mean": m, "se": se, "identical_in_every_run": len(inits) == 1}
        lines.append(f"| SFT guide (init) | {fmt(m, se)} | — | — | — | — |")
    for label, alg, where in CONDITIONS:
        per_seed, d_init, d_ppo = [], [], []
        p_init, p_ppo = [], []
        for s in SEEDS:
            e = evals.get((alg, where, s))
            if e is None or "test" not in e:
                per_seed.append("—"), d_init.append("—"), d_ppo.append("—")
                continue
            m, se = mean_se(e["test"])
            per_seed.append(fmt(m, se))
            pi = paired(e["test"], e["test_init"]) if "test_init" in e else None
            d_init.append(fmt_pair(pi))
            if pi is not None:
                p_init.append((e["test"], e["test_init"]))
            ppo = evals.get(("ppo", None, s))
            pp = None
            if alg != "ppo" and ppo is not None and "test" in ppo:
                pp = paired(e["test"], ppo["test"])
                p_ppo.append((e["test"], ppo["test"]))
            d_ppo.append("—" if alg == "ppo" else fmt_pair(pp))
            res["runs"][run_name(alg, where, s)] = {
                "mean": m,
                "se": se,
                "d_init": None if pi is None else [pi.diff, pi.se],
                "d_ppo": None if pp is None else [pp.diff, pp.se],
            }
        pooled_init = pooled_paired(p_init) if len(p_init) == len(SEEDS) else None
        pooled_ppo = pooled_paired(p_ppo) if len(p_ppo) == len(SEEDS) else None
        res["pooled"][label] = {
            "d_init": None if pooled_init is None else [pooled_init.diff, pooled_init.se],
            "d_ppo": None if pooled_ppo is None else [pooled_ppo.diff, pooled_ppo.se],
        }
        lines.append(
            f"| {label} | {' / '.join(per_seed)} | {' / '.join(d_init)} | "
            f"**{fmt_pair(pooled_init)}** | {' / '.join(d_ppo)} | "
            f"{'—' if alg == 'ppo' else '**' + fmt_pair(pooled_ppo) + '**'} |"
        )
    md = ["## Black-box guide: test reward (VADER), 128 test prompts × 2", "", *lines, ""]

    # remote − local, same algorithm and seed
    md += [
        "### Served − local guide (paired per prompt)",
        "",
        "| algorithm | seed 0 | seed 1 | pooled |",
        "|---|---|---|---|",
    ]
    res["remote_minus_local"] = {}
    for alg in ("ppo_pp", "dlols"):
        cells, pairs = [], []
        for s in SEEDS:
            r, loc = evals.get((alg, "remote", s)), evals.get((alg, "local", s))
            if r and loc and "test" in r and "test" in loc:
                p = paired(r["test"], loc["test"])
                pairs.append((r["test"], loc["test"]))
                cells.append(fmt_pair(p))
            else:
                cells.append("—")
        pooled = pooled_paired(pairs) if len(pairs) == len(SEEDS) else None
        res["remote_minus_local"][alg] = None if pooled is None else [pooled.diff, pooled.se]
        md.append(f"| {alg} | {cells[0]} | {cells[1]} | **{fmt_pair(pooled)}** |")
    md.append("")

    # accounting of the remote runs
    md += [
        "### The served guide's accounting (history.jsonl, `remote/guide/*`, last row = run "
        "totals of the last process)",
        "",
        "| run | iterations | requests | retries | failed tries | prompt tokens | completion "
        "tokens | policy tokens | cache hits / misses | mean latency s (per iteration: min–max)"
        " | guide rollout s / iteration |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    res["accounting"] = {}
    for alg in ("ppo_pp", "dlols"):
        for s in SEEDS:
            d = root / run_name(alg, "remote", s)
            rows = [r for r in read_history(d / "history.jsonl") if "remote/guide/requests" in r]
            if not rows:
                continue
            acc = accounting(rows)
            res["accounting"][d.name] = acc
            md.append(
                f"| {d.name} | {acc['iterations']} | {acc['requests']:.0f} | {acc['retries']:.0f} | "
                f"{acc['failed_tries']:.0f} | {acc['prompt_tokens']:.0f} | "
                f"{acc['completion_tokens']:.0f} | {acc['policy_tokens']:.0f} | "
                f"{acc['cache_hits']:.0f} / {acc['cache_misses']:.0f} | "
                f"{acc['latency_mean_s']:.2f} ({acc['latency_min_s']:.2f}–{acc['latency_max_s']:.2f})"
                f" | {acc['rollout_s_per_iteration']:.1f} |"
            )
    md.append("")
    for d in sorted(root.glob("*_remote_s*")):
        rows = read_history(d / "history.jsonl")
        hits = [r for r in rows if "remote/guide/cache_hit_rate" in r]
        if any(r["remote/guide/cache_hit_rate"] > 0 for r in hits):
            # the cache is shared by every run with the same cache_tag: a run of one process
            # hits what an earlier run asked (the same prompt, prefix and seed); a resumed run
            # also replays its own iterations after the last checkpoint
            n = accounting(hits)["processes"]
            why = f"resumed: {n} processes" if n > 1 else "one process: hits already in the cache"
            md += [
                f"### Cache hit rate of {d.name} ({why}): every row",
                "",
                "| iteration | cache_hit_rate (process total) | hits | misses | requests |",
                "|---|---|---|---|---|",
            ]
            for r in hits:
                md.append(
                    f"| {r.get('iteration')} | {r['remote/guide/cache_hit_rate']:.3f} | "
                    f"{r.get('remote/guide/cache_hits', 0):.0f} | "
                    f"{r.get('remote/guide/cache_misses', 0):.0f} | "
                    f"{r.get('remote/guide/requests', 0):.0f} |"
                )
            md.append("")
            res.setdefault("resumed", {})[d.name] = [
                {
                    k: r.get(k)
                    for k in (
                        "iteration",
                        "remote/guide/cache_hit_rate",
                        "remote/guide/cache_hits",
                        "remote/guide/cache_misses",
                        "remote/guide/requests",
                    )
                }
                for r in hits
            ]
    return "\n".join(md), res


def policy_curve(rows: list[dict], alg: str) -> tuple[list[int], list[float]]:
    """The reward of the policy's own rollouts per iteration: ``reward/mean`` for PPO,
    ``guided/reward_policy_only`` for a guided run (its episodes without a guide roll-in; absent
    or NaN in an iteration where every episode was restarted). A resumed run's replayed
    iterations appear twice in its history: the later row is kept."""
    key = "reward/mean" if alg == "ppo" else "guided/reward_policy_only"
    pts = {r["iteration"]: float(r[key]) for r in rows if isinstance(r.get(key), (int, float))}
    its = sorted(i for i, v in pts.items() if math.isfinite(v))
    return its, [pts[i] for i in its]


def plot_guide(out: Path, res: dict, path: Path) -> Path | None:
    """Left: the reward of the policy's own rollouts per iteration (PPO: every rollout; the
    guided runs: ``guided/reward_policy_only``, the episodes without a guide roll-in), smoothed,
    one line per run, served guide dashed; right: each run's final test reward ± SE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rft.plots import ema

    root = out / "guide"
    colors = {"ppo": "tab:gray", "ppo_pp": "tab:blue", "dlols": "tab:green"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    labels, means, ses, bar_colors, hatches = [], [], [], [], []
    for label, alg, where in CONDITIONS:
        for s in SEEDS:
            d = root / run_name(alg, where, s)
            rows = read_history(d / "history.jsonl") if (d / "history.jsonl").is_file() else []
            its, values = policy_curve(rows, alg)
            if its:
                ax1.plot(
                    its,
                    ema(values, 0.8),
                    color=colors[alg],
                    ls="--" if where == "remote" else "-",
                    alpha=0.9 if s == 0 else 0.55,
                    label=f"{label}, seed {s}",
                )
            r = res["runs"].get(run_name(alg, where, s))
            if r is not None:
                labels.append(f"{label.replace(', ', chr(10))}\nseed {s}")
                means.append(r["mean"]), ses.append(r["se"]), bar_colors.append(colors[alg])
                hatches.append("//" if where == "remote" else "")
    if not labels:
        plt.close(fig)
        return None
    ax1.set(xlabel="iteration", ylabel="VADER reward (EMA, smoothing 0.8)")
    ax1.set_title("the policy's own rollouts (guided runs: episodes without a roll-in)")
    ax1.legend(fontsize=7, ncol=2)
    x = np.arange(len(labels))
    ax2.bar(x, means, yerr=ses, color=bar_colors, hatch=hatches, alpha=0.8, capsize=3)
    if "init" in res:
        ax2.axhline(res["init"]["mean"], color="k", lw=0.8, ls=":", label="SFT init")
        ax2.legend(fontsize=8)
    ax2.set_xticks(x, labels, fontsize=6)
    ax2.set_ylim(min(means) - 0.1, max(means) + 0.05)
    ax2.set_title("final test reward ± SE, 128 prompts × 2")
    ax2.set_ylabel("VADER reward (hatched: served guide)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def accounting(rows: list[dict]) -> dict:
    """Totals over a run's rows. The counters are totals of one process (a resumed run starts
    them again), so each process's last row is added up."""
    keys = (
        "requests",
        "retries",
        "failed_tries",
        "prompt_tokens",
        "completion_tokens",
        "cache_hits",
        "cache_misses",
        "answers",
    )
    totals = dict.fromkeys(keys, 0.0)
    prev, last = None, rows[0]
    segments = []
    for r in rows:
        looked = r.get("remote/guide/cache_hits", 0) + r.get("remote/guide/cache_misses", 0)
        if prev is not None and looked < prev:
            segments.append(last)
        prev, last = looked, r
    segments.append(last)
    for r in segments:
        for k in keys:
            totals[k] += r.get(f"remote/guide/{k}", 0.0)
    policy = sum(r.get("remote/guide/policy_tokens", 0.0) for r in segments)
    lat = [r["remote/guide/latency_mean_s"] for r in rows if "remote/guide/latency_mean_s" in r]
    roll = [r["time/rollout_s"] for r in rows if "time/rollout_s" in r]
    return {
        **totals,
        "policy_tokens": policy,
        "processes": len(segments),
        "iterations": len({r.get("iteration") for r in rows}),
        "latency_mean_s": float(np.mean(lat)) if lat else float("nan"),
        "latency_min_s": float(np.min(lat)) if lat else float("nan"),
        "latency_max_s": float(np.max(lat)) if lat else float("nan"),
        "rollout_s_per_iteration": float(np.mean(roll)) if roll else float("nan"),
    }


# ------------------------------------------------------------------------------------ judge
def judge_answers(cfg_reward, prompts, completions) -> tuple[list[str], list[float | None]]:
    """The judge's raw answers and parsed scores (None: unparsable), asked through rft's
    JudgeReward exactly as the run asks (its client, cache and template)."""
    from rft.reward.judge import JudgeReward

    answers, scores, _ = JudgeReward(**cfg_reward).verdicts(prompts, completions)
    return [a.text for a in answers], scores


def correlations(a: np.ndarray, b: np.ndarray) -> dict:
    from scipy.stats import pearsonr, spearmanr

    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return {"n": int(a.size), "pearson": float("nan"), "spearman": float("nan")}
    pr, sp = pearsonr(a, b), spearmanr(a, b)
    med_a, med_b = np.median(a), np.median(b)
    return {
        "n": int(a.size),
        "pearson": float(pr.statistic),
        "pearson_p": float(pr.pvalue),
        "spearman": float(sp.statistic),
        "spearman_p": float(sp.pvalue),
        # labels: positive = above the scale's midpoint 0.5 (every score is in [0, 1])
        "agree_at_0.5": float(np.mean((a > 0.5) == (b > 0.5))),
        "positive_share": [float(np.mean(a > 0.5)), float(np.mean(b > 0.5))],
        # labels at each scorer's own median (balanced classes; ties go negative)
        "agree_at_median": float(np.mean((a > med_a) == (b > med_b))),
    }


def judge_tables(
    out: Path,
    classifier: str | None,
    url: str | None,
    runs_prefix: str = "ppo_s",
    default_chat: bool = True,
) -> tuple[str, dict]:
    from omegaconf import OmegaConf

    res: dict = {"runs": {}}
    md = []
    runs = sorted((out / "judge").glob(f"{runs_prefix}[0-9]*"))
    pooled_rows: dict[str, list] = {}
    everything = {"prompt": [], "completion": [], "judge": [], "which": []}
    for d in runs:
        evs = {}
        for prefix in ("test_init", "test"):
            files = sorted((d / "eval").glob(f"{prefix}_[0-9]*.json"))
            if files:
                evs[prefix] = json.loads(files[-1].read_text())
        if len(evs) < 2:
            continue
        k = evs["test"]["eval"]["samples_per_prompt"]
        scored = {}
        for prefix, ev in evs.items():
            s = ev["samples"]
            n = len(ev["per_prompt"]["prompt_id"]) * k
            assert len(s) == n, f"{d}: {len(s)} samples kept of {n}: run with eval.n_samples_table"
            prompts, comps = [x["prompt"] for x in s], [x["completion"] for x in s]
            scored[prefix] = {"judge": np.array([x["reward"] for x in s], dtype=float)}
            scored[prefix]["vader"] = np.array(rescore("sentiment_vader", {}, prompts, comps))
            if classifier:
                for inc in (True, False):
                    scored[prefix][f"classifier{'' if inc else '_completion'}"] = np.array(
                        rescore(
                            "classifier",
                            {"model": classifier, "include_prompt": inc},
                            prompts,
                            comps,
                        )
                    )
            everything["prompt"] += prompts
            everything["completion"] += comps
            everything["judge"] += scored[prefix]["judge"].tolist()
            everything["which"] += [f"{d.name}/{prefix}"] * n
        run = {}
        for key in scored["test"]:
            a, b = per_prompt(scored["test"][key], k), per_prompt(scored["test_init"][key], k)
            diff = a - b
            run[key] = {
                "before": [float(b.mean()), sem(b)],
                "after": [float(a.mean()), sem(a)],
                "delta": [float(diff.mean()), sem(diff)],
            }
            pooled_rows.setdefault(key, []).append(diff)
        res["runs"][d.name] = run
    if not res["runs"]:
        return "no finished judge runs", res
    keys = list(next(iter(res["runs"].values())))
    md += [
        "## PPO on the judge: before and after, the same completions under three scorers",
        "",
        "| scorer | "
        + " | ".join(f"{r}: before → after, Δ (paired)" for r in res["runs"])
        + " | pooled Δ |",
        "|---" * (len(res["runs"]) + 2) + "|",
    ]
    res["pooled"] = {}
    for key in keys:
        cells = []
        for r in res["runs"].values():
            x = r[key]
            cells.append(f"{fmt(*x['before'])} → {fmt(*x['after'])}, {fmt(*x['delta'], sign=True)}")
        if (
            len(pooled_rows[key]) == len(res["runs"])
            and len({len(x) for x in pooled_rows[key]}) == 1
        ):
            d = np.mean(pooled_rows[key], axis=0)
            res["pooled"][key] = [float(d.mean()), sem(d)]
            pooled = f"**{fmt(float(d.mean()), sem(d), sign=True)}**"
        else:
            pooled = "—"
        md.append(f"| {key} | " + " | ".join(cells) + f" | {pooled} |")
    md.append("")

    # agreement over every completion
    cfg = OmegaConf.load(runs[0] / ".hydra" / "config.yaml")
    judge_cfg = OmegaConf.to_container(cfg.reward, resolve=True)
    if url:
        judge_cfg["base_url"] = url
    all_scores = {"judge": np.array(everything["judge"])}
    P, C = everything["prompt"], everything["completion"]
    all_scores["vader"] = np.array(rescore("sentiment_vader", {}, P, C))
    if classifier:
        all_scores["classifier"] = np.array(
            rescore("classifier", {"model": classifier, "include_prompt": True}, P, C)
        )
        all_scores["classifier_completion"] = np.array(
            rescore("classifier", {"model": classifier, "include_prompt": False}, P, C)
        )
    texts, parsed = judge_answers(judge_cfg, P, C)
    lo, hi = judge_cfg["min_score"], judge_cfg["max_score"]
    unparsable = [p is None for p in parsed]
    raw = np.array([np.nan if p is None else (p - lo) / (hi - lo) for p in parsed])
    same = np.allclose(np.nan_to_num(raw, nan=judge_cfg["unparsable_score"]), all_scores["judge"])
    res["agreement"] = {
        "n": len(P),
        "unparsable": int(sum(unparsable)),
        "unparsable_share": float(np.mean(unparsable)),
        "rescored_equals_run": bool(same),
        "score_histogram": hist(parsed),
        "judge_vs_vader": correlations(raw, all_scores["vader"]),
    }
    if classifier:
        res["agreement"]["judge_vs_classifier"] = correlations(raw, all_scores["classifier"])
        res["agreement"]["judge_vs_classifier_completion"] = correlations(
            raw, all_scores["classifier_completion"]
        )
        res["agreement"]["vader_vs_classifier"] = correlations(
            all_scores["vader"], all_scores["classifier"]
        )
        res["agreement"]["vader_vs_classifier_completion"] = correlations(
            all_scores["vader"], all_scores["classifier_completion"]
        )
    if not default_chat:
        return judge_markdown(md, res, P, unparsable, same), res
    # the default chat template (README's rubric) on the same completions
    chat_cfg = {k: v for k, v in judge_cfg.items() if k not in ("template", "score_pattern")}
    chat_cfg.update(
        endpoint="chat",
        max_tokens=32,
        score_from="text",
        min_score=0.0,
        max_score=10.0,
        rubric="How positive is the continuation of this movie review?",
    )
    c_texts, c_parsed = judge_answers(chat_cfg, P, C)
    c_raw = np.array([np.nan if p is None else p / 10.0 for p in c_parsed])
    res["agreement_default_chat"] = {
        "unparsable_share": float(np.mean([p is None for p in c_parsed])),
        "score_histogram": hist(c_parsed),
        "judge_vs_vader": correlations(c_raw, all_scores["vader"]),
        "examples": c_texts[:5],
    }
    if classifier:
        res["agreement_default_chat"]["judge_vs_classifier"] = correlations(
            c_raw, all_scores["classifier"]
        )
    return judge_markdown(md, res, P, unparsable, same), res


def judge_markdown(md: list[str], res: dict, P: list, unparsable: list, same: bool) -> str:
    md += [
        "## The judge's agreement with VADER and the learned classifier",
        "",
        f"{len(P)} completions (every test completion of the runs, before and after); "
        f"unparsable: {sum(unparsable)} ({100 * np.mean(unparsable):.1f} %); the run's own "
        f"judge scores reproduced: {same}.",
        "",
        "| pair | n | Pearson | Spearman | agreement at 0.5 | positive share (a / b) | "
        "agreement at the medians |",
        "|---|---|---|---|---|---|---|",
    ]
    blocks = [("few-shot judge", res["agreement"])]
    if "agreement_default_chat" in res:
        blocks.append(("default chat judge", res["agreement_default_chat"]))
    for name, block in blocks:
        for pair, c in block.items():
            if not isinstance(c, dict) or "pearson" not in c:
                continue
            md.append(
                f"| {name}: {pair} | {c['n']} | {fmt(c['pearson'])} | {fmt(c['spearman'])} | "
                f"{fmt(c.get('agree_at_0.5', float('nan')))} | "
                f"{' / '.join(f'{x:.2f}' for x in c.get('positive_share', []))} | "
                f"{fmt(c.get('agree_at_median', float('nan')))} |"
            )
    md += ["", f"few-shot judge's scores: {res['agreement']['score_histogram']}"]
    if "agreement_default_chat" in res:
        chat = res["agreement_default_chat"]
        md.append(
            f"default chat judge: unparsable {100 * chat['unparsable_share']:.1f} %,"
            f" scores {chat['score_histogram']}"
        )
    return "\n".join(md + [""])


def hist(parsed) -> dict:
    out: dict = {}
    for p in parsed:
        # logprob-weighted scores are continuous: counted at the nearest integer
        key = "unparsable" if p is None else f"{round(p):g}"
        out[key] = out.get(key, 0) + 1
    return dict(
        sorted(
            out.items(),
            key=lambda kv: (kv[0] == "unparsable", float(re.sub("unparsable", "inf", kv[0]))),
        )
    )


def per_prompt(values: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(-1, k).mean(1)


_REWARDS: dict = {}


def rescore(option: str, overrides: dict, prompts, completions) -> list[float]:
    """Scores of ``reward=<option>`` (with ``overrides``) for the completions, as a run scores
    them (rft.reward.base.build_reward), in batches."""
    from rft.reward.base import build_reward
    from scripts.std_sampler_experiment import compose_cfg

    key = (option, json.dumps(overrides, sort_keys=True))
    if key not in _REWARDS:
        ov = [f"reward={option}"] + [f"reward.{k}={v}" for k, v in overrides.items()]
        cfg = compose_cfg(*ov)
        _REWARDS[key] = build_reward(cfg.reward, check_spread=False)
    fn = _REWARDS[key]
    out = []
    for i in range(0, len(prompts), 64):
        r = fn(prompts[i : i + 64], completions[i : i + 64], None)
        out += [float(x) for x in (r.tolist() if hasattr(r, "tolist") else r)]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=["guide", "judge"])
    p.add_argument("out", type=Path)
    p.add_argument("--classifier", help="the classifier run's reward_model folder")
    p.add_argument("--judge-url", help="the judge server's base_url, if not the run's")
    p.add_argument(
        "--no-default-chat",
        action="store_true",
        help="judge: skip asking the default chat template too (one more request per completion)",
    )
    p.add_argument(
        "--runs",
        default="ppo_s",
        help="judge: the run folders' prefix under OUT/judge (ppo_s: the stated score, "
        "ppo_lp_s: the logprob-weighted one)",
    )
    a = p.parse_args(argv)
    if a.command == "guide":
        md, res = guide_tables(a.out)
        png = plot_guide(a.out, res, a.out / "guide.png")
        if png is not None:
            print(f"plot: {png}")
    else:
        md, res = judge_tables(a.out, a.classifier, a.judge_url, a.runs, not a.no_default_chat)
    name = a.command if a.command == "guide" else f"judge_{a.runs.removesuffix('_s')}"
    (a.out / f"{name}.md").write_text(md + "\n")
    (a.out / f"{name}.json").write_text(json.dumps(res, indent=1))
    print(md)


if __name__ == "__main__":
    main()
