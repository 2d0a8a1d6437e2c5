"""Time to first signal: the run's plan, printed at its start.

A run first says what it will do and for how long: its phases (SFT warm start, the initial
test evaluation, N iterations or steps with their periodic val evaluations, the final test
evaluation), the episodes it will train on, when the first training signal (iteration 1's
``reward/mean`` in history.jsonl) should appear, an ETA, and where its results will be. Phases
the result store will serve (rft.store) cost nothing and say where they come from.

The estimate multiplies counts by per-sequence costs measured once at start:

    generation  one generation batch (sampling completions), seconds per sequence
    scoring     one forward pass without gradients (π_ref, old log-probs, values, perplexity)
    update      one forward + backward pass of a micro-batch

Costs are taken as linear in the number of sequences (roughly true on a CPU, where a batch's
matmuls are compute bound; on a GPU small batches cost more per sequence than large ones, so
the estimate is an upper bound there). Layout: the measurements (``Calibration``, ``time_call``,
``time_generation``, ``time_update``), the counts (``Workload``, ``workload_from_cfg``), the pure
arithmetic (``estimate``) and the printout (``Plan.format``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


# ---------------------------------------------------------------------------- measurements
@dataclass(frozen=True)
class Calibration:
    """Seconds per sequence of each kind of pass, measured on this machine for this run."""

    generate_s: float  # sampling one completion (its share of a generation batch)
    update_s: float  # forward + backward of one sequence (its share of a micro-batch)
    score_s: float = 0.0  # forward without gradients of one sequence


def time_call(fn: Callable[[], object], repeats: int = 1) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn()`` (seconds)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def time_generation(
    policy, task, prompts: list[str], generation, seed: int = 0
) -> tuple[float, list[str]]:
    """(seconds per sequence, the completions) of sampling ``prompts`` (one batch) with
    ``policy``, as evaluation and rollouts do (task lengths, ``generation`` settings). The
    global RNG is forked, so the run's random stream is untouched. The completions are what
    ``time_update`` can train on."""
    import torch

    from rft.rollout.prompts import encode_prompts

    device = next(policy.parameters()).device
    trunc = getattr(task, "prompt_truncation", "left")
    out = []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ids, mask = encode_prompts(policy.tokenizer, prompts, task.prompt_max_tokens, device, trunc)
        s = time_call(
            lambda: out.append(
                policy.generate(ids, mask, task.max_new_tokens, task.min_new_tokens, generation)
            )
        )
    texts = policy.tokenizer.batch_decode(out[-1].ids, skip_special_tokens=True)
    return s / len(prompts), texts


def time_update(policy, task, prompts: list[str], completions: list[str]) -> tuple[float, float]:
    """(update, score) seconds per sequence: one forward + backward of the completions' NLL
    under ``policy``, and one forward without gradients. Gradients are dropped afterwards and
    no optimizer steps: the policy is unchanged. Dropout draws from a forked RNG."""
    import torch

    from rft.core import logprobs_from_logits
    from rft.rollout.prompts import encode_continuations, encode_prompts

    device = next(policy.parameters()).device
    tok = policy.tokenizer
    trunc = getattr(task, "prompt_truncation", "left")
    ids, mask = encode_prompts(tok, prompts, task.prompt_max_tokens, device, trunc)
    cids, cmask = encode_continuations(tok, completions, task.max_new_tokens, device=device)

    def update():
        logits, _ = policy(ids, mask, cids, cmask)
        (-(logprobs_from_logits(logits, cids) * cmask).sum()).backward()

    def score():
        with torch.no_grad():
            policy(ids, mask, cids, cmask)

    with torch.random.fork_rng(devices=[]):
        u = time_call(update)
        s = time_call(score)
    for p in policy.parameters():
        p.grad = None
    return u / len(prompts), s / len(prompts)


def calibrate(policy, task, prompts: list[str], generation) -> Calibration:
    """One generation batch of ``prompts`` (a few of the task's prompts: 4 cost a few seconds
    on SmolLM2 with a CPU), then one update and one scoring pass on its completions."""
    generate_s, texts = time_generation(policy, task, prompts, generation)
    update_s, score_s = time_update(policy, task, prompts, texts)
    return Calibration(generate_s=generate_s, update_s=update_s, score_s=score_s)


def plan_run(
    cfg,
    task,
    policy,
    *,
    run_dir=None,
    store=None,
    reused: dict[str, str] | None = None,
    n_pairs: int = 0,
    n_prompts: int = 4,
) -> Plan:
    """The plan of the run ``cfg`` describes, calibrated on ``policy`` (the initial policy) with
    ``n_prompts`` of the task's test prompts, on the configured device and precision.
    ``reused``: phases the store will serve (see ``estimate``); ``n_pairs``: training pairs of
    a step-based run with max_steps = -1."""
    from rft.device import hardware_device

    test, val = task.eval_examples("test"), task.eval_examples("val")
    prompts = [e.prompt for e in test[:n_prompts]]
    with hardware_device(cfg, policy):
        c = calibrate(policy, task, prompts, cfg.eval.generation)
    w = workload_from_cfg(cfg, len(test), len(val), n_pairs=n_pairs)
    return estimate(w, c, reused=reused, run_dir=run_dir, store=store)


# ---------------------------------------------------------------------------------- counts
@dataclass(frozen=True)
class Workload:
    """What a run will compute, in sequences. ``unit``: what one of ``n_units`` is
    (iteration or step); per unit: ``generate`` sampled completions, ``score`` forward passes
    without gradients, ``update`` forward + backward passes (epochs included)."""

    n_units: int
    unit: str = "iteration"
    generate: int = 0
    score: int = 0
    update: int = 0
    episodes_per_unit: int = 0
    warm_start_steps: int = 0
    warm_start_batch: int = 0
    test_prompts: int = 0
    test_k: int = 1
    eval_before: bool = True
    val_prompts: int = 0
    val_k: int = 1
    val_every: int = 0  # 0: no periodic val evaluation
    perplexity: bool = True

    @property
    def n_val_evals(self) -> int:
        return self.n_units // self.val_every if self.val_every > 0 else 0


def workload_from_cfg(cfg, n_test_prompts: int, n_val_prompts: int, n_pairs: int = 0) -> Workload:
    """The counts of a composed config (best effort from the knob names; a module that knows
    better builds its own Workload). ``n_test_prompts`` / ``n_val_prompts``: the task's
    evaluation sizes; ``n_pairs``: training pairs (step-based runs with max_steps = -1)."""
    a, ev = cfg.alg, cfg.eval
    common = dict(
        test_prompts=n_test_prompts,
        test_k=ev.samples_per_prompt,
        eval_before=bool(ev.before_training),
        val_prompts=n_val_prompts,
        val_k=ev.val_samples_per_prompt,
        val_every=int(a.get("eval_every") or 0),
        perplexity=bool(ev.perplexity),
    )
    ws = a.get("warm_start")
    if ws is not None and ws.steps > 0:
        common.update(warm_start_steps=ws.steps, warm_start_batch=ws.batch_size)
    if "rollout_prompts" in a:  # online RL: sample, score, update
        episodes = a.rollout_prompts * a.samples_per_prompt
        epochs = a.get("update_epochs") or 1
        return Workload(
            n_units=a.n_iterations,
            unit="iteration",
            generate=episodes,
            score=2 * episodes,  # π_ref + the old log-probs / values
            update=epochs * episodes,
            episodes_per_unit=episodes,
            **common,
        )
    batch = int(a.get("batch_size") or 1)
    steps = int(a.get("max_steps") or 0)
    if steps < 0:
        epochs = a.get("dataset_epochs") or 1
        steps = epochs * math.ceil(max(n_pairs, 1) / batch)
    per_pair = 2 if "pairs" in a else 1  # preference pairs: chosen and rejected
    return Workload(
        n_units=steps,
        unit="step",
        update=per_pair * batch,
        episodes_per_unit=batch,
        **common,
    )


# -------------------------------------------------------------------------------- estimate
@dataclass
class Phase:
    name: str
    work: str
    seconds: float
    reused_from: str | None = None


@dataclass
class Plan:
    phases: list[Phase]
    episodes: int
    first_signal_s: float  # when iteration 1's training row is logged
    first_signal: str
    calibration: Calibration
    results: list[tuple[str, str]] = field(default_factory=list)  # (label, where)

    @property
    def total_s(self) -> float:
        return sum(p.seconds for p in self.phases)

    def format(self, title: str = "Plan", now: float | None = None) -> str:
        """The printout: one line per phase with its estimate and when it ends."""
        c = self.calibration
        lines = [
            f"{title} (per sequence: generation {c.generate_s:.3g} s, scoring {c.score_s:.3g} s,"
            f" update {c.update_s:.3g} s)"
        ]
        t = 0.0
        for p in self.phases:
            t += p.seconds
            est = f"reused from {p.reused_from}" if p.reused_from else f"~{duration(p.seconds)}"
            lines.append(f"  {p.name:<12} {p.work:<46} {est}  (ends +{duration(t)})")
        lines.append(
            f"  {'first signal':<12} +{duration(self.first_signal_s)}: {self.first_signal}"
        )
        end = ""
        if now is not None:
            end = ", ends about " + time.strftime("%H:%M", time.localtime(now + self.total_s))
        lines.append(
            f"  {'total':<12} ~{duration(self.total_s)}{end} ({self.episodes:,} episodes;"
            " estimates from one calibration batch each)"
        )
        for label, where in self.results:
            lines.append(f"  {label:<12} {where}")
        return "\n".join(lines)


def duration(s: float) -> str:
    """'45 s', '12.3 min', '2.1 h'."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def eval_seconds(w: Workload, c: Calibration, prompts: int, k: int) -> float:
    """One evaluation: prompts × K completions sampled, each scored under π_ref for the
    perplexity when that is on."""
    return prompts * k * (c.generate_s + (c.score_s if w.perplexity else 0.0))


def estimate(
    w: Workload,
    c: Calibration,
    *,
    reused: dict[str, str] | None = None,
    run_dir: str | Path | None = None,
    store: str | Path | None = None,
) -> Plan:
    """The plan of workload ``w`` at costs ``c``. ``reused``: phase name (``warm_start``,
    ``test_init``) -> where the store will serve it from (those phases cost 0)."""
    reused = reused or {}
    phases = []
    if w.warm_start_steps:
        phases.append(
            Phase(
                "warm_start",
                f"SFT {w.warm_start_steps} steps × {w.warm_start_batch} pairs",
                w.warm_start_steps * w.warm_start_batch * c.update_s,
            )
        )
    test_work = f"{w.test_prompts} prompts × {w.test_k} = {w.test_prompts * w.test_k:,} completions"
    if w.eval_before:
        phases.append(Phase("test_init", test_work, eval_seconds(w, c, w.test_prompts, w.test_k)))
    per_unit = w.generate * c.generate_s + w.score * c.score_s + w.update * c.update_s
    val_s = w.n_val_evals * eval_seconds(w, c, w.val_prompts, w.val_k)
    work = f"{w.n_units} {w.unit}s × {w.episodes_per_unit} episodes"
    if w.n_val_evals:
        work += f"; {w.n_val_evals} val evals × {w.val_prompts * w.val_k}"
    phases.append(Phase("training", work, w.n_units * per_unit + val_s))
    phases.append(Phase("test", test_work, eval_seconds(w, c, w.test_prompts, w.test_k)))
    for p in phases:
        if p.name in reused:
            p.seconds, p.reused_from = 0.0, reused[p.name]
    before = sum(p.seconds for p in phases if p.name in ("warm_start", "test_init"))
    results = []
    if run_dir is not None:
        results.append(("results", f"{run_dir}/ (metrics.json, history.jsonl, eval/, policy/)"))
    if store is not None:
        results.append(("store", f"{store}: results shared between runs (rft cache ls)"))
    return Plan(
        phases=phases,
        episodes=w.n_units * w.episodes_per_unit,
        first_signal_s=before + per_unit,
        first_signal=f"{w.unit} 1's row in history.jsonl",
        calibration=c,
        results=results,
    )
