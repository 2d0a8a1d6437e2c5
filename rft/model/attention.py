"""Which attention kernel each kind of forward pass runs (``hardware.attention``).

transformers picks SDPA for every pass. On CPU its flash-attention backward is slow at RL's
short sequences: measured here (SmolLM2-135M, a PPO minibatch of 8 × 112 tokens, bf16
autocast, 1 thread) it took 1.2 s of an 8.5 s update, and the update with the eager (matmul +
softmax) kernel took 7.3 s; a forward-only scoring pass costs the same either way, and KV-cached
generation is ≈ 10 % faster with SDPA. So ``auto`` runs scoring and update passes (``PolicyLM.
forward``) with eager attention on CPU when prompt + completion fit in ``EAGER_MAX_TOKENS`` (the
eager kernel keeps each layer's (T × T) weights for backward, which grows with T²), and leaves
generation and every GPU pass to the model's own choice (SDPA / flash attention).

For grouped-query attention (SmolLM2: 9 query heads share 3 key/value heads) the eager pass
runs ``grouped_eager_attention``: transformers' eager kernel copies each key and value head to
every query head of its group (``repeat_kv``) and sums those copies' gradients back in the
backward; this one multiplies each key/value head with its group's queries stacked as one
matrix, the same dot products without the copies. Measured here (SmolLM2-135M, an update
micro-batch of 8 × 112 tokens, bf16 autocast, 2 threads, interleaved with the plain eager
kernel in one process): between 0 and 2 % off the update step's median over three runs,
within this machine's run-to-run noise; the copies it saves are ≈ 1 % of the step in a
profile. Models without transformers' attention interface, or without grouped heads, keep
``eager``.

Scoring and update passes always share one kernel, so PPO's ratio starts at exactly 1.
The choice is process-wide, set by ``configured(cfg)`` around a run (rft.train.train).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)

EAGER_MAX_TOKENS = 512
GROUPED_EAGER = "rft_grouped_eager"
CHOICES = ("auto", "model", "eager", "sdpa", "flash_attention_2")

# the kernel of each pass kind; None = the model's own choice
_kernels: dict[str, str | None] = {"scoring": None, "generation": None}


def resolve(choice: str, on_cpu: bool, max_tokens: int) -> dict[str, str | None]:
    """{"scoring": kernel, "generation": kernel} for ``hardware.attention=choice``."""
    if choice not in CHOICES:
        from rft.errors import ConfigError

        raise ConfigError(
            f"hardware.attention={choice!r}: choose one of {', '.join(CHOICES)} (auto: eager "
            "for scoring/update passes on CPU at short sequences, the model's own otherwise)."
        )
    if choice == "model":
        return {"scoring": None, "generation": None}
    if choice == "auto":
        eager = on_cpu and max_tokens <= EAGER_MAX_TOKENS
        return {"scoring": "eager" if eager else None, "generation": None}
    return {"scoring": choice, "generation": choice}


def grouped_eager_attention(
    module, query, key, value, attention_mask, scaling: float, dropout: float = 0.0, **kwargs
):
    """transformers' ``eager_attention_forward`` for grouped-query attention, without
    ``repeat_kv`` (module docstring). query (B, H, T, D), key / value (B, KVH, S, D) with query
    head h reading key/value head h // (H / KVH), as repeat_kv lays them out; returns the
    output (B, T, H, D) and the attention weights (B, H, T, S), as eager does."""
    B, H, T, D = query.shape
    KVH, S = key.shape[1], key.shape[2]
    G = H // KVH
    q = query.reshape(B, KVH, G * T, D)  # each key/value head's G query heads, stacked
    w = torch.matmul(q, key.transpose(2, 3)).view(B, KVH, G, T, S) * scaling
    if attention_mask is not None:  # (B, 1 or H, T, ≥ S), additive
        m = attention_mask[..., :S]  # older transformers pass a mask longer than the keys
        w = w + (m.unsqueeze(2) if m.shape[1] == 1 else m.view(B, KVH, G, T, S))
    w = torch.nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(query.dtype)
    w = torch.nn.functional.dropout(w, p=dropout, training=module.training)
    out = torch.matmul(w.view(B, KVH, G * T, S), value)  # (B, KVH, G·T, D)
    return out.view(B, H, T, D).transpose(1, 2).contiguous(), w.view(B, H, T, S)


def _register_grouped_eager() -> None:
    """Make GROUPED_EAGER a name transformers' models accept (with eager's additive mask)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(GROUPED_EAGER, grouped_eager_attention)
    AttentionMaskInterface.register(GROUPED_EAGER, eager_mask)


def has_grouped_heads(model) -> bool:
    """Whether ``model`` dispatches through transformers' attention interface and has fewer
    key/value heads than query heads (where GROUPED_EAGER differs from eager at all)."""
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    return bool(
        getattr(model, "_supports_attention_backend", False)
        and heads
        and kv_heads
        and kv_heads < heads
    )


def use(model, kind: str) -> None:
    """Switch ``model`` (a transformers model) to the kernel of pass ``kind`` if it differs
    (≈ 0.5 ms; nothing when no kernel is set). ``eager`` is run as GROUPED_EAGER on models
    with grouped key/value heads."""
    kernel = _kernels[kind]
    if kernel == "eager" and has_grouped_heads(model):
        _register_grouped_eager()
        kernel = GROUPED_EAGER
    if kernel is None:
        kernel = getattr(model, "_rft_default_attn", None)
        if kernel is None:
            return
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", kernel) == kernel:
        return
    if not hasattr(model, "_rft_default_attn"):
        model._rft_default_attn = config._attn_implementation  # to switch back for generation
    model.set_attn_implementation(kernel)


@contextlib.contextmanager
def configured(cfg) -> Iterator[dict[str, str | None]]:
    """Set the kernels from ``cfg.hardware.attention`` for the duration of a run."""
    from rft.device import on_gpu

    hw = cfg.hardware
    on_cpu = not on_gpu(hw)
    t = cfg.get("task") or {}
    max_tokens = int(t.get("prompt_max_tokens", 0) or 0) + int(t.get("max_new_tokens", 0) or 0)
    kernels = resolve(str(hw.get("attention", "auto")), on_cpu, max_tokens)
    previous = dict(_kernels)
    _kernels.update(kernels)
    if any(kernels.values()):
        log.info("attention kernels: %s", {k: v or "model default" for k, v in kernels.items()})
    try:
        yield kernels
    finally:
        _kernels.update(previous)
