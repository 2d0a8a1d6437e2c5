"""A-LoL and its offline baselines (Baheti et al., "Leftover-Lunch: Advantage-based Offline
Reinforcement Learning for Language Models", ICLR 2024; docs/algorithms.md §3).

Offline RL on fixed (x, y, R) triples. One module runs the whole family; ``alg.loss`` picks
the per-example loss from ``rft.core.alol.ALOL_LOSSES`` and the batch loss is its mean:

    nll             NLL_θ(y|x)                                  (token-summed)
    wbc             R · NLL_θ
    r_gold          R · Σ_t max(π_θ(y_t|·), 0.1) · (-log π_θ(y_t|·))
    r_lol           R · clip(ρ, 1-ε, 1+ε) · NLL_θ               ρ = π_θ(y|x) / π_ref(y|x), detached
    a_lol           A+ · clip(ρ, 1-ε, 1+ε) · NLL_θ              A = R - V_ref(x), A+ = max(A, 0)
    a_lol_ref_free  A+ · NLL_θ
    a_lol_seq       A+ · Σ_t clip(ρ_t, 1-ε, 1+ε) · (-log π_θ(y_t|·))
    a_lol_kl        A+ · NLL_θ + β_kl · (log π_θ(y|x) - log π_ref(y|x))

Before training (in ``prepare()``, which train() calls once before fit; every result cached
on disk, see below):
  1. data: (prompt, continuation, R) pairs from ``rft.task.offline``;
  2. A-LoL variants only: V_ref (``rft.alg.value_ref``): π_ref samples ``value.samples_per_prompt``
     continuations for the first ``value.n_prompts`` val prompts; their rewards fit the head on
     π_ref's prompt states by MSE for ``value.epochs`` epochs, the best epoch on held-out prompts
     is kept; then A = R - V_ref(x) for every train pair;
  3. sampling probabilities and the step budget.

Results shared across runs (the run's result store, rft.store: ``store.*``), keyed by what
determines them (and the run environment: precision, threads, versions, ...):
  offline_rewards    the reward's identity, the pair texts
  alol/value_ref     π_ref's weights, the reward, the val prompts, alg.value, the task's
                     lengths, the seed (the fitted head, its stats and per-epoch history)
  alol/advantages    the value_ref key, the pairs, their rewards (V_ref(x) of every pair)
A rerun, a resume, or any job of a sweep on the same data reads them back and calls neither
the reward nor π_ref; with store.reuse=false they are computed again.

With a reward column in the data (task.reward_key), V_ref is still fitted on the CONFIGURED
reward's scores of π_ref's samples: the two must be on the same scale (compare reward/data_mean
with value/ref_reward_mean in the step-0 log row).

Sampling, a pure function of (seed, step) so a resumed run sees exactly the same batches:
  good_priority: ``batch_size`` draws with replacement from ``default_rng([seed, 7, step])``,
    p ∝ A+ (A-LoL variants; pairs with A ≤ 0 are never drawn) or p ∝ max(R, 0) (wbc, r_gold,
    r_lol);
  uniform: seeded permutation passes over all pairs (rft.alg.steps.StepBatchSampler). nll is
    always uniform.
Budget: base = ``alg.max_steps`` (or ``dataset_epochs · ceil(N / batch_size)`` when -1). A-LoL
variants with good_priority sampling run max(1, int(base · share of pairs with A > 0)) steps
and evaluate every max(1, int(eval_every · share)) steps, as the reference code scales
max_steps and eval_steps by its positive ratio; every other run uses base and eval_every.

Logged once at step 0: data/n_pairs, reward/data_mean, reward/data_std, advantage/
positive_share, advantage/mean and percentiles p00..p100, value/val_mse (best held-out MSE),
value/val_mse_init, value/val_mse_const (MSE of predicting the mean), value/best_epoch,
value/ref_reward_mean, budget/*. Per step: loss/policy, policy/nll, policy/weight_mean,
policy/positive_share and, for losses that use π_ref, policy/logratio_seq and policy/clipfrac.
Evaluation (reward, perplexity, diversity, samples) is RFTModule.evaluate, as for PPO.

Deviations from the paper / reference code (abaheti95/LoL-RL), on purpose:
- π_ref's val samples for V_ref are drawn with ``value.generation`` (top-k 50 sampling), so V_ref
  estimates E_{y~π_ref}[R], the value in A's definition; the reference code decodes them
  greedily (HH) or with 2-beam search + repetition penalty (generic script). Set
  ``alg.value.generation.do_sample=false`` for greedy.
- V_ref's best epoch is chosen on held-out val prompts (``value.holdout_frac``), not on the
  training MSE; its attention gets the prompt padding mask and π_ref's states use position ids
  from the mask (the reference code attends to left padding); defaults max_value 1 (rewards in
  [0, 1]; the reference uses 2 for its IMDB reward) and AdamW lr 1e-4 (reference 1e-5 on a 7B
  model) for the small heads and val sets of a CPU budget.
- V_ref and the advantages are computed once before training (the generic reference script
  recomputes V with the same frozen head inside each step: the same numbers).
- The baselines (nll, wbc, r_gold, r_lol) do not train V_ref, so they log no advantages.
- Constant learning rate, AdamW, grad-norm clip 1.0, no warm-up; the reference uses a linear
  decay (generic) or 300 warm-up steps and clip 0.3 (HH QLoRA). Batches of 16 without gradient
  accumulation (HH: 4 × 4).
- The final policy is exported and evaluated; the reference keeps the checkpoint with the best
  validation reward.
- Continuations are cut to task.max_new_tokens tokens and end with EOS only when shorter (as
  SFT targets); the HH code always appends EOS before cutting at 128 tokens.
- ``alg.sampling=uniform`` is also offered for wbc / r_gold / r_lol (the reference code only has
  good_priority for them); a_lol_kl ignores clip_eps (β_kl is used with clipping off).
"""

from __future__ import annotations

import inspect
import logging
import time

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor

from rft.alg.steps import StepModule, base_steps
from rft.alg.value_ref import (
    PromptValueHead,
    fit_value_head,
    percentiles,
    predict_values,
    prompt_features,
    sample_rewards,
)
from rft.config import choice
from rft.core import (
    ALOL_LOSSES,
    good_priority_weights,
    logprobs_from_logits,
    masked_mean,
    masked_sum,
)
from rft.device import hardware_device
from rft.errors import ConfigError, DataError
from rft.io import write_json_atomic
from rft.rng import (
    value_fit_seed,
    value_head_init_seed,
    value_sample_seed,
)
from rft.rollout.prompts import encode_continuations, encode_prompts
from rft.store.cached import cached_tensor
from rft.store.fingerprint import (
    examples_fingerprint,
    policy_parts,
    reward_parts,
    strings_fingerprint,
    weights_fingerprint,
)
from rft.store.key import Key
from rft.store.keys import result_key, task_decoding
from rft.task.offline import load_offline_data

log = logging.getLogger(__name__)

REWARD_WEIGHTED = ("wbc", "r_gold", "r_lol")


# ---------------------------------------------------------------------------------- helpers
# ---------------------------------------------------------------------------------- module
class ALoL(StepModule):
    @classmethod
    def check_config(cls, cfg) -> None:
        """Ranges a schema cannot express; each message names the key and the fix."""
        super().check_config(cfg)
        a, v = cfg.alg, cfg.alg.value
        loss_name, sampling = choice(a.loss), choice(a.sampling)
        checks = [
            (
                a.clip_eps is None or a.clip_eps > 0,
                f"alg.clip_eps={a.clip_eps}: must be > 0, or null for no clipping.",
            ),
            (a.kl.beta >= 0, f"alg.kl.beta={a.kl.beta}: must be ≥ 0."),
            (0 <= a.min_prob <= 1, f"alg.min_prob={a.min_prob}: must be in [0, 1]."),
            (
                a.n_train_pairs != 0,
                "alg.n_train_pairs=0: use -1 for all pairs or a positive count.",
            ),
            (
                not (loss_name == "nll" and sampling == "good_priority"),
                "alg.loss=nll has no weights to prioritise: set alg.sampling=uniform.",
            ),
        ]
        if "advantage" in inspect.signature(ALOL_LOSSES[loss_name]).parameters:
            checks += [
                (
                    v.max_value > 0,
                    f"alg.value.max_value={v.max_value}: must be > 0 (rewards lie in [0, max_value]).",
                ),
                (v.n_prompts != 0, "alg.value.n_prompts=0: V_ref needs val prompts (-1 for all)."),
                (v.samples_per_prompt >= 1, "alg.value.samples_per_prompt must be ≥ 1."),
                (v.n_heads >= 1, f"alg.value.n_heads={v.n_heads}: must be ≥ 1 (reference: 8)."),
                (
                    v.epochs >= 0 and v.batch_size >= 1,
                    "alg.value.epochs must be ≥ 0 and alg.value.batch_size ≥ 1.",
                ),
                (
                    0 <= v.holdout_frac < 1,
                    f"alg.value.holdout_frac={v.holdout_frac}: must be in [0, 1).",
                ),
            ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        if loss_name == "a_lol_kl" and a.clip_eps is not None:
            log.warning(
                "alg.clip_eps=%s is ignored by a_lol_kl (β is used with clipping off)", a.clip_eps
            )

    def __init__(self, cfg, task, policy, ref, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        a = self.a = cfg.alg
        self.loss_name, self.sampling = choice(a.loss), choice(a.sampling)
        self.loss_fn = ALOL_LOSSES[self.loss_name]
        self.loss_params = set(inspect.signature(self.loss_fn).parameters)
        self.needs_ref_logp = "ref_logp" in self.loss_params
        self.uses_advantage = "advantage" in self.loss_params
        self.reward_id = OmegaConf.to_yaml(cfg.reward, resolve=True)
        self.max_grad_norm = a.max_grad_norm

    def prepare(self) -> None:
        """The offline data, scored; V_ref and the advantages (A-LoL variants); sampling
        probabilities and the step budget; offline_summary.json. Shared through the result store
        (module docstring); run once, before the trainer is built (it needs the budget)."""
        a, c = self.a, self.cfg
        t0 = time.perf_counter()
        self.pairs, self.rewards = load_offline_data(
            self.task,
            self.policy.tokenizer,
            self.reward_fn,
            n_pairs=a.n_train_pairs,
            seed=c.seed,
            batch_size=a.score_batch_size,
            data=(
                None
                if a.get("data_path") is None
                else {
                    "path": a.data_path,
                    "prompt_key": a.data_prompt_key,
                    "completion_keys": list(a.data_completion_keys),
                }
            ),
            store=self.store,
            cfg=c,
        )
        self.advantages = None
        if self.uses_advantage:
            with hardware_device(c, self.ref) as device:
                self.advantages = self.compute_advantages(device)
        self.stats.update(
            {
                "data/n_pairs": len(self.pairs),
                "reward/data_mean": self.rewards.mean().item(),
                "reward/data_std": self.rewards.std(unbiased=False).item(),
            }
        )
        self.items = self.pairs
        self.sampling_probs = self.priority_probs()
        self.set_step_budget()
        self.stats["time/offline_prep_s"] = time.perf_counter() - t0
        self._write_summary()

    # ------------------------------------------------------------------ V_ref and advantages
    def _value_key(self, val_prompts: list[str]) -> Key:
        """What V_ref depends on (module docstring)."""
        return result_key(
            "alol/value_ref",
            self.cfg,
            reference=policy_parts(self.ref),
            reward=reward_parts(self.cfg.reward),
            prompts=strings_fingerprint(val_prompts),
            value=self.a.value,
            task=task_decoding(self.task),
            seed=self.cfg.seed,
        )

    def compute_advantages(self, device) -> Tensor:
        """A = R - V_ref(x) for every train pair, (N,); read from the store when it holds them."""
        v = self.a.value
        val = self.task.val if v.n_prompts < 0 else self.task.val[: v.n_prompts]
        value_key = self._value_key([e.prompt for e in val])
        key = result_key(
            "alol/advantages",
            self.cfg,
            value_ref=value_key.digest,
            pairs=examples_fingerprint(self.pairs),
            rewards=weights_fingerprint({"rewards": self.rewards}),
        )

        def compute() -> dict:
            head, vstats = self.fit_value_ref(val, value_key, device)
            log.info("A-LoL: V_ref(x) for %d train pairs", len(self.pairs))
            values = predict_values(
                head,
                self.ref,
                [e.prompt for e in self.pairs],
                self.task.prompt_max_tokens,
                self.a.score_batch_size,
                device,
                truncation=self.task.prompt_truncation,
            )
            return {"values": values, "value_stats": vstats}

        out, _ = cached_tensor(self.store, key, compute, what="advantages")
        values, vstats = out["values"], out["value_stats"]
        adv = self.rewards - values
        self.stats.update({f"value/{k}": float(x) for k, x in vstats.items()})
        self.stats["value/mean"] = values.mean().item()
        self.stats["advantage/positive_share"] = (adv > 0).float().mean().item()
        self.stats["advantage/mean"] = adv.mean().item()
        self.stats.update({f"advantage/{k}": x for k, x in percentiles(adv).items()})
        log.info(
            "A-LoL: %.1f%% of %d train pairs have A > 0; A percentiles %s",
            100 * self.stats["advantage/positive_share"],
            len(adv),
            {k: round(x, 4) for k, x in percentiles(adv).items()},
        )
        return adv

    def fit_value_ref(self, val, value_key: Key, device) -> tuple[PromptValueHead, dict]:
        """V_ref trained on π_ref's samples for the val prompts, or read from the store."""
        if not val:
            raise DataError(
                f"task={self.task.name}: the val split is empty, but V_ref(x) is trained on "
                "π_ref's samples for val prompts. Give val prompts (task.val_path / "
                "task.val_fraction)."
            )

        def compute() -> dict:
            head = self._new_value_head()
            targets, prompt_idx = self._value_targets(val, device)
            stats, history = self._train_value_head(head, val, targets, prompt_idx, device)
            return {"state_dict": head.state_dict(), "stats": stats, "history": history}

        fitted, _ = cached_tensor(self.store, value_key, compute, what="value_ref")
        head = self._new_value_head()
        head.load_state_dict(fitted["state_dict"])
        return head.eval(), fitted["stats"]

    def _new_value_head(self) -> PromptValueHead:
        """An untrained V_ref head, initialised from its own seeded stream."""
        v = self.a.value
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(value_head_init_seed(self.cfg.seed))
            return PromptValueHead(self.ref.hidden_size, v.max_value, v.n_heads, v.dropout)

    def _value_targets(self, val, device) -> tuple[Tensor, Tensor]:
        """π_ref's ``value.samples_per_prompt`` samples for each val prompt, scored by the
        configured reward: (rewards (S,), prompt index (S,)). Warns about rewards V_ref cannot
        reach."""
        t, v = self.task, self.a.value
        log.info(
            "A-LoL: V_ref from π_ref's samples for %d val prompts (x%d)",
            len(val),
            v.samples_per_prompt,
        )
        targets, prompt_idx = sample_rewards(
            self.ref,
            self.reward_fn,
            [e.prompt for e in val],
            [e.reward_references for e in val],
            k=v.samples_per_prompt,
            generation=v.generation,
            prompt_max_tokens=t.prompt_max_tokens,
            prompt_truncation=t.prompt_truncation,
            max_new_tokens=t.max_new_tokens,
            min_new_tokens=t.min_new_tokens,
            batch_size=self.a.score_batch_size,
            seed=value_sample_seed(self.cfg.seed),
            device=device,
        )
        outside = int(((targets < 0) | (targets > v.max_value)).sum())
        if outside:
            log.warning(
                "V_ref: %d of %d π_ref sample rewards lie outside [0, alg.value.max_value=%s], which "
                "V_ref = sigmoid · max_value cannot reach; raise alg.value.max_value or rescale the "
                "reward.",
                outside,
                len(targets),
                v.max_value,
            )
        return targets, prompt_idx

    def _train_value_head(
        self, head: PromptValueHead, val, targets: Tensor, prompt_idx: Tensor, device
    ) -> tuple[dict, list[dict]]:
        """Fit ``head`` on π_ref's prompt states of the val prompts; (stats, per-epoch history)."""
        t, v = self.task, self.a.value
        feats, mask = prompt_features(
            self.ref,
            [e.prompt for e in val],
            t.prompt_max_tokens,
            self.a.score_batch_size,
            device,
            truncation=t.prompt_truncation,
        )
        fit = fit_value_head(
            head,
            feats,
            mask,
            targets,
            prompt_idx,
            epochs=v.epochs,
            lr=v.lr,
            batch_size=v.batch_size,
            holdout_frac=v.holdout_frac,
            seed=value_fit_seed(self.cfg.seed),
        )
        keys = ("val_mse", "val_mse_init", "val_mse_const", "train_mse", "best_epoch")
        stats = {k: fit[k] for k in (*keys, "n_train", "n_holdout")}
        stats.update(ref_reward_mean=targets.mean().item(), n_samples=len(targets))
        log.info(
            "V_ref: held-out MSE %.4g at epoch %d (untrained %.4g, constant mean %.4g)",
            stats["val_mse"],
            stats["best_epoch"],
            stats["val_mse_init"],
            stats["val_mse_const"],
        )
        return stats, fit["history"]

    # ------------------------------------------------------------------ sampling and budget
    def priority_probs(self) -> np.ndarray | None:
        """p for good_priority sampling (None = uniform); refuses data that would train on nothing."""
        n = len(self.pairs)
        if self.uses_advantage:
            weights, kind = self.advantages, "advantage"
            n_pos = int((weights > 0).sum())
            if n_pos == 0:
                raise DataError(
                    f"alg={self.a.name}: none of the {n} train pairs has a positive advantage "
                    f"A = R - V_ref(x) (max A = {weights.max().item():.4g}; mean R = {self.rewards.mean().item():.4g}, "
                    f"mean V_ref = {self.stats['value/mean']:.4g}), so every A-LoL weight A+ is 0 and nothing "
                    "would be learned. The data is no better than π_ref's own samples under this reward: use "
                    "better data, check the reward (and alg.value.max_value), or a reward-weighted baseline "
                    "(alg=wbc / alg=r_lol)."
                )
            if self.sampling == "uniform" and n_pos < n:
                log.warning(
                    "uniform sampling: %d of %d pairs have A ≤ 0 and contribute a zero loss "
                    "(good_priority never draws them)",
                    n - n_pos,
                    n,
                )
        elif self.loss_name in REWARD_WEIGHTED:
            weights, kind = self.rewards, "reward"
            n_pos = int((weights > 0).sum())
            if self.sampling == "good_priority" and n_pos == 0:
                raise DataError(
                    f"alg={self.a.name}: none of the {n} train rewards is > 0, so good_priority sampling "
                    "(p ∝ R) has nothing to draw. Shift the reward so good pairs score > 0, or set "
                    "alg.sampling=uniform."
                )
            if not bool((weights != 0).any()):
                raise DataError(
                    f"alg={self.a.name}: all {n} train rewards are 0, so R · loss is 0 for every pair. "
                    "Check the reward column / reward function."
                )
            if self.sampling == "good_priority" and n_pos < n:
                log.warning(
                    "good_priority sampling: %d of %d pairs have R ≤ 0 and are never drawn",
                    n - n_pos,
                    n,
                )
        else:
            return None
        self.stats["data/n_positive"] = n_pos
        if self.sampling == "uniform":
            return None
        return good_priority_weights(weights, kind).double().numpy()

    def set_step_budget(self) -> None:
        """The base budget (max_steps, or dataset_epochs passes), scaled for good_priority
        A-LoL variants by the share of pairs with A > 0 (the reference code's positive ratio),
        and the evaluation cadence scaled alike."""
        a, n = self.a, len(self.pairs)
        base = base_steps(n, a.batch_size, a.max_steps, a.dataset_epochs)
        scale = 1.0
        if self.uses_advantage and self.sampling == "good_priority":
            scale = self.stats["advantage/positive_share"]  # reference: max_steps · positive_ratio
        eval_every = max(1, int(a.eval_every * scale)) if a.eval_every else 0
        self.set_budget(max(1, int(base * scale)), eval_every)
        self.stats.update(
            {"budget/base_steps": base, "budget/scale": scale, "budget/max_steps": self.max_steps}
        )
        log.info(
            "%s: %d optimizer steps (base %d × %.3f), %s sampling over %d pairs",
            a.name,
            self.max_steps,
            base,
            scale,
            self.sampling,
            n,
        )

    def _write_summary(self) -> None:
        summary = {
            "alg": self.a.name,
            "loss": self.loss_name,
            "sampling": self.sampling,
            "store": str(self.store.root) if self.store is not None else None,
            **self.stats,
        }
        write_json_atomic(self.run_dir / "offline_summary.json", summary)

    # ------------------------------------------------------------------ loss
    def example_loss(
        self,
        logp: Tensor,
        ref_logp: Tensor | None,
        mask: Tensor,
        reward: Tensor,
        advantage: Tensor | None,
    ) -> Tensor:
        """The configured per-example loss (B,), called with the arguments it takes."""
        args = {
            "logp": logp,
            "ref_logp": ref_logp,
            "mask": mask,
            "reward": reward,
            "advantage": advantage,
            "clip_eps": self.a.clip_eps,
            "beta_kl": self.a.kl.beta,
            "min_prob": self.a.min_prob,
        }
        return self.loss_fn(**{k: v for k, v in args.items() if k in self.loss_params})

    def training_step(self, batch, batch_idx):
        tok = self.policy.tokenizer
        idx = torch.as_tensor(batch, dtype=torch.long)
        examples = [self.pairs[i] for i in batch]
        t = self.task
        p_ids, p_mask = encode_prompts(
            tok, [e.prompt for e in examples], t.prompt_max_tokens, self.device, t.prompt_truncation
        )
        c_ids, c_mask = encode_continuations(
            tok, [e.reference for e in examples], self.task.max_new_tokens, device=self.device
        )
        logits, _ = self.policy(p_ids, p_mask, c_ids, c_mask)
        logp = logprobs_from_logits(logits, c_ids)  # (B, T)
        ref_logp = None
        if self.needs_ref_logp:
            with torch.no_grad():
                ref_logits, _ = self.ref(p_ids, p_mask, c_ids, c_mask)
                ref_logp = logprobs_from_logits(ref_logits, c_ids)  # (B, T)
        reward = self.rewards[idx].to(self.device)
        advantage = self.advantages[idx].to(self.device) if self.advantages is not None else None
        loss = self.example_loss(logp, ref_logp, c_mask, reward, advantage).mean()
        self.optimizer_step_clipped(loss)

        step = self.step_of(batch_idx)
        weight = (
            advantage.clamp(min=0)
            if advantage is not None
            else reward
            if self.loss_name in REWARD_WEIGHTED
            else None
        )
        stats = {
            "loss/policy": loss.item(),
            "policy/nll": -masked_sum(logp.detach(), c_mask, dim=-1).mean().item(),
        }
        if weight is not None:
            stats.update(
                {
                    "policy/weight_mean": weight.mean().item(),
                    "policy/positive_share": (weight > 0).float().mean().item(),
                }
            )
        if ref_logp is not None:
            stats.update(self._ratio_stats(logp.detach(), ref_logp, c_mask))
        self.finish_step(stats, step)

    def _ratio_stats(self, logp: Tensor, ref_logp: Tensor, mask: Tensor) -> dict[str, float]:
        seq_logratio = masked_sum(logp - ref_logp, mask, dim=-1)  # (B,)
        out = {"policy/logratio_seq": seq_logratio.mean().item()}
        eps = self.a.clip_eps
        if eps is not None and self.loss_name != "a_lol_kl":
            if self.loss_name == "a_lol_seq":  # per-token ratios
                ratio = torch.where(mask.bool(), logp - ref_logp, 0.0).exp()
                out["policy/clipfrac"] = masked_mean(((ratio - 1).abs() > eps).float(), mask).item()
            else:
                out["policy/clipfrac"] = (
                    ((seq_logratio.exp() - 1).abs() > eps).float().mean().item()
                )
        return out
