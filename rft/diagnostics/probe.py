"""Online vanishing-gradient probe: per-prompt reward std and policy-gradient norm during RL.

For each probe prompt x, K samples y_k ~ π_θ(·|x) are scored and the policy-gradient estimate

    g(x) = 1/K Σ_k (R_k - b_k) ∇_θ log π_θ(y_k | x),    b_k = mean of the other K-1 rewards

(leave-one-out baseline: unbiased for ∇ E_y[R]) is computed with one backward pass per prompt.
Razin et al. bound ||∇ E_y[R]|| by a power of STD_y[R]; plotting ||g(x)|| against the sample
std over training shows which prompts are stuck. The probe runs under a forked, seeded RNG and
uses ``torch.autograd.grad`` (no ``.grad`` buffers), so it changes neither the training random
stream nor the optimizer's state.
"""

from __future__ import annotations

import torch

from rft.core import logprobs_from_logits
from rft.rollout.prompts import encode_prompts


def leave_one_out_weights(R: torch.Tensor) -> torch.Tensor:
    """(K,) rewards -> (K,) R_k - mean_{j≠k} R_j.

    >>> leave_one_out_weights(torch.tensor([1.0, 0.0, 0.0])).tolist()
    [1.0, -0.5, -0.5]
    """
    K = R.shape[-1]
    return R - (R.sum(-1, keepdim=True) - R) / (K - 1)


def probe_gradients(
    policy,
    reward_fn,
    examples,
    *,
    K: int,
    prompt_max_tokens: int,
    max_new_tokens: int,
    min_new_tokens: int,
    generation,
    seed: int,
    prompt_truncation: str = "left",
) -> list[dict]:
    """One record per prompt: {std, mean, grad_norm}. The reward gets each prompt's
    ``reward_references``; ``prompt_truncation``: the task's."""
    device = next(policy.parameters()).device
    tok = policy.tokenizer
    params = [p for p in policy.parameters() if p.requires_grad]
    records = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for e in examples:
            prompts = [e.prompt] * K
            ids, mask = encode_prompts(tok, prompts, prompt_max_tokens, device, prompt_truncation)
            comp = policy.generate(ids, mask, max_new_tokens, min_new_tokens, generation)
            texts = tok.batch_decode(comp.ids, skip_special_tokens=True)
            R = reward_fn(prompts, texts, [e.reward_references] * K).to(device)
            logits, _ = policy(ids, mask, comp.ids, comp.mask)
            seq_logp = (logprobs_from_logits(logits, comp.ids) * comp.mask).sum(-1)  # (K,)
            surrogate = (leave_one_out_weights(R) * seq_logp).mean()
            grads = torch.autograd.grad(surrogate, params, allow_unused=True)
            norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))
            records.append(
                {
                    "std": R.std(unbiased=False).item(),
                    "mean": R.mean().item(),
                    "grad_norm": norm.item(),
                }
            )
    return records
