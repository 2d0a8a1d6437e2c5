"""``rollout.backend``: which generator samples the policy's completions (rft/model/generate.py).

- ``hf`` (default): the policy keeps the generator it was built with (transformers' generate,
  on merged weights for a LoRA policy).
- ``vllm``: a vLLM engine in the training process (rft/rollout/vllm_engine.py) samples every
  ``policy.generate`` call it supports (PPO and group rollouts, guided restarts, evaluation,
  extraction, the gradient probe), with the same return layout plus the sampler's log-probs;
  the policy's own generator runs the rest. Other models (π_ref, a guide, a separate value
  model) keep generating with transformers. vLLM is an optional install; choosing it without
  vLLM fails in ``check_rollout_config`` (preflight, before any model loads) with the install
  command.

The backend is chosen once, where the policy is built (``with_rollout_backend``); nothing is
attached to a policy afterwards. Whether an algorithm can use the sampler's log-probs (TIS) is
the algorithm's to say (``supports_tis`` on its class, checked with its config).
"""

from __future__ import annotations

from omegaconf import DictConfig

from rft.config import choice
from rft.errors import ConfigError
from rft.model.policy import PolicyLM


def backend_of(cfg: DictConfig) -> str:
    return choice(cfg.rollout.backend) if "rollout" in cfg else "hf"


def check_rollout_config(cfg: DictConfig) -> None:
    """Preflight checks of rollout.*; each names the key and the fix."""
    if backend_of(cfg) != "vllm":
        return
    if choice(cfg.model.kind) == "seq2seq":
        raise ConfigError(
            "rollout.backend=vllm with model.kind=seq2seq: vLLM serves decoder-only (causal)"
            " models. Use rollout.backend=hf for T5-style policies."
        )
    hw = cfg.hardware
    if hw.devices != 1 or hw.num_nodes != 1:
        raise ConfigError(
            f"rollout.backend=vllm with hardware.devices={hw.devices},"
            f" hardware.num_nodes={hw.num_nodes}: the colocated engine runs in one training"
            " process. Use one device (hardware.devices=1) or rollout.backend=hf."
        )
    from rft.rollout.vllm_engine import import_vllm

    import_vllm()


def engine_dtype(cfg: DictConfig, policy: PolicyLM) -> str:
    """rollout.vllm.dtype, or the numerics the trainer runs the policy in."""
    if cfg.rollout.vllm.dtype:
        return str(cfg.rollout.vllm.dtype)
    precision = str(cfg.hardware.precision)
    if precision.startswith("bf16"):
        return "bfloat16"
    if precision.startswith("16"):
        return "float16"
    return str(next(policy.parameters()).dtype).removeprefix("torch.")


def with_rollout_backend(policy: PolicyLM | None, cfg: DictConfig) -> PolicyLM | None:
    """``policy`` sampled by the configured backend: itself for hf; for vllm the same weights
    with a ``VLLMGenerator`` (its engine built at the first generation, the policy's own
    generator as fallback). Call after every copy of the policy is made (π_ref)."""
    if policy is None or backend_of(cfg) != "vllm":
        return policy
    from rft.rollout.vllm_engine import VLLMEngine, VLLMGenerator

    v = cfg.rollout.vllm
    max_len = v.max_model_len or cfg.task.prompt_max_tokens + cfg.task.max_new_tokens
    engine = VLLMEngine(
        v, policy, max_model_len=int(max_len), dtype=engine_dtype(cfg, policy), seed=cfg.seed
    )
    return policy.with_generator(VLLMGenerator(engine, policy.generator))
