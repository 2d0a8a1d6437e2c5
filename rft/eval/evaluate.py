"""Evaluate a policy on a prompt split: reward, perplexity under the reference, diversity,
and a table of samples. Generation and scoring are batched; the RNG is forked and seeded so an
evaluation never changes (or depends on) the training random stream.

Under DDP (a process group is initialised) each rank evaluates its own contiguous share of the
prompts, whole batches each, and the per-example records are gathered so that every rank
computes the same metrics over the whole split. Rank 0 uses the same seed and batches as a
single process, so its share matches a single-process evaluation exactly; rank r seeds with
``seed + r``. Outside a process group (one device, or before ``fit`` sets DDP up) the whole split
runs in this process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from rft.core import logprobs_from_logits
from rft.eval.metrics import distinct_n, perplexity
from rft.model.policy import PolicyLM
from rft.rollout.prompts import encode_prompts
from rft.task.base import Example


@dataclass
class EvalRecords:
    """Per-example results of one shard, in example order."""

    texts: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # completion tokens
    nll: list[float] = field(default_factory=list)  # -log π_ref(y|x) summed; empty without π_ref

    def extend(self, other: EvalRecords) -> None:
        self.texts += other.texts
        self.rewards += other.rewards
        self.lengths += other.lengths
        self.nll += other.nll


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
    progress: bool = False,
) -> EvalRecords:
    """Generate, score under the reference and reward ``examples`` in this process."""
    rec = EvalRecords()
    if not examples:
        return rec
    device = next(policy.parameters()).device
    tok = policy.tokenizer
    prompts = [e.prompt for e in examples]
    it = range(0, len(examples), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="eval", leave=False, unit="batch")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for s in it:
            ids, mask = encode_prompts(tok, prompts[s : s + batch_size], prompt_max_tokens, device)
            comp = policy.generate(ids, mask, max_new_tokens, min_new_tokens, generation)
            rec.texts += tok.batch_decode(comp.ids, skip_special_tokens=True)
            rec.lengths += comp.mask.sum(-1).tolist()
            if ref is not None:
                # the reference shares the policy's tokenizer (it is the initial policy)
                logits, _ = ref(ids, mask, comp.ids, comp.mask)
                logp = logprobs_from_logits(logits, comp.ids)
                rec.nll += (-(logp * comp.mask).sum(-1)).tolist()
    refs = [e.reference for e in examples]
    rec.rewards = reward_fn(prompts, rec.texts, refs).tolist()
    return rec


def aggregate(rec: EvalRecords) -> dict[str, float]:
    """Split-level metrics from per-example records."""
    r = torch.tensor(rec.rewards, dtype=torch.float64)
    metrics = {
        "reward_mean": r.mean().item(),
        "reward_std": r.std(unbiased=False).item(),
        "distinct_1": distinct_n(rec.texts, 1),
        "distinct_2": distinct_n(rec.texts, 2),
        "completion_tokens": sum(rec.lengths) / max(len(rec.lengths), 1),
    }
    if rec.nll:  # scored under π_ref
        metrics["perplexity"] = perplexity(sum(rec.nll), sum(rec.lengths))
    return metrics


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
    out = EvalRecords()
    for p in parts:
        out.extend(p)
    return out


def evaluate_policy(
    policy: PolicyLM,
    ref: PolicyLM | None,
    reward_fn,
    examples: list[Example],
    *,
    batch_size: int,
    seed: int,
    n_samples: int = 16,
    progress: bool = False,
    **decoding,
) -> tuple[dict[str, float], list[dict]]:
    """Return (metrics, samples). metrics: reward_mean, reward_std, perplexity, distinct_1/2,
    completion_tokens (mean); samples: the first ``n_samples`` (prompt, completion, reward).
    ``decoding``: prompt_max_tokens, max_new_tokens, min_new_tokens, generation (see
    ``evaluate_shard``)."""
    rank, world_size = process_group()
    lo, hi = shard_bounds(len(examples), batch_size, rank, world_size)
    rec = evaluate_shard(
        policy,
        ref,
        reward_fn,
        examples[lo:hi],
        batch_size=batch_size,
        seed=seed + rank,
        progress=progress and rank == 0,
        **decoding,
    )
    rec = gather_records(rec, world_size)
    samples = [
        {"prompt": e.prompt, "completion": c, "reward": r, "reference": e.reference}
        for e, c, r in list(zip(examples, rec.texts, rec.rewards))[:n_samples]
    ]
    return aggregate(rec), samples
