"""Offline RL data: fixed (prompt, continuation, reward) triples for the A-LoL family.

- task=imdb: every train review (both sentiments) gives one pair: prompt = its first half,
  continuation = " " + its second half cut to ``task.max_new_tokens`` tokens (the space makes
  prompt + continuation the review's own text, as a policy's sampled tokens would be).
- task=jsonl (any task): the train rows that have a reference completion; the row's reward
  (``task.reward_key``) when the file carries one, else the configured reward's score.
- task=commongen: one row per (concept set, reference) (``Task.offline_examples``), scored
  against its concept set's references (``Example.reward_references``: all of them, or the
  others with ``task.pair_references=others``), not against itself alone.

- ``alg.data_path`` (any task): the (prompt, completion) rows of a JSONL/CSV file instead of the
  task's train split, e.g. the preferred completions of a DPO run's ``preference_pairs.jsonl``
  (``alg.data_completion_keys=[chosen]``), so the A-LoL family and DPO learn from the same
  samples; scored by the configured reward. The task still gives the val/test prompts.

A pair's reward gets the pair's ``reward_references``: the task's grouped references where it
has them, else the pair's own continuation (so a metric reward compares it with itself).

Scores computed here are shared through the run's result store (``store=``, rft.store), under
``offline_rewards_key`` (the reward's identity, the exact pair texts and the run environment):
a rerun, a resume or another job of a sweep reads them back instead of scoring again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rft.errors import ConfigError, DataError
from rft.progress import batch_starts
from rft.rng import offline_pairs_rng
from rft.task.base import Example, Task
from rft.task.jsonl import read_rows

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- pairs
def file_rows(path: str | Path, prompt_key: str, completion_keys: list[str]) -> list[Example]:
    """(prompt, completion) rows of a JSONL/CSV file (``alg.data_path``): one per non-empty
    completion column of each line, in file order. A DPO run's ``preference_pairs.jsonl`` with
    completion_keys=[chosen] gives its preferred completions."""
    keys = list(completion_keys)
    if not keys:
        raise ConfigError(
            "alg.data_completion_keys=[]: name at least one completion column, e.g. [completion]."
        )
    out = []
    for line, row in read_rows(path, key="alg.data_path"):
        for k in [prompt_key, *keys]:
            if k not in row:
                key = "alg.data_prompt_key" if k == prompt_key else "alg.data_completion_keys"
                raise DataError(
                    f"{path}:{line}: no {k!r} field (fields: {sorted(row)}). Name the column "
                    f"with {key}=<field>."
                )
            if not isinstance(row[k], str):
                raise DataError(
                    f"{path}:{line}: {k!r} must be a string, got {type(row[k]).__name__}."
                )
        for k in keys:
            if row[k].strip():
                out.append(Example(prompt=row[prompt_key], reference=row[k], meta={"line": line}))
    if not out:
        raise DataError(f"{path}: no row has a non-empty {keys} completion.")
    return out


def build_pairs(
    task: Task,
    tokenizer,
    max_new_tokens: int,
    n_pairs: int = -1,
    seed: int = 0,
    rows: list[Example] | None = None,
) -> list[Example]:
    """(prompt, continuation) pairs from the task's offline rows (``Task.offline_examples``:
    its train split, CommonGen's (concept set, reference) rows) or from ``rows`` (a data file's,
    used as they are), continuation ≤ max_new_tokens tokens; each keeps its row's grouped
    references. ``n_pairs`` > 0 keeps a seeded subset (the first n of a permutation, in data
    order)."""
    from_file = rows is not None
    rows = task.offline_examples() if rows is None else rows
    source = [e for e in rows if e.reference]
    if not source:
        raise DataError(
            f"task={task.name}: none of the {len(rows)} train examples has a reference "
            "completion, so there are no (prompt, completion) pairs for offline RL. For "
            "task=jsonl add a completion column and name it with task.reference_key=<field>."
        )
    if len(source) < len(rows):
        log.warning(
            "offline data: %d of %d train examples have no reference completion; skipped",
            len(rows) - len(source),
            len(rows),
        )
    if 0 < n_pairs < len(source):
        keep = np.sort(offline_pairs_rng(seed).permutation(len(source))[:n_pairs])
        source = [source[i] for i in keep]
    # IMDB's review halves were split on whitespace; a file's completions are used as they are
    joined = task.name == "imdb" and not from_file
    texts = [
        (" " + e.reference) if joined and not e.reference[:1].isspace() else e.reference
        for e in source
    ]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    conts = [
        tokenizer.decode(x[:max_new_tokens]) if len(x) > max_new_tokens else t
        for x, t in zip(ids, texts)
    ]
    return [
        Example(
            prompt=e.prompt,
            reference=c,
            reward=e.reward,
            meta=dict(e.meta),
            references=list(e.references),
        )
        for e, c in zip(source, conts)
    ]


def given_rewards(pairs: list[Example], where: str) -> torch.Tensor | None:
    """The rewards the data carries (None if it carries none); errors name what is wrong."""
    have = [e.reward is not None for e in pairs]
    if not any(have):
        return None
    if not all(have):
        raise DataError(
            f"{where}: {sum(have)} of {len(pairs)} train pairs carry a reward and "
            f"{len(pairs) - sum(have)} do not. Fill the reward of every row, or drop the column "
            "(task.reward_key=null) to score every pair with the configured reward."
        )
    rewards = torch.tensor([float(e.reward) for e in pairs], dtype=torch.float32)
    bad = (~torch.isfinite(rewards)).nonzero().flatten().tolist()
    if bad:
        raise DataError(
            f"{where}: {len(bad)} of {len(pairs)} rewards are NaN/inf (first: pair {bad[0]}, "
            f"meta {pairs[bad[0]].meta}). Fix or drop those rows, or set task.reward_key=null to "
            "score with the configured reward."
        )
    return rewards


def score_pairs(
    pairs: list[Example], reward_fn: Callable, batch_size: int = 32, *, store=None, cfg=None
) -> torch.Tensor:
    """R(x, y) for each pair, (N,) float32; given a result store (rft.store) and the run's
    ``cfg``, read from it or published to it under ``offline_rewards_key(cfg, pairs)``."""
    if store is None:
        return _score(pairs, reward_fn, batch_size)
    from rft.store import cached_tensor
    from rft.store.keys import offline_rewards_key

    rewards, _ = cached_tensor(
        store,
        offline_rewards_key(cfg, pairs),
        lambda: _score(pairs, reward_fn, batch_size),
        what="offline_rewards",
    )
    return rewards


def _score(pairs: list[Example], reward_fn: Callable, batch_size: int) -> torch.Tensor:
    log.info("offline data: scoring %d pairs with the configured reward", len(pairs))
    scores = []
    for s in batch_starts(len(pairs), batch_size, "scoring pairs"):
        chunk = pairs[s : s + batch_size]
        conts = [e.reference for e in chunk]
        refs = [e.reward_references for e in chunk]
        scores.append(
            torch.as_tensor(reward_fn([e.prompt for e in chunk], conts, refs), dtype=torch.float32)
        )
    return torch.cat(scores)


def load_offline_data(
    task: Task,
    tokenizer,
    reward_fn: Callable,
    *,
    n_pairs: int,
    seed: int,
    batch_size: int = 32,
    data: dict | None = None,
    store=None,
    cfg=None,
) -> tuple[list[Example], torch.Tensor]:
    """The offline pairs and their rewards (N,): carried by the data, else scored (cached).
    ``data`` = {path, prompt_key, completion_keys} reads the rows from a file (file_rows).
    ``store``, ``cfg``: the run's result store and config (score_pairs caches there)."""
    rows = file_rows(data["path"], data["prompt_key"], data["completion_keys"]) if data else None
    pairs = build_pairs(task, tokenizer, task.max_new_tokens, n_pairs, seed, rows=rows)
    if data:
        where = f"alg.data_path={data['path']}"
    else:
        where = f"task={task.name}" + (f" ({task.cfg.path})" if "path" in task.cfg else "")
    rewards = given_rewards(pairs, where)
    if rewards is None:
        rewards = score_pairs(pairs, reward_fn, batch_size, store=store, cfg=cfg)
    if len(rewards) and not math.isfinite(float(rewards.sum())):  # a custom scorer slipped through
        raise DataError(f"{where}: the offline rewards contain NaN/inf; check the reward function.")
    return pairs, rewards
