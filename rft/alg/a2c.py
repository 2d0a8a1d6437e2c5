"""A2C for language models, as RL4LMs runs it (``rl4lms/algorithms/a2c/a2c.py``, a copy of
stable-baselines3's A2C; docs/algorithms.md §16).

One Lightning epoch = one iteration, on rft.alg.ppo.ActorCritic (everything but step 4 is PPO's):
  1. rollout: K completions for each of ``rollout_prompts`` train prompts;
  2. reward; 3. score (no grad): old log-probs and values, π_ref's log-probs;
  4. per-token reward r_t = -β (log π - log π_ref), plus R(x, y) on the last token; GAE with
     λ = 1 (RL4LMs A2C's default), so A_t = the discounted return from t minus V(s_t);
  5. ONE gradient step on the whole rollout (rft.core.a2c):
        loss = -mean_t(A_t · log π_θ) + vf_coef · mean_t (G_t - V_θ)² - ent_coef · mean_t H_t,
     advantages not normalised, the value loss unclipped, the global gradient norm clipped to
     0.5, RMSprop(alpha 0.99, eps 1e-5). The rollout is cut into ``minibatch_size`` chunks
     whose gradients accumulate into that one step (each chunk's loss is its share of the
     rollout's token mean, so the step equals the one-batch step);
  6. the KL controller steps once with the rollout's mean per-token KL.

Deviations from RL4LMs, on purpose:
- Everything PPO-level is rft's (rft/alg/ppo.py): a value head on the policy's trunk by
  default (``value_model: shared``; RL4LMs: a separate LM copy, ``separate``), starting at zero
  weights with its own learning rate (``value_head_lr``), dropout off, the iteration's RNG
  seeded from (seed, iteration).
- The CPU-sized defaults are alg=ppo's rollout (32 episodes of 48 tokens), γ = 1 and
  lr 2e-5 (RL4LMs' IMDB config: 2 episodes per iteration, γ 0.99, lr 1e-6 for 100 iterations).
- RMSprop applies ``alg.weight_decay`` (default 0) to every parameter; RL4LMs' LM policy
  passes 1e-6 (L2) to its non-bias, non-LayerNorm parameters. ``alg.optimizer=adamw`` trains
  with rft's AdamW instead.
- RL4LMs' ``ppo/entropy_loss`` is -H; rft logs ``policy/entropy`` = H (and ``loss/policy``,
  ``loss/value``, ``loss/total``).
- Seq2seq policies (T5, BART) work as with PPO.
"""

from __future__ import annotations

import torch

from rft.alg.ppo import ActorCritic, Rollout
from rft.config import choice
from rft.core import logprobs_and_entropy
from rft.core.a2c import a2c_loss
from rft.core.kl import approx_kl
from rft.core.masked import masked_mean, masked_sum
from rft.core.trpo import normalize_advantages
from rft.errors import ConfigError


class A2C(ActorCritic):
    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        a = cfg.alg
        checks = [
            (
                a.update_epochs == 1,
                f"alg.update_epochs={a.update_epochs}: A2C takes exactly one gradient step per "
                "rollout (RL4LMs); set alg.update_epochs=1 (alg=ppo reuses a rollout).",
            ),
            (a.minibatch_size >= 1, f"alg.minibatch_size={a.minibatch_size}: must be ≥ 1."),
            (
                0 <= a.rms_alpha < 1,
                f"alg.rms_alpha={a.rms_alpha}: RMSprop's decay must be in [0, 1) (RL4LMs: 0.99).",
            ),
            (a.rms_eps > 0, f"alg.rms_eps={a.rms_eps}: must be > 0 (RL4LMs: 1e-5)."),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def configure_optimizers(self):
        a = self.a
        if choice(a.optimizer) == "adamw":
            return super().configure_optimizers()
        return torch.optim.RMSprop(
            self.param_groups(),
            lr=a.lr,
            alpha=a.rms_alpha,
            eps=a.rms_eps,
            weight_decay=a.weight_decay,
        )

    def update(self, r: Rollout) -> dict[str, float]:
        """One optimizer step on the whole rollout, accumulated over chunks of
        ``minibatch_size`` episodes (module docstring)."""
        a = self.a
        opt = self.optimizers()
        opt.zero_grad()
        adv = r.advantages
        if a.normalize_advantage:
            adv = normalize_advantages(adv, r.policy_mask)
        n_tokens = r.mask.sum()
        sums = {"loss/policy": 0.0, "loss/value": 0.0, "policy/entropy": 0.0, "kl_sum": 0.0}
        for idx in torch.arange(len(r), device=r.ids.device).split(a.minibatch_size):
            mb = r.index(idx)
            logits, values = self.values_and_logits(mb)
            logp, ent = logprobs_and_entropy(logits, mb.ids, entropy_grad=a.ent_coef != 0.0)
            loss, parts = a2c_loss(
                logp, values, ent, adv[idx], mb.returns, mb.mask, a.vf_coef, a.ent_coef, n_tokens
            )
            self.manual_backward(loss)
            sums["loss/policy"] += float(parts["policy"])
            sums["loss/value"] += float(parts["value"])
            sums["policy/entropy"] += float(parts["entropy"])
            # the step's own log-probs against the rollout's: 0 unless the forwards disagree
            sums["kl_sum"] += float(masked_sum(approx_kl(logp.detach() - mb.old_logp), mb.mask))
        self.clip_grad_norm(opt)
        opt.step()
        stats = {k: v for k, v in sums.items() if k != "kl_sum"}
        stats["loss/total"] = (
            stats["loss/policy"]
            + a.vf_coef * stats["loss/value"]
            - a.ent_coef * stats["policy/entropy"]
        )
        stats["policy/approx_kl"] = sums["kl_sum"] / max(float(n_tokens), 1.0)
        stats["advantage/mean"] = masked_mean(adv, r.mask).item()
        return stats

    @property
    def update_passes(self) -> int:
        return 1
