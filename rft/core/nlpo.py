"""NLPO's action mask (RL4LMs, Ramamurthy et al. 2023; docs/algorithms.md §8): which next tokens
a mask policy π_ψ lets the policy choose at each state, and the policy's log-probs under that
mask (the masked distribution renormalised over the kept tokens).

A mask is a bool tensor ``keep`` (..., V), True on the tokens the policy may emit. Every
function works on any leading shape: (B, V) for one generation step, (B, T, V) for a scored
sequence. Callers bound memory by passing a few rows at a time (a (B, T, V) sort holds a float
and an int64 copy of the logits).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rft.core.logprobs import logprobs_from_logits

MASK_TYPES = ("learned_top_p", "learned_top_k")


def _keep_specials(keep: Tensor, always_keep: Tensor | None) -> Tensor:
    if always_keep is not None and always_keep.numel():
        keep[..., always_keep.to(keep.device)] = True
    return keep


def top_p_keep(
    logits: Tensor, top_p: float, min_tokens_to_keep: int = 1, always_keep: Tensor | None = None
) -> Tensor:
    """Nucleus of the distribution softmax(logits): the smallest set of most probable tokens
    whose total probability reaches ``top_p`` (cumulative sum ≥ top_p, so a prefix that hits
    top_p exactly is enough), at least ``min_tokens_to_keep`` tokens (the top one always), plus
    the token ids ``always_keep`` (K,) (special tokens).

    Equal probabilities are ordered by token id (a stable sort), so the kept set is
    deterministic. logits: (..., V). Returns keep (..., V) bool.
    """
    probs = logits.float().softmax(-1)
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)  # (..., V)
    cum = sorted_p.cumsum(-1)
    # Mass strictly before each sorted position, shifted rather than cum - p so that it equals
    # the previous cumulative sum bit for bit: a token is needed while that mass is < top_p.
    before = torch.cat([torch.zeros_like(cum[..., :1]), cum[..., :-1]], -1)
    keep_sorted = before < top_p
    keep_sorted[..., : max(int(min_tokens_to_keep), 1)] = True
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return _keep_specials(keep, always_keep)


def top_k_keep(
    logits: Tensor, k: int, min_tokens_to_keep: int = 1, always_keep: Tensor | None = None
) -> Tensor:
    """The max(k, min_tokens_to_keep) most probable tokens (at most V), plus ``always_keep``
    (K,). logits: (..., V). Returns keep (..., V) bool."""
    n = min(max(int(k), int(min_tokens_to_keep), 1), logits.shape[-1])
    top = logits.topk(n, dim=-1).indices
    keep = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device).scatter(-1, top, True)
    return _keep_specials(keep, always_keep)


def action_mask(
    logits: Tensor,
    mask_type: str,
    top_mask: float,
    min_tokens_to_keep: int,
    always_keep: Tensor | None = None,
) -> Tensor:
    """π_ψ's kept tokens from π_ψ's logits (..., V): ``learned_top_p`` keeps the top_mask
    nucleus, ``learned_top_k`` the top int(top_mask) tokens. Returns keep (..., V) bool."""
    if mask_type == "learned_top_p":
        return top_p_keep(logits, top_mask, min_tokens_to_keep, always_keep)
    if mask_type == "learned_top_k":
        return top_k_keep(logits, int(top_mask), min_tokens_to_keep, always_keep)
    raise ValueError(f"unknown NLPO mask type {mask_type!r}; allowed: {', '.join(MASK_TYPES)}")


def keep_labels(keep: Tensor, labels: Tensor) -> Tensor:
    """``keep`` (..., V) with each position's own label (...) kept too, so a label's masked
    log-prob is finite. Returns a new (..., V) bool tensor."""
    return keep.scatter(-1, labels.unsqueeze(-1), True)


def apply_action_mask(logits: Tensor, keep: Tensor) -> Tensor:
    """Logits (..., V) with -inf outside ``keep`` (..., V): a softmax of the result is the
    masked distribution renormalised over the kept tokens (gradients reach kept logits only)."""
    return logits.masked_fill(~keep, float("-inf"))


def masked_logprobs(logits: Tensor, keep: Tensor, labels: Tensor) -> Tensor:
    """log π^mask(y_t | s_t) = logit[y_t] - logsumexp over the kept tokens of logits.

    logits: (B, T, V); keep: (B, T, V) bool; labels: (B, T) int64. Returns (B, T) float32;
    -inf where a label is outside its mask (``keep_labels`` prevents that).
    """
    return logprobs_from_logits(apply_action_mask(logits, keep), labels)
