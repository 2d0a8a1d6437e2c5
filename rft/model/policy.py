"""One interface over causal (decoder-only) and seq2seq language models.

Layout of a batch of episodes (causal models):

    input   = [ prompt (left-padded to P) | completion (right-padded to T) ]
    logits  for completion token t come from position P - 1 + t

so the completion's logits are the last T + 1 positions minus the final one, and only those
positions go through the LM head (``logits_to_keep``): with a 49k vocabulary that skips most of
the head's cost for the prompt. Position ids are computed from the attention mask, exactly as
``generate`` does for left-padded prompts; without them a left-padded row would be scored at
shifted positions and its log-probs would not match the ones seen while sampling.

Seq2seq models (T5) read the prompt with the encoder and the completion with the decoder:

    encoder = [ prompt (left-padded to P) | EOS ]     (EOS only where the tokenizer adds one)
    decoder = [ decoder_start | completion[:-1] ]     logits for completion token t at t

Prompts are encoded without special tokens (a causal prompt must end where its completion
starts), but T5 was pretrained and finetuned (GRUE's CommonGen checkpoints included) on inputs
that end with ``</s>``, which its tokenizer appends: ``encoder_inputs`` adds that column for
every forward pass, generation and prompt-state read, so scoring and sampling see the same
input. Left padding puts every row's last token in the last column, so one column does it. A
tokenizer that adds nothing (GPT-2's, the tests' word tokenizer) or also a BOS (BART's) gets no
EOS: only T5's "append EOS" scheme is reproduced.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

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


def appends_eos(tokenizer) -> bool:
    """Whether ``tokenizer``'s special tokens are exactly one EOS appended to the text (T5)."""
    if tokenizer.eos_token_id is None:
        return False
    bare = tokenizer("a b", add_special_tokens=False)["input_ids"]
    return tokenizer("a b")["input_ids"] == [*bare, tokenizer.eos_token_id]


class PolicyLM(nn.Module):
    """Wraps a Hugging Face LM: scoring of completions and batched sampling."""

    rollout_engine = None
    """Another sampler of this policy (rft.rollout.backend.attach_rollout_backend: a vLLM
    engine); None: ``generate`` runs Hugging Face's. Copies of the policy (π_ref, a separate
    value model, NLPO's mask policy) do not inherit it: they are other models."""

    def __init__(self, model: nn.Module, tokenizer, kind: str = "causal"):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind
        self.is_seq2seq = kind == "seq2seq"
        self.encoder_eos = self.is_seq2seq and appends_eos(tokenizer)

    def encoder_inputs(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What a seq2seq encoder reads: the left-padded prompts (B, P), then an EOS column
        where the tokenizer appends one (module docstring); causal models get them unchanged."""
        if not self.encoder_eos:
            return prompt_ids, prompt_mask
        eos = torch.full_like(prompt_ids[:, :1], self.tokenizer.eos_token_id)
        return torch.cat([prompt_ids, eos], 1), torch.cat(
            [prompt_mask, torch.ones_like(prompt_mask[:, :1])], 1
        )

    @property
    def hidden_size(self) -> int:
        c = self.model.config
        return getattr(c, "hidden_size", None) or getattr(c, "n_embd", None) or c.d_model

    def forward(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        completion_ids: torch.Tensor,
        completion_mask: torch.Tensor,
        return_hidden: bool = False,
        return_logits: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Logits (B, T, V) predicting each completion token, and the last hidden states (B, T, H)
        of the states s_t = prompt + y_<t (for value heads)."""
        T = completion_ids.shape[1]
        attention.use(self.model, "scoring")  # hardware.attention (rft/model/attention.py)
        if self.is_seq2seq:
            dec_in = self.model._shift_right(completion_ids)  # decoder_start, y_0 .. y_{T-2}
            dec_mask = torch.cat(
                [torch.ones_like(completion_mask[:, :1]), completion_mask[:, :-1]], 1
            )
            enc_ids, enc_mask = self.encoder_inputs(prompt_ids, prompt_mask)
            out = self.model(
                input_ids=enc_ids,
                attention_mask=enc_mask,
                decoder_input_ids=dec_in,
                decoder_attention_mask=dec_mask,
                output_hidden_states=return_hidden,
                use_cache=False,
            )
            hidden = out.decoder_hidden_states[-1] if return_hidden else None
            return (out.logits if return_logits else None), hidden
        ids = torch.cat([prompt_ids, completion_ids], 1)
        attn = torch.cat([prompt_mask, completion_mask], 1)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        L = ids.shape[1]
        # Logits only at the T states that predict completion tokens. Positions as an index
        # tensor, not the int form (a slice): the slice is a strided view, and for bf16 models
        # (frozen references, guides) PyTorch's CPU matmul then falls back to a bmm against the
        # lm_head weight expanded and copied per batch row: +0.9 GB at batch 16 for SmolLM2.
        keep = torch.arange(L - T - 1, L - 1, device=ids.device) if return_logits else 1
        out = self.model(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            output_hidden_states=return_hidden,
            logits_to_keep=keep,
            use_cache=False,  # one pass over whole sequences: a KV cache would only cost memory
        )
        logits = out.logits if return_logits else None  # (B, T, V)
        hidden = out.hidden_states[-1][:, -(T + 1) : -1] if return_hidden else None  # (B, T, H)
        return logits, hidden

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        max_new_tokens: int,
        min_new_tokens: int,
        generation,
        logits_processor=None,
    ) -> Completions:
        """Sample completions for a batch of prompts with the KV cache, in one call.

        ``generation`` holds do_sample / top_k / top_p / temperature / num_beams (a
        GenerationConfig from the config); top_k = 0 disables top-k. ``logits_processor`` (a
        LogitsProcessorList) runs before the sampling warpers, e.g. to force restart prefixes.
        With a ``rollout_engine`` (rollout.backend=vllm) the engine samples whatever it
        supports, in this layout plus the sampler's log-probs (rft/rollout/vllm_engine.py).
        """
        engine = self.rollout_engine
        if engine is not None and engine.supports(generation, logits_processor):
            return engine.generate(
                self,
                prompt_ids,
                prompt_mask,
                max_new_tokens,
                min_new_tokens,
                generation,
                logits_processor,
            )
        tok = self.tokenizer
        enc_ids, enc_mask = self.encoder_inputs(prompt_ids, prompt_mask)
        kwargs = dict(
            input_ids=enc_ids,
            attention_mask=enc_mask,
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
        if logits_processor is not None:
            kwargs["logits_processor"] = logits_processor
        was_training = self.model.training
        self.model.eval()
        attention.use(self.model, "generation")
        merged = contextlib.nullcontext()
        if getattr(self.model, "rft_merge_for_generation", False):  # a LoRA policy (lora.py)
            from rft.model.lora import merged_for_generation

            merged = merged_for_generation(self.model)
        try:
            with merged, cached_autocast_casts(enc_ids.device.type):
                out = self.model.generate(**kwargs)
        except ValueError as e:  # transformers' verdict on a decoding setting: name the key
            raise generation_error(generation, kwargs, e) from None
        finally:
            self.model.train(was_training)
        new = out[:, 1:] if self.is_seq2seq else out[:, prompt_ids.shape[1] :]
        if new.shape[1] < max_new_tokens:  # every row stopped early: pad to a fixed width
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
    from rft.errors import ConfigError

    key = generation._get_full_key("") if hasattr(generation, "_get_full_key") else ""
    shown = ("do_sample", "top_k", "top_p", "temperature", "num_beams", "max_new_tokens")
    settings = ", ".join(f"{k}={kwargs[k]}" for k in shown if k in kwargs)
    return ConfigError(
        f"the generator rejected the decoding settings of {key or 'the generation config'} "
        f"({settings}): {error}. Change {key or 'them'} (task.max_new_tokens for the length)."
    )


class ValueHead(nn.Module):
    """V(s_t) = w · h_t, a linear map of the last hidden state (RL4LMs: no bias)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1, bias=False)
        nn.init.zeros_(self.linear.weight)  # start from V = 0: no random value noise in A

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T)
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)
