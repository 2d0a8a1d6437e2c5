"""Token batches: prompt and continuation encoding, and the per-iteration prompt sampler."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Sampler

from rft.rng import prompt_batch_rng


def encode_prompts(
    tokenizer, prompts: list[str], max_tokens: int, device=None, truncation: str = "left"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), each (B, P): each prompt cut to ``max_tokens`` tokens, then left-padded so
    that all prompts end at the same column (generation appends to every row at once).

    ``truncation`` (the task's ``prompt_truncation``): "left" keeps a long prompt's LAST
    ``max_tokens`` tokens (GRUE IMDB: the review's end is what it continues), "right" its
    FIRST ones (GRUE CommonGen). The cut is done here, not by the tokenizer, so it never
    depends on a tokenizer's own ``truncation_side``. No special tokens are added: a causal
    prompt must end where its completion starts (seq2seq encoders get their EOS in
    rft.model.policy.PolicyLM)."""
    if truncation not in ("left", "right"):
        raise ValueError(f"truncation={truncation!r}: choose left or right")
    # verbose=False: the whole text is tokenized before the cut, so a long one must not warn
    # that it exceeds the model's maximum length
    rows = (
        tokenizer(prompts, add_special_tokens=False, verbose=False)["input_ids"] if prompts else []
    )
    if truncation == "left":
        rows = [x[max(0, len(x) - max_tokens) :] for x in rows]
    else:
        rows = [x[:max_tokens] for x in rows]
    width = max((len(x) for x in rows), default=0)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, x in enumerate(rows):  # a loop over rows (≤ a batch), not over tokens
        if x:
            ids[i, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            mask[i, width - len(x) :] = 1
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


def encode_continuations(
    tokenizer,
    texts: list[str],
    max_tokens: int,
    *,
    eos: bool | list[bool] = True,
    width: int | None = None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), each (B, W): each text's tokens (no special tokens added), then EOS where
    ``eos`` says (every row when True), cut to ``max_tokens`` (so a text that fills them keeps
    no EOS, as a generation cut at max_new_tokens has none); right-padded to ``width``
    (default: the longest row). SFT targets, offline continuations, guided targets and text
    converted between tokenizers all go through here."""
    enc = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    with_eos = [eos] * len(enc) if isinstance(eos, bool) else eos
    rows = [(x + [tokenizer.eos_token_id] if e else x)[:max_tokens] for x, e in zip(enc, with_eos)]
    if width is None:
        width = max((len(x) for x in rows), default=0)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, x in enumerate(rows):  # a loop over rows (≤ a batch), not over tokens
        ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return ids, mask


class IterationSampler(Sampler):
    """Yields ONE batch of prompt indices per epoch (= per RL iteration).

    The batch depends only on (seed, iteration, rank, world size), never on what ran before: a
    resumed run draws exactly the prompts the uninterrupted run would have drawn. Under DDP the
    ranks split ONE draw of ``world_size × batch_size`` prompts per iteration (rank r takes the
    r-th slice), so they never train on the same prompt twice in one iteration (when the train
    set has enough prompts); one process draws exactly what it always drew. The iteration comes from
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
        world_size: int = 1,
    ):
        self.n_items, self.batch_size, self.seed, self.rank = n_items, batch_size, seed, rank
        self.world_size = world_size
        self.epoch_fn = epoch_fn
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        if self.epoch_fn is not None:
            self.epoch = int(self.epoch_fn())
        # one stream per iteration, shared by the ranks (the rank-0 stream of earlier versions)
        rng = prompt_batch_rng(self.seed, self.epoch, 0)
        total = self.batch_size * self.world_size
        draw = rng.choice(self.n_items, total, replace=total > self.n_items)
        lo = self.rank * self.batch_size
        yield draw[lo : lo + self.batch_size].tolist()
