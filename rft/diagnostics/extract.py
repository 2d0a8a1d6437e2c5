"""Extraction (Razin et al. §4, docs/algorithms.md §5): K samples for each of N prompts, scored.

    python run.py mode=extract task=imdb model=smollm2_135m diag.n_prompts=100 diag.k_samples=10
    python run.py mode=extract model.init_from=<SFT run>      # the same after an SFT warm start

Writes into the run folder: rewards.npy ([N, K]), samples.jsonl (prompt, completions, rewards,
mean, std), prompt_indices.json (the split, its size and the split index of each row: the
std-aware sampler seeds its estimates from it, ``alg.std_sampler.init_from``), summary.json,
reward_std_vs_mean.png, and metrics.json with ``diag/*`` keys (read by ``rft report``).
Sampling uses the rollout decoding (``alg.generation``: temperature, top-k), as the RL
algorithm would see it. Generation is batched: ``diag.batch_prompts`` prompts × K samples.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rft.device import hardware_device
from rft.diagnostics.reward_stats import save_extraction
from rft.errors import ConfigError, instantiate
from rft.io import write_json_atomic
from rft.model.build import load_policy
from rft.reward import build_reward
from rft.rng import extract_rng, extract_seed
from rft.rollout.backend import with_rollout_backend
from rft.rollout.prompts import encode_prompts
from rft.rollout.std_sampler import EXTRACT_INDEX_FILE

log = logging.getLogger("rft")


@torch.no_grad()
def sample_reward_matrix(
    policy,
    reward_fn,
    examples,
    *,
    K: int,
    batch_prompts: int,
    prompt_max_tokens: int,
    max_new_tokens: int,
    min_new_tokens: int,
    generation,
    prompt_truncation: str = "left",
) -> tuple[np.ndarray, list[list[str]]]:
    """(R [N, K], texts [N][K]) for the given examples; the reward gets each prompt's
    ``reward_references``, prompts are cut at ``prompt_truncation`` (the task's)."""
    device = next(policy.parameters()).device
    tok = policy.tokenizer
    R, texts = [], []
    for s in tqdm(range(0, len(examples), batch_prompts), desc="extract", unit="batch"):
        batch = examples[s : s + batch_prompts]
        prompts = [e.prompt for e in batch for _ in range(K)]
        ids, mask = encode_prompts(tok, prompts, prompt_max_tokens, device, prompt_truncation)
        comp = policy.generate(ids, mask, max_new_tokens, min_new_tokens, generation)
        out = tok.batch_decode(comp.ids, skip_special_tokens=True)
        refs = [e.reward_references for e in batch for _ in range(K)]
        scores = reward_fn(prompts, out, refs)
        R.append(scores.view(len(batch), K).numpy())
        texts += [out[i * K : (i + 1) * K] for i in range(len(batch))]
    return np.concatenate(R), texts


def extract(cfg, run_dir: Path) -> dict[str, float]:
    d = cfg.diag
    if d.k_samples < 2:
        raise ConfigError(
            f"diag.k_samples={d.k_samples}: a reward std needs at least 2 samples per prompt."
        )
    if d.split not in ("train", "val", "test"):
        raise ConfigError(f"diag.split={d.split!r}: choose train, val or test.")
    task = instantiate(cfg.task, _convert_="none")
    data = task.split(d.split)
    n = len(data) if d.n_prompts < 0 else min(d.n_prompts, len(data))
    idx = extract_rng(cfg.seed).permutation(len(data))[:n]
    rows = sorted(int(i) for i in idx)  # row r of rewards.npy is example rows[r] of the split
    examples = [data[i] for i in rows]
    policy = load_policy(cfg.model)
    policy = with_rollout_backend(policy, cfg)  # rollout.backend=vllm samples the policy
    reward_fn = build_reward(cfg.reward)
    torch.manual_seed(extract_seed(cfg.seed))
    # the device and precision training uses (bf16 autocast where hardware.precision says so)
    with hardware_device(cfg, policy):
        R, texts = sample_reward_matrix(
            policy,
            reward_fn,
            examples,
            K=d.k_samples,
            batch_prompts=d.batch_prompts,
            prompt_max_tokens=task.prompt_max_tokens,
            prompt_truncation=task.prompt_truncation,
            max_new_tokens=task.max_new_tokens,
            min_new_tokens=task.min_new_tokens,
            generation=cfg.alg.generation,
        )
    summary = save_extraction(run_dir, [e.prompt for e in examples], texts, R, d.std_threshold)
    write_json_atomic(
        run_dir / EXTRACT_INDEX_FILE,
        {"split": d.split, "split_size": len(data), "indices": rows},
        indent=None,
    )
    metrics = {
        "diag/" + k.replace("reward/mean", "reward_mean").split("/")[-1]: float(v)
        for k, v in summary.items()
        if isinstance(v, (int, float))
    }
    write_json_atomic(run_dir / "metrics.json", metrics)
    log.info("Extraction: %s", json.dumps({k: round(v, 4) for k, v in metrics.items()}))
    return metrics
