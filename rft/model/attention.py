"""Which attention kernel each kind of forward pass runs (``hardware.attention``).

transformers picks SDPA for every pass. On CPU its flash-attention backward is slow at RL's
short sequences: measured here (SmolLM2-135M, a PPO minibatch of 8 × 112 tokens, bf16
autocast, 1 thread) it took 1.2 s of an 8.5 s update, and the update with the eager (matmul +
softmax) kernel took 7.3 s; a forward-only scoring pass costs the same either way, and KV-cached
generation is ≈ 10 % faster with SDPA. So ``auto`` runs scoring and update passes (``PolicyLM.
forward``) with eager attention on CPU when prompt + completion fit in ``EAGER_MAX_TOKENS`` (the
eager kernel keeps each layer's (T × T) weights for backward, which grows with T²), and leaves
generation and every GPU pass to the model's own choice (SDPA / flash attention).

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


def use(model, kind: str) -> None:
    """Switch ``model`` (a transformers model) to the kernel of pass ``kind`` if it differs
    (≈ 0.5 ms; nothing when no kernel is set)."""
    kernel = _kernels[kind]
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
    hw = cfg.hardware
    accel = str(hw.get("accelerator", "cpu"))
    on_cpu = accel == "cpu" or (accel == "auto" and not torch.cuda.is_available())
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
