"""The guide policy of RLGF and the plumbing around it: loading, sampling with a forced prefix,
and moving sequences between two tokenizers.

Forced prefixes. A roll-out that must copy the first k_i tokens of row i's roll-in is ONE
batched ``generate`` call with ``ForcedPrefixProcessor``: at step t every row with t < k_i gets
all its logits set to -inf except its roll-in token (``restart.force_logits``), so sampling,
whatever the temperature / top-k / top-p, copies it, and rows with t ≥ k_i sample freely. The
KV cache is used throughout; only max(k) steps are touched; no Python loop over rows.

Tokenizers. The guide may use another tokenizer than the policy. The rollout buffer always
holds POLICY tokens (the policy's log-probs, the KL and the losses are per policy token), so:
- L and k are counted in policy tokens (a guide roll-in is converted first, then k is drawn);
- a guide roll-in is decoded to text and re-encoded with the policy tokenizer, cut to
  max_new_tokens policy tokens (an EOS at its end becomes the policy's EOS);
- a guide roll-out (AggreVaTeD) copies the TEXT of the policy's first k tokens (re-encoded
  with the guide tokenizer: k' guide tokens, forced as above), samples up to max_new_tokens
  guide tokens in all, and its continuation after those k' tokens is re-encoded with the policy
  tokenizer and appended to the policy's k tokens, which stay exactly as sampled (their
  log-probs are the ones the policy loss uses); the result is cut to max_new_tokens;
- the guide reads the prompt text encoded with its own tokenizer (its last prompt_max_tokens).
Text round trips are exact for byte-level BPE tokenizers; tokenizers that drop a leading space
when decoding may lose one space at the seam. With identical vocabularies nothing is converted.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from transformers import LogitsProcessorList

from rft.config import choice
from rft.model.generate import Completions
from rft.model.load import check_model_source, load_model
from rft.model.policy import PolicyLM
from rft.rollout.prompts import encode_continuations
from rft.rollout.restart import ForcedPrefixProcessor


@torch.no_grad()
def sample(
    lm: PolicyLM,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    max_new_tokens: int,
    min_new_tokens: int,
    generation,
    forced: Tensor | None = None,
    k: Tensor | None = None,
) -> Completions:
    """Sample completions (B, max_new_tokens) in one ``generate`` call, row i copying
    forced[i, :k[i]] first; without ``forced`` it is ``PolicyLM.generate``."""
    processors = None
    if forced is not None and k is not None and bool((k > 0).any()):
        start = 1 if lm.is_seq2seq else prompt_ids.shape[1]
        processors = LogitsProcessorList([ForcedPrefixProcessor(forced, k, start)])
    return lm.generate(
        prompt_ids, prompt_mask, max_new_tokens, min_new_tokens, generation, processors
    )


# ----------------------------------------------------------------------------------- tokenizers
def same_tokenizer(a, b) -> bool:
    """True when two tokenizers map text to the same ids (then nothing is converted): same
    vocabulary, EOS and pad, and the same ids for a probe text."""
    if a is b:
        return True
    probe = "Hello world, the movie's 2nd half was GREAT!  \u00e9t\u00e9 \u4f60\u597d"
    return (
        len(a) == len(b)
        and a.eos_token_id == b.eos_token_id
        and a.pad_token_id == b.pad_token_id
        and a(probe, add_special_tokens=False)["input_ids"]
        == b(probe, add_special_tokens=False)["input_ids"]
        and a.get_vocab() == b.get_vocab()
    )


def decode_rows(tok, ids: Tensor, mask: Tensor) -> list[str]:
    """The text of each row's valid tokens (special tokens skipped)."""
    return [
        tok.decode(row[m.bool()].tolist(), skip_special_tokens=True) for row, m in zip(ids, mask)
    ]


def ends_with_eos(tok, ids: Tensor, mask: Tensor) -> list[bool]:
    """Whether each row's last valid token is the tokenizer's EOS (the sequence finished)."""
    n = mask.sum(-1)
    last = ids.gather(1, (n - 1).clamp(min=0)[:, None]).squeeze(1)
    return ((n > 0) & (last == tok.eos_token_id)).tolist()


def convert_completions(
    src_tok, dst_tok, ids: Tensor, mask: Tensor, width: int
) -> tuple[Tensor, Tensor]:
    """Completions in ``src_tok`` tokens -> the same texts in ``dst_tok`` tokens, (B, width)."""
    texts = decode_rows(src_tok, ids, mask)
    eos = ends_with_eos(src_tok, ids, mask)
    return encode_continuations(dst_tok, texts, width, eos=eos, width=width, device=ids.device)


# --------------------------------------------------------------------------------------- loading
def load_guide(guide_cfg, model_cfg, ref: PolicyLM) -> PolicyLM:
    """The guide named by ``alg.guide``: the frozen reference when neither ``guide.model`` nor
    ``guide.init_from`` is set, else a frozen model loaded from ``guide.model`` (default: the
    top-level ``model`` config) with ``guide.init_from`` applied."""
    cfg = guide_model_config(guide_cfg, model_cfg)
    if cfg is None:
        return ref
    model, tok = load_model(cfg)
    guide = PolicyLM(model, tok, kind=choice(cfg.kind))
    guide.requires_grad_(False)
    return guide.eval()


def guide_model_config(guide_cfg, model_cfg):
    """The model config ``load_guide`` loads the guide from, or None for the frozen reference."""
    if guide_cfg.model is None and not guide_cfg.init_from:
        return None
    cfg = copy.deepcopy(guide_cfg.model if guide_cfg.model is not None else model_cfg)
    if guide_cfg.init_from:
        cfg.init_from = guide_cfg.init_from
    return cfg


def check_guide_config(guide_cfg, model_cfg) -> None:
    """Before anything loads: the guide ``alg.guide`` names can be found. Neither a guide model
    nor an init_from means the frozen reference, which needs nothing."""
    cfg = guide_model_config(guide_cfg, model_cfg)
    if cfg is not None:
        key = "alg.guide.model" if guide_cfg.model is not None else "model"
        check_model_source(cfg, key, "alg.guide.init_from" if guide_cfg.init_from else None)
