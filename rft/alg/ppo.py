"""PPO for language models, as RL4LMs implements it (docs/algorithms.md §1).

One Lightning epoch = one iteration:
  1. rollout: sample K completions for each of ``rollout_prompts`` train prompts (KV cache, one
     ``generate`` call per iteration);
  2. reward: score every completion in batches;
  3. score (no grad, one forward pass each): old log-probs and values under the policy,
     reference log-probs under the frozen π_ref;
  4. per-token reward r_t = -β (log π - log π_ref), plus R(x, y) on the last token; GAE;
  5. ``update_epochs`` × minibatches of the clipped surrogate + vf_coef · value loss - ent_coef · H,
     advantages whitened per minibatch, grad-norm clipping;
  6. the KL controller steps once with the rollout's mean per-token KL.

Deviations from RL4LMs, on purpose:
- The value function defaults to a head on the policy's own trunk (``value_model: shared``);
  ``value_model: separate`` is RL4LMs' separate LM copy + linear head (no bias).
- The value head starts at zero weights, so early value gradients do not disturb the policy,
  and may have its own learning rate (``value_head_lr``; RL4LMs uses one lr for everything).
  A fresh linear head at a policy-sized lr (1e-6 .. 2e-5) needs hundreds of updates to reach
  the returns' scale; until then advantages are mostly noise. The CPU-sized defaults use it.
- The CPU-sized defaults (conf/alg/ppo.yaml) use γ = 1 (GRUE: 0.99; experiment=grue_imdb_ppo
  keeps it): with one terminal reward over 48 tokens, γ < 1 makes the returns grow with the
  token's position, a trend a young value head cannot yet remove, i.e. advantage noise.
- Dropout is disabled in the policy and reference (as in TRL), so the log-ratio of an
  un-updated policy is exactly 1.
- Each iteration's RNG is seeded from (seed, iteration): a resumed run samples exactly what an
  uninterrupted one would.

Options (docs/algorithms.md §14):
- ``score_norm`` (default ``none``): the sequence score R enters the per-token reward as the
  reward function returns it, as in RL4LMs / GRUE; docs/results.md was measured that way.
  ``scale`` divides R by the running std of every score seen so far (all ranks), ``standardize``
  also subtracts the running mean (rft/core/normalize.py), so that β weighs the KL against the
  reward's spread whatever its units. The moments take the current rollout in BEFORE it is
  normalised (``reward_scores``) and live in the checkpoint; ``reward/mean`` stays the raw score.
- ``objective/score_to_kl`` = std(R as it enters the reward) / (β · mean per-sequence KL) is
  logged every iteration; below ``kl_dominance_warn`` a rate-limited warning says the KL penalty
  outweighs the reward's spread (the policy then drifts while the reward stays flat).

Guide-policy variants (PPO++, AggreVaTeD, …) reuse ``collect_rollout`` / ``ppo_update`` and
change only who generates which tokens and the loss masks in ``Rollout``. Steps 1-4 and 6 live
in ``ActorCritic``, the base PPO shares with A2C and TRPO (rft/alg/a2c.py, rft/alg/trpo.py;
docs/algorithms.md §16), which RL4LMs runs through the same wrapper; PPO adds step 5.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from rft.alg.online import Episodes, OnlineRL
from rft.config import choice
from rft.core import (
    explained_variance,
    gae,
    logprobs_and_entropy,
    logprobs_from_logits,
    make_kl_controller,
    masked_mean,
    masked_whiten,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)
from rft.core.normalize import RunningMoments, normalize_scores
from rft.core.tis import logprob_gap_stats, tis_weights
from rft.degenerate import degenerate
from rft.diagnostics.reward_stats import rollout_reward_spread
from rft.errors import ConfigError
from rft.model.policy import PolicyLM, ValueHead
from rft.optim import adamw
from rft.rng import rollout_seed

log = logging.getLogger(__name__)

SCORE_TO_KL_CAP = 1e6
"""``objective/score_to_kl`` when β · KL ≤ 0 (iteration 1, where π_θ = π_ref and the KL is
exactly 0, or a k1 estimate that dipped below 0), and its upper bound otherwise: a finite value
keeps every logger and plot working, and 1e6 reads as "no penalty to speak of"."""
KL_WARN_EVERY = 10
"""At most one KL-dominance warning per this many iterations (the first one at once)."""


@dataclass
class Rollout(Episodes):
    """PPO's buffer: the episodes (rft.alg.online.Episodes) plus, per token (N, T), values,
    KL-penalised rewards, the KL, advantages and returns, and the loss masks; (N,) the scores
    as they enter the per-token reward (``reward_scores``: normalised when alg.score_norm is
    on). ``policy_mask`` / ``value_mask`` select the tokens each loss covers (both = the
    completion mask for plain PPO; a guided rollout's cover a prefix or a suffix)."""

    old_values: Tensor | None = None
    rewards: Tensor | None = None
    kl: Tensor | None = None
    returns: Tensor | None = None
    policy_mask: Tensor | None = None
    value_mask: Tensor | None = None
    reward_scores: Tensor | None = None


Critic = tuple["PolicyLM | None", ValueHead]
"""(value LM, or None for a head on the policy's own trunk; value head)."""


class ActorCritic(OnlineRL):
    """What PPO, A2C and TRPO share, as RL4LMs runs all three through one wrapper: the rollout
    (K completions per prompt), scoring (old log-probs and values under the policy, π_ref's
    log-probs), the per-token KL-penalised reward with the adaptive β, GAE, the value head (or a
    separate value LM), the KL controller's step and the iteration's record. A family writes
    ``update(rollout)`` (its losses and optimizer steps) and its checks; ``training_step`` is
    this class's."""

    rollout_cls: type[Rollout] = Rollout
    """The buffer collect_rollout fills (NLPO's adds its mask statistics)."""

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        a = cfg.alg
        checks = [
            (0 <= a.gamma <= 1, f"alg.gamma={a.gamma}: a discount must be in [0, 1]."),
            (0 <= a.lam <= 1, f"alg.lam={a.lam}: GAE's λ must be in [0, 1]."),
            (
                a.get("vf_coef", 0.0) >= 0,
                f"alg.vf_coef={a.get('vf_coef')}: must be ≥ 0 (GRUE: 0.5).",
            ),
            (
                a.kl_dominance_warn >= 0,
                f"alg.kl_dominance_warn={a.kl_dominance_warn}: must be ≥ 0 (0 = never warn).",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        kl = a.kl
        kind = choice(kl.kind)
        if kl.beta < 0:
            raise ConfigError(f"alg.kl.beta={kl.beta}: must be ≥ 0 (0 = no KL penalty).")
        if kind != "fixed" and (kl.target is None or kl.target <= 0):
            raise ConfigError(
                f"alg.kl.target={kl.target} with alg.kl.kind={kind}: the adaptive controllers "
                "steer β towards a positive target KL (GRUE IMDB: 0.1). Set alg.kl.target > 0, "
                "or alg.kl.kind=fixed for a constant β."
            )
        if kind == "adaptive_ziegler" and kl.horizon <= 0:
            raise ConfigError(f"alg.kl.horizon={kl.horizon}: must be > 0 (Ziegler et al.: 10000).")

    def __init__(self, cfg, task, policy: PolicyLM, ref: PolicyLM, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        a = self.a
        self.value_model: PolicyLM | None = None
        if choice(a.value_model) == "separate":
            self.value_model = copy.deepcopy(policy)
        self.value_head = ValueHead(policy.hidden_size)
        self.kl_ctl = make_kl_controller(choice(a.kl.kind), a.kl.beta, a.kl.target, a.kl.horizon)
        self.score_norm = choice(a.score_norm)
        self.score_moments = RunningMoments()  # every score of the run, all ranks (checkpointed)
        self._kl_warned_at: int | None = None  # iteration of the last KL-dominance warning

    # ------------------------------------------------------------------ optim
    def trainable_parameters(self):
        params = list(self.policy.parameters()) + list(self.value_head.parameters())
        if self.value_model is not None:
            params += list(self.value_model.parameters())
        return params

    def param_groups(self, params=None) -> list[dict]:
        """The trained ``params`` (default: ``trainable_parameters``) in two groups: the rest at
        alg.lr, the value heads at alg.value_head_lr. Value heads are fresh linear layers: at a
        policy-sized lr they learn far slower than a short run needs."""
        heads = {id(p) for m in self.modules() if isinstance(m, ValueHead) for p in m.parameters()}
        # requires_grad: a LoRA policy (or value model) trains its adapters only
        params = [p for p in (params or self.trainable_parameters()) if p.requires_grad]
        head_lr = self.a.value_head_lr or self.a.lr
        return [
            {"params": [p for p in params if id(p) not in heads], "lr": self.a.lr},
            {"params": [p for p in params if id(p) in heads], "lr": head_lr},
        ]

    def configure_optimizers(self):
        return adamw(
            self.param_groups(),
            lr=self.a.lr,
            weight_decay=self.a.weight_decay,
            fused=not self.lightning_clips,
        )

    # ------------------------------------------------------------------ model calls
    def critic(self, r: Rollout) -> Critic:
        """The critic that scores rollout ``r`` and learns from it: PPO's own, always."""
        return self.value_model, self.value_head

    def values_and_logits(self, r: Rollout, need_logits: bool = True):
        """One forward pass of the policy (and of the value model if separate): logits (N, T, V)
        and values (N, T) from ``r``'s critic."""
        value_model, value_head = self.critic(r)
        shared = value_model is None
        logits, hidden = self.policy(
            r.prompt_ids,
            r.prompt_mask,
            r.ids,
            r.mask,
            return_hidden=shared,
            return_logits=need_logits,
        )
        if not shared:
            _, hidden = value_model(
                r.prompt_ids, r.prompt_mask, r.ids, r.mask, return_hidden=True, return_logits=False
            )
        return logits, value_head(hidden).float()

    def score_chunk(self, chunk: Rollout) -> dict[str, Tensor]:
        """The old log-probs and values of a chunk's tokens (one policy forward, and one of the
        value model if separate) and π_ref's log-probs (one forward), each (n, T), named as the
        Rollout fields they fill."""
        logits, v = self.values_and_logits(chunk)
        return {
            "old_logp": logprobs_from_logits(logits, chunk.ids),
            "old_values": v,
            "ref_logp": self.ref_logprobs(chunk),
        }

    def score_rollout(self, r: Rollout) -> None:
        """Every column of ``score_chunk``, in chunks of ``score_batch_size``, into ``r``."""
        for name, value in self.score_chunks(r, self.score_chunk).items():
            setattr(r, name, value)

    # ------------------------------------------------------------------ one iteration
    def collect_rollout(self, examples) -> tuple[Rollout, dict[str, float]]:
        """K completions per example, rewarded and scored; the rollout's stats (phase times,
        the sampler/trainer log-prob gap, the per-prompt reward spread)."""
        K = self.a.samples_per_prompt
        r, stats = self.sample_episodes(examples, K, self.rollout_cls)
        r.policy_mask = r.value_mask = r.mask
        t0 = time.perf_counter()
        self.score_rollout(r)
        stats["time/score_s"] = time.perf_counter() - t0
        if r.sampler_logp is not None:  # another engine sampled: how far its numerics are off
            stats.update(logprob_gap_stats(r.old_logp, r.sampler_logp, r.mask, self.a.tis_cap))
        stats.update(self.policy.generation_stats())
        # per-prompt reward spread (Razin et al.: small std = vanishing gradient)
        stats.update(rollout_reward_spread(r.scores, K, self.cfg.diag.std_threshold))
        return r, stats

    def kl_logp(self, r: Rollout) -> Tensor:
        """The policy log-probs the KL-to-reference penalty compares with π_ref's: the old ones
        (NLPO: its unmasked ones)."""
        return r.old_logp

    def compute_advantages(self, r: Rollout) -> None:
        """KL-penalised per-token rewards and GAE over EVERY completion token; the policy and
        value masks only choose which tokens each loss sees (a guided rollout's masks may cover
        just a prefix or a suffix of the sequence)."""
        r.reward_scores = self.reward_scores(r)
        r.rewards, r.kl = per_token_rewards(
            r.reward_scores, self.kl_logp(r), r.ref_logp, r.mask, self.kl_ctl.beta
        )
        if self.a.whiten_rewards:
            r.rewards = masked_whiten(r.rewards, r.mask, shift_mean=False)
        r.advantages, r.returns = gae(
            r.rewards, r.old_values * r.mask, r.mask, self.a.gamma, self.a.lam
        )

    def reward_scores(self, r: Rollout) -> torch.Tensor:
        """The sequence scores (N,) as they enter the per-token reward: ``r.scores`` itself with
        alg.score_norm=none, else normalised by the running moments (rft/core/normalize.py).

        The moments merge this rollout's scores FIRST, then normalise them: the first rollout
        then has a spread to be divided by (past-only moments would have none), and a reward
        whose scale moves is followed within the same iteration. Under DDP every rank merges
        the scores of ALL ranks (gathered in rank order), so the moments, and hence the
        normalisation, are identical on every rank."""
        if self.score_norm == "none":
            return r.scores
        everyone = r.scores
        if self._trainer is not None and self.trainer.world_size > 1:
            # every rank rolls out the same number of episodes, so the shapes agree
            everyone = self.all_gather(r.scores).flatten()
        self.score_moments.update(everyone)
        return normalize_scores(r.scores, self.score_moments, self.score_norm)

    def score_to_kl(self, reward_scores: torch.Tensor, beta: float, kl_seq: float) -> float:
        """std(score as it enters the reward, population, over the rollout) / (β · mean
        per-sequence KL): how the reward's spread compares with the KL penalty's pull. Capped at
        SCORE_TO_KL_CAP, which is also the value when β · KL ≤ 0."""
        penalty = beta * kl_seq
        spread = reward_scores.std(unbiased=False).item()
        if penalty <= 0 or spread >= SCORE_TO_KL_CAP * penalty:
            return SCORE_TO_KL_CAP
        return spread / penalty

    def warn_if_kl_dominates(self, ratio: float, it: int) -> None:
        """One warning when ``ratio`` < alg.kl_dominance_warn, the first time, then at most
        every KL_WARN_EVERY iterations. Rank 0 only, on the ratio it logs (from its own rollout):
        one warning per run, not one per rank."""
        limit = self.a.kl_dominance_warn
        if not limit or ratio >= limit or self.global_rank != 0:
            return
        if self._kl_warned_at is not None and it - self._kl_warned_at < KL_WARN_EVERY:
            return
        self._kl_warned_at = it
        degenerate(
            f"iteration {it + 1}: the KL penalty outweighs the reward's spread: std(score) / "
            f"(β · KL per sequence) = {ratio:.3g} < alg.kl_dominance_warn={limit:g}. The policy "
            "can drift from the reference while the reward does not move. Fix: "
            "alg.score_norm=scale (divide the score by its running std), or a smaller "
            "alg.kl.beta.",
            self.cfg,
            log,
        )

    # ------------------------------------------------------------------ the family's part
    def update(self, r: Rollout) -> dict[str, float]:
        """The family's updates on the scored rollout ``r`` (advantages and returns filled);
        the stats to record."""
        raise NotImplementedError

    @property
    def update_passes(self) -> int:
        """Passes over the rollout's tokens per iteration (``time/update_tokens_per_s``)."""
        return self.a.update_epochs

    def training_step(self, batch, batch_idx):
        it = self.current_epoch
        probe_stats = self.probe(it)
        torch.manual_seed(rollout_seed(self.cfg.seed, it))
        r, stats = self.collect_rollout([self.task.train[i] for i in batch])
        self.compute_advantages(r)
        t0 = time.perf_counter()
        stats.update(probe_stats)
        stats.update(self.update(r))
        stats["time/update_s"] = t_update = time.perf_counter() - t0
        seq_tokens = (r.prompt_mask.sum() + r.mask.sum()).item()
        stats["time/update_tokens_per_s"] = self.update_passes * seq_tokens / max(t_update, 1e-9)
        stats.update(self.kl_step(r, it))
        stats.update(
            {
                "reward/mean": r.scores.mean().item(),
                "reward/std": r.scores.std(unbiased=False).item(),
                "value/explained_variance": explained_variance(
                    r.old_values, r.returns, r.value_mask
                ).item(),
                "value/mean": masked_mean(r.old_values, r.value_mask).item(),
                "completion/tokens": r.mask.sum(-1).float().mean().item(),
            }
        )
        self.finish_iteration(stats, len(r))

    def kl_step(self, r: Rollout, it: int) -> dict[str, float]:
        """Step the KL controller with the rollout's mean per-token KL; the KL stats and the
        score-to-KL ratio (warned about when the penalty dominates)."""
        kl_mean = masked_mean(r.kl, r.mask).item()
        kl_seq = (r.kl * r.mask).sum(-1).mean().item()
        beta = self.kl_ctl.beta
        self.kl_ctl.step(kl_mean, n_steps=len(r))
        stats = {
            "objective/kl": kl_mean,
            "objective/kl_seq": kl_seq,
            "objective/kl_coef": beta,
            "objective/score_to_kl": self.score_to_kl(r.reward_scores, beta, kl_seq),
        }
        self.warn_if_kl_dominates(stats["objective/score_to_kl"], it)
        if self.score_norm != "none":
            stats["reward/score_norm_mean"] = self.score_moments.mean
            stats["reward/score_norm_std"] = self.score_moments.std
        return stats

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["kl_controller"] = self.kl_ctl.state_dict()
        checkpoint["score_moments"] = self.score_moments.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "kl_controller" in checkpoint:
            self.kl_ctl.load_state_dict(checkpoint["kl_controller"])
        if "score_moments" in checkpoint:
            self.score_moments.load_state_dict(checkpoint["score_moments"])


class PPO(ActorCritic):
    supports_tis = True

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        a = cfg.alg
        checks = [
            (a.clip_range >= 0, f"alg.clip_range={a.clip_range}: must be ≥ 0 (GRUE: 0.2)."),
            (
                a.clip_range_vf is None or a.clip_range_vf >= 0,
                f"alg.clip_range_vf={a.clip_range_vf}: must be ≥ 0, or null for no value clip.",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def update(self, r: Rollout) -> dict[str, float]:
        return self.ppo_update(r)

    def ppo_update(self, r: Rollout) -> dict[str, float]:
        """update_epochs passes of minibatch PPO over the rollout buffer."""
        a = self.a
        sums: dict[str, float] = {}
        n_mb = 0
        for _ in range(a.update_epochs):
            for idx in torch.randperm(len(r), device=r.ids.device).split(a.minibatch_size):
                mb = r.index(idx)
                logits, values = self.values_and_logits(mb)
                # the entropy is differentiated only for an entropy bonus (ent_coef != 0)
                logp, ent = logprobs_and_entropy(logits, mb.ids, entropy_grad=a.ent_coef != 0.0)
                adv = masked_whiten(mb.advantages, mb.policy_mask)
                if a.tis_cap and mb.sampler_logp is not None:
                    # TIS: w · (clipped loss) = the clipped loss of w · A, as w ≥ 0 (core/tis.py)
                    adv = adv * tis_weights(mb.old_logp, mb.sampler_logp, a.tis_cap)
                pg_loss, pg_stats = ppo_policy_loss(
                    logp, mb.old_logp, adv, mb.policy_mask, a.clip_range
                )
                vf_loss, vf_stats = ppo_value_loss(
                    values, mb.old_values, mb.returns, mb.value_mask, a.clip_range_vf
                )
                entropy = masked_mean(ent, mb.policy_mask)
                extra_loss, extra_stats = self.extra_loss(mb)
                loss = pg_loss + a.vf_coef * vf_loss - a.ent_coef * entropy + extra_loss
                self.optimizer_step_clipped(loss)
                step = {
                    "loss/total": loss,
                    "loss/policy": pg_loss,
                    "loss/value": vf_loss,
                    "policy/entropy": entropy,
                    "policy/clipfrac": pg_stats["clipfrac"],
                    "policy/approx_kl": pg_stats["approx_kl"],
                    "value/clipfrac": vf_stats["value_clipfrac"],
                    **extra_stats,
                }
                for k, v in step.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                n_mb += 1
        return {k: v / n_mb for k, v in sums.items()}

    def extra_loss(self, mb: Rollout) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        """A term added to every minibatch loss, and its stats to log: none for PPO. (Guided PPO
        adds RLGF's target regularization here.)"""
        return 0.0, {}
