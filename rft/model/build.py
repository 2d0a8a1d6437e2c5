"""The policy and its frozen reference, built from a ``model`` config.

Its own module so that everything that needs a policy (training, extraction, tests) imports it
from here, and nothing has to import the trainer for it.
"""

from __future__ import annotations

import copy

import torch

from rft.config import choice
from rft.model.load import load_model
from rft.model.lora import LoraReference, add_lora, has_adapters, lora_base_dtype
from rft.model.policy import PolicyLM


def load_policy(model_cfg, init_from: str | None = None) -> PolicyLM:
    """The policy ``model_cfg`` names; ``init_from`` (a run or policy folder) overrides its
    ``init_from``."""
    if init_from:
        model_cfg = copy.deepcopy(model_cfg)
        model_cfg.init_from = init_from
    model, tok = load_model(model_cfg)
    return PolicyLM(model, tok, kind=choice(model_cfg.kind))


def load_trained_policy(
    model_cfg, init_from: str | None = None, seed: int = 0, precision: str = "32-true"
) -> PolicyLM:
    """The policy a run trains: ``load_policy``, with LoRA adapters when model.lora.r > 0
    (their init seeded by ``seed``; the frozen base's dtype follows ``precision``,
    hardware.precision: rft.model.lora.lora_base_dtype)."""
    base_dtype = lora_base_dtype(model_cfg.lora, precision)
    return add_lora(load_policy(model_cfg, init_from=init_from), model_cfg.lora, seed, base_dtype)


def reference_policy(policy: PolicyLM, dtype: torch.dtype | None = None) -> PolicyLM:
    """π_ref for ``policy`` at the start of training: a LoRA policy's own weights with the
    adapters off (no copy; rft.model.lora.LoraReference), else a frozen copy (``dtype``: see
    frozen_copy)."""
    if has_adapters(policy.model):
        return LoraReference(policy)
    return frozen_copy(policy, dtype)


def frozen_copy(policy: PolicyLM, dtype: torch.dtype | None = None) -> PolicyLM:
    """The frozen reference π_ref. With bf16 autocast its matmuls run in bf16 anyway, so it is
    stored in bf16 (``dtype``): half the memory, no extra rounding in those matmuls."""
    ref = copy.deepcopy(policy)
    ref.requires_grad_(False)
    if dtype is not None:
        ref.to(dtype)
    return ref.eval()
