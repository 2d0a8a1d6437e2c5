"""The keys of rft's reusable results: which named components make each one.

Every key carries the run environment (``environment_parts``):

    precision   hardware.precision as resolved for this machine (32-true, bf16-mixed, ...)
    threads     torch.get_num_threads(): CPU reductions split by thread round differently
    device      cpu + kernel ISA (AVX2 / AVX512), or the GPU's name and compute capability
    world_size  DDP processes: each rank evaluates its share with seed + rank
    attention   hardware.attention (eager and SDPA kernels round differently)
    rollout     rollout.backend (and the vLLM engine's settings when it is vllm)
    versions    torch, transformers, tokenizers (+ peft with LoRA, vllm with its backend)
    code        rft's version and a hash of its source (store.match_code)

and then its own components:

``evaluation_key`` (one evaluation of a policy, rft.eval.evaluate.evaluate_split)
    policy      weights, architecture, tokenizer, kind of the evaluated policy
    reference   the same of π_ref when perplexity is on (eval.perplexity), else null
    prompts     the exact texts of the split's prompts and references, and their number
    task        prompt_max_tokens, prompt_truncation, max_new_tokens, min_new_tokens, metrics
    eval        split, K (samples per prompt), seed, batch_size, generation, perplexity,
                n_samples_table
    reward      the reward's config, code outside rft and local files (fingerprint.reward_parts)

``warm_start_key`` (the SFT warm-start phase's policy)
    policy      the initial policy (LoRA adapters included, their init is seeded)
    data        the task's SFT pairs (all of them: data_frac picks a seeded subset)
    sft         alg.warm_start + the algorithm's weight decay (rft.alg.sft.SFTSettings)
    task        prompt / continuation lengths and truncation side (the SFT targets' encoding)
    model       the resolved model block (LoRA, gradient checkpointing, dtype, ...)
    seed        the training seed (data subset, batch order, dropout)

``offline_rewards_key`` (the configured reward's scores of offline pairs, rft.task.offline)
    reward      the reward's identity (as in evaluation_key)
    pairs       the exact texts of the pairs (prompt, continuation, references), in order

``result_key(kind, cfg, **parts)`` builds any other key (π_ref log-probs, offline rewards,
V_ref) from the environment and the parts its caller names.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from rft.config import choice
from rft.store.fingerprint import (
    code_identity,
    device_identity,
    examples_fingerprint,
    library_versions,
    policy_parts,
    reward_parts,
)
from rft.store.key import Key, jsonable

# eval.* knobs that change when or whether an evaluation runs, not its numbers
EVAL_KNOBS_NOT_IN_KEY = ("before_training", "samples_per_prompt", "val_samples_per_prompt")


def resolved_precision(cfg) -> str:
    hw = cfg.hardware
    if hw.precision != "auto":
        return str(hw.precision)
    from rft.device import resolve_precision

    return resolve_precision(hw)


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def environment_parts(cfg, device: torch.device | str | None = None) -> dict[str, Any]:
    """The components every key shares (module docstring); ``device``: where the result is
    computed (default: the CPU)."""
    extra = []
    lora = cfg.model.get("lora") if hasattr(cfg, "model") else None
    if lora is not None and lora.get("r", 0):
        extra.append("peft")
    backend = choice(cfg.rollout.backend) if "rollout" in cfg else "hf"
    if backend == "vllm":
        extra.append("vllm")
    match = choice(cfg.store.match_code) if "store" in cfg else "source"
    return {
        "precision": resolved_precision(cfg),
        "threads": torch.get_num_threads(),
        "device": device_identity(device),
        "world_size": world_size(),
        "attention": choice(cfg.hardware.get("attention", "model")),
        "rollout": jsonable(cfg.rollout) if backend == "vllm" else backend,
        "versions": library_versions(*extra),
        "code": dict(code_identity(match)),
    }


def result_key(kind: str, cfg, *, device=None, **parts) -> Key:
    """A key of ``kind`` made of ``parts`` and the run environment."""
    clash = set(parts) & {"precision", "threads", "device", "world_size", "versions", "code"}
    if clash:
        raise ValueError(f"result_key: {sorted(clash)} are environment components, set by it")
    return Key(kind, {**jsonable(parts), **environment_parts(cfg, device)})


def task_decoding(task) -> dict[str, Any]:
    """How the task turns texts into model inputs and completions."""
    metrics = list(task.cfg.get("metrics") or []) if hasattr(task.cfg, "get") else []
    return {
        "prompt_max_tokens": task.prompt_max_tokens,
        "prompt_truncation": choice(getattr(task, "prompt_truncation", "left")),
        "max_new_tokens": task.max_new_tokens,
        "min_new_tokens": task.min_new_tokens,
        "metrics": metrics,
    }


def _device_of(module) -> torch.device:
    try:
        return next(module.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def evaluation_key(cfg, task, policy, ref, split: str) -> Key:
    """The key of ``evaluate_split(cfg, task, policy, ref, reward_fn, split)``'s result."""
    ev = cfg.eval
    k = ev.samples_per_prompt if split == "test" else ev.val_samples_per_prompt
    settings = {n: v for n, v in jsonable(ev).items() if n not in EVAL_KNOBS_NOT_IN_KEY}
    return result_key(
        "evaluation",
        cfg,
        device=_device_of(policy),
        policy=policy_parts(policy),
        reference=policy_parts(ref) if ref is not None and ev.perplexity else None,
        prompts=examples_fingerprint(task.eval_examples(split)),
        task=task_decoding(task),
        eval={"split": split, "samples_per_prompt": k, **settings},
        reward=reward_parts(cfg.reward),
    )


def warm_start_key(cfg, task, policy, settings) -> Key:
    """The key of the SFT warm start of ``policy`` (the initial policy, as loaded) with
    ``settings`` (rft.alg.sft.SFTSettings.for_warm_start(cfg.alg)), on the task's SFT pairs."""
    model = {n: v for n, v in jsonable(cfg.model).items() if n != "init_from"}
    return result_key(
        "sft_warm_start",
        cfg,
        policy=policy_parts(policy),
        data=examples_fingerprint(task.sft_pairs()),
        sft=dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings,
        task=task_decoding(task),
        model=model,
        seed=cfg.seed,
    )


def offline_rewards_key(cfg, pairs) -> Key:
    """The key of the reward scores of offline ``pairs`` (rft.task.offline.score_pairs)."""
    return result_key(
        "offline_rewards", cfg, reward=reward_parts(cfg.reward), pairs=examples_fingerprint(pairs)
    )
