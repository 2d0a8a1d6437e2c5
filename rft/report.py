"""Sweep report: one markdown table and a few PNGs from a Hydra multirun folder.

    python -m rft.report multirun/2024-05-01/12-00-00 [--out DIR] [--metric test/reward_mean]
    rft report multirun/2024-05-01/12-00-00

Run-folder contract (written by rft's trainer): the sweep folder holds one subfolder per job
(`0/`, `1/`, ...) and Hydra's `multirun.yaml`. A job folder holds `.hydra/overrides.yaml` (a
YAML list like `alg.lr=1e-05`), `.hydra/config.yaml`, and, once the job finished,
`metrics.json` (flat final metrics) and `history.jsonl` (one JSON object per logged iteration).
A job without metrics.json failed (its `*.log` ends with the error) or is still running (its
history.jsonl grows); it gets a row with its status and a line under "Skipped" saying why, and
the report is still written. Swept keys are the overrides whose values differ between jobs;
keys every job sets to the same value are constants, listed in the header.

Layout: reading (`load_job`, `load_sweep`), pure table logic (`split_overrides`, `make_rows`,
`to_markdown`), plots, then `build_report` and the CLI.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rft.io import read_history

DEFAULT_METRIC = "test/reward_mean"
PERPLEXITY = "test/perplexity"
LOW_STD = "diag/low_std_share"
CURVE_KEY = "reward/mean"
DIVERSITY = "test/distinct_2"
# Final metrics compared across settings (e.g. the A-LoL family): bar chart + per-setting table.
BAR_METRICS = (DEFAULT_METRIC, PERPLEXITY, DIVERSITY)
MISSING = "—"
# Keys that name replicates rather than settings: aggregated (error bars), never an x-axis.
REPLICATE_KEYS = ("seed",)
# Keys that change how a run is executed or logged, never what it learns: they do not split
# settings in the comparison (e.g. eval.before_training=true on one job of a family only).
RUN_ONLY_KEYS = ("eval.before_training", "hardware.torch_threads", "resume", "experiment_name")
RUN_ONLY_PREFIXES = ("logger", "checkpoint.", "hydra.", "store.")
RUN_ONLY_SUFFIXES = ("cache_dir",)  # where results are cached, e.g. alg.cache_dir


def is_setting_key(key: str) -> bool:
    """Whether `key` names a setting compared across jobs (not a replicate or run-only key)."""
    return not (
        key in REPLICATE_KEYS
        or key in RUN_ONLY_KEYS
        or key.startswith(RUN_ONLY_PREFIXES)
        or key.endswith(RUN_ONLY_SUFFIXES)
    )


@dataclass
class Job:
    """One job folder of a sweep, as read from disk."""

    name: str  # the folder name, e.g. "0"
    path: Path
    overrides: dict[str, str]  # key -> value as written on the command line
    metrics: dict[str, Any] | None  # None when metrics.json is missing or unreadable
    history: list[dict[str, Any]] = field(default_factory=list)
    skip_reason: str | None = None  # why it has no results (None for a finished job)
    status: str = "ok"  # ok | failed | running?
    # per-prompt test rewards: {"test": final evaluation, "test_init": before training}, each
    # {"prompt_id": [...], "reward": [[K rewards], ...], "eval": {"seed", "samples_per_prompt"}}
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)


# --- reading ------------------------------------------------------------------------------------


def parse_override(s: str) -> tuple[str, str]:
    """`alg.lr=1e-05` -> ("alg.lr", "1e-05"); Hydra's `+`/`++` prefixes are dropped.

    A deletion `~key` (no value) becomes (key, "~deleted").
    """
    s = s.strip()
    if s.startswith("~"):
        key, _, val = s[1:].partition("=")
        return key, f"~deleted{'=' + val if val else ''}"
    key, sep, val = s.lstrip("+").partition("=")
    if not sep:
        raise ValueError(f"override {s!r} has no '='")
    return key.strip(), val.strip()


def _last_log_line(job_dir: Path) -> tuple[Path, str] | None:
    """The last non-empty line of the job's newest non-empty `*.log`, if any."""
    logs = [p for p in job_dir.glob("*.log") if p.is_file() and p.stat().st_size > 0]
    logs += [p for p in (job_dir / ".hydra").glob("*.log") if p.is_file() and p.stat().st_size > 0]
    for log in sorted(logs, key=lambda p: p.stat().st_mtime, reverse=True):
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return log, lines[-1]
    return None


def _looks_failed(line: str) -> bool:
    low = line.lower()
    return any(
        w in low for w in ("error", "exception", "traceback", "killed", "failed", "cancelled")
    )


def load_evals(job_dir: Path) -> dict[str, dict[str, Any]]:
    """The per-prompt records of the job's last test evaluation and of its initial-policy
    evaluation (``eval/test_<step>.json``, ``eval/test_init_<step>.json``), where they exist and
    hold per-prompt rewards (runs before the fixed evaluation did not write them)."""
    out: dict[str, dict[str, Any]] = {}
    for prefix in ("test", "test_init"):
        files = sorted((job_dir / "eval").glob(f"{prefix}_[0-9]*.json"))
        if not files:
            continue
        try:
            rec = json.loads(files[-1].read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "per_prompt" in rec:
            out[prefix] = {**rec["per_prompt"], "eval": rec.get("eval", {}), "file": files[-1]}
    return out


def load_job(job_dir: str | Path) -> Job:
    """Read one job folder; never raises for a broken or unfinished job."""
    job_dir = Path(job_dir)
    ov_path = job_dir / ".hydra" / "overrides.yaml"
    overrides: dict[str, str] = {}
    if ov_path.is_file():
        for item in yaml.safe_load(ov_path.read_text()) or []:
            key, val = parse_override(str(item))
            overrides[key] = val
    history = read_history(job_dir / "history.jsonl")
    job = Job(name=job_dir.name, path=job_dir, overrides=overrides, metrics=None, history=history)
    job.evals = load_evals(job_dir)

    m_path = job_dir / "metrics.json"
    if m_path.is_file():
        try:
            job.metrics = json.loads(m_path.read_text())
            return job
        except json.JSONDecodeError as e:
            job.status, job.skip_reason = "failed", f"metrics.json unreadable ({e})"
            return job

    last = _last_log_line(job_dir)
    if last is not None and (_looks_failed(last[1]) or not history):
        job.status = "failed"
        job.skip_reason = f"no metrics.json; last log line: {last[1]}"
    elif history:
        job.status = "running?"
        job.skip_reason = f"no metrics.json; history has {len(history)} iterations (still running?)"
    else:
        job.status = "failed"
        job.skip_reason = "no metrics.json, no log and no history"
    return job


def _job_sort_key(p: Path):
    return (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name)


def load_sweep(multirun_dir: str | Path) -> list[Job]:
    """All job folders (subfolders with a `.hydra/` or a `metrics.json`), in job-id order."""
    root = Path(multirun_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no such sweep folder: {root}")
    dirs = [
        p for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and ((p / ".hydra").is_dir() or (p / "metrics.json").is_file())
    ]  # fmt: skip
    if not dirs:
        raise FileNotFoundError(
            f"{root} holds no job folders (subfolders with .hydra/); pass the folder that "
            "holds 0/, 1/, ... (e.g. multirun/<date>/<time>)"
        )
    return [load_job(p) for p in sorted(dirs, key=_job_sort_key)]


# --- pure table logic ---------------------------------------------------------------------------


def split_overrides(overrides: list[dict[str, str]]) -> tuple[list[str], dict[str, str]]:
    """Swept keys (in first-seen order) and constants {key: value} across jobs.

    A key is constant when every job sets it to the same value; otherwise (different values,
    or missing in some jobs) it is swept.
    """
    keys: list[str] = []
    for ov in overrides:
        keys += [k for k in ov if k not in keys]
    swept, constants = [], {}
    for k in keys:
        vals = [ov.get(k) for ov in overrides]
        if all(v is not None for v in vals) and len(set(vals)) == 1:
            constants[k] = vals[0]
        else:
            swept.append(k)
    return swept, constants


def to_number(s: str | None) -> float | None:
    """'1e-05' -> 1e-05, '3' -> 3.0, anything else (incl. bools) -> None."""
    if s is None or s.strip().lower() in ("true", "false", "nan", "inf", "-inf"):
        return None
    try:
        return float(s)
    except ValueError:
        return None


def fmt(x: Any) -> str:
    """Table cell: 4 significant digits for numbers, '—' for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, float)):
        return f"{x:.4g}"
    return str(x)


def with_se(value: Any, se: Any) -> str:
    """A table cell "0.6535 ± 0.0098" (value ± its standard error), or the value alone."""
    if not isinstance(se, (int, float)) or math.isnan(se) or fmt(value) == MISSING:
        return fmt(value)
    return f"{fmt(value)} ± {se:.2g}"


def make_rows(jobs: list[Job], swept: list[str], metric: str) -> list[dict[str, Any]]:
    """One row per job: job id, each swept value, metric, perplexity, low-std share, status."""
    rows = []
    for j in jobs:
        m = j.metrics or {}
        row: dict[str, Any] = {"job": j.name}
        row.update({k: j.overrides.get(k) for k in swept})
        row[metric] = with_se(m.get(metric), m.get(metric + "_se"))
        row[PERPLEXITY] = with_se(m.get(PERPLEXITY), m.get(PERPLEXITY + "_se"))
        # extraction runs write diag/low_std_share; RL runs with K > 1 samples per prompt log
        # the share of the last rollout as reward/low_std_share
        row[LOW_STD] = m.get(LOW_STD, m.get("reward/low_std_share"))
        row["status"] = j.status
        rows.append(row)
    return rows


def make_init_job(jobs: list[Job], swept: list[str]) -> Job | None:
    """A pseudo-job for the initial policy, from the first finished job that evaluated it before
    training (its `test_init/*` metrics, renamed `test/*`); every swept key reads "init".
    Meaningful when all jobs start from one policy (e.g. an SFT checkpoint): its numbers then
    share the jobs' yardstick (perplexity under the same reference model)."""
    for j in jobs:
        init = {
            "test/" + k[len("test_init/") :]: v
            for k, v in (j.metrics or {}).items()
            if k.startswith("test_init/")
        }
        if init:
            return Job(
                name="init",
                path=j.path,
                overrides={k: "init" for k in swept},
                metrics=init,
                status=f"test_init of job {j.name}",
                evals={"test": j.evals["test_init"]} if "test_init" in j.evals else {},
            )
    return None


def to_markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A GitHub markdown table of `rows` restricted to `columns`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


# --- paired comparisons -------------------------------------------------------------------------


@dataclass
class Paired:
    """The mean per-prompt difference of two evaluations and its standard error over prompts."""

    diff: float
    se: float
    n_prompts: int
    note: str = ""  # why the pairing is weaker than usual (other prompts, another eval seed)

    def cell(self) -> str:
        sign = "+" if self.diff >= 0 else ""
        se = "" if math.isnan(self.se) else f" ± {self.se:.2g}"
        return f"{sign}{self.diff:.3g}{se}" + (f" ({self.note})" if self.note else "")


def per_prompt_key(metric: str) -> str:
    """The per-prompt record a final metric is paired on: "reward" for test/reward_mean, else
    the text metric's own name (test/meteor -> meteor, kept under per_prompt["metrics"])."""
    name = metric.split("/", 1)[-1]
    return "reward" if name == "reward_mean" else name


def prompt_scores(ev: dict[str, Any], key: str = "reward") -> list[list[float]] | None:
    """Each prompt's K scores of ``key`` in one evaluation record (None: not recorded)."""
    if key == "reward":
        return ev.get("reward")
    return (ev.get("metrics") or {}).get(key)


def prompt_means(ev: dict[str, Any], key: str = "reward") -> tuple[list[str], np.ndarray]:
    """(prompt ids, each prompt's mean ``key`` over its K samples) of one evaluation record."""
    scores = prompt_scores(ev, key) or []
    return list(ev["prompt_id"]), np.array([np.mean(r) for r in scores], dtype=np.float64)


def aligned(
    a: dict[str, Any], b: dict[str, Any], key: str = "reward"
) -> tuple[np.ndarray, np.ndarray, str]:
    """Both evaluations' per-prompt means on the prompts they share, in one order, and a note
    when the two were not the same evaluation (prompts, seed or samples per prompt differ)."""
    ids_a, ma = prompt_means(a, key)
    ids_b, mb = prompt_means(b, key)
    notes = []
    if ids_a != ids_b:
        pos_b = {pid: i for i, pid in reversed(list(enumerate(ids_b)))}
        keep = [(i, pos_b[pid]) for i, pid in enumerate(ids_a) if pid in pos_b]
        ma, mb = ma[[i for i, _ in keep]], mb[[j for _, j in keep]]
        notes.append(f"{len(keep)} shared prompts")
    ea, eb = a.get("eval", {}), b.get("eval", {})
    for key in ("seed", "samples_per_prompt"):
        if ea.get(key) != eb.get(key):
            notes.append(f"eval {key} {ea.get(key)} vs {eb.get(key)}")
    return ma, mb, ", ".join(notes)


def paired(a: dict[str, Any], b: dict[str, Any], key: str = "reward") -> Paired | None:
    """Evaluation a minus evaluation b in ``key`` (the reward, or a text metric), paired over
    prompts (rft.eval.stats.paired_difference); None when they share no prompt or one of them
    did not record ``key`` per prompt."""
    from rft.eval.stats import paired_difference

    if prompt_scores(a, key) is None or prompt_scores(b, key) is None:
        return None
    ma, mb, note = aligned(a, b, key)
    if ma.size == 0:
        return None
    diff, se = paired_difference(ma, mb)
    return Paired(diff, se, int(ma.size), note)


def pooled_paired(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]], key: str = "reward"
) -> Paired | None:
    """A setting's difference over its seeds: per prompt, the difference averaged over the seeds'
    pairs (each pair: a run and its baseline of the same seed), then mean and standard error over
    prompts. The SE is the evaluation's error of the seeds' average; the spread between seeds
    (training noise) shows in the per-seed rows."""
    from rft.eval.stats import sem

    diffs, ref_ids = [], None
    for a, b in pairs:
        if prompt_scores(a, key) is None or prompt_scores(b, key) is None:
            return None
        ma, mb, note = aligned(a, b, key)
        ids = prompt_means(a, key)[0]
        if note or (ref_ids is not None and ids != ref_ids):
            return None  # not one common evaluation across the seeds: no per-prompt pooling
        ref_ids = ids
        diffs.append(ma - mb)
    if not diffs:
        return None
    d = np.mean(diffs, axis=0)
    mean, se = float(d.mean()), sem(d)
    return Paired(mean, se, int(d.size))


def _seed(job: Job) -> str:
    return job.overrides.get("seed", "0")


def find_baseline(job: Job, jobs: list[Job], labels: dict[str, str], baseline: str):
    """The evaluation ``job`` is compared with: "init" = its own initial policy (its
    ``test_init`` evaluation, else that of a job of the same seed and initial model); any other
    name = the final evaluation of the job of that setting label (or job name) with the same
    seed, or of a `mode=evaluate` job of that label whatever its seed (it trained nothing).
    None when there is none."""
    if baseline == "init":
        if "test_init" in job.evals:
            return job.evals["test_init"]
        same_start = ("model", "model.init_from")
        for o in jobs:
            if (
                "test_init" in o.evals
                and _seed(o) == _seed(job)
                and all(o.overrides.get(k) == job.overrides.get(k) for k in same_start)
            ):
                return o.evals["test_init"]
        return None
    named = [o for o in jobs if o is not job and baseline in (labels.get(o.name), o.name)]
    for o in named:
        if _seed(o) == _seed(job):
            return o.evals.get("test")
    # a `mode=evaluate` job trained nothing, and its evaluation samples with eval.seed whatever
    # the training seed: it is the same baseline for every seed
    for o in named:
        if o.overrides.get("mode") == "evaluate":
            return o.evals.get("test")
    return None


def paired_tables(
    jobs: list[Job], swept: list[str], baseline: str | None = None, metric: str = DEFAULT_METRIC
) -> str | None:
    """Markdown: each finished run's final ``metric`` (the test reward, or a text metric kept
    per prompt) minus its own seed's initial policy and minus ``baseline`` (a setting label or
    job name, same seed), paired over prompts, one row per run; then one row per setting with
    the seeds pooled. None when no run kept per-prompt scores (runs made before the fixed
    evaluation)."""
    key = per_prompt_key(metric)
    real = [
        j
        for j in jobs
        if j.name != "init" and "test" in j.evals and prompt_scores(j.evals["test"], key)
    ]
    if not real:
        return None
    labels = setting_labels(jobs, swept)
    cols = ["init"] + ([baseline] if baseline and baseline != "init" else [])
    run_lines = [
        f"| setting | seed | {metric} | " + " | ".join(f"Δ vs {c}" for c in cols) + " | prompts |",
        "|" + "---|" * (len(cols) + 4),
    ]
    pairs: dict[str, dict[str, list]] = {}
    for j in real:
        m = j.metrics or {}
        cells = []
        for c in cols:
            base = find_baseline(j, jobs, labels, c)
            p = paired(j.evals["test"], base, key) if base is not None else None
            cells.append(p.cell() if p else MISSING)
            if base is not None and base is not j.evals["test"]:
                pairs.setdefault(labels[j.name], {}).setdefault(c, []).append(
                    (j.evals["test"], base)
                )
        reward = with_se(m.get(metric), m.get(metric + "_se"))
        run_lines.append(
            f"| {labels[j.name]} | {_seed(j)} | {reward} | "
            + " | ".join(cells)
            + f" | {len(j.evals['test']['prompt_id'])} |"
        )
    set_lines = [
        "| setting | seeds | " + " | ".join(f"mean Δ vs {c}" for c in cols) + " |",
        "|" + "---|" * (len(cols) + 2),
    ]
    for label in dict.fromkeys(labels[j.name] for j in real):
        n = sum(labels[j.name] == label for j in real)
        cells = []
        for c in cols:
            p = pooled_paired(pairs.get(label, {}).get(c, []), key)
            cells.append(p.cell() if p else MISSING)
        set_lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(run_lines) + "\n\n" + "\n".join(set_lines)


# --- plots --------------------------------------------------------------------------------------


def _label(job: Job, keys: list[str]) -> str:
    return ", ".join(f"{k}={job.overrides.get(k, MISSING)}" for k in keys) or f"job {job.name}"


def plot_reward_curves(
    jobs: list[Job], swept: list[str], path: Path, key: str = CURVE_KEY
) -> Path | None:
    """`key` vs iteration, one line per job that has history.

    Runs of one setting (equal swept values but the replicate keys, e.g. seed) share a colour
    and one legend entry; unfinished runs are dashed. Returns None if no job has any history.
    """
    from matplotlib import colormaps

    from rft.diagnostics.plots import new_figure, save_figure

    settings = [k for k in swept if is_setting_key(k)]
    curves = []
    for j in jobs:
        pts = [
            (h["iteration"], h[key])
            for h in j.history
            if "iteration" in h and h.get(key) is not None
        ]
        if pts:
            curves.append((j, *zip(*pts)))
    if not curves:
        return None
    labels = list(dict.fromkeys(_label(j, settings) for j, *_ in curves))
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    fig, (ax,) = new_figure(width=8.0)
    seen: set[str] = set()
    for j, it, val in curves:
        label = _label(j, settings)
        ax.plot(
            it,
            val,
            color=cmap(labels.index(label) % cmap.N),
            ls="-" if j.status == "ok" else "--",
            marker="." if len(it) < 30 else None,
            label=None if label in seen else label,
        )
        seen.add(label)
    if any(j.status != "ok" for j, *_ in curves):
        ax.plot([], [], color="gray", ls="--", label="unfinished (failed / running)")
    ax.set_xlabel("iteration")
    ax.set_ylabel(key)
    replicates = [k for k in swept if k in REPLICATE_KEYS]
    ax.set_title(
        f"{key} per run"
        + (f" (one colour per setting over {replicates[0]}s)" if replicates else "")
    )
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_final_vs_key(
    jobs: list[Job], swept: list[str], key: str, metric: str, path: Path
) -> Path | None:
    """Final `metric` against swept `key`: one line per combination of the other swept
    settings; replicates (seeds) are averaged, with ±1 std error bars when there are several."""
    from rft.diagnostics.plots import new_figure, save_figure

    others = [k for k in swept if k != key and is_setting_key(k)]
    groups: dict[tuple, dict[float, list[float]]] = {}
    for j in jobs:
        x = to_number(j.overrides.get(key))
        y = (j.metrics or {}).get(metric)
        if x is None or not isinstance(y, (int, float)):
            continue
        g = tuple(j.overrides.get(k, MISSING) for k in others)
        groups.setdefault(g, {}).setdefault(x, []).append(float(y))
    if not groups:
        return None

    fig, (ax,) = new_figure(width=6.0)
    xs_all = [x for g in groups.values() for x in g]
    positive = all(x > 0 for x in xs_all)
    for g, by_x in sorted(groups.items()):
        xs = sorted(by_x)
        mean = [float(np.mean(by_x[x])) for x in xs]
        err = [float(np.std(by_x[x])) if len(by_x[x]) > 1 else 0.0 for x in xs]
        label = ", ".join(f"{k}={v}" for k, v in zip(others, g)) or None
        ax.errorbar(xs, mean, yerr=err if any(err) else None, marker="o", capsize=3, label=label)
    if positive and max(xs_all) > 10 * min(xs_all):
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(f"final {metric}")
    ax.set_title(f"final {metric} vs {key}")
    if others:
        ax.legend(fontsize="small")
    return save_figure(fig, path)


def setting_labels(jobs: list[Job], swept: list[str]) -> dict[str, str]:
    """{job name: its setting's label}: seeds pooled, so replicates share a label.

    A label names only the keys that take two or more values among the jobs that set them: a
    key only some jobs set (an SFT job's `alg.max_steps` beside RL jobs) stays in the grouping
    but not in the label. The initial-policy pseudo-job is labelled "init"."""
    settings = [k for k in swept if is_setting_key(k)]
    real = [j for j in jobs if j.name != "init"]
    varying = [k for k in settings if len({j.overrides[k] for j in real if k in j.overrides}) > 1]
    labels = {}
    for j in jobs:
        if j.name == "init":
            labels[j.name] = "init"
        elif len(varying) == 1 and varying[0] in j.overrides:
            labels[j.name] = j.overrides[varying[0]]
        else:
            keys = [k for k in (varying or settings) if k in j.overrides]
            # a job without the varying key (a mode=evaluate baseline beside alg=...): its own
            # setting keys say what it is
            labels[j.name] = _label(j, keys or [k for k in settings if k in j.overrides])
    return labels


# test/<key> values every evaluation writes; any other test/<key> comes from task.metrics
STANDARD_TEST_KEYS = {
    "reward_mean",
    "reward_std",
    "reward_within_prompt_std",
    "perplexity",
    "distinct_1",
    "distinct_2",
    "completion_tokens",
    "empty_share",
    "n_prompts",
    "samples_per_prompt",
}


def text_metric_keys(jobs: list[Job]) -> list[str]:
    """The final ``test/<metric>`` keys of the task's text metrics that any job logged (their
    ``_se`` companions excluded), in first-seen order."""
    keys: dict[str, None] = {}
    for j in jobs:
        for k, v in (j.metrics or {}).items():
            name = k[len("test/") :] if k.startswith("test/") else None
            if name and not name.endswith("_se") and name not in STANDARD_TEST_KEYS:
                if isinstance(v, (int, float)):
                    keys.setdefault(k)
    return list(keys)


def _by_setting(jobs: list[Job], swept: list[str], metrics) -> dict[str, dict[str, list[float]]]:
    """{setting label: {metric: [final value of each finished run]}}, seeds pooled (labels:
    `setting_labels`)."""
    labels = setting_labels(jobs, swept)
    out: dict[str, dict[str, list[float]]] = {}
    for j in jobs:
        if not j.metrics:
            continue
        vals = out.setdefault(labels[j.name], {m: [] for m in metrics})
        for m in metrics:
            if isinstance(j.metrics.get(m), (int, float)):
                vals[m].append(float(j.metrics[m]))
    return out


def _seed_mean_and_errors(v: list[float], se: list[float]) -> tuple[float, float, float]:
    """(mean over runs, std over runs (0 for one run), the evaluation SE of that mean:
    sqrt(Σ SE²) / n_runs, NaN without SEs)."""
    mean = float(np.mean(v)) if v else float("nan")
    spread = float(np.std(v)) if len(v) > 1 else 0.0
    ev = float(np.sqrt(np.sum(np.square(se))) / len(se)) if se and len(se) == len(v) else math.nan
    return mean, spread, ev


def comparison_table(jobs: list[Job], swept: list[str], metrics=BAR_METRICS) -> str | None:
    """Markdown: one row per setting, each metric's mean; "± x" is the std over seeds when
    there are several, and the evaluation's standard error ("SE") where the runs logged one."""
    groups = _by_setting(jobs, swept, [*metrics, *(m + "_se" for m in metrics)])
    if not groups:
        return None

    def cell(v: list[float], se: list[float]) -> str:
        if not v:
            return MISSING
        mean, spread, ev = _seed_mean_and_errors(v, se)
        if len(v) == 1:
            return with_se(mean, ev)
        out = f"{fmt(mean)} ± {spread:.2g}"
        return out + ("" if math.isnan(ev) else f" (seeds), SE {ev:.2g}")

    lines = ["| setting | runs | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 2)]
    for label, vals in groups.items():
        n = max(len(vals[m]) for m in metrics)
        cells = " | ".join(cell(vals[m], vals[m + "_se"]) for m in metrics)
        lines.append(f"| {label} | {n} | {cells} |")
    return "\n".join(lines)


def plot_final_bars(
    jobs: list[Job], swept: list[str], path: Path, metrics=BAR_METRICS
) -> Path | None:
    """One panel per final metric (test reward, perplexity, diversity), one bar per setting
    (seeds averaged; error bars ±1 std over seeds, or a single run's evaluation SE; each seed a
    dot). Returns None when no job has finished."""
    from rft.diagnostics.plots import new_figure, save_figure

    groups = _by_setting(jobs, swept, [*metrics, *(m + "_se" for m in metrics)])
    if not groups:
        return None
    labels = list(groups)
    fig, axes = new_figure(ncols=len(metrics), width=max(3.5, 0.6 * len(labels) + 1.5), height=4.0)
    for ax, m in zip(axes, metrics):
        vals = [groups[k][m] for k in labels]
        stats = [_seed_mean_and_errors(groups[k][m], groups[k][m + "_se"]) for k in labels]
        mean = [st[0] for st in stats]
        # one run: its evaluation SE; several: the spread over seeds
        err = [
            st[1] if len(v) > 1 else (0.0 if math.isnan(st[2]) else st[2])
            for v, st in zip(vals, stats)
        ]
        bars = ax.bar(
            range(len(labels)), mean, yerr=err if any(err) else None, capsize=3, color="C0"
        )
        # the value on each bar (differences of a few hundredths are hard to read off the axis)
        # and each seed's own value as a dot, so the spread behind a mean is visible
        ax.bar_label(bars, labels=[f"{x:.3g}" for x in mean], fontsize="x-small", padding=2)
        for i, v in enumerate(vals):
            if len(v) > 1:
                ax.plot([i] * len(v), v, "o", color="k", markersize=3, alpha=0.7)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize="small")
        ax.set_title(f"final {m}", fontsize="medium")
    return save_figure(fig, path)


# --- orchestration ------------------------------------------------------------------------------


def _safe_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)


@dataclass
class Sweep:
    """A sweep as read from disk and tabulated: what the report is written from."""

    root: Path
    jobs: list[Job]
    swept: list[str]
    constants: dict[str, str]
    init: Job | None  # the initial-policy pseudo-job (init_row=True)
    metric: str
    # keys that differ between jobs but do not define the compared settings (read_sweep's `by`)
    details: list[str] = field(default_factory=list)

    @property
    def with_init(self) -> list[Job]:
        return ([self.init] if self.init else []) + self.jobs

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [
            {"job": j.name, "status": j.status, "reason": j.skip_reason}
            for j in self.jobs
            if j.skip_reason
        ]


def compared_keys(swept: list[str], by: list[str] | None) -> tuple[list[str], list[str]]:
    """(the swept keys the report compares, the others): with ``by`` only those keys (and the
    replicate keys) define a setting, so jobs whose other overrides differ per run (each seed's
    data file, an algorithm's own knobs) still group by, e.g., alg."""
    if not by:
        return swept, []
    unknown = [k for k in by if k not in swept]
    if unknown:
        raise ValueError(
            f"--by {','.join(by)}: {', '.join(unknown)} does not differ between the jobs (swept"
            f" keys: {', '.join(swept) or 'none'})"
        )
    keep = [k for k in swept if k in by or k in REPLICATE_KEYS]
    return keep, [k for k in swept if k not in keep]


def read_sweep(
    root: Path, metric: str = DEFAULT_METRIC, init_row: bool = False, by: list[str] | None = None
) -> Sweep:
    jobs = load_sweep(root)
    swept, constants = split_overrides([j.overrides for j in jobs])
    swept, details = compared_keys(swept, by)
    init = make_init_job(jobs, swept) if init_row else None
    return Sweep(root, jobs, swept, constants, init, metric, details)


def write_plots(sw: Sweep, out: Path) -> list[Path]:
    """Reward curves, the final metric against each numeric swept setting, and the bars."""
    plots = [plot_reward_curves(sw.jobs, sw.swept, out / "reward_curves.png")]
    for key in sw.swept:
        if is_setting_key(key) and all(
            to_number(j.overrides.get(key)) is not None for j in sw.jobs
        ):
            path = out / f"final_vs_{_safe_name(key)}.png"
            plots.append(plot_final_vs_key(sw.jobs, sw.swept, key, sw.metric, path))
    plots.append(plot_final_bars(sw.with_init, sw.swept, out / "final_bars.png"))
    return [p for p in plots if p]


def render_markdown(
    sw: Sweep,
    table: str,
    comparison: str | None,
    paired_md: str | None,
    plots: list[Path],
    text_md: str | None = None,
) -> str:
    n_ok = sum(j.status == "ok" for j in sw.jobs)
    md = [
        f"# Sweep report: `{sw.root}`",
        "",
        f"{len(sw.jobs)} jobs, {n_ok} finished, {len(sw.jobs) - n_ok} skipped. "
        f"Metric: `{sw.metric}` (± its standard error over test prompts, where logged).",
        "",
        "Constants: " + (", ".join(f"`{k}={v}`" for k, v in sw.constants.items()) or "none"),
        "",
        "Swept: " + (", ".join(f"`{k}`" for k in sw.swept) or "none"),
        "",
        *(
            [
                "Also differ between jobs, not compared (`--by`): "
                + ", ".join(f"`{k}`" for k in sw.details),
                "",
            ]
            if sw.details
            else []
        ),
        table,
        "",
        *(["## Final metrics by setting", "", comparison, ""] if comparison else []),
        *_section("Text metrics by setting", TEXT_METRICS_NOTE, text_md),
        *_section("Paired differences", PAIRED_NOTE.format(metric=sw.metric), paired_md),
    ]
    md += ["## Skipped", ""]
    md += [f"- job {s['job']} ({s['status']}): {s['reason']}" for s in sw.skipped] or ["none"]
    if plots:
        md += ["", "## Plots", ""] + [f"![{q.stem}]({q.name})" for q in plots]
    return "\n".join(md) + "\n"


TEXT_METRICS_NOTE = (
    "The task's `task.metrics` on the test split (rft/metrics), side by side; ± as"
    " above. Corpus-only statistics (BLEU, vocabulary, entropy, MSTTR) carry no SE."
)
PAIRED_NOTE = (
    "Final `{metric}` minus a baseline evaluated on the same prompts with the same "
    "evaluation seed: the mean per-prompt difference ± its standard error over prompts. "
    "Per run, then per setting with its seeds averaged per prompt (that SE is the "
    "evaluation's; the seed-to-seed spread shows in the per-run rows)."
)


def _section(title: str, note: str, body: str | None) -> list[str]:
    """A markdown section (heading, note, body), or nothing when there is no body."""
    return [f"## {title}", "", note, "", body, ""] if body else []


def build_report(
    multirun_dir: str | Path,
    out_dir: str | Path | None = None,
    metric: str = DEFAULT_METRIC,
    init_row: bool = False,
    baseline: str | None = None,
    by: list[str] | None = None,
) -> dict[str, Any]:
    """Read every job of a sweep and write report.md and the PNGs into `out_dir`.

    Args:
        multirun_dir: the sweep folder (holds 0/, 1/, ... and multirun.yaml).
        out_dir: where to write; defaults to `multirun_dir`.
        metric: the final metric reported and plotted against each swept value.
        init_row: add a first row (and bar) for the jobs' shared initial policy (see
            `make_init_job`).
        baseline: a setting label (e.g. "nll") or job name: the paired-differences table also
            compares every run with that setting's run of the same seed.
        by: the override keys that define a setting (default: every key that differs between
            jobs, but the seed); the other differing keys are listed, not compared.
    Returns:
        {"report": path of report.md, "markdown": its text, "table": the table's markdown,
         "columns": [...], "rows": [row dicts, one per job], "swept": [...], "constants": {...},
         "skipped": [{"job", "status", "reason"}], "plots": [paths], "comparison": the
         per-setting markdown table of BAR_METRICS (None when no job finished), "paired": the
         paired-differences markdown (None when no run kept per-prompt rewards)}.
    """
    root = Path(multirun_dir)
    out = Path(out_dir) if out_dir is not None else root
    out.mkdir(parents=True, exist_ok=True)
    sw = read_sweep(root, metric, init_row, by)
    rows = make_rows(sw.with_init, sw.swept, metric)
    columns = ["job", *sw.swept, metric, PERPLEXITY, LOW_STD, "status"]
    table = to_markdown(rows, columns)
    comparison = comparison_table(sw.with_init, sw.swept)
    paired_md = paired_tables(sw.jobs, sw.swept, baseline, metric)
    text_keys = text_metric_keys(sw.jobs)
    text_md = comparison_table(sw.with_init, sw.swept, metrics=text_keys) if text_keys else None
    plots = write_plots(sw, out)
    markdown = render_markdown(sw, table, comparison, paired_md, plots, text_md)
    report = out / "report.md"
    report.write_text(markdown)
    return {
        "report": report,
        "markdown": markdown,
        "table": table,
        "columns": columns,
        "rows": rows,
        "swept": sw.swept,
        "constants": sw.constants,
        "details": sw.details,
        "skipped": sw.skipped,
        "plots": plots,
        "comparison": comparison,
        "paired": paired_md,
        "text_metrics": text_md,
    }


def build_parser(prog: str = "python -m rft.report") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Write report.md (one row per job) and PNG plots for a Hydra multirun sweep; "
        "failed or unfinished jobs are listed with the reason they were skipped.",
    )
    p.add_argument("multirun_dir", help="the sweep folder, e.g. multirun/2024-05-01/12-00-00")
    p.add_argument("--out", default=None, help="output folder (default: the sweep folder)")
    p.add_argument(
        "--init-row",
        action="store_true",
        help="add a row for the initial policy shared by the jobs (their test_init/* metrics)",
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="a setting label (e.g. nll) or job name: also show each run's paired difference "
        "from that setting's run of the same seed (differences from each run's own initial "
        "policy are always shown when the runs evaluated it)",
    )
    p.add_argument(
        "--by",
        default=None,
        help="comma-separated override keys that define a setting, e.g. alg (default: every key "
        "that differs between jobs, but the seed); other differing keys are listed, not compared",
    )
    p.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        help=f"final metric to tabulate and plot (default: {DEFAULT_METRIC})",
    )
    return p


def main(argv: list[str] | None = None, prog: str = "python -m rft.report") -> int:
    args = build_parser(prog).parse_args(argv)
    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    try:
        res = build_report(
            args.multirun_dir,
            args.out,
            args.metric,
            init_row=args.init_row,
            baseline=args.baseline,
            by=by,
        )
    except ValueError as e:  # a --by key that is not swept
        raise SystemExit(f"rft report: {e}") from None
    print(res["report"])
    print(res["table"])
    if res["paired"]:
        print()
        print(res["paired"])
    if res["skipped"]:
        print(f"skipped {len(res['skipped'])} job(s): see the report's 'Skipped' section")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
