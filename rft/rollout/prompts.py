"""Prompt batches: tokenisation and the per-iteration prompt sampler."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Sampler


def encode_prompts(
    tokenizer, prompts: list[str], max_tokens: int, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), each (B, P): left-padded and left-truncated, so each prompt keeps its last
    ``max_tokens`` tokens (GRUE) and all prompts end at the same column."""
    enc = tokenizer(
        prompts,
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_tokens,
        add_special_tokens=False,
    )
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if ids.shape[1] == 0:  # every prompt empty: give the model one token to start from
        bos = (
            tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        )
        ids = torch.full((len(prompts), 1), bos, dtype=torch.long)
        mask = torch.ones_like(ids)
    empty = mask.sum(-1) == 0
    if empty.any():  # an empty prompt in a batch: attend to its last (pad) position
        mask[empty, -1] = 1
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return ids, mask


class IterationSampler(Sampler):
    """Yields ONE batch of prompt indices per epoch (= per RL iteration).

    The batch depends only on (seed, iteration, rank), never on what ran before: a resumed run
    draws exactly the prompts the uninterrupted run would have drawn. The iteration comes from
    ``epoch_fn`` (the module passes ``lambda: self.current_epoch``), read when an epoch's
    iterator starts: Lightning calls ``set_epoch`` on a loader's sampler, never on its batch
    sampler, so without ``epoch_fn`` every iteration would draw the same prompts.
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        epoch_fn: Callable[[], int] | None = None,
    ):
        self.n_items, self.batch_size, self.seed, self.rank = n_items, batch_size, seed, rank
        self.epoch_fn = epoch_fn
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        if self.epoch_fn is not None:
            self.epoch = int(self.epoch_fn())
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        replace = self.batch_size > self.n_items
        yield rng.choice(self.n_items, self.batch_size, replace=replace).tolist()
