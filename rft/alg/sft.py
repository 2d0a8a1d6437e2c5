"""Supervised finetuning (docs/algorithms.md §2): NLL of the reference completion given the prompt,
averaged over completion tokens only (prompt tokens carry no loss).

The same module runs ``alg=sft`` and the SFT warm-start phase of an RL run
(``alg.warm_start.steps``, ``alg.warm_start.data_frac``): the budget knobs Razin et al. study.

Budget, batches (a pure function of (seed, step)), step counter and evaluation cadence are the
step-based base's (rft.alg.steps.StepModule): a run resumed from a block-end checkpoint
continues with exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rft.alg.steps import StepModule, base_steps
from rft.core import logprobs_from_logits, masked_mean
from rft.errors import ConfigError
from rft.optim import adamw
from rft.rng import data_subset_rng
from rft.rollout.prompts import encode_continuations, encode_prompts


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
    max_steps: int | None  # None or < 0: dataset_epochs passes over the pairs
    dataset_epochs: int | None
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
            dataset_epochs=a.get("dataset_epochs"),
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
            dataset_epochs=None,
            data_frac=ws.data_frac,
            max_grad_norm=1.0,
            eval_every=0,
            weight_decay=a.get("weight_decay", 0.0),
        )


class SFT(StepModule):
    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        if not 0 < cfg.alg.data_frac <= 1:
            raise ConfigError(f"alg.data_frac={cfg.alg.data_frac}: must be in (0, 1].")

    def __init__(
        self, cfg, task, policy, ref, reward_fn, run_dir, settings: SFTSettings | None = None
    ):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        st = settings if settings is not None else SFTSettings.from_alg(cfg.alg)
        self.lr, self.batch_size, self.weight_decay = st.lr, st.batch_size, st.weight_decay
        self.max_grad_norm = st.max_grad_norm
        pairs = task.sft_pairs()
        self.pairs = [pairs[i] for i in subset_for_fraction(len(pairs), st.data_frac, cfg.seed)]
        self.items = self.pairs
        n_steps = base_steps(len(self.pairs), self.batch_size, st.max_steps, st.dataset_epochs)
        self.set_budget(n_steps, st.eval_every)

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
        self.finish_step({"sft/loss": loss.item()}, self.step_of(batch_idx))
