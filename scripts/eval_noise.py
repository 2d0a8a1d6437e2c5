"""How noisy is the test evaluation? Sample K completions per test prompt from the initial
policy of a composed config and split the reward variance into its between-prompt and
within-prompt parts, to choose ``eval.samples_per_prompt`` (docs/algorithms.md §13).

    python scripts/eval_noise.py task=imdb eval.samples_per_prompt=8 [any run.py override]

With n prompts, K samples each, σ_b² the variance of the prompts' true mean rewards and σ_w²
the variance of one completion's reward around its prompt's mean, the standard error of the
test reward is sqrt((σ_b² + σ_w² / K) / n). σ_w² is estimated by the mean within-prompt
variance (ddof = 1), σ_b² by var(per-prompt means) - σ_w² / K. Prints the predicted SE for
K = 1, 2, 4, ... and the seconds one evaluation took.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

import rft  # noqa: F401  (registers the schemas)
from rft.errors import instantiate
from rft.eval.evaluate import evaluate_policy
from rft.reward import build_reward
from rft.train import frozen_copy, load_policy, setup_hardware

CONF = Path(__file__).resolve().parents[1] / "conf"


def main(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    setup_hardware(cfg)
    task = instantiate(cfg.task, _convert_="none")
    policy = load_policy(cfg.model)
    ref = frozen_copy(policy)
    reward_fn = build_reward(cfg.reward)
    k = cfg.eval.samples_per_prompt
    examples = task.eval_examples("test")
    autocast = str(cfg.hardware.precision).startswith("bf16")
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        res = evaluate_policy(
            policy,
            ref,
            reward_fn,
            examples,
            prompt_max_tokens=task.prompt_max_tokens,
            max_new_tokens=task.max_new_tokens,
            min_new_tokens=task.min_new_tokens,
            generation=cfg.eval.generation,
            batch_size=cfg.eval.batch_size,
            seed=cfg.eval.seed,
            samples_per_prompt=k,
            progress=True,
        )
    secs = time.perf_counter() - t0
    r = np.asarray(res.per_prompt["reward"], dtype=np.float64)  # [n, K]
    n = r.shape[0]
    var_w = r.var(axis=1, ddof=1).mean() if k > 1 else float("nan")
    var_b = r.mean(axis=1).var(ddof=1) - (var_w / k if k > 1 else 0.0)
    out = {
        "n_prompts": n,
        "samples_per_prompt": k,
        "reward_mean": res.metrics["reward_mean"],
        "reward_mean_se": res.metrics["reward_mean_se"],
        "sigma_between": float(np.sqrt(max(var_b, 0.0))),
        "sigma_within": float(np.sqrt(var_w)),
        "seconds": secs,
        "predicted_se": {
            kk: float(np.sqrt((max(var_b, 0.0) + var_w / kk) / n)) for kk in (1, 2, 4, 8, 16, 32)
        }
        if k > 1
        else {},
    }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
