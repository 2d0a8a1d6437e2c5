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

    encoder = [ pad | BOS | prompt | EOS ]     (the BOS / EOS the tokenizer itself adds)
    decoder = [ decoder_start | completion[:-1] ]     logits for completion token t at t

Prompts are encoded without special tokens (a causal prompt must end where its completion
starts), but seq2seq models were pretrained and finetuned on inputs wrapped the way their
tokenizer wraps a text: T5 (GRUE's CommonGen checkpoints included) on ``text </s>``, BART on
``<s> text </s>`` (RL4LMs tokenizes BART's prompts with them). ``encoder_inputs`` adds those
special tokens for every forward pass, generation and prompt-state read, so scoring and
sampling see the same input: the EOS as one column (left padding puts every row's last token in
the last column), the BOS just after each row's padding. A tokenizer that adds nothing (GPT-2's,
the tests' word tokenizer) gets nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from rft.model import attention
from rft.model.generate import Completions, Generator, HFGenerator


def special_wrapping(tokenizer) -> tuple[bool, bool]:
    """(a BOS before, an EOS after): how ``tokenizer`` wraps a text with its special tokens
    (T5: (False, True); BART: (True, True)); (False, False) for any other scheme."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    bare = tokenizer("a b", add_special_tokens=False)["input_ids"]
    full = tokenizer("a b")["input_ids"]
    if eos is not None and full == [*bare, eos]:
        return False, True
    if bos is not None and eos is not None and full == [bos, *bare, eos]:
        return True, True
    return False, False


class PolicyLM(nn.Module):
    """Wraps a Hugging Face LM: scoring of completions and batched sampling."""

    def __init__(
        self, model: nn.Module, tokenizer, kind: str = "causal", generator: Generator | None = None
    ):
        super().__init__()
        self.model = model
        self.generator: Generator = generator if generator is not None else HFGenerator()
        self.tokenizer = tokenizer
        self.kind = kind
        self.is_seq2seq = kind == "seq2seq"
        wrap = special_wrapping(tokenizer) if self.is_seq2seq else (False, False)
        self.encoder_bos, self.encoder_eos = wrap

    def encoder_inputs(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What a seq2seq encoder reads: the left-padded prompts (B, P) wrapped in the special
        tokens the tokenizer adds (module docstring); causal models get them unchanged."""
        ids, mask = prompt_ids, prompt_mask
        if self.encoder_bos:  # one column more on the left; each row's BOS before its text
            ids = torch.cat([torch.full_like(ids[:, :1], self.tokenizer.pad_token_id), ids], 1)
            mask = torch.cat([torch.zeros_like(mask[:, :1]), mask], 1)
            first = ids.shape[1] - mask.sum(-1, keepdim=True) - 1  # (B, 1): just before the text
            ids = ids.scatter(1, first, self.tokenizer.bos_token_id)
            mask = mask.scatter(1, first, 1)
        if self.encoder_eos:
            eos = torch.full_like(ids[:, :1], self.tokenizer.eos_token_id)
            ids, mask = torch.cat([ids, eos], 1), torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        return ids, mask

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
        """Sample completions for a batch of prompts (B, P), in one call of this policy's
        generator (rft.model.generate: Hugging Face's generate, on merged LoRA weights, or a vLLM
        engine). ``generation`` holds do_sample / top_k / top_p / temperature / num_beams;
        ``logits_processor`` (a LogitsProcessorList) runs before the sampling warpers, e.g. to
        force restart prefixes."""
        return self.generator.generate(
            self,
            prompt_ids,
            prompt_mask,
            max_new_tokens,
            min_new_tokens,
            generation,
            logits_processor,
        )

    def with_generator(self, generator: Generator) -> PolicyLM:
        """The same model and tokenizer, sampled by ``generator`` (a new wrapper: the weights
        are shared, nothing is copied)."""
        return PolicyLM(self.model, self.tokenizer, kind=self.kind, generator=generator)

    def generation_stats(self) -> dict[str, float]:
        """The generator's measurements since the previous call (vLLM: weight-sync time)."""
        return self.generator.stats()


class ValueHead(nn.Module):
    """V(s_t) = w · h_t, a linear map of the last hidden state (RL4LMs: no bias)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1, bias=False)
        nn.init.zeros_(self.linear.weight)  # start from V = 0: no random value noise in A

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T)
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)
