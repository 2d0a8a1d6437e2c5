"""Helpers for the A-LoL family tests: a small JSONL task with an optional reward column and the
overrides (on tests.conftest.tiny_overrides) that keep one train(cfg) to a few seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import LENGTH_REWARD, OFFLINE_SMALL, WORDS, tiny_overrides


def write_pairs(
    path: Path, n: int = 24, rewards=None, seed: int = 0, reward_key: str = "reward"
) -> Path:
    """n rows of prompt + reference; ``rewards``: None (no column), a float, or a callable(i)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            row = {
                "prompt": f"Review {i}: "
                + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))),
                "reference": " ".join(rng.choice(WORDS) for _ in range(6)),
            }
            if rewards is not None:
                row[reward_key] = rewards(i) if callable(rewards) else rewards
            f.write(json.dumps(row) + "\n")
    return path


def alol_overrides(data: Path, alg: str, *extra: str) -> list[str]:
    """A tiny offline run: 2 optimizer steps on a JSONL task, 1 eval prompt, a length reward."""
    return tiny_overrides(
        data,
        "task.max_new_tokens=4",
        "task.min_new_tokens=4",
        "task.val_fraction=0.25",
        "task.test_fraction=0.1",
        "task.n_eval_prompts=1",
        "task.n_test_prompts=1",
        "hardware.torch_threads=1",
        "eval.batch_size=2",
        "eval.n_samples_table=1",
        "eval.before_training=false",
        *LENGTH_REWARD,
        f"alg={alg}",
        *OFFLINE_SMALL,
        *extra,
    )


# ------------------------------------------------------------------------------ A2C, TRPO
def actor_critic_module(cls, alg: str, tmp_path: Path, *extra: str):
    """A module of ``cls`` (rft.alg.ppo.ActorCritic family) on the tiny model, outside a
    trainer: its optimizer is built here, and its backward is a plain ``loss.backward()``."""
    from rft.model.build import frozen_copy, load_policy
    from tests.conftest import compose_cfg

    cfg = compose_cfg(*tiny_overrides(tmp_path / "unused.jsonl", f"alg={alg}", *extra))
    policy = load_policy(cfg.model)
    module = cls(cfg, None, policy, frozen_copy(policy), None, tmp_path)
    opt = module.configure_optimizers()
    module.optimizers = lambda: opt
    module.manual_backward = lambda loss: loss.backward()
    return module


def fixed_rollout(module, n: int = 6, prompt_len: int = 4, length: int = 5, seed: int = 0):
    """A scored rollout of random tokens (ragged completions, one left-padded prompt) with
    random scores, its KL reward and GAE filled by the module, as its training_step would."""
    import torch

    g = torch.Generator().manual_seed(seed)
    vocab = module.policy.model.config.vocab_size
    prompt_ids = torch.randint(0, vocab, (n, prompt_len), generator=g)
    prompt_mask = torch.ones(n, prompt_len, dtype=torch.long)
    prompt_mask[0, :2] = 0
    ids = torch.randint(0, vocab, (n, length), generator=g)
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    mask = (torch.arange(length)[None] < lengths[:, None]).long()
    scores = torch.rand(n, generator=g)
    r = module.rollout_cls(prompt_ids, prompt_mask, ids, mask, scores)
    r.policy_mask = r.value_mask = r.mask
    module.score_rollout(r)
    module.compute_advantages(r)
    return r
