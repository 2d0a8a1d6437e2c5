"""Generation as a strategy: who samples a policy's completions.

A ``PolicyLM`` is built with a ``Generator`` and its ``generate`` hands every call to it. The
generators rft has:

    HFGenerator              transformers' ``generate`` on the policy's own model (default)
    MergedLoRAGenerator      the same, on merged LoRA weights (rft.model.lora)
    VLLMGenerator            a colocated vLLM engine, HF for what vLLM cannot run
                             (rft.rollout.vllm_engine; rollout.backend=vllm)

Each returns ``Completions`` in one layout: (B, max_new_tokens) ids right-padded with the pad id
after the first EOS (which is kept), the completion mask, and the sampler's own log-probs where
it reports them. A generator belongs to one policy: a copy of the policy (π_ref, a separate
value model, NLPO's mask policy) is another model and samples with ``HFGenerator``
(``frozen_copy``; ``VLLMGenerator`` copies as its fallback). A new backend (a remote API) is one
more class with ``generate`` and ``stats``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

import torch

from rft.errors import ConfigError
from rft.model import attention


@dataclass
class Completions:
    """A batch of sampled completions, right-padded.

    ids (B, T) token ids (pad after the end), mask (B, T) 1 for the completion's own tokens
    (up to and including EOS), logprobs (B, T) the sampler's log-probs of its tokens where the
    backend reports them (rollout.backend=vllm; None for HF generate).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor | None = None


def completion_mask(ids: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """(B, T) 1 up to and including the first EOS of each row, 0 after (pad may equal EOS)."""
    if eos_id is None:
        return torch.ones_like(ids)
    is_eos = (ids == eos_id).long()
    # number of EOS strictly before each position: > 0 means the row already ended
    eos_before = is_eos.cumsum(-1) - is_eos
    return (eos_before == 0).long()


class Generator(Protocol):
    """What samples a policy's completions (module docstring)."""

    def generate(
        self,
        lm,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        max_new_tokens: int,
        min_new_tokens: int,
        generation,
        logits_processor=None,
    ) -> Completions: ...

    def stats(self) -> dict[str, float]:
        """Its own measurements since the previous call (logged once per iteration)."""
        ...


class HFGenerator:
    """transformers' ``generate`` with the KV cache, one call per batch."""

    def sampling_weights(self, lm):
        """The weights to sample from, as a context: the policy's own (MergedLoRAGenerator
        swaps in merged ones)."""
        return contextlib.nullcontext()

    def stats(self) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def generate(
        self,
        lm,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        max_new_tokens: int,
        min_new_tokens: int,
        generation,
        logits_processor=None,
    ) -> Completions:
        """``generation`` holds do_sample / top_k / top_p / temperature / num_beams (a
        GenerationConfig); top_k = 0 disables top-k. ``logits_processor`` (a
        LogitsProcessorList) runs before the sampling warpers, e.g. to force restart prefixes."""
        enc_ids, enc_mask = lm.encoder_inputs(prompt_ids, prompt_mask)
        kwargs = generate_kwargs(lm.tokenizer, generation, max_new_tokens, min_new_tokens)
        kwargs.update(input_ids=enc_ids, attention_mask=enc_mask)
        if logits_processor is not None:
            kwargs["logits_processor"] = logits_processor
        model = lm.model
        was_training = model.training
        model.eval()
        attention.use(model, "generation")
        try:
            with self.sampling_weights(lm), cached_autocast_casts(enc_ids.device.type):
                out = model.generate(**kwargs)
        except ValueError as e:  # transformers' verdict on a decoding setting: name the key
            raise generation_error(generation, kwargs, e) from None
        finally:
            model.train(was_training)
        new = out[:, 1:] if lm.is_seq2seq else out[:, prompt_ids.shape[1] :]
        return fixed_width(new, max_new_tokens, lm.tokenizer)


def generate_kwargs(tok, generation, max_new_tokens: int, min_new_tokens: int) -> dict:
    """transformers' ``generate`` arguments of a GenerationConfig and the token budgets."""
    kwargs = dict(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min(min_new_tokens, max_new_tokens),
        do_sample=generation.do_sample,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        use_cache=True,
    )
    if generation.do_sample:
        # top_k=0 disables top-k (None would mean the model's generation_config default)
        kwargs.update(
            top_k=generation.top_k, top_p=generation.top_p, temperature=generation.temperature
        )
    if getattr(generation, "num_beams", 1) > 1:  # beam search (greedy when do_sample=false)
        kwargs["num_beams"] = generation.num_beams
    return kwargs


def fixed_width(new: torch.Tensor, max_new_tokens: int, tok) -> Completions:
    """Generated ids (B, ≤ T) -> Completions (B, T): padded to T when every row stopped early,
    pad after each row's first EOS."""
    if new.shape[1] < max_new_tokens:
        pad = new.new_full((new.shape[0], max_new_tokens - new.shape[1]), tok.pad_token_id)
        new = torch.cat([new, pad], 1)
    mask = completion_mask(new, tok.eos_token_id)
    new = torch.where(mask.bool(), new, torch.full_like(new, tok.pad_token_id))
    return Completions(ids=new, mask=mask)


@contextlib.contextmanager
def cached_autocast_casts(device_type: str):
    """Under autocast, each fp32 weight cast to the autocast dtype once per call, not once per
    decoding step. Lightning's autocast runs with ``cache_enabled=False`` (casts must not
    outlive an optimizer step inside one training step), so ``generate`` recast every weight at
    each of its max_new_tokens forward passes. This nests a caching autocast of the same dtype
    around the call and empties the cache on the way out: the outer context would otherwise
    keep the casts until it exits, and the next generation in it (after an update) would read
    stale weights. Nothing changes without autocast. Measured here (SmolLM2-135M, fp32
    weights, bf16 autocast, 32 prompts × 48 tokens, 2 threads): 171–177 → 180–192 tokens/s."""
    if not torch.is_autocast_enabled(device_type):
        yield
        return
    dtype = torch.get_autocast_dtype(device_type)
    try:
        with torch.autocast(device_type, dtype=dtype, cache_enabled=True):
            yield
    finally:
        torch.clear_autocast_cache()


def generation_error(generation, kwargs: dict, error: ValueError):
    """One ConfigError for decoding settings the generator rejected (rft.checks.preflight
    catches the known ones before any model loads; this covers the rest)."""
    key = generation._get_full_key("") if hasattr(generation, "_get_full_key") else ""
    shown = ("do_sample", "top_k", "top_p", "temperature", "num_beams", "max_new_tokens")
    settings = ", ".join(f"{k}={kwargs[k]}" for k in shown if k in kwargs)
    return ConfigError(
        f"the generator rejected the decoding settings of {key or 'the generation config'} "
        f"({settings}): {error}. Change {key or 'them'} (task.max_new_tokens for the length)."
    )
