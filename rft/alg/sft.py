"""Supervised finetuning (docs/algorithms.md §2): NLL of the reference completion given the prompt,
averaged over completion tokens only (prompt tokens carry no loss).

The same module runs ``alg=sft`` and the SFT warm-start phase of an RL run
(``alg.warm_start.steps``, ``alg.warm_start.data_frac``): the budget knobs Razin et al. study.

Batches are a pure function of (seed, step): step s reads positions [s·B, (s+1)·B) of a
concatenation of per-data-epoch permutations. One Lightning epoch is a block of
``steps_per_block`` steps, so a run resumed from a block-end checkpoint continues with exactly
the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from rft.alg.base import RFTModule
from rft.core import logprobs_from_logits, masked_mean
from rft.optim import adamw
from rft.rng import data_subset_rng, rank_seed, step_batch_rng
from rft.rollout.prompts import encode_continuations, encode_prompts


class StepBatchSampler(Sampler):
    """Yields the batches of one block of optimizer steps (see module docstring).

    The block is the Lightning epoch, from ``epoch_fn`` (the module passes
    ``lambda: self.current_epoch``) when an epoch's iterator starts, else from ``set_epoch``.
    Lightning calls ``set_epoch`` on a loader's sampler, never on its batch sampler: without
    ``epoch_fn`` every block would replay the first block's batches."""

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        steps_per_block: int,
        total_steps: int,
        epoch_fn: Callable[[], int] | None = None,
    ):
        self.n, self.bs, self.seed = n_items, batch_size, seed
        self.spb, self.total = steps_per_block, total_steps
        self.epoch_fn = epoch_fn
        self.block = 0

    def set_epoch(self, epoch: int) -> None:
        self.block = epoch

    def _sync_block(self) -> None:
        if self.epoch_fn is not None:
            self.block = int(self.epoch_fn())

    def __len__(self) -> int:
        self._sync_block()
        return max(0, min(self.spb, self.total - self.block * self.spb))

    def batch_for_step(self, step: int) -> list[int]:
        pos = np.arange(step * self.bs, (step + 1) * self.bs)
        epochs, offsets = pos // self.n, pos % self.n
        perms = {e: step_batch_rng(self.seed, e).permutation(self.n) for e in np.unique(epochs)}
        return [int(perms[e][o]) for e, o in zip(epochs, offsets)]

    def __iter__(self):
        self._sync_block()
        start = self.block * self.spb
        for s in range(start, start + len(self)):
            yield self.batch_for_step(s)


def subset_for_fraction(n: int, frac: float, seed: int) -> list[int]:
    """The first ceil(frac·n) items of a seeded permutation (nested across fractions)."""
    if not 0 < frac <= 1:
        raise ValueError(f"data_frac must be in (0, 1], got {frac}")
    k = max(1, math.ceil(frac * n))
    return sorted(data_subset_rng(seed).permutation(n)[:k].tolist())


@dataclass(frozen=True)
class SFTSettings:
    """The knobs of one SFT run. ``alg=sft`` reads them from ``alg`` (``from_alg``); the
    warm-start phase of an RL run from ``alg.warm_start`` (``for_warm_start``)."""

    lr: float
    batch_size: int
    max_steps: int | None  # None or < 0: max_epochs passes over the pairs
    max_epochs: int | None
    data_frac: float
    max_grad_norm: float | None
    eval_every: int  # 0 = no periodic val evaluation
    weight_decay: float

    @classmethod
    def from_alg(cls, a) -> SFTSettings:
        return cls(
            lr=a.lr,
            batch_size=a.batch_size,
            max_steps=a.max_steps,
            max_epochs=a.get("max_epochs"),
            data_frac=a.get("data_frac", 1.0),
            max_grad_norm=a.get("max_grad_norm"),
            eval_every=a.get("eval_every", 0),
            weight_decay=a.get("weight_decay", 0.0),
        )

    @classmethod
    def for_warm_start(cls, a) -> SFTSettings:
        """``alg.warm_start`` of an RL algorithm ``a``: its steps, data share, lr and batch
        size; gradient clip 1.0, no periodic evaluation, the RL algorithm's weight decay."""
        ws = a.warm_start
        return cls(
            lr=ws.lr,
            batch_size=ws.batch_size,
            max_steps=ws.steps,
            max_epochs=None,
            data_frac=ws.data_frac,
            max_grad_norm=1.0,
            eval_every=0,
            weight_decay=a.get("weight_decay", 0.0),
        )


class SFT(RFTModule):
    def __init__(
        self, cfg, task, policy, ref, reward_fn, run_dir, settings: SFTSettings | None = None
    ):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        self.automatic_optimization = False
        st = settings if settings is not None else SFTSettings.from_alg(cfg.alg)
        self.lr, self.batch_size, self.weight_decay = st.lr, st.batch_size, st.weight_decay
        self.max_grad_norm, self.eval_every = st.max_grad_norm, st.eval_every
        pairs = task.sft_pairs()
        self.pairs = [pairs[i] for i in subset_for_fraction(len(pairs), st.data_frac, cfg.seed)]
        max_steps = st.max_steps
        if max_steps is None or max_steps < 0:
            max_steps = st.max_epochs * math.ceil(len(self.pairs) / self.batch_size)
        self.max_steps = int(max_steps)
        self.steps_per_block = max(1, min(self.max_steps, 10))

    def train_dataloader(self) -> DataLoader:
        sampler = StepBatchSampler(
            len(self.pairs),
            self.batch_size,
            rank_seed(self.cfg.seed, self.global_rank),
            self.steps_per_block,
            self.max_steps,
            epoch_fn=lambda: self.current_epoch,
        )
        return self.index_loader(len(self.pairs), sampler)

    def configure_optimizers(self):
        # requires_grad: a LoRA policy trains its adapters only
        params = [p for p in self.policy.parameters() if p.requires_grad]
        return adamw(
            params, lr=self.lr, weight_decay=self.weight_decay, fused=not self.lightning_clips
        )

    def sft_loss(self, examples) -> torch.Tensor:
        tok = self.policy.tokenizer
        t = self.task
        p_ids, p_mask = encode_prompts(
            tok, [e.prompt for e in examples], t.prompt_max_tokens, self.device, t.prompt_truncation
        )
        c_ids, c_mask = encode_continuations(
            tok, [e.reference for e in examples], self.task.max_new_tokens, device=self.device
        )
        logits, _ = self.policy(p_ids, p_mask, c_ids, c_mask)
        return -masked_mean(logprobs_from_logits(logits, c_ids), c_mask)

    def training_step(self, batch, batch_idx):
        loss = self.sft_loss([self.pairs[i] for i in batch])
        self.optimizer_step_clipped(loss)
        step = self.current_epoch * self.steps_per_block + batch_idx + 1
        self.record({"sft/loss": loss.item()}, step=step)
        if self.eval_every and step % self.eval_every == 0 and step < self.max_steps:
            self.evaluate("val", step=step)
