"""Group-baseline policy gradients: one module for GRPO, Dr. GRPO, DAPO, RLOO, REINFORCE++ and
GSPO (docs/algorithms.md §9). Each ``alg=`` option is a YAML setting of this module's knobs
(conf/alg/{grpo,dr_grpo,dapo,rloo,reinforce_pp,gspo}.yaml); the maths is rft/core/group.py.

One Lightning epoch = one generation batch:
  1. prompts: ``rollout_prompts`` train prompts, uniformly (the same draw as alg=ppo) or in
     proportion to their estimated reward std (``prompt_sampling=std_aware``,
     rft/rollout/std_sampler.py);
  2. rollout: G = ``samples_per_prompt`` completions per prompt in one ``generate`` call, scored
     by the reward in batches; DAPO's overlong shaping added to the score when on;
  3. dynamic sampling (DAPO, optional): groups whose G rewards are all equal carry no gradient;
     they are dropped and more prompts are drawn until ``rollout_prompts`` groups with a spread
     are collected, for at most ``max_sampling_rounds`` rounds (the last round fills the batch
     with dropped groups, so every batch, and every DDP rank, has the same size);
  4. scoring (no grad): reference log-probs when the KL is used or logged; the sampling
     policy's log-probs only when they are needed (several optimizer steps per batch, μ > 1,
     or the KL in the reward): with one optimizer step per batch the old log-prob IS the
     current one, detached, so that forward pass is skipped (as TRL does);
  5. advantages: a group estimator broadcast to the completion's tokens, or REINFORCE++'s
     per-token returns whitened over the batch;
  6. ``update_epochs`` (μ) passes over the batch, ``minibatch_size`` episodes per optimizer
     step, ``micro_batch_size`` sequences per forward/backward (gradient accumulation, the loss
     normalised over the whole minibatch so accumulation does not change it).

Logged every iteration (TRL's names in brackets): ``group/zero_std_share``
[frac_reward_zero_std] and ``group/low_std_share`` (std < diag.std_threshold) of the drawn
groups, ``group/std_floored_share``, ``clip_ratio/{low,high,region}_mean``, ``kl/k1``,
``kl/k2``, ``kl/k3`` side by side (whatever estimator the loss uses), ``policy/entropy``,
``completion/{mean,min,max}_length`` and ``completion/clipped_ratio`` (no EOS within
max_new_tokens), ``rollout/sampling_rounds``, ``rollout/generated_tokens`` and its running total.

Deviations and choices:
- group_norm divides by max(std, std_floor) instead of std + eps (rft/core/group.py says why).
- Sequence-level ratios (RLOO, GSPO) give every token of a sequence the sequence's clipped
  term; with ``seq_mean_token_mean`` aggregation the loss is then the mean over sequences,
  the papers' objective.
- KL in the loss (GRPO) uses the reference log-probs of the sampled tokens and the estimator of
  ``kl.estimator``, aggregated like the policy term. REINFORCE++ and RLOO put β·k1 in the reward.
- Under DDP every rank normalises its own groups (a group never straddles ranks); REINFORCE++'s
  batch whitening and the token-mean aggregation are per rank (verl whitens the global batch).
- Each iteration's RNG is seeded from (seed, iteration), extra dynamic-sampling prompts from
  (seed, iteration, round): a resumed run draws exactly what an uninterrupted one drew.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from rft.alg.online import Episodes, OnlineRL
from rft.config import choice
from rft.core import logprobs_and_entropy, logprobs_from_logits, masked_mean
from rft.core.group import (
    aggregate,
    batch_whitened_returns,
    clip_fractions,
    clipped_surrogate,
    group_advantages,
    group_std,
    kl_estimate,
    overlong_shaping,
    sequence_kl_penalised_scores,
    sequence_log_ratio,
    terminal_token_rewards,
)
from rft.core.kl import approx_kl
from rft.core.tis import logprob_gap_stats, tis_weights
from rft.degenerate import Streak, degenerate, evidence_needed
from rft.errors import ConfigError
from rft.model.policy import PolicyLM
from rft.rng import dynamic_sampling_rng, prompt_batch_rng, rollout_seed

log = logging.getLogger(__name__)


def _cat(parts: list[torch.Tensor], pad: int) -> torch.Tensor:
    """Concatenate (n_i, W_i) tensors along rows, padding widths on the LEFT for prompts is the
    caller's job; here every part is right-padded to the widest with ``pad``."""
    width = max(p.shape[1] for p in parts)
    return torch.cat(
        [torch.nn.functional.pad(p, (0, width - p.shape[1]), value=pad) for p in parts]
    )


def _cat_left(parts: list[torch.Tensor], pad: int) -> torch.Tensor:
    """Concatenate left-padded (n_i, P_i) prompt tensors, padding on the left to the widest."""
    width = max(p.shape[1] for p in parts)
    return torch.cat(
        [torch.nn.functional.pad(p, (width - p.shape[1], 0), value=pad) for p in parts]
    )


class SamplingRounds:
    """What the generation rounds of one batch produced: the groups kept (with a reward spread,
    or all of them without dynamic sampling) and dropped, every drawn index with its group std,
    the phase times and the generated tokens."""

    def __init__(self):
        self.kept: list[Episodes] = []
        self.dropped: list[Episodes] = []
        self.indices: list[int] = []
        self.stds: list[torch.Tensor] = []
        self.times = {"time/rollout_s": 0.0, "time/reward_s": 0.0}
        self.tokens = 0
        self.n = 0  # rounds so far
        self.n_kept = 0  # groups kept so far

    def add(self, b: Episodes, indices, std, times, G: int, filtered: bool) -> None:
        """One round's groups (``filtered``: dynamic sampling keeps only those with std > 0)."""
        self.n += 1
        for k in self.times:
            self.times[k] += times[k]
        self.tokens += int(b.mask.sum())
        self.indices += indices
        self.stds.append(std)
        if not filtered:
            self.kept.append(b)
            self.n_kept += len(indices)
            return
        has_spread = std > 0
        rows = torch.arange(len(b), device=b.ids.device).view(-1, G)
        if has_spread.any():
            self.kept.append(b.index(rows[has_spread].reshape(-1)))
            self.n_kept += int(has_spread.sum())
        if (~has_spread).any():
            self.dropped.append(b.index(rows[~has_spread].reshape(-1)))

    def n_more(self, missing: int, n_groups: int) -> int:
        """Prompts to draw next: as many as the keep rate so far says will fill the batch, at
        most a full batch (DAPO generates whole batches; fewer wastes fewer tokens)."""
        keep_rate = max(self.n_kept / len(self.indices), 1.0 / n_groups)
        return min(n_groups, math.ceil(missing / keep_rate))


class GroupPG(OnlineRL):
    supports_tis = True

    @classmethod
    def check_config(cls, cfg) -> None:
        """Ranges a schema cannot express; each message names the key and the fix."""
        super().check_config(cfg)
        a = cfg.alg
        G = a.samples_per_prompt
        batch = a.rollout_prompts * G
        est = choice(a.advantage)
        if est != "batch_whiten" and G < 2:
            raise ConfigError(
                f"alg.samples_per_prompt={G}: the {est} advantage compares the samples of one"
                " prompt; use at least 2 (or alg.advantage=batch_whiten)."
            )
        if a.minibatch_size < 1 or batch % a.minibatch_size:
            raise ConfigError(
                f"alg.minibatch_size={a.minibatch_size} must divide the {batch} episodes of a"
                " batch (alg.rollout_prompts × alg.samples_per_prompt)."
            )
        checks = [
            (a.micro_batch_size >= 1, f"alg.micro_batch_size={a.micro_batch_size}: must be ≥ 1."),
            (
                0 <= a.clip_low < 1 and a.clip_high >= 0,
                f"alg.clip_low={a.clip_low}, alg.clip_high={a.clip_high}: need 0 ≤ clip_low < 1"
                " and clip_high ≥ 0.",
            ),
            (a.std_floor >= 0, f"alg.std_floor={a.std_floor}: must be ≥ 0."),
            (a.kl.beta >= 0, f"alg.kl.beta={a.kl.beta}: must be ≥ 0."),
            (
                choice(a.kl.placement) != "reward" or choice(a.kl.estimator) == "k1",
                f"alg.kl.estimator={choice(a.kl.estimator)} with alg.kl.placement=reward: the"
                " reward takes k1 (log π - log π_ref); set alg.kl.estimator=k1 or"
                " alg.kl.placement=loss.",
            ),
            (
                a.overlong.penalty >= 0,
                f"alg.overlong.penalty={a.overlong.penalty}: must be ≥ 0 (DAPO: 1; 0 = off).",
            ),
            (
                a.max_sampling_rounds >= 1,
                f"alg.max_sampling_rounds={a.max_sampling_rounds}: must be ≥ 1.",
            ),
            (
                0 <= a.overlong.buffer_frac <= 1,
                f"alg.overlong.buffer_frac={a.overlong.buffer_frac}: must be in [0, 1] (0 = off).",
            ),
            (
                a.std_sampler.floor > 0 or choice(a.prompt_sampling) == "uniform",
                f"alg.std_sampler.floor={a.std_sampler.floor}: must be > 0, else prompts whose"
                " estimate is 0 are never drawn again.",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def __init__(self, cfg, task, policy: PolicyLM, ref: PolicyLM, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        a = self.a
        self.G = int(a.samples_per_prompt)
        self.estimator = choice(a.advantage)
        self.aggregation = choice(a.aggregation)
        self.ratio_level = choice(a.ratio)
        self.kl_placement = choice(a.kl.placement) if a.kl.beta > 0 else "none"
        self.kl_kind = choice(a.kl.estimator)
        self.use_ref = self.kl_placement != "none" or a.log_kl
        self.generated_tokens_total = 0
        self._degenerate_named: set[str] = set()  # kinds already warned about (once per run)
        # completions in a row in batches whose every advantage is 0 (rft.degenerate: one such
        # batch of a hard pass/fail task is chance, degenerate_after in a row is not)
        self._zero_adv = Streak()
        frac = a.overlong.buffer_frac
        self.overlong_buffer = max(1, round(frac * task.max_new_tokens)) if frac > 0 else 0
        self.sampler = None
        mode = choice(a.prompt_sampling)
        if mode != "uniform":  # std_aware: p ∝ std; learnability: p ∝ p(1-p)
            from rft.rollout.std_sampler import StdAwareSampler

            s = a.std_sampler
            statistic = "learnability" if mode == "learnability" else "std"
            self.sampler = StdAwareSampler(
                len(task.train), s.floor, s.prior, s.momentum, statistic=statistic
            )
            if s.init_from:
                n = self.sampler.seed_from_extract(s.init_from)
                log.info("%s sampler: %d prompt estimates from %s", mode, n, s.init_from)

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    # ------------------------------------------------------------------ prompts
    def draw_prompts(self, it: int, uniform_batch: list[int]) -> list[int]:
        """This iteration's train indices: the loader's uniform draw, or the std-aware one
        (ranks split one draw of world_size × rollout_prompts, like IterationSampler)."""
        if self.sampler is None:
            return list(uniform_batch)
        n, ws = self.a.rollout_prompts, self.world_size
        draw = self.sampler.draw(prompt_batch_rng(self.cfg.seed, it, 0), n * ws)
        lo = self.global_rank * n
        return [int(i) for i in draw[lo : lo + n]]

    def more_prompts(self, it: int, rnd: int, n: int, used: set[int]) -> list[int]:
        """n more train indices for dynamic-sampling round ``rnd`` (≥ 1), none already used."""
        rng = dynamic_sampling_rng(self.cfg.seed, it, rnd, self.global_rank)
        n = min(n, len(self.task.train) - len(used))
        if n <= 0:
            return []
        if self.sampler is not None:
            return [int(i) for i in self.sampler.draw(rng, n, exclude=sorted(used))]
        free = np.setdiff1d(np.arange(len(self.task.train)), np.fromiter(used, int, len(used)))
        return [int(i) for i in rng.choice(free, n, replace=False)]

    # ------------------------------------------------------------------ rollout
    def generate_groups(self, indices: list[int]) -> tuple[Episodes, dict[str, float]]:
        """G completions per prompt, scored (one generate and one batched reward call), with
        DAPO's overlong shaping added to the scores when it is on."""
        b, times = self.sample_episodes([self.task.train[i] for i in indices], self.G)
        if self.overlong_buffer > 0:
            b.scores = b.scores + overlong_shaping(
                b.mask.sum(-1),
                self.task.max_new_tokens,
                self.overlong_buffer,
                self.a.overlong.penalty,
            ).to(b.scores)
        return b, times

    def collect(self, it: int, indices: list[int]) -> tuple[Episodes, dict[str, float]]:
        """The batch of ``rollout_prompts`` groups; with dynamic sampling, generation rounds
        until as many groups with a spread are kept (at most ``max_sampling_rounds``)."""
        rounds = SamplingRounds()
        todo = list(indices)
        used = set(indices)
        while todo:
            b, times = self.generate_groups(todo)
            # population std, as the diagnostics (and mode=extract) compute it: the logged
            # shares and the sampler's estimates are on one scale; only whether it is 0 matters
            # to the filter
            std = group_std(b.scores, self.G, unbiased=False)  # (n,)
            rounds.add(b, todo, std, times, self.G, filtered=self.a.dynamic_sampling)
            if not self.a.dynamic_sampling:
                break
            missing = self.a.rollout_prompts - rounds.n_kept
            if missing <= 0 or rounds.n >= self.a.max_sampling_rounds:
                break
            todo = self.more_prompts(
                it, rounds.n, rounds.n_more(missing, self.a.rollout_prompts), used
            )
            used.update(todo)
        batch = self._assemble(rounds.kept, rounds.dropped, self.a.rollout_prompts)
        if self.a.dynamic_sampling and rounds.n_kept == 0:
            self.name_degenerate(
                "no_group_kept",
                f"iteration {it + 1}: dynamic sampling kept no group in {rounds.n} rounds (every"
                " group's rewards were equal), so the batch is made of zero-advantage groups"
                " and the update has no policy gradient. Fix: a reward that separates the"
                " completions, more alg.max_sampling_rounds, or a warm start"
                " (alg.warm_start.steps) so the policy's samples differ.",
            )
        if self.sampler is not None:
            self._update_sampler(rounds.indices, torch.cat(rounds.stds))
        self.generated_tokens_total += rounds.tokens
        return batch, self.collect_stats(rounds)

    def collect_stats(self, rounds: SamplingRounds) -> dict[str, float]:
        """The phase times, how informative the drawn groups were, and the generation budget."""
        first_std, std_all = rounds.stds[0], torch.cat(rounds.stds)
        thr = self.cfg.diag.std_threshold
        stats = {
            "time/rollout_s": rounds.times["time/rollout_s"],
            "time/reward_s": rounds.times["time/reward_s"],
            "time/rollout_tokens_per_s": rounds.tokens / max(rounds.times["time/rollout_s"], 1e-9),
            # the groups the sampler drew (before any filter): how informative its draw was
            "group/zero_std_share": (first_std == 0).float().mean().item(),
            "group/low_std_share": (first_std < thr).float().mean().item(),
            "group/std_mean": first_std.mean().item(),
            "group/zero_std_share_all_rounds": (std_all == 0).float().mean().item(),
            "rollout/sampling_rounds": float(rounds.n),
            "rollout/extra_rounds": float(rounds.n - 1),
            "rollout/generated_tokens": float(rounds.tokens),
            "rollout/generated_tokens_total": float(self.generated_tokens_total),
        }
        if self.a.dynamic_sampling:
            stats["group/kept_share"] = rounds.n_kept / max(len(rounds.indices), 1)
        return stats

    def _assemble(self, kept: list[Episodes], dropped: list[Episodes], n_groups: int):
        """Exactly n_groups groups: the kept ones first, then dropped ones if rounds ran out."""
        parts = kept + dropped
        pad = self.policy.tokenizer.pad_token_id
        sampler_logp = [p.sampler_logp for p in parts]
        b = Episodes(
            _cat_left([p.prompt_ids for p in parts], pad),
            _cat_left([p.prompt_mask for p in parts], 0),
            _cat([p.ids for p in parts], pad),
            _cat([p.mask for p in parts], 0),
            torch.cat([p.scores for p in parts]),
            sampler_logp=_cat(sampler_logp, 0) if sampler_logp[0] is not None else None,
        )
        return b.index(torch.arange(n_groups * self.G, device=b.ids.device))

    def _update_sampler(self, idx: list[int], std: torch.Tensor) -> None:
        """Feed every observed group std to the sampler; under DDP, every rank's, so that the
        ranks' estimates (and so their next draws) stay identical."""
        idx_t = torch.tensor(idx, device=std.device, dtype=torch.long)
        if self.world_size > 1:
            # ranks may have run different numbers of rounds: pad to a common length
            n = torch.tensor([len(idx)], device=std.device)
            width = int(self.all_gather(n).max())
            pad = width - len(idx)
            idx_t = torch.nn.functional.pad(idx_t, (0, pad), value=-1)
            std_p = torch.nn.functional.pad(std, (0, pad))
            idx_t = self.all_gather(idx_t).reshape(-1)
            std = self.all_gather(std_p).reshape(-1)
            keep = idx_t >= 0
            idx_t, std = idx_t[keep], std[keep]
        self.sampler.update(idx_t.tolist(), std.float().tolist())

    @property
    def needs_old_logp(self) -> bool:
        """Whether the sampling policy's log-probs must be computed before the update: they
        equal the first optimizer step's own (detached) log-probs unless the policy changes
        within the batch (several steps, μ > 1) or the reward needs them (KL in the reward)."""
        a = self.a
        steps = a.update_epochs * (a.rollout_prompts * self.G // a.minibatch_size)
        return steps > 1 or self.kl_placement == "reward"

    def score_chunk(self, c: Episodes) -> dict[str, torch.Tensor]:
        """Reference and, when needed, sampling-policy log-probs of a chunk (n, T). Not the
        latter with one optimizer step per batch: the update's own first forward gives the
        sampling policy's log-probs, also those that the log-prob gap and TIS compare with
        another engine's (rollout.backend=vllm): no second forward pass for them."""
        out = {}
        if self.needs_old_logp:
            logits, _ = self.policy(c.prompt_ids, c.prompt_mask, c.ids, c.mask)
            out["old_logp"] = logprobs_from_logits(logits, c.ids)
        if self.use_ref:
            out["ref_logp"] = self.ref_logprobs(c)
        return out

    def score(self, b: Episodes) -> float:
        """Reference (and, when needed, sampling-policy) log-probs in chunks; returns seconds."""
        t0 = time.perf_counter()
        cols = self.score_chunks(b, self.score_chunk)
        b.old_logp, b.ref_logp = cols.get("old_logp"), cols.get("ref_logp")
        return time.perf_counter() - t0

    def compute_advantages(self, b: Episodes) -> dict[str, float]:
        """(N, T) advantages into ``b``; returns stats of the estimator."""
        a, beta = self.a, self.a.kl.beta
        scores = b.scores
        stats: dict[str, float] = {}
        if self.estimator == "batch_whiten":
            if self.kl_placement == "reward":
                r_t = terminal_token_rewards(scores, b.old_logp, b.ref_logp, b.mask, beta)
            else:
                zeros = torch.zeros_like(b.mask, dtype=torch.float32)
                r_t = terminal_token_rewards(scores, zeros, zeros, b.mask, 0.0)
            b.advantages = batch_whitened_returns(r_t, b.mask)
            return stats
        if self.kl_placement == "reward":
            scores = sequence_kl_penalised_scores(scores, b.old_logp, b.ref_logp, b.mask, beta)
            stats["reward/kl_penalised_mean"] = scores.mean().item()
        adv = group_advantages(scores, self.G, self.estimator, a.std_floor, a.std_unbiased)
        if self.estimator == "group_norm":
            std = group_std(scores, self.G, a.std_unbiased)
            stats["group/std_floored_share"] = (
                ((std > 0) & (std < a.std_floor)).float().mean().item()
            )
        b.advantages = adv[:, None].expand_as(b.ids).float()
        stats["advantage/abs_mean"] = adv.abs().mean().item()
        return stats

    # ------------------------------------------------------------------ update
    def micro_loss(self, mb: Episodes, n_seqs: int, n_tokens: float):
        """The loss of one micro-batch as its share of its minibatch's loss, its stats, and the
        policy's log-probs of its tokens (detached)."""
        a = self.a
        logits, _ = self.policy(mb.prompt_ids, mb.prompt_mask, mb.ids, mb.mask)
        # (n, T) each; the entropy is differentiated only for an entropy bonus
        logp, ent = logprobs_and_entropy(logits, mb.ids, entropy_grad=a.ent_coef != 0.0)
        old = mb.old_logp if mb.old_logp is not None else logp.detach()
        if self.ratio_level == "token":
            per_token, ratio = clipped_surrogate(logp - old, mb.advantages, a.clip_low, a.clip_high)
            clips = clip_fractions(ratio, mb.advantages, a.clip_low, a.clip_high)
            clip_stats = {k: masked_mean(v.float(), mb.mask) for k, v in clips.items()}
        else:
            seq_adv = mb.advantages[:, 0]
            log_s = sequence_log_ratio(logp, old, mb.mask, self.ratio_level)  # (n,)
            per_seq, ratio = clipped_surrogate(log_s, seq_adv, a.clip_low, a.clip_high)
            per_token = per_seq[:, None].expand_as(logp)
            clips = clip_fractions(ratio, seq_adv, a.clip_low, a.clip_high)
            clip_stats = {k: v.float().mean() for k, v in clips.items()}
        if a.tis_cap and mb.sampler_logp is not None:  # TIS weight per token (core/tis.py)
            per_token = per_token * tis_weights(old, mb.sampler_logp, a.tis_cap)
        agg = dict(max_len=self.task.max_new_tokens, n_sequences=n_seqs, n_tokens=n_tokens)
        pg_loss = aggregate(per_token, mb.mask, self.aggregation, **agg)
        loss = pg_loss
        stats = {
            "loss/policy": pg_loss.detach(),
            "policy/approx_kl": masked_mean(approx_kl((logp - old).detach()), mb.mask),
        }
        stats.update({f"clip_ratio/{k}_mean": v for k, v in clip_stats.items()})
        if mb.ref_logp is not None:
            if mb.old_logp is None:  # one step per batch: logp IS the sampling policy's
                for k in ("k1", "k2", "k3"):
                    stats[f"kl/{k}"] = masked_mean(
                        kl_estimate(logp.detach(), mb.ref_logp, k), mb.mask
                    )
            if self.kl_placement == "loss":
                kl_t = kl_estimate(logp, mb.ref_logp, self.kl_kind)
                kl_loss = aggregate(kl_t, mb.mask, self.aggregation, **agg)
                loss = loss + a.kl.beta * kl_loss
                stats["loss/kl"] = kl_loss.detach()
        with torch.set_grad_enabled(a.ent_coef != 0.0):
            ent_agg = aggregate(ent, mb.mask, self.aggregation, **agg)
        if a.ent_coef:
            loss = loss - a.ent_coef * ent_agg
        stats["policy/entropy"] = masked_mean(ent.detach(), mb.mask)
        stats["loss/total"] = loss.detach()
        return loss, stats, logp.detach()

    def update(self, b: Episodes) -> dict[str, float]:
        """μ passes over the batch; one optimizer step per minibatch, accumulated over
        micro-batches. Stats are means over micro-batches (losses summed per minibatch)."""
        a = self.a
        opt = self.optimizers()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        additive = ("loss/policy", "loss/kl", "loss/total")
        n_steps = 0
        # unscored batch (one step per batch) from another engine: keep the first forward's
        # log-probs, the sampling policy's own, for the log-prob gap (training_step)
        keep_logp = b.old_logp is None and b.sampler_logp is not None
        first_logp = torch.zeros_like(b.sampler_logp, dtype=torch.float32) if keep_logp else None
        for _ in range(a.update_epochs):
            for mb_idx in torch.randperm(len(b), device=b.ids.device).split(a.minibatch_size):
                mb = b.index(mb_idx)
                n_seqs, n_tokens = len(mb), float(mb.mask.sum())
                opt.zero_grad()
                step: dict[str, float] = {}
                for micro_idx in torch.arange(len(mb), device=b.ids.device).split(
                    a.micro_batch_size
                ):
                    micro = mb.index(micro_idx)
                    loss, st, logp = self.micro_loss(micro, n_seqs, n_tokens)
                    if keep_logp:
                        first_logp[mb_idx[micro_idx]] = logp.float()
                    self.manual_backward(loss)
                    w = len(micro) / n_seqs
                    for k, v in st.items():
                        # losses are shares of the minibatch loss: sum them; the rest average
                        step[k] = step.get(k, 0.0) + float(v) * (1.0 if k in additive else w)
                self.clip_grad_norm(opt)
                opt.step()
                n_steps += 1
                for k, v in step.items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
        out = {k: v / counts[k] for k, v in sums.items()}
        out["policy/optimizer_steps"] = float(n_steps)
        if keep_logp:
            b.old_logp = first_logp
        return out

    def kl_stats(self, b: Episodes) -> dict[str, float]:
        """k1, k2, k3 of the sampling policy to π_ref over the batch's tokens, side by side."""
        if b.ref_logp is None:
            return {}
        logp = b.old_logp
        if logp is None:  # not scored before the update: micro_loss logs them
            return {}
        return {
            f"kl/{k}": masked_mean(kl_estimate(logp, b.ref_logp, k), b.mask).item()
            for k in ("k1", "k2", "k3")
        }

    # ------------------------------------------------------------------ one iteration
    def training_step(self, batch, batch_idx):
        it = self.current_epoch
        probe_stats = self.probe(it)
        torch.manual_seed(rollout_seed(self.cfg.seed, it))
        b, stats = self.collect(it, self.draw_prompts(it, batch))
        stats["time/score_s"] = self.score(b)
        stats.update(probe_stats)
        stats.update(self.policy.generation_stats())
        # k1/k2/k3 of the sampling policy: from its scored log-probs here, or (one optimizer
        # step per batch, nothing scored) from the update's own first forward (micro_loss)
        stats.update(self.kl_stats(b))
        stats.update(self.compute_advantages(b))
        zero = not self.a.dynamic_sampling and bool((b.advantages == 0).all())
        need = evidence_needed(self.cfg)
        if self._zero_adv.add(len(b), zero) >= need:
            self.name_degenerate(
                "zero_advantage",
                f"iteration {it + 1}: every advantage of the last {self._zero_adv.n}"
                " completions is 0 (each group's rewards are equal), so the policy gradient is"
                " 0. Fix: a reward with a spread over a prompt's samples, more samples per"
                " prompt, alg.dynamic_sampling=true or alg.prompt_sampling=std_aware, or a warm"
                f" start (alg.warm_start.steps). degenerate_after={need} sets how many in a"
                " row are named.",
            )
        t0 = time.perf_counter()
        stats.update(self.update(b))
        stats["time/update_s"] = time.perf_counter() - t0
        if b.sampler_logp is not None:  # another engine sampled: how far its numerics are off
            stats.update(logprob_gap_stats(b.old_logp, b.sampler_logp, b.mask, self.a.tis_cap))
        stats.update(self.completion_stats(b))
        if self.sampler is not None:
            stats.update(self.sampler.stats())
        self.finish_iteration(stats, len(b))

    def name_degenerate(self, kind: str, msg: str) -> None:
        """A degenerate batch named once per run and kind, on rank 0 (rft.degenerate: a
        warning, or an error with strict=true)."""
        if kind in self._degenerate_named or self.global_rank != 0:
            return
        self._degenerate_named.add(kind)
        degenerate(msg, self.cfg, log)

    def completion_stats(self, b: Episodes) -> dict[str, float]:
        """Reward and completion-length statistics of the batch."""
        lengths = b.mask.sum(-1).float()
        eos = self.policy.tokenizer.eos_token_id
        last_tok = b.ids.gather(1, (lengths.long() - 1).clamp(min=0)[:, None]).squeeze(1)
        truncated = (lengths >= self.task.max_new_tokens) & (last_tok != eos)
        return {
            "reward/mean": b.scores.mean().item(),
            "reward/std": b.scores.std(unbiased=False).item(),
            "completion/mean_length": lengths.mean().item(),
            "completion/min_length": lengths.min().item(),
            "completion/max_length": lengths.max().item(),
            "completion/clipped_ratio": truncated.float().mean().item(),
        }

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["group"] = {
            "generated_tokens_total": self.generated_tokens_total,
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        g = checkpoint.get("group", {})
        self.generated_tokens_total = int(g.get("generated_tokens_total", 0))
        if self.sampler is not None and g.get("sampler") is not None:
            self.sampler.load_state_dict(g["sampler"])
