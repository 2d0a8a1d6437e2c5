"""What every step-based family shares (SFT, the A-LoL family, DPO, reward models): a budget of
optimizer steps over fixed items, batches that are a pure function of (seed, step), one
Lightning epoch = a block of ``steps_per_block`` steps, the step counter, the evaluation
cadence and the step-0 statistics row.

A subclass sets ``self.items`` (what a batch indexes) and calls ``set_budget`` in ``__init__``
or ``prepare()``; its ``training_step`` computes a loss, steps the optimizer and ends with
``finish_step(stats, step)``. Anything it puts in ``self.stats`` before training is recorded
once, at step 0 (a resumed run does not record it again).

Batches: step s reads positions [s·B, (s+1)·B) of a concatenation of per-data-epoch seeded
permutations (``StepBatchSampler``), or, given sampling probabilities, B seeded draws with
replacement (A-LoL's good-priority sampling). A run resumed from a block-end checkpoint
therefore continues with exactly the batches the uninterrupted run would have seen.

Schema: rft.alg.schemas.StepConfig.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from torch.utils.data import DataLoader, Sampler

from rft.alg.base import RFTModule
from rft.errors import ConfigError
from rft.rng import good_priority_rng, rank_seed, step_batch_rng

STEPS_PER_BLOCK = 10
"""Optimizer steps per Lightning epoch (a checkpoint can be written at each block's end)."""


class StepBatchSampler(Sampler):
    """Yields the batches of one block of optimizer steps (see the module docstring).

    The block is the Lightning epoch, from ``epoch_fn`` (the module passes
    ``lambda: self.current_epoch``) when an epoch's iterator starts, else from ``set_epoch``.
    Lightning calls ``set_epoch`` on a loader's sampler, never on its batch sampler: without
    ``epoch_fn`` every block would replay the first block's batches. With ``probs`` a batch is
    ``batch_size`` draws with replacement, p = probs (normalised), from the (seed, step)
    stream."""

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        steps_per_block: int,
        total_steps: int,
        epoch_fn: Callable[[], int] | None = None,
        probs=None,
    ):
        self.n, self.bs, self.seed = n_items, batch_size, seed
        self.spb, self.total = steps_per_block, total_steps
        self.epoch_fn = epoch_fn
        self.block = 0
        self.probs = None if probs is None else np.asarray(probs, dtype=np.float64) / np.sum(probs)

    def set_epoch(self, epoch: int) -> None:
        self.block = epoch

    def _sync_block(self) -> None:
        if self.epoch_fn is not None:
            self.block = int(self.epoch_fn())

    def __len__(self) -> int:
        self._sync_block()
        return max(0, min(self.spb, self.total - self.block * self.spb))

    def batch_for_step(self, step: int) -> list[int]:
        if self.probs is not None:
            rng = good_priority_rng(self.seed, step)
            return rng.choice(self.n, size=self.bs, replace=True, p=self.probs).tolist()
        pos = np.arange(step * self.bs, (step + 1) * self.bs)
        epochs, offsets = pos // self.n, pos % self.n
        perms = {e: step_batch_rng(self.seed, e).permutation(self.n) for e in np.unique(epochs)}
        return [int(perms[e][o]) for e, o in zip(epochs, offsets)]

    def __iter__(self):
        self._sync_block()
        start = self.block * self.spb
        for s in range(start, start + len(self)):
            yield self.batch_for_step(s)


def base_steps(n_items: int, batch_size: int, max_steps: int, dataset_epochs: int) -> int:
    """The step budget: ``max_steps``, or ``dataset_epochs`` passes over the items when
    max_steps < 0."""
    if max_steps is not None and max_steps > 0:
        return int(max_steps)
    return int(dataset_epochs) * math.ceil(n_items / batch_size)


class StepModule(RFTModule):
    """Base of the step-based families (module docstring)."""

    items: list = []
    """What a batch indexes (pairs, labelled texts, ...); set by the subclass."""
    sampling_probs: np.ndarray | None = None
    """Weighted draws with replacement (A-LoL's good-priority sampling); None: permutations."""

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        a = cfg.alg
        if a.batch_size < 1:
            raise ConfigError(f"alg.batch_size={a.batch_size}: must be ≥ 1.")
        if a.max_steps == 0 or (a.max_steps < 0 and a.dataset_epochs < 1):
            raise ConfigError(
                f"alg.max_steps={a.max_steps}, alg.dataset_epochs={a.dataset_epochs}: give "
                "max_steps > 0, or -1 with dataset_epochs ≥ 1."
            )
        if a.eval_every < 0:
            raise ConfigError(f"alg.eval_every={a.eval_every}: must be ≥ 0 (0 = never).")

    def __init__(self, cfg, task, policy, ref, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        self.automatic_optimization = False
        self.stats: dict[str, float] = {}
        self.eval_every = 0
        self.batch_size = cfg.alg.get("batch_size")  # items per step (SFT's warm start: its own)

    def set_budget(self, max_steps: int, eval_every: int) -> None:
        """``max_steps`` optimizer steps in blocks of up to STEPS_PER_BLOCK; a val evaluation
        every ``eval_every`` steps (0: none)."""
        self.max_steps = int(max_steps)
        self.eval_every = int(eval_every)
        self.steps_per_block = max(1, min(self.max_steps, STEPS_PER_BLOCK))

    def train_dataloader(self) -> DataLoader:
        sampler = StepBatchSampler(
            len(self.items),
            self.batch_size,
            rank_seed(self.cfg.seed, self.global_rank),
            self.steps_per_block,
            self.max_steps,
            epoch_fn=lambda: self.current_epoch,
            probs=self.sampling_probs,
        )
        return self.index_loader(len(self.items), sampler)

    def on_train_start(self) -> None:
        if self.current_epoch == 0 and self.stats:  # a resumed run already has this row
            self.record(self.stats, step=0)

    def step_of(self, batch_idx: int) -> int:
        """Optimizer steps done after this batch's (1-based, counted over the whole run)."""
        return self.current_epoch * self.steps_per_block + batch_idx + 1

    def finish_step(self, stats: dict[str, float], step: int) -> None:
        """Record the step's stats; evaluate on val prompts every ``eval_every`` steps (not at
        the last step: the final test evaluation follows)."""
        self.record(stats, step=step)
        if self.eval_every and step % self.eval_every == 0 and step < self.max_steps:
            self.evaluate("val", step=step)
