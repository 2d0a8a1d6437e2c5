"""``mode=evaluate``: the fixed test evaluation of a policy, without training.

    python run.py mode=evaluate task=imdb                                  # the initial policy
    python run.py mode=evaluate task=imdb model.init_from=<a run folder>   # a trained policy

It runs exactly what a training run's ``test_init`` evaluation runs (the same prompts, sampling
seed ``eval.seed``, ``eval.samples_per_prompt`` completions per prompt, perplexity under the
policy itself as the reference, the configured device and precision), so its numbers equal a
training run's ``test_init/*`` for the same policy, and a policy trained before the fixed
evaluation existed can be re-measured with it. Writes ``metrics.json`` (``test/*``, each mean
with ``_se``), ``eval/test_00000.json`` (per-prompt rewards, read by ``rft report`` for paired
differences) and ``samples.jsonl``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from rft.device import hardware_device
from rft.errors import instantiate
from rft.eval.evaluate import evaluate_split, save_evaluation
from rft.io import write_json_atomic
from rft.model.build import frozen_copy, load_policy
from rft.reward import build_reward
from rft.rollout.backend import with_rollout_backend
from rft.store.cached import cached_evaluation, open_store, reuse_metrics
from rft.store.keys import evaluation_key

log = logging.getLogger("rft")


def evaluate_only(cfg, run_dir: Path) -> dict[str, float]:
    task = instantiate(cfg.task, _convert_="none")
    reward_fn = build_reward(cfg.reward)
    policy = load_policy(cfg.model)
    bf16 = str(cfg.hardware.precision).startswith("bf16")
    # as in training: the reference is a frozen copy of the initial policy, stored in bf16 under
    # bf16 autocast
    ref = frozen_copy(policy, torch.bfloat16 if bf16 else None)
    policy = with_rollout_backend(policy, cfg)  # rollout.backend=vllm samples the policy
    policy.eval()
    store = open_store(cfg, run_dir)  # a training run's test_init of this policy is the same
    with hardware_device(cfg, torch.nn.ModuleList([policy, ref])):
        key = evaluation_key(cfg, task, policy, ref, "test") if store is not None else None
        (res, setup), _ = cached_evaluation(
            store,
            key,
            lambda: evaluate_split(cfg, task, policy, ref, reward_fn, "test"),
            what="test",
        )
    metrics = {f"test/{k}": v for k, v in res.metrics.items()}
    save_evaluation(run_dir, "test", 0, metrics, setup, res)
    reused = reuse_metrics(store.reused) if store is not None else {}
    write_json_atomic(run_dir / "metrics.json", {**metrics, **reused}, indent=1, sort_keys=True)
    log.info(
        "Evaluated: test/reward_mean=%.4f ± %.4f (%d prompts × %d) | run folder: %s",
        metrics["test/reward_mean"],
        metrics["test/reward_mean_se"],
        metrics["test/n_prompts"],
        metrics["test/samples_per_prompt"],
        run_dir,
    )
    return metrics
