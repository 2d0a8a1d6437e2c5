"""What every online RL family shares (PPO, NLPO, the guided family, the group family): one
Lightning epoch is one iteration,

    prompts ─► encode ─► generate ─► decode ─► reward ─► episodes buffer
            ─► score in chunks (old / reference log-probs, values) ─► updates ─► record

and this base writes the parts that do not depend on the algorithm once: the per-iteration
prompt loader, sampling and rewarding a batch into an ``Episodes`` buffer, chunked no-grad
scoring, the end-of-iteration timing and record, and the evaluation cadence. A family supplies
its buffer fields, its ``training_step`` (which calls these in order) and its losses.

Schema: rft.alg.schemas.OnlineConfig. Checks that need several fields (``check_config``) run in
rft.train before any task, model or data loads.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from rft.alg.base import RFTModule
from rft.core import logprobs_from_logits
from rft.diagnostics.probe import probe_gradients
from rft.errors import ConfigError
from rft.io import append_jsonl
from rft.model.generate import Completions
from rft.rng import probe_seed
from rft.rollout.backend import backend_of
from rft.rollout.prompts import IterationSampler, encode_prompts


class RowBatch:
    """What a rollout buffer (a dataclass whose tensor fields share their first dimension, one
    row per episode, and whose ``ids`` holds the completions) needs to be cut into minibatches."""

    def __len__(self) -> int:
        return self.ids.shape[0]

    def index(self, idx: torch.Tensor):
        """The rows ``idx`` of every tensor field (other fields are shared), same class."""
        return type(self)(
            **{
                f.name: (v[idx] if isinstance(v, torch.Tensor) else v)
                for f in dataclasses.fields(self)
                for v in (getattr(self, f.name),)
            }
        )


@dataclass
class Episodes(RowBatch):
    """One iteration's episodes, prompt-major (the K samples of a prompt are adjacent).
    Shapes: (N, P) prompts (left-padded), (N, T) completions and per-token tensors (right-
    padded), (N,) scores as the reward returned them. ``sampler_logp``: the sampler's own
    log-probs (rollout.backend=vllm), else None; the rest is filled by scoring."""

    prompt_ids: Tensor
    prompt_mask: Tensor
    ids: Tensor
    mask: Tensor
    scores: Tensor
    sampler_logp: Tensor | None = None
    old_logp: Tensor | None = None
    ref_logp: Tensor | None = None
    advantages: Tensor | None = None


class OnlineRL(RFTModule):
    """Base of the online families (module docstring). Subclasses set ``supports_tis`` when
    their update weights tokens by the trainer/sampler ratio (alg.tis_cap)."""

    supports_tis = False

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        a = cfg.alg
        n_eps = a.rollout_prompts * a.samples_per_prompt
        if a.rollout_prompts < 1 or a.samples_per_prompt < 1:
            raise ConfigError(
                f"alg.rollout_prompts={a.rollout_prompts}, alg.samples_per_prompt="
                f"{a.samples_per_prompt}: both must be ≥ 1."
            )
        if a.minibatch_size > n_eps:
            raise ConfigError(
                f"alg.minibatch_size={a.minibatch_size} is larger than the {n_eps} episodes of a "
                f"rollout (alg.rollout_prompts × alg.samples_per_prompt). Lower it or raise those."
            )
        if a.n_iterations < 1:
            raise ConfigError(f"alg.n_iterations={a.n_iterations}: must be ≥ 1.")
        if a.update_epochs < 1:
            raise ConfigError(f"alg.update_epochs={a.update_epochs}: must be ≥ 1.")
        if a.warm_start.steps < 0 or not 0 < a.warm_start.data_frac <= 1:
            raise ConfigError("alg.warm_start: steps must be ≥ 0 and data_frac in (0, 1].")
        cls.check_tis(cfg)

    @classmethod
    def check_tis(cls, cfg) -> None:
        """alg.tis_cap: positive, with a sampler other than the trainer, on an algorithm whose
        update applies it."""
        cap = cfg.alg.tis_cap
        if cap is None:
            return
        if cap <= 0:
            raise ConfigError(f"alg.tis_cap={cap}: must be > 0 (verl / TRL use 2); null = off.")
        if backend_of(cfg) != "vllm":
            raise ConfigError(
                f"alg.tis_cap={cap} corrects for a sampler other than the trainer, and with"
                " rollout.backend=hf the trainer's own model samples (no sampler log-probs to"
                " compare). Set rollout.backend=vllm, or drop alg.tis_cap."
            )
        if not cls.supports_tis:
            raise ConfigError(
                f"alg.tis_cap={cap}: truncated importance sampling is implemented for alg=ppo and"
                f" the group family (grpo, dr_grpo, dapo, rloo, reinforce_pp, gspo), not"
                f" alg={cfg.alg.name}. Drop alg.tis_cap."
            )

    def __init__(self, cfg, task, policy, ref, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        self.automatic_optimization = False
        self.a = cfg.alg
        self.max_grad_norm = self.a.max_grad_norm

    # ------------------------------------------------------------------ data
    def train_dataloader(self) -> DataLoader:
        """One batch of ``alg.rollout_prompts`` train-prompt indices per iteration, a pure
        function of (seed, iteration, rank) (rft.rollout.prompts.IterationSampler)."""
        world_size = self.trainer.world_size if self._trainer is not None else 1
        sampler = IterationSampler(
            len(self.task.train),
            self.a.rollout_prompts,
            self.cfg.seed,
            rank=self.global_rank,
            epoch_fn=lambda: self.current_epoch,
            world_size=world_size,
        )
        return self.index_loader(len(self.task.train), sampler)

    # ------------------------------------------------------------------ sampling
    def encode(self, prompts: list[str], tokenizer=None) -> tuple[Tensor, Tensor]:
        """Left-padded prompt ids and mask (N, P), cut as the task says."""
        t = self.task
        tok = tokenizer or self.policy.tokenizer
        return encode_prompts(tok, prompts, t.prompt_max_tokens, self.device, t.prompt_truncation)

    def generate(self, prompt_ids: Tensor, prompt_mask: Tensor) -> Completions:
        """The policy's completions of a batch with alg.generation (NLPO masks them)."""
        t = self.task
        return self.policy.generate(
            prompt_ids, prompt_mask, t.max_new_tokens, t.min_new_tokens, self.a.generation
        )

    def reward(self, prompts: list[str], completion_ids: Tensor, refs: list) -> Tensor:
        """The reward of each completion (N,), float32 on the module's device."""
        texts = self.policy.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        return self.reward_fn(prompts, texts, refs).to(self.device).float()

    def sample_episodes(
        self, examples, k: int, buffer: type[Episodes] = Episodes
    ) -> tuple[Episodes, dict[str, float]]:
        """``k`` completions of each example's prompt in one generate call, rewarded in one
        batched call: a ``buffer`` of len(examples) · k episodes, and the phase times."""
        prompts = [e.prompt for e in examples for _ in range(k)]
        refs = [e.reward_references for e in examples for _ in range(k)]
        t0 = time.perf_counter()
        p_ids, p_mask = self.encode(prompts)
        comp = self.generate(p_ids, p_mask)
        t1 = time.perf_counter()
        scores = self.reward(prompts, comp.ids, refs)
        t2 = time.perf_counter()
        episodes = buffer(p_ids, p_mask, comp.ids, comp.mask, scores, sampler_logp=comp.logprobs)
        return episodes, {
            "time/rollout_s": t1 - t0,
            "time/reward_s": t2 - t1,
            "time/rollout_tokens_per_s": int(comp.mask.sum()) / max(t1 - t0, 1e-9),
        }

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def score_chunks(
        self, batch: RowBatch, score: Callable[[RowBatch], dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """``score`` on chunks of ``alg.score_batch_size`` episodes (no grad), its columns
        concatenated: one forward pass per model and chunk, whatever the family scores."""
        cols: dict[str, list[Tensor]] = {}
        for idx in torch.arange(len(batch), device=batch.ids.device).split(self.a.score_batch_size):
            for name, value in score(batch.index(idx)).items():
                cols.setdefault(name, []).append(value)
        return {name: torch.cat(values) for name, values in cols.items()}

    def ref_logprobs(self, chunk: RowBatch) -> Tensor:
        """log π_ref of the chunk's completion tokens (n, T)."""
        logits, _ = self.ref(chunk.prompt_ids, chunk.prompt_mask, chunk.ids, chunk.mask)
        return logprobs_from_logits(logits, chunk.ids)

    # ------------------------------------------------------------------ diagnostics
    def probe(self, it: int) -> dict[str, float]:
        """The vanishing-gradient probe every ``diag.probe_every`` iterations (else {}): per
        probe prompt, the reward std and the policy-gradient norm (rft/diagnostics/probe.py),
        one row of diagnostics.jsonl, and their summary for the iteration's record."""
        d, t = self.cfg.diag, self.task
        if not d.probe_every or it % d.probe_every:
            return {}
        recs = probe_gradients(
            self.policy,
            self.reward_fn,
            t.val[: d.probe_prompts],
            K=d.probe_samples,
            prompt_max_tokens=t.prompt_max_tokens,
            prompt_truncation=t.prompt_truncation,
            max_new_tokens=t.max_new_tokens,
            min_new_tokens=t.min_new_tokens,
            generation=self.a.generation,
            seed=probe_seed(self.cfg.seed, it),
        )
        if self.global_rank == 0:
            row = {
                "iteration": it,
                **{k: [r[k] for r in recs] for k in ("std", "mean", "grad_norm")},
            }
            append_jsonl(self.run_dir / "diagnostics.jsonl", row)
        std = torch.tensor([r["std"] for r in recs])
        g = torch.tensor([r["grad_norm"] for r in recs])
        return {
            "diag/probe_std_mean": std.mean().item(),
            "diag/probe_grad_norm_mean": g.mean().item(),
            "diag/probe_low_std_share": (std < d.std_threshold).float().mean().item(),
        }

    # ------------------------------------------------------------------ end of an iteration
    def finish_iteration(self, stats: dict[str, float], n_episodes: int) -> None:
        """The reward's own statistics over the iteration's completions (CheckedReward.pop_stats:
        a verifier's unparsable share, a remote reward's requests), the iteration's time
        (rollout + reward + scoring + update) and episodes per second, the record in
        history.jsonl / the loggers, and the periodic val evaluation. Evaluated
        here rather than in an epoch-end hook so that the epoch-end checkpoint already holds it."""
        stats.update(getattr(self.reward_fn, "pop_stats", dict)())  # the reward's own stats
        phases = ("time/rollout_s", "time/reward_s", "time/score_s", "time/update_s")
        it_time = sum(stats[k] for k in phases)
        stats["time/iteration_s"] = it_time
        stats["time/episodes_per_s"] = n_episodes / max(it_time, 1e-9)
        done = self.current_epoch + 1  # records describe the state after `done` iterations
        self.record(stats, step=done)
        every = self.a.eval_every
        if every and done % every == 0 and done < self.trainer.max_epochs:
            self.evaluate("val", step=done)
