"""Restart maths of guide-policy RL (RLGF, Chang et al. 2023; docs/algorithms.md §4).

A *roll-in* is a complete sequence sampled by one policy (the guide in PPO++, the learner in
AggreVaTeD). Each sample restarts with probability β: its *roll-out* then copies the first k
roll-in tokens, k ~ Uniform{1, …, L-1} with L the roll-in's length, and samples the rest
freely. k = 0 (not restarted, or L < 2) means the roll-out generates the whole sequence.

Lengths and k count tokens of the sequence they index (in rft: always the policy's tokens; see
rft/rollout/guide.py for guides with another tokenizer). L counts every completion token,
EOS included, so k ≤ L-1 never copies the EOS.

Pure tensor functions, no models (and ``ForcedPrefixProcessor``, the logits processor that
applies ``force_logits`` inside ``generate``); (B, T) right-padded completions with a 0/1 ``mask`` that is a
contiguous prefix of each row (as ``rft.model.generate.completion_mask`` makes them).
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import LogitsProcessor

SCHEMES = ("ppo_pp", "aggrevated")


def sample_restart_flags(n: int, beta: float, generator: torch.Generator | None = None) -> Tensor:
    """Which samples restart: (n,) bool, each an independent Bernoulli(β) draw."""
    return torch.rand(n, generator=generator, dtype=torch.float64) < beta


def sample_rollin_lengths(
    lengths: Tensor, restart: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """k per sample: Uniform{1, …, L-1} where ``restart`` and L ≥ 2, else 0.

    lengths (B,) int roll-in lengths L; restart (B,) bool. Returns (B,) int64 on the CPU.
    One uniform draw per sample, used or not, so the draws do not depend on the lengths.
    """
    lengths = lengths.detach().cpu().long()
    u = torch.rand(lengths.shape[0], generator=generator, dtype=torch.float64)  # [0, 1)
    k = 1 + torch.floor(u * (lengths - 1).clamp(min=0).double()).long()  # {1, …, L-1}
    ok = restart.detach().cpu().bool() & (lengths >= 2)
    return torch.where(ok, k, torch.zeros_like(k))


def prefix_mask(k: Tensor, width: int) -> Tensor:
    """(B, width) bool: position t < k_i, i.e. the tokens copied from the roll-in."""
    return torch.arange(width, device=k.device)[None, :] < k[:, None]


def forced_prefix(rollin_ids: Tensor, k: Tensor, pad_id: int) -> Tensor:
    """The tokens a roll-out must copy: rollin_ids[i, :k_i], pad after. (B, T) -> (B, max k).

    Width max(k) (0 when no sample restarts): generation only needs that many forced steps.
    """
    width = int(k.max()) if k.numel() else 0
    ids = rollin_ids[:, :width]
    return torch.where(prefix_mask(k.to(ids.device), width), ids, torch.full_like(ids, pad_id))


def force_logits(scores: Tensor, step: int, forced: Tensor, k: Tensor) -> Tensor:
    """Next-token scores at generation step ``step`` with rows still in their prefix forced.

    scores (B, V); forced (B, K) token ids; k (B,). Row i gets -inf everywhere but
    forced[i, step] (score 0) when step < k_i, and keeps its scores otherwise. Any later
    temperature / top-k / top-p warping keeps that single finite token, so sampling copies it.
    """
    if step >= forced.shape[1]:
        return scores
    active = (k > step)[:, None]  # (B, 1)
    only = torch.full_like(scores, float("-inf")).scatter_(1, forced[:, step : step + 1], 0.0)
    return torch.where(active, only, scores)


def loss_masks(mask: Tensor, k: Tensor, scheme: str) -> tuple[Tensor, Tensor]:
    """(policy_mask, value_mask), each (B, T) like ``mask``, for a mixed sequence whose first k_i
    tokens come from the roll-in policy and the rest from the roll-out policy.

    - ppo_pp (roll-in guide, roll-out policy): both losses cover the policy's own suffix
      t ≥ k; k = 0 rows are plain PPO.
    - aggrevated (roll-in policy, roll-out guide): the policy loss covers the policy's prefix
      t < k; the critic is trained on the guide's tokens t ≥ k (it estimates the guide's value).
      k = 0 rows are all guide: no policy loss, critic on every token.
    """
    prefix = prefix_mask(k.to(mask.device), mask.shape[1])
    own = mask.bool()
    if scheme == "ppo_pp":
        suffix = (own & ~prefix).to(mask.dtype)
        return suffix, suffix
    if scheme == "aggrevated":
        return (own & prefix).to(mask.dtype), (own & ~prefix).to(mask.dtype)
    raise ValueError(f"unknown scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")


def shift_left(ids: Tensor, mask: Tensor, k: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """Drop the first k_i tokens of each row: (B, T) -> (B, T), right-padded with ``pad_id``."""
    T = ids.shape[1]
    src = torch.arange(T, device=ids.device)[None, :] + k.to(ids.device)[:, None]  # (B, T)
    inside = src < T
    src = src.clamp(max=T - 1)
    new_mask = torch.where(inside, mask.gather(1, src), torch.zeros_like(mask))
    new_ids = torch.where(new_mask.bool(), ids.gather(1, src), torch.full_like(ids, pad_id))
    return new_ids, new_mask


def splice(
    prefix_ids: Tensor, k: Tensor, suffix_ids: Tensor, suffix_mask: Tensor, width: int, pad_id: int
) -> tuple[Tensor, Tensor]:
    """Row i = prefix_ids[i, :k_i] ++ suffix_ids[i, :n_i] (n_i = suffix_mask[i].sum()), cut to
    ``width`` and right-padded. prefix_ids (B, ≥ max k), suffix_ids / suffix_mask (B, S).
    Returns (ids, mask), each (B, width).
    """
    B = prefix_ids.shape[0]
    device = suffix_ids.device
    k = k.to(device)
    t = torch.arange(width, device=device)[None, :].expand(B, width)
    n = suffix_mask.sum(-1)
    in_prefix = t < k[:, None]
    p_src = t.clamp(max=max(prefix_ids.shape[1] - 1, 0))
    s_pos = t - k[:, None]
    s_src = s_pos.clamp(min=0, max=max(suffix_ids.shape[1] - 1, 0))
    p_tok = prefix_ids.to(device).gather(1, p_src) if prefix_ids.shape[1] else torch.zeros_like(t)
    s_tok = suffix_ids.gather(1, s_src) if suffix_ids.shape[1] else torch.zeros_like(t)
    mask = in_prefix | ((s_pos >= 0) & (s_pos < n[:, None]))
    ids = torch.where(in_prefix, p_tok, s_tok)
    ids = torch.where(mask, ids, torch.full_like(ids, pad_id))
    return ids, mask.to(suffix_mask.dtype)


class ForcedPrefixProcessor(LogitsProcessor):
    """Forces row i to emit forced[i, t] at generation step t < k[i] (rft/rollout/guide.py:
    one batched ``generate`` copies every row's prefix).

    forced (B, K) token ids, k (B,) copy lengths; ``start_len`` is the width of ``input_ids``
    before the first generated token (the prompt width for causal LMs, 1 for seq2seq decoders).
    Stateless: the step is read off ``input_ids``.
    """

    def __init__(self, forced: Tensor, k: Tensor, start_len: int):
        self.forced, self.k, self.start_len = forced, k, start_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.start_len
        return force_logits(scores, step, self.forced.to(scores.device), self.k.to(scores.device))


def forced_prefix_of(processors) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(forced (B, K), k (B,)) when ``processors`` is exactly one guided-restart
    ForcedPrefixProcessor, else None (how another generator, vLLM or a remote guide, learns a
    guided restart's prefix)."""
    procs = list(processors) if processors is not None else []
    if len(procs) == 1 and isinstance(procs[0], ForcedPrefixProcessor):
        return procs[0].forced, procs[0].k
    return None
