"""TRPO for language models, as RL4LMs runs it (``rl4lms/algorithms/trpo/trpo.py``, a copy of
sb3-contrib's TRPO; docs/algorithms.md §16). The maths: rft/core/trpo.py.

One Lightning epoch = one iteration, on rft.alg.ppo.ActorCritic (steps 1-4 and 7 are PPO's):
  1. rollout: K completions for each of ``rollout_prompts`` train prompts;
  2. reward; 3. score (no grad): old log-probs and values, π_ref's log-probs;
  4. per-token reward r_t = -β (log π - log π_ref), plus R(x, y) on the last token; GAE(γ, λ);
  5. ONE trust-region step of the policy (the actor: its trained parameters; the value head and
     a separate value LM are not in it), on the whole rollout:
       - advantages normalised over the rollout; the surrogate L(θ) = mean_t Â_t ρ_t and its
         gradient g at θ_old;
       - x ≈ H⁻¹ g by conjugate gradient (``cg_max_steps``, x₀ = 1e-4 · N(0, I) drawn from
         rft.rng.cg_init_generator(seed, iteration), so a resumed run draws the same), with
         H v = ∇(∇D · v) + cg_damping · v, D = mean_t KL(π_θ ‖ π_old) exact over the vocabulary,
         over a random ``fisher_fraction`` of the episodes (from the same stream);
       - β = sqrt(2 max_kl / xᵀHx); θ = θ_old + 0.8^i β x for the first i (of 10) with
         D(θ) < max_kl and L(θ) > L(θ_old), else θ stays θ_old;
  6. ``update_epochs`` (sb3-contrib n_critic_updates: 10) epochs of critic minibatches,
     MSE(G_t, V(s_t)), with the critic's own AdamW (the policy's weights do not move);
  7. the KL controller steps once with the rollout's mean per-token KL.

Every actor pass (g, each Fisher-vector product, each line-search try) runs over chunks of
``micro_batch_size`` episodes: each is a sum of per-token terms divided by the rollout's token
count, so chunking is exact, and only one chunk's graph is alive at a time. π_old's full
distribution, which the line search's KL needs, comes from ``old_policy``: a frozen copy of the
actor at θ_old, synced before each step (one model's memory, whatever the rollout size; it is
rebuilt, never checkpointed).

Logged: ``policy/approx_kl`` (sampled tokens, the kept θ against the rollout's log-probs),
``trpo/line_search_success`` (0 / 1; its mean over iterations is the success rate),
``trpo/step_fraction`` (0.8^i of the accepted step, 0 when none), ``trpo/kl_after`` (D at the
kept θ), ``trpo/surrogate_gain`` (L(θ) - L(θ_old)), ``trpo/cg_residual`` (‖r‖²),
``trpo/cg_steps``, ``trpo/step_size`` (β), ``trpo/grad_norm`` (‖g‖), ``loss/value`` and PPO's
rows (reward, objective/kl, the β, explained variance).

Deviations from RL4LMs, on purpose:
- Seq2seq policies (T5, BART) are supported: RL4LMs' TRPO calls ``get_distribution`` and
  ``predict_values``, which only its causal policy defines, so it fails there; rft's TRPO goes
  through PolicyLM.forward like every family. The actor passes run PyTorch's SDPA on its math
  kernel (differentiable twice); ``hardware.attention=flash_attention_2`` is refused.
- Critic minibatches are ``minibatch_size`` EPISODES (all their tokens), shuffled per epoch;
  sb3-contrib shuffles 128 single transitions. The critic's optimizer is AdamW over the value
  head (at ``value_head_lr``) and a separate value LM (at alg.lr) only; sb3-contrib steps the
  policy's whole optimizer with the actor's gradients removed (the same effect).
- Actor parameters that a forward pass does not use get a zero gradient and take part in the
  step (sb3-contrib drops them; for an LM every trained parameter is used).
- Everything PPO-level is rft's (rft/alg/ppo.py): a value head on the policy's trunk by default
  (RL4LMs: a separate LM copy, ``alg.value_model=separate``), dropout off, the iteration's RNG
  seeded from (seed, iteration). With the shared trunk, the critic's epochs train the head on
  the trunk's features after the actor's step, computed once (no grad).
- The CPU-sized defaults are alg=ppo's rollout (32 episodes), γ = 1, at most 10 CG steps and
  the Fisher-vector products on a quarter of the episodes (``fisher_fraction``; sb3-contrib:
  2048 steps, γ 0.99, 15 CG steps, every transition). A product is a double backward through
  the LM: on SmolLM2-135M it costs ≈ 12 forward passes of its episodes and ≈ 1 GB of memory
  per episode, and 17 of them over the whole rollout would take half an hour per iteration on
  a 2-core CPU. Schulman et al. (2015) suggest estimating the Fisher-vector products on a
  subsample; the gradient g, the KL constraint and the line search still use every episode.
  ``alg.fisher_fraction=1 alg.cg_max_steps=15`` is RL4LMs' setting.
- Under DDP every sum (L, D, g, each H v, the token count) is all-reduced, so every rank takes
  the same step on the union of the ranks' rollouts.
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
from torch import Tensor

from rft.alg.ppo import ActorCritic, Rollout
from rft.core import logprobs_and_entropy, logprobs_from_logits
from rft.core.kl import approx_kl
from rft.core.masked import masked_mean, masked_sum
from rft.core.trpo import (
    CGResult,
    add_grad,
    backtracking_line_search,
    categorical_kl,
    conjugate_gradient,
    fisher_vector_product,
    max_step_size,
    normalize_advantages,
    set_params,
    surrogate,
)
from rft.errors import ConfigError
from rft.optim import adamw
from rft.rng import cg_init_generator


def math_attention():
    """SDPA on its math kernel (differentiable twice), for the passes that differentiate the
    KL twice; models on eager attention ignore it."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # older torch: its default dispatch
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


class TRPO(ActorCritic):
    has_unused_parameters = True  # the critic's steps leave the policy without gradients

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        a = cfg.alg
        checks = [
            (
                a.max_kl > 0,
                f"alg.max_kl={a.max_kl}: the trust region δ must be > 0 (RL4LMs: 0.01).",
            ),
            (a.cg_max_steps >= 1, f"alg.cg_max_steps={a.cg_max_steps}: must be ≥ 1 (RL4LMs: 15)."),
            (a.cg_damping >= 0, f"alg.cg_damping={a.cg_damping}: must be ≥ 0 (RL4LMs: 0.1)."),
            (
                a.cg_residual_tol >= 0,
                f"alg.cg_residual_tol={a.cg_residual_tol}: must be ≥ 0 (RL4LMs: 1e-10).",
            ),
            (
                0 < a.line_search_shrink < 1,
                f"alg.line_search_shrink={a.line_search_shrink}: must be in (0, 1) (RL4LMs: 0.8).",
            ),
            (
                a.line_search_max_tries >= 1,
                f"alg.line_search_max_tries={a.line_search_max_tries}: must be ≥ 1 (RL4LMs: 10).",
            ),
            (a.micro_batch_size >= 1, f"alg.micro_batch_size={a.micro_batch_size}: must be ≥ 1."),
            (
                0 < a.fisher_fraction <= 1,
                f"alg.fisher_fraction={a.fisher_fraction}: the share of episodes for the Fisher "
                "products must be in (0, 1] (RL4LMs: 1.0).",
            ),
            (
                str(cfg.hardware.get("attention", "auto")) != "flash_attention_2",
                "hardware.attention=flash_attention_2: TRPO differentiates the KL twice and "
                "FlashAttention-2 has no second derivative. Use hardware.attention=auto (SDPA, "
                "run on its math kernel for those passes) or eager.",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def __init__(self, cfg, task, policy, ref, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        # π_old of the line search's KL: a frozen copy of the actor, synced before each step
        self.old_policy = copy.deepcopy(policy).requires_grad_(False).eval()

    # ------------------------------------------------------------------ parameters
    def actor_parameters(self) -> list[torch.nn.Parameter]:
        """The policy's trained parameters (a LoRA policy's adapters); never the critic's."""
        return [p for p in self.policy.parameters() if p.requires_grad]

    def old_parameters(self) -> list[Tensor]:
        """``old_policy``'s copies of ``actor_parameters``, in the same order."""
        pairs = zip(self.policy.parameters(), self.old_policy.parameters())
        return [o for p, o in pairs if p.requires_grad]

    def configure_optimizers(self):
        """AdamW over the critic only: the value head(s) and a separate value LM."""
        critic = list(self.value_head.parameters())
        if self.value_model is not None:
            critic += list(self.value_model.parameters())
        return adamw(
            self.param_groups(critic),
            lr=self.a.lr,
            weight_decay=self.a.weight_decay,
            fused=not self.lightning_clips,
        )

    def all_sum(self, t: Tensor) -> Tensor:
        """``t`` summed over the DDP ranks (itself on one process)."""
        if self._trainer is None or self.trainer.world_size == 1:
            return t
        return self.trainer.strategy.reduce(t, reduce_op="sum")

    @property
    def update_passes(self) -> int:
        return 1

    # ------------------------------------------------------------------ actor passes
    def chunks(self, r: Rollout, adv: Tensor) -> list[tuple[Rollout, Tensor]]:
        """The rollout cut into ``micro_batch_size`` episodes, each with its advantages."""
        idx = torch.arange(len(r), device=r.ids.device).split(self.a.micro_batch_size)
        return [(r.index(i), adv[i]) for i in idx]

    def logits(self, model, c: Rollout) -> Tensor:
        return model(c.prompt_ids, c.prompt_mask, c.ids, c.mask)[0]

    def surrogate_gradient(self, chunks, n_tokens, params) -> tuple[Tensor, float, float]:
        """g = ∇L at θ_old (flat), L(θ_old) and the mean entropy, over every chunk."""
        g = torch.zeros(sum(p.numel() for p in params), device=n_tokens.device)
        surr, ent = torch.zeros(()), torch.zeros(())
        for c, adv in chunks:
            logp, h = logprobs_and_entropy(self.logits(self.policy, c), c.ids)
            s = surrogate(logp, c.old_logp, adv, c.policy_mask, n_tokens)
            add_grad(g, s, params)
            surr = surr + s.detach().cpu()
            ent = ent + (masked_sum(h, c.policy_mask) / n_tokens).cpu()
        g = self.all_sum(g)
        stats = self.all_sum(torch.stack([surr, ent]).to(g.device))
        return g, stats[0].item(), stats[1].item()

    def kl_chunk(self, c: Rollout, n_tokens: Tensor):
        """A callable: chunk ``c``'s share of D(θ) = mean KL(π_θ ‖ π_θ detached) at the
        current θ (= θ_old during the CG), a fresh forward pass with its graph."""

        def kl() -> Tensor:
            with math_attention():
                logits = self.logits(self.policy, c)
            return masked_sum(categorical_kl(logits, logits.detach()), c.policy_mask) / n_tokens

        return kl

    def fisher_rollout(self, r: Rollout, gen: torch.Generator) -> Rollout:
        """The episodes whose KL defines the Fisher-vector products: all of them, or a random
        ceil(fisher_fraction · N) (drawn from ``gen``, the iteration's CG stream)."""
        k = max(1, math.ceil(self.a.fisher_fraction * len(r)))
        if k >= len(r):
            return r
        idx = torch.randperm(len(r), generator=gen)[:k].sort().values
        return r.index(idx.to(r.ids.device))

    def fvp(self, r: Rollout, params):
        """v ↦ H v (flat) of D over rollout ``r``'s tokens (all ranks' summed), chunked, with
        the damping added once."""
        n_tokens = self.all_sum(r.policy_mask.sum().float()).clamp(min=1)
        idx = torch.arange(len(r), device=r.ids.device).split(self.a.micro_batch_size)
        kls = [self.kl_chunk(r.index(i), n_tokens) for i in idx]

        def hv(v: Tensor) -> Tensor:
            prod = self.all_sum(fisher_vector_product(kls, params, v, 0.0))
            return prod.add_(v, alpha=self.a.cg_damping)

        return hv

    def natural_direction(self, r: Rollout, g: Tensor, params) -> tuple[CGResult, float]:
        """x ≈ H⁻¹ g by CG from x₀ = 1e-4 · N(0, I) (the iteration's own stream, so a resumed
        run draws the same), and xᵀ H x."""
        gen = cg_init_generator(self.cfg.seed, self.current_epoch)
        hv = self.fvp(self.fisher_rollout(r, gen), params)
        x0 = (1e-4 * torch.randn(g.numel(), generator=gen)).to(g)
        cg = conjugate_gradient(hv, g, x0, self.a.cg_max_steps, self.a.cg_residual_tol)
        return cg, torch.dot(cg.x, hv(cg.x)).item()

    @torch.no_grad()
    def evaluate_step(self, chunks, n_tokens) -> dict[str, float]:
        """L(θ), D(θ) against π_old (``old_policy``) and the sampled tokens' approx KL against
        the rollout's log-probs, at the θ now in the policy."""
        tot = torch.zeros(3, device=chunks[0][0].ids.device)
        for c, adv in chunks:
            new = self.logits(self.policy, c)
            old = self.logits(self.old_policy, c)
            logp = logprobs_from_logits(new, c.ids)
            m = c.policy_mask
            tot[0] += surrogate(logp, c.old_logp, adv, m, n_tokens)
            tot[1] += masked_sum(categorical_kl(new, old), m) / n_tokens
            tot[2] += masked_sum(approx_kl(logp - c.old_logp), m) / n_tokens
        s, d, k = self.all_sum(tot).tolist()
        return {"surrogate": s, "kl": d, "approx_kl": k}

    # ------------------------------------------------------------------ the update
    def update(self, r: Rollout) -> dict[str, float]:
        stats = self.actor_step(r)
        stats.update(self.critic_updates(r))
        return stats

    def sync_old_policy(self, params, old) -> None:
        with torch.no_grad():
            for o, p in zip(old, params):
                o.copy_(p)

    def actor_step(self, r: Rollout) -> dict[str, float]:
        """The trust-region step of the policy (module docstring, step 5)."""
        a = self.a
        adv = (
            normalize_advantages(r.advantages, r.policy_mask)
            if a.normalize_advantage
            else r.advantages
        )
        chunks = self.chunks(r, adv)
        n_tokens = self.all_sum(r.policy_mask.sum().float()).clamp(min=1)
        params, old = self.actor_parameters(), self.old_parameters()
        self.sync_old_policy(params, old)
        g, surr_old, entropy = self.surrogate_gradient(chunks, n_tokens, params)
        cg, xhx = self.natural_direction(r, g, params)
        stats = {
            "policy/entropy": entropy,
            "trpo/surrogate_old": surr_old,
            "trpo/grad_norm": g.norm().item(),
            "trpo/cg_residual": cg.residual_sq,
            "trpo/cg_steps": float(cg.steps),
        }
        beta = max_step_size(xhx, a.max_kl)
        stats["trpo/step_size"] = beta
        seen: dict[str, float] = {"approx_kl": 0.0}

        def try_step(frac: float) -> tuple[float, float]:
            set_params(params, old, cg.x, frac * beta)
            seen.update(self.evaluate_step(chunks, n_tokens))
            return seen["surrogate"], seen["kl"]

        def restore() -> None:
            self.sync_old_policy(old, params)
            seen["approx_kl"] = 0.0

        tries = a.line_search_max_tries if beta > 0 else 0
        res = backtracking_line_search(
            try_step, restore, surr_old, a.max_kl, a.line_search_shrink, tries
        )
        return stats | {
            "trpo/line_search_success": float(res.accepted),
            "trpo/line_search_tries": float(res.tries),
            "trpo/step_fraction": res.step_fraction,
            "trpo/kl_after": res.kl,
            "trpo/surrogate_gain": res.surrogate - surr_old,
            "policy/approx_kl": seen["approx_kl"],
        }

    # ------------------------------------------------------------------ the critic
    def critic_values(self, mb: Rollout, hidden: Tensor | None) -> Tensor:
        """V(s_t) of the minibatch (n, T), with grad into the critic only."""
        if hidden is None:  # a separate value LM
            _, hidden = self.value_model(
                mb.prompt_ids,
                mb.prompt_mask,
                mb.ids,
                mb.mask,
                return_hidden=True,
                return_logits=False,
            )
        return self.value_head(hidden).float()

    def critic_updates(self, r: Rollout) -> dict[str, float]:
        """``update_epochs`` epochs of shuffled ``minibatch_size``-episode minibatches of
        MSE(G_t, V(s_t)) (module docstring, step 6)."""
        a = self.a
        hidden = None
        if self.value_model is None:  # a head on the policy's trunk, which stays put here

            def trunk(c):
                h = self.policy(
                    c.prompt_ids,
                    c.prompt_mask,
                    c.ids,
                    c.mask,
                    return_hidden=True,
                    return_logits=False,
                )[1]
                return {"hidden": h}

            hidden = self.score_chunks(r, trunk)["hidden"]
        losses = []
        for _ in range(a.update_epochs):
            for idx in torch.randperm(len(r), device=r.ids.device).split(a.minibatch_size):
                mb = r.index(idx)
                values = self.critic_values(mb, None if hidden is None else hidden[idx])
                loss = masked_mean((mb.returns - values) ** 2, mb.value_mask)
                self.optimizer_step_clipped(loss)
                losses.append(loss.item())
        return {"loss/value": sum(losses) / len(losses)}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        sd = checkpoint["state_dict"]
        for k in [k for k in sd if k.startswith("old_policy.")]:  # rebuilt: synced every step
            del sd[k]
