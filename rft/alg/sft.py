"""Supervised finetuning (algorithms.md §2): NLL of the reference completion given the prompt,
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

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from rft.alg.base import RFTModule
from rft.core import logprobs_from_logits, masked_mean
from rft.rollout.prompts import encode_prompts


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
        perms = {
            e: np.random.default_rng([self.seed, int(e)]).permutation(self.n)
            for e in np.unique(epochs)
        }
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
    return sorted(np.random.default_rng([seed, 99]).permutation(n)[:k].tolist())


def _identity(batch):
    return batch


class SFT(RFTModule):
    def __init__(
        self,
        cfg,
        task,
        policy,
        ref,
        reward_fn,
        run_dir,
        *,
        lr=None,
        batch_size=None,
        max_steps=None,
        data_frac=None,
        max_grad_norm="cfg",
        eval_every=None,
        steps_per_block=None,
        weight_decay=None,
    ):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        self.automatic_optimization = False
        a = cfg.alg
        self.lr = lr if lr is not None else a.lr
        self.batch_size = batch_size or a.batch_size
        self.weight_decay = weight_decay if weight_decay is not None else a.get("weight_decay", 0.0)
        self.max_grad_norm = a.get("max_grad_norm") if max_grad_norm == "cfg" else max_grad_norm
        self.eval_every = eval_every if eval_every is not None else a.get("eval_every", 0)
        frac = data_frac if data_frac is not None else a.get("data_frac", 1.0)
        pairs = task.sft_pairs()
        self.pairs = [pairs[i] for i in subset_for_fraction(len(pairs), frac, cfg.seed)]
        if max_steps is None:
            max_steps = a.max_steps
        if max_steps is None or max_steps < 0:
            max_steps = a.max_epochs * math.ceil(len(self.pairs) / self.batch_size)
        self.max_steps = int(max_steps)
        self.steps_per_block = steps_per_block or max(1, min(self.max_steps, 10))
        self.n_blocks = math.ceil(self.max_steps / self.steps_per_block)

    def train_dataloader(self) -> DataLoader:
        sampler = StepBatchSampler(
            len(self.pairs),
            self.batch_size,
            self.cfg.seed + self.global_rank,
            self.steps_per_block,
            self.max_steps,
            epoch_fn=lambda: self.current_epoch,
        )
        return DataLoader(range(len(self.pairs)), batch_sampler=sampler, collate_fn=_identity)

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.policy.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )

    def encode_targets(self, targets: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) (B, T): right-padded, truncated to max_new_tokens."""
        tok = self.policy.tokenizer
        enc = tok(targets, add_special_tokens=False, truncation=False)["input_ids"]
        T = self.task.max_new_tokens
        enc = [(ids[:T] if len(ids) >= T else ids + [tok.eos_token_id])[:T] for ids in enc]
        width = max(len(x) for x in enc)
        ids = torch.full((len(enc), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, x in enumerate(enc):  # a loop over examples (B ≤ 64), not tokens
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        return ids.to(self.device), mask.to(self.device)

    def sft_loss(self, examples) -> torch.Tensor:
        p_ids, p_mask = encode_prompts(
            self.policy.tokenizer,
            [e.prompt for e in examples],
            self.task.prompt_max_tokens,
            self.device,
        )
        c_ids, c_mask = self.encode_targets([e.reference for e in examples])
        logits, _ = self.policy(p_ids, p_mask, c_ids, c_mask)
        return -masked_mean(logprobs_from_logits(logits, c_ids), c_mask)

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        loss = self.sft_loss([self.pairs[i] for i in batch])
        opt.zero_grad()
        self.manual_backward(loss)
        if self.max_grad_norm:
            self.clip_gradients(
                opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm"
            )
        opt.step()
        step = self.current_epoch * self.steps_per_block + batch_idx + 1
        self.record({"sft/loss": loss.item()}, step=step)
        if self.eval_every and step % self.eval_every == 0 and step < self.max_steps:
            self.evaluate("val", step=step)
