"""Evaluate a policy on a prompt split: reward, perplexity under the reference, diversity,
each with its standard error over prompts, per-prompt rewards for paired comparisons, and a
table of samples. Generation and scoring are batched; the RNG is forked and seeded so an
evaluation never changes (or depends on) the training random stream.

A fixed evaluation (docs/algorithms.md §13): the sampling seed is ``eval.seed``, the same for
every training seed and every policy, and each prompt gets ``eval.samples_per_prompt`` (K)
completions, laid out prompt-major (prompt 0's K samples, then prompt 1's, ...). Two policies
evaluated with the same seed on the same prompts draw the same random numbers, so their
per-prompt difference is a paired comparison. A batch holds ``batch_size`` sequences, i.e.
``max(1, batch_size // K)`` prompts; with K = 1 batches are exactly those of the earlier
one-sample evaluation, so its numbers are unchanged.

A verifiable task (``task.verifiable``, rft/task/verifiable.py) also has each completion
checked by its own verifier: pass@1, pass@k, maj@k and the format-error share
(rft/eval/verifiable.py) join the metrics, the per-prompt lists and the sample table.

Under DDP (a process group is initialised) each rank evaluates its own contiguous share of the
prompts, whole batches each, and the per-example records are gathered so that every rank
computes the same metrics over the whole split. Rank 0 uses the same seed and batches as a
single process, so its share matches a single-process evaluation exactly; rank r seeds with
``seed + r``. Outside a process group (one device, or before ``fit`` sets DDP up) the whole split
runs in this process.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from rft.core import logprobs_from_logits
from rft.eval import stats
from rft.eval.text import text_metrics
from rft.model.policy import PolicyLM
from rft.rollout.prompts import encode_prompts
from rft.task.base import Example

log = logging.getLogger(__name__)


def prompt_id(prompt: str) -> str:
    """A short stable id of a prompt's text: pairs the prompts of two evaluations."""
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:12]


@dataclass
class EvalRecords:
    """Per-sample results of one shard: K samples per prompt, prompt-major, in example order."""

    texts: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # completion tokens
    nll: list[float] = field(default_factory=list)  # -log π_ref(y|x) summed; empty without π_ref
    k: int = 1  # samples per prompt
    # a verifiable task's check (rft.eval.verifiable): each sample correct or not, and the
    # answer found in it (None: none in the asked format); empty for other tasks
    correct: list[bool] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)

    @property
    def n_prompts(self) -> int:
        return len(self.rewards) // self.k

    def extend(self, other: EvalRecords) -> None:
        if other.rewards and other.k != self.k:
            raise ValueError(f"cannot join records with {self.k} and {other.k} samples per prompt")
        self.texts += other.texts
        self.rewards += other.rewards
        self.lengths += other.lengths
        self.nll += other.nll
        self.correct += other.correct
        self.answers += other.answers


def prompts_per_batch(batch_size: int, k: int) -> int:
    """Prompts in one generation batch of about ``batch_size`` sequences (K per prompt)."""
    return max(1, batch_size // k)


def shard_bounds(n: int, batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """[lo, hi) of the examples that ``rank`` evaluates: contiguous, a whole number of batches
    (so rank 0's batches are a single process's first batches), shares differing by ≤ 1 batch."""
    n_batches = math.ceil(n / batch_size)
    lo_b, hi_b = rank * n_batches // world_size, (rank + 1) * n_batches // world_size
    return min(n, lo_b * batch_size), min(n, hi_b * batch_size)


@torch.no_grad()
def evaluate_shard(
    policy: PolicyLM,
    ref: PolicyLM | None,
    reward_fn,
    examples: list[Example],
    *,
    prompt_max_tokens: int,
    max_new_tokens: int,
    min_new_tokens: int,
    generation,
    batch_size: int,
    seed: int,
    samples_per_prompt: int = 1,
    progress: bool = False,
    prompt_truncation: str = "left",
    verifier=None,
) -> EvalRecords:
    """Generate K completions per example, score them under the reference and reward them, in
    this process; with a ``verifier`` (a verifiable task's check) also record which are
    correct. ``batch_size`` counts sequences (see ``prompts_per_batch``)."""
    k = samples_per_prompt
    rec = EvalRecords(k=k)
    if not examples:
        return rec
    device = next(policy.parameters()).device
    tok = policy.tokenizer
    prompts = [e.prompt for e in examples]
    step = prompts_per_batch(batch_size, k)
    it = range(0, len(examples), step)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="eval", leave=False, unit="batch")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for s in it:
            batch = [p for p in prompts[s : s + step] for _ in range(k)]
            ids, mask = encode_prompts(tok, batch, prompt_max_tokens, device, prompt_truncation)
            comp = policy.generate(ids, mask, max_new_tokens, min_new_tokens, generation)
            rec.texts += tok.batch_decode(comp.ids, skip_special_tokens=True)
            rec.lengths += comp.mask.sum(-1).tolist()
            if ref is not None:
                # the reference shares the policy's tokenizer (it is the initial policy)
                logits, _ = ref(ids, mask, comp.ids, comp.mask)
                logp = logprobs_from_logits(logits, comp.ids)
                rec.nll += (-(logp * comp.mask).sum(-1)).tolist()
    rep_prompts = [p for p in prompts for _ in range(k)]
    refs = [e.reward_references for e in examples for _ in range(k)]
    rec.rewards = reward_fn(rep_prompts, rec.texts, refs).tolist()
    # the reward's own statistics (rft/reward/base.py) of these completions are not a training
    # iteration's: drop them here, so the next rollout's pop_stats() sees only its own
    getattr(reward_fn, "pop_stats", dict)()
    if verifier is not None:
        verdicts = verifier.verdicts(rep_prompts, rec.texts, refs)
        rec.correct = [bool(v.correct) for v in verdicts]
        rec.answers = [v.answer for v in verdicts]
    return rec


def aggregate(rec: EvalRecords) -> dict[str, float]:
    """Split-level metrics from per-sample records, each mean with its standard error over
    prompts (``<metric>_se``; see rft.eval.stats) and the counts behind it."""
    k = rec.k
    r = torch.tensor(rec.rewards, dtype=torch.float64)
    reward_mean, reward_se = stats.clustered_mean(rec.rewards, k)
    tokens, tokens_se = stats.clustered_mean(rec.lengths, k)
    d1, d1_se = stats.distinct_n_jackknife(rec.texts, k, 1)
    d2, d2_se = stats.distinct_n_jackknife(rec.texts, k, 2)
    metrics = {
        "reward_mean": reward_mean,
        "reward_mean_se": reward_se,
        "reward_std": r.std(unbiased=False).item(),  # over all samples
        "distinct_1": d1,
        "distinct_1_se": d1_se,
        "distinct_2": d2,
        "distinct_2_se": d2_se,
        "completion_tokens": tokens,
        "completion_tokens_se": tokens_se,
        # completions with no text left after decoding: a metric reward scores them 0
        "empty_share": float(sum(not t.strip() for t in rec.texts) / max(len(rec.texts), 1)),
        "n_prompts": rec.n_prompts,
        "samples_per_prompt": k,
    }
    if k > 1:  # the sampling noise one prompt's K completions show (0 = deterministic reward)
        per = r.reshape(-1, k)
        metrics["reward_within_prompt_std"] = per.std(dim=1, unbiased=True).mean().item()
    if rec.nll:  # scored under π_ref
        metrics["perplexity"], metrics["perplexity_se"] = stats.perplexity_se(
            rec.nll, rec.lengths, k
        )
    return metrics


def per_prompt(rec: EvalRecords, examples: list[Example]) -> dict[str, list]:
    """What a paired comparison needs: each prompt's id and its K rewards."""
    k = rec.k
    return {
        "prompt_id": [prompt_id(e.prompt) for e in examples],
        "reward": [rec.rewards[i * k : (i + 1) * k] for i in range(len(examples))],
    }


def process_group() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_records(rec: EvalRecords, world_size: int) -> EvalRecords:
    """Every rank's records, concatenated in rank order (= example order)."""
    if world_size == 1:
        return rec
    parts: list[EvalRecords | None] = [None] * world_size
    dist.all_gather_object(parts, rec)
    out = EvalRecords(k=rec.k)
    for p in parts:
        out.extend(p)
    return out


@dataclass
class EvalResult:
    """One evaluation: split-level metrics, the sample table, and the per-prompt rewards."""

    metrics: dict[str, float]
    samples: list[dict]
    per_prompt: dict[str, list]
    unavailable: dict[str, str] = field(default_factory=dict)  # text metric -> why not computed


def evaluate_policy(
    policy: PolicyLM,
    ref: PolicyLM | None,
    reward_fn,
    examples: list[Example],
    *,
    batch_size: int,
    seed: int,
    samples_per_prompt: int = 1,
    n_samples: int = 16,
    progress: bool = False,
    metrics: list[str] | tuple = (),
    verifier=None,
    pass_k: list[int] | tuple = (1,),
    metric_options: dict | None = None,
    **decoding,
) -> EvalResult:
    """Evaluate ``policy`` on ``examples``. metrics: reward_mean, reward_std, perplexity,
    distinct_1/2, completion_tokens (mean), each mean with ``_se``, n_prompts and
    samples_per_prompt; samples: the first ``n_samples`` (prompt, completion, reward);
    per_prompt: prompt ids and their K rewards. ``metrics``: text metrics (rft.eval.text) added
    to all three, each with its standard error where it has per-completion scores.
    ``verifier``: a verifiable task's check; adds pass@1, pass@k for ``pass_k``, maj@k and
    the format-error share (rft.eval.verifiable) the same three ways. ``decoding``: prompt_max_tokens,
    max_new_tokens, min_new_tokens, generation (see ``evaluate_shard``)."""
    if samples_per_prompt < 1:
        raise ValueError(f"samples_per_prompt={samples_per_prompt}: must be ≥ 1")
    kw = dict(batch_size=batch_size, samples_per_prompt=samples_per_prompt, verifier=verifier)
    rec = evaluate_all_ranks(policy, ref, reward_fn, examples, seed, progress, **kw, **decoding)
    k = samples_per_prompt
    tm = text_metrics(list(metrics), examples, rec.texts, k, metric_options)
    split_metrics = aggregate(rec)
    for key, v in tm.metrics.items():  # distinct-n: keep the evaluation's own (with its SE)
        split_metrics.setdefault(key, v)
    ver_per_prompt = {}
    if verifier is not None:
        from rft.eval.verifiable import verifiable_metrics

        vm, ver_per_prompt = verifiable_metrics(
            rec.correct, rec.answers, k, pass_k, getattr(verifier, "votable", True)
        )
        split_metrics.update(vm)
    samples = sample_rows(examples, rec, k, n_samples, tm.per_sample)
    pp = per_prompt(rec, examples)
    if tm.per_prompt or ver_per_prompt:
        pp["metrics"] = {**tm.per_prompt, **ver_per_prompt}
    return EvalResult(split_metrics, samples, pp, tm.unavailable)


def evaluate_all_ranks(policy, ref, reward_fn, examples, seed: int, progress: bool, **kw):
    """Each DDP rank evaluates its shard of ``examples`` (seed + rank); every rank gets all the
    records, in example order (one process: the whole split)."""
    rank, world_size = process_group()
    step = prompts_per_batch(kw["batch_size"], kw["samples_per_prompt"])
    lo, hi = shard_bounds(len(examples), step, rank, world_size)
    rec = evaluate_shard(
        policy,
        ref,
        reward_fn,
        examples[lo:hi],
        seed=seed + rank,
        progress=progress and rank == 0,
        **kw,
    )
    return gather_records(rec, world_size)


def sample_rows(examples, rec, k: int, n_samples: int, per_sample: dict) -> list[dict]:
    """The first ``n_samples`` completions as samples.jsonl rows: prompt, completion, reward,
    references, each text metric's score and, for verifiable tasks, the check's verdict."""
    samples = []
    for i, (e, c, r) in enumerate(
        zip([e for e in examples for _ in range(k)], rec.texts, rec.rewards)
    ):
        if i >= n_samples:
            break
        row = {"prompt": e.prompt, "completion": c, "reward": r, "reference": e.reference}
        if e.references:
            row["references"] = list(e.references)
        row.update({key: v[i] for key, v in per_sample.items()})
        if rec.correct:
            row.update(correct=float(rec.correct[i]), answer=rec.answers[i])
        samples.append(row)
    return samples


# ------------------------------------------------------------------ a run's evaluation
def check_eval_config(cfg) -> None:
    """Evaluation settings that cannot work, named with the fix (before any model loads)."""
    from rft.errors import ConfigError

    ev = cfg.eval
    for key in ("samples_per_prompt", "val_samples_per_prompt"):
        if ev[key] < 1:
            raise ConfigError(f"eval.{key}={ev[key]}: must be ≥ 1 (completions per prompt).")
    if ev.batch_size < 1:
        raise ConfigError(f"eval.batch_size={ev.batch_size}: must be ≥ 1 (sequences per batch).")
    if not ev.generation.do_sample:
        for key in ("samples_per_prompt", "val_samples_per_prompt"):
            if ev[key] > 1:
                raise ConfigError(
                    f"eval.{key}={ev[key]} with eval.generation.do_sample=false: greedy and beam "
                    f"decoding give the same completion every time. Set eval.{key}=1."
                )
    check_answer_formats(cfg)


def reward_formats(reward, key: str = "reward"):
    """(key, format) of every verifier reward in a reward config, weighted_sum terms included."""
    if not hasattr(reward, "get"):
        return
    fmt = reward.get("format")
    if fmt is not None:
        yield f"{key}.format", str(getattr(fmt, "value", fmt))  # an AnswerFormat or a string
    for name, term in (reward.get("terms") or {}).items():
        yield from reward_formats(
            term.get("reward") if hasattr(term, "get") else None, f"{key}.terms.{name}.reward"
        )


def answer_format_mismatches(cfg) -> list[tuple[str, str, str]]:
    """(key, its format, the task's format) of every verifier reward in a run config that reads
    answers in another format than the task's check; [] when the task has no answer format."""
    from omegaconf import OmegaConf

    task_format = OmegaConf.select(cfg, "task.answer_format", default=None)
    if task_format is None:
        return []
    task_format = str(getattr(task_format, "value", task_format))
    return [
        (key, fmt, task_format)
        for key, fmt in reward_formats(OmegaConf.select(cfg, "reward"))
        if fmt != task_format
    ]


def check_answer_formats(cfg) -> None:
    """Warn when a verifier reward reads answers in another format than the task's check, which
    is what evaluation's pass@k, maj@k and format-error share use: the reward then counts
    answers that test/pass@1 does not (docs/results.md, issue #26: reward.format=any scored
    about 0.09 while test_init/pass@1 was 0)."""
    for key, fmt, task_format in answer_format_mismatches(cfg):
        log.warning(
            "%s=%s but task.answer_format=%s: the reward counts answers in the %s format,"
            " evaluation's pass@k, maj@k and format-error share only those in the task's %s"
            " format, so test/pass@1 can read 0 while the reward rises. Compare runs on"
            " test/reward_mean, or leave %s unset to train on the task's format.",
            key,
            fmt,
            task_format,
            fmt,
            task_format,
            key,
        )


def evaluate_split(cfg, task, policy, ref, reward_fn, split: str) -> tuple[EvalResult, dict]:
    """The run's evaluation of ``policy`` on ``split`` as ``cfg.eval`` sets it: the sampling seed
    ``eval.seed`` (whatever the training seed), ``eval.samples_per_prompt`` completions per test
    prompt (``eval.val_samples_per_prompt`` per val prompt), perplexity under ``ref``. Returns
    the result and the evaluation's setup (what a paired comparison must match)."""
    ev = cfg.eval
    k = ev.samples_per_prompt if split == "test" else ev.val_samples_per_prompt
    verifier = task.verifier() if getattr(task, "verifiable", False) else None
    res = evaluate_policy(
        policy,
        ref if ev.perplexity else None,
        reward_fn,
        task.eval_examples(split),
        prompt_max_tokens=task.prompt_max_tokens,
        prompt_truncation=getattr(task, "prompt_truncation", "left"),
        max_new_tokens=task.max_new_tokens,
        min_new_tokens=task.min_new_tokens,
        generation=ev.generation,
        batch_size=ev.batch_size,
        seed=ev.seed,
        samples_per_prompt=k,
        n_samples=ev.n_samples_table,
        progress=True,
        metrics=list(task.cfg.get("metrics") or []) if hasattr(task.cfg, "get") else [],
        verifier=verifier,
        pass_k=list(getattr(task, "pass_k", (1,))),
        metric_options=dict(task.cfg.get("metric_options") or {})
        if hasattr(task.cfg, "get")
        else {},
    )
    setup = {"split": split, "seed": ev.seed, "samples_per_prompt": k}
    if verifier is not None:
        setup["verifier"] = verifier.name
    if res.unavailable:
        setup["unavailable_metrics"] = res.unavailable
        for name, why in res.unavailable.items():
            if name not in _WARNED_UNAVAILABLE:  # said once per process, recorded every time
                _WARNED_UNAVAILABLE.add(name)
                log.warning("task.metrics: %s is not computed: %s", name, why)
    return res, setup


_WARNED_UNAVAILABLE: set[str] = set()


def save_evaluation(run_dir, prefix: str, step: int, metrics: dict, setup: dict, res) -> Path:
    """``eval/<prefix>_<step>.json`` (metrics, setup, per-prompt rewards, sample table) and the
    sample table appended to ``samples.jsonl``; returns the JSON's path."""
    from rft.io import append_jsonl, write_json_atomic

    run_dir = Path(run_dir)
    path = run_dir / "eval" / f"{prefix}_{step:05d}.json"  # atomic_path makes eval/
    record = {"metrics": metrics, "eval": setup, "per_prompt": res.per_prompt}
    write_json_atomic(path, {**record, "samples": res.samples}, indent=1)
    for s in res.samples:
        append_jsonl(run_dir / "samples.jsonl", {"split": prefix, "iteration": step, **s})
    return path
