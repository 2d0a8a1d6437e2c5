"""Evaluate a policy on a prompt split: reward, perplexity under the reference, diversity,
and a table of samples. Generation and scoring are batched; the RNG is forked and seeded so an
evaluation never changes (or depends on) the training random stream."""

from __future__ import annotations

import torch

from rft.core import logprobs_from_logits
from rft.eval.metrics import distinct_n, perplexity
from rft.model.policy import PolicyLM
from rft.rollout.prompts import encode_prompts
from rft.task.base import Example


@torch.no_grad()
def evaluate_policy(
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
    n_samples: int = 16,
    progress: bool = False,
) -> tuple[dict[str, float], list[dict]]:
    """Return (metrics, samples). metrics: reward_mean, reward_std, perplexity, distinct_1/2,
    completion_tokens (mean); samples: the first ``n_samples`` (prompt, completion, reward)."""
    device = next(policy.parameters()).device
    tok = policy.tokenizer
    prompts = [e.prompt for e in examples]
    refs = [e.reference for e in examples]
    texts: list[str] = []
    nll, n_tok = 0.0, 0
    lengths = []
    it = range(0, len(examples), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="eval", leave=False, unit="batch")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for s in it:
            ids, mask = encode_prompts(tok, prompts[s : s + batch_size], prompt_max_tokens, device)
            comp = policy.generate(ids, mask, max_new_tokens, min_new_tokens, generation)
            texts += tok.batch_decode(comp.ids, skip_special_tokens=True)
            lengths += comp.mask.sum(-1).tolist()
            if ref is not None:
                # the reference shares the policy's tokenizer (it is the initial policy)
                logits, _ = ref(ids, mask, comp.ids, comp.mask)
                logp = logprobs_from_logits(logits, comp.ids)
                nll -= (logp * comp.mask).sum().item()
                n_tok += int(comp.mask.sum().item())
    scores = reward_fn(prompts, texts, refs)
    metrics = {
        "reward_mean": scores.mean().item(),
        "reward_std": scores.std(unbiased=False).item(),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "completion_tokens": sum(lengths) / max(len(lengths), 1),
    }
    if ref is not None:
        metrics["perplexity"] = perplexity(nll, n_tok)
    samples = [
        {"prompt": p, "completion": c, "reward": float(r), "reference": ref_}
        for p, c, r, ref_ in list(zip(prompts, texts, scores.tolist(), refs))[:n_samples]
    ]
    return metrics, samples
