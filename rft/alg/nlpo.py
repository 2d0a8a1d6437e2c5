"""NLPO, Natural Language Policy Optimization (RL4LMs / GRUE: Ramamurthy et al., "Is
Reinforcement Learning (Not) for Natural Language Processing?", ICLR 2023; docs/algorithms.md
§8; RL4LMs code: rl4lms/algorithms/nlpo/ and .../maskable/logits_processor.py).

NLPO is PPO (rft.alg.ppo, docs §1) whose action space is masked. A mask policy π_ψ, a frozen
copy of the policy, keeps at every state s_t the tokens

    learned_top_p:  the smallest set of π_ψ's most probable tokens whose probability reaches
                    top_mask (0.9), at least min_tokens_to_keep (100) of them, the top one always
    learned_top_k:  π_ψ's max(int(top_mask), min_tokens_to_keep) most probable tokens

plus the tokenizer's special tokens (EOS, pad, ...), which are never masked (rft/core/nlpo.py).
The policy acts with its logits set to -inf outside that set, i.e. with the masked distribution
π_θ^m(a|s) = π_θ(a|s) / π_θ(K_ψ(s)|s) on the kept set K_ψ(s), and PPO runs on π_θ^m:

  1. rollout: ``generate`` with a LogitsProcessor that runs π_ψ step by step beside the policy,
     on its own KV cache (one token per step, no re-run of the sequence), and masks the logits;
  2. score (one forward pass of the policy, one of π_ψ, one of π_ref): the buffer's old
     log-probs are the MASKED ones, log π_θ^m(y_t|s_t); the KL-to-reference reward
     r_t = -β (log π_θ - log π_ref)(y_t) uses the policy's UNMASKED log-probs, as RL4LMs does;
  3. update: every minibatch recomputes π_ψ's mask with one extra no-grad forward (no (N, T, V)
     mask is stored), and the ratio ρ_t = π_θ^m / π_old^m, the clipped objective and the
     entropy use the masked, renormalised distribution;
  4. π_ψ ← a copy of π_θ before the rollouts of iterations target_update_iterations,
     2·target_update_iterations, ... (π_ψ = π_θ = π_ref at the start).

The refresh: the paper (Algorithm 1) replaces π_ψ by π_θ every target_update_iterations
iterations. RL4LMs' code replaces its mask model, but its logits processor keeps its reference
to the FIRST mask model, so the refresh seems to have no effect on the rollouts there. rft
deliberately refreshes the one π_ψ that both the rollouts and the loss use, as the paper
describes. π_ψ's weights are a frozen submodule (``mask_model``) and so are saved in the
state checkpoint: a resumed run masks exactly as an uninterrupted one, whatever the checkpoint
cadence.

Other deviations from RL4LMs, on purpose:
- RL4LMs keeps the rollout's per-step (V,) action masks in its buffer (as sb3-contrib's
  maskable PPO does); rft recomputes π_ψ's mask per scored chunk and per minibatch instead
  (memory O(minibatch · T · V) bool, not N · T · V).
- Numerical guard: in the loss, a sampled token is kept in its own mask even when the
  recomputed mask leaves it out (the KV-cached step-by-step π_ψ of the rollout and the
  full-sequence π_ψ of the loss can differ in the last bits, which can flip a token at the
  top_mask boundary), so its log-prob stays finite. ``nlpo/outside_mask_share`` logs how often
  that happened (0 unless at a boundary tie).
- Equal probabilities at the top_mask boundary are ordered by token id (a stable sort).
- π_ψ is stored in π_ref's dtype (bf16 under bf16 precision), like π_ref.
- Beam search is refused for rollouts (alg.generation.num_beams > 1): π_ψ's KV cache follows
  each row's own history and does not reorder beams.
- Evaluation (val / test) samples from the policy alone, without the mask: the exported policy
  is a plain LM, and π_ψ is a training device.
- Everything PPO-level is rft's PPO (see rft/alg/ppo.py), including a value head on the
  policy's trunk by default (RL4LMs: a separate LM, ``alg.value_model=separate``).

Seq2seq policies (T5) work: π_ψ reads the prompt with its encoder once per ``generate`` and
runs its decoder incrementally on a KV cache; scoring and the loss go through PolicyLM.forward.

Logged per iteration: ``nlpo/mask_size_mean`` (kept tokens per completion position, under π_ψ),
``nlpo/mask_refreshed`` (1 when π_ψ was replaced before this iteration's rollout),
``nlpo/iterations_since_refresh`` and ``nlpo/outside_mask_share``.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import LogitsProcessor, LogitsProcessorList

from rft.alg.ppo import PPO, Rollout
from rft.config import choice
from rft.core import logprobs_from_logits, masked_mean
from rft.core.nlpo import action_mask, apply_action_mask, keep_labels
from rft.errors import ConfigError
from rft.model.build import frozen_copy
from rft.model.policy import PolicyLM

log = logging.getLogger(__name__)


def special_token_ids(tokenizer) -> list[int]:
    """The tokenizer's named special tokens (EOS, pad, BOS, unk, ...), which NLPO never masks;
    T5's <extra_id_*> sentinels (additional special tokens) are ordinary tokens here."""
    extra = set(getattr(tokenizer, "additional_special_tokens_ids", None) or [])
    return sorted({i for i in tokenizer.all_special_ids if i is not None and i not in extra})


def cache_keyword(model) -> str:
    """The forward keyword of a KV cache: transformers 5.x renames ``past_key_values`` to
    ``cache`` (the old name warns, then goes); rft supports both (pyproject: >= 4.45)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class MaskPolicyProcessor(LogitsProcessor):
    """Inside ``generate``: runs π_ψ one step behind the sampled tokens on its own KV cache and
    sets the policy's logits outside π_ψ's kept set to -inf.

    Built for one ``generate`` call on prompts (B, P) / their mask (B, P). Each call feeds π_ψ
    only the tokens it has not seen yet (the whole prompt, or the decoder start token, on the
    first call; then the last sampled token), as ``generate`` feeds the policy.
    """

    def __init__(self, mask_model: PolicyLM, prompt_ids: Tensor, prompt_mask: Tensor, keep_fn):
        self.m = mask_model
        self.keep_fn = keep_fn  # π_ψ's next-token logits (B, V) -> keep (B, V)
        self.cache = None
        self.cache_key = cache_keyword(mask_model.model)
        self.seen = 0
        self.encoder_out = None
        if mask_model.is_seq2seq:
            self.enc_ids, self.attn = mask_model.encoder_inputs(prompt_ids, prompt_mask)
        else:
            self.attn = prompt_mask

    @torch.no_grad()
    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        new = input_ids[:, self.seen :]  # (B, n): tokens π_ψ has not read yet
        model = self.m.model
        if self.m.is_seq2seq:
            if self.encoder_out is None:
                self.encoder_out = model.get_encoder()(
                    input_ids=self.enc_ids, attention_mask=self.attn
                )
            out = model(
                encoder_outputs=self.encoder_out,
                attention_mask=self.attn,
                decoder_input_ids=new,
                use_cache=True,
                **{self.cache_key: self.cache},
            )
        else:
            if self.seen:  # generate attends to every generated token, pads after EOS included
                self.attn = torch.cat([self.attn, self.attn.new_ones(new.shape)], 1)
            # positions from the attention mask, as PolicyLM.forward and generate count them
            pos = (self.attn.cumsum(-1) - 1).clamp(min=0)[:, -new.shape[1] :]
            out = model(
                input_ids=new,
                attention_mask=self.attn,
                position_ids=pos,
                use_cache=True,
                **{self.cache_key: self.cache},
                logits_to_keep=1,
            )
        cache = getattr(out, "cache", None)  # transformers 5.x; older: past_key_values
        self.cache = cache if cache is not None else out.past_key_values
        self.seen = input_ids.shape[1]
        keep = self.keep_fn(out.logits[:, -1])  # (B, V)
        return apply_action_mask(scores, keep)


@dataclass
class NLPORollout(Rollout):
    """PPO's buffer plus, per token (N, T): the policy's UNMASKED old log-probs (the KL reward
    reads them; ``old_logp`` holds the masked ones), π_ψ's kept-set size and whether the sampled
    token lay outside its recomputed mask."""

    policy_logp: Tensor | None = None
    mask_size: Tensor | None = None
    outside_mask: Tensor | None = None


class NLPO(PPO):
    supports_tis = False
    rollout_cls = NLPORollout

    @classmethod
    def check_config(cls, cfg) -> None:
        """Ranges the schema cannot express; each message names the key and the fix."""
        super().check_config(cfg)
        a = cfg.alg
        kind = choice(a.mask_type)
        if kind == "learned_top_p" and not 0.0 < a.top_mask <= 1.0:
            raise ConfigError(
                f"alg.top_mask={a.top_mask}: with alg.mask_type=learned_top_p it is the kept "
                "probability mass and must lie in (0, 1] (RL4LMs: 0.9)."
            )
        if kind == "learned_top_k" and int(a.top_mask) < 1:
            raise ConfigError(
                f"alg.top_mask={a.top_mask}: with alg.mask_type=learned_top_k it is the number of "
                "kept tokens k and must be ≥ 1."
            )
        if a.min_tokens_to_keep < 1:
            raise ConfigError(
                f"alg.min_tokens_to_keep={a.min_tokens_to_keep}: must be ≥ 1 (the top token is "
                "always kept, so 1 means no further minimum; RL4LMs: 100)."
            )
        if a.target_update_iterations < 1:
            raise ConfigError(
                f"alg.target_update_iterations={a.target_update_iterations}: must be ≥ 1 (π_ψ is "
                "replaced by π_θ every that many iterations; RL4LMs IMDB: 5, CommonGen: 20)."
            )
        if getattr(a.generation, "num_beams", 1) > 1:
            raise ConfigError(
                f"alg.generation.num_beams={a.generation.num_beams}: NLPO rollouts sample with "
                "num_beams=1 (the mask policy's KV cache does not follow beam reordering)."
            )

    def __init__(self, cfg, task, policy: PolicyLM, ref: PolicyLM, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        a = self.a
        self.mask_type = choice(a.mask_type)
        self.top_mask = float(a.top_mask)
        self.min_tokens_to_keep = int(a.min_tokens_to_keep)
        self.update_every = int(a.target_update_iterations)
        # π_ψ = π_θ at the start; a frozen submodule, so its weights are in the state checkpoint
        # (RFTModule drops only π_ref's) and moved to the device with the module.
        self.mask_model = frozen_copy(policy, next(ref.parameters()).dtype)
        self.register_buffer(
            "special_ids",
            torch.tensor(special_token_ids(policy.tokenizer), dtype=torch.long),
            persistent=False,
        )

    # ------------------------------------------------------------------ the mask
    def keep_from_logits(self, mask_logits: Tensor) -> Tensor:
        """π_ψ's kept tokens from its logits (..., V). Returns (..., V) bool."""
        return action_mask(
            mask_logits, self.mask_type, self.top_mask, self.min_tokens_to_keep, self.special_ids
        )

    @torch.no_grad()
    def mask_policy_keep(self, r: Rollout) -> Tensor:
        """π_ψ's kept set at every completion state of ``r``: one full forward of π_ψ, the mask
        one row at a time (a sort of the whole (B, T, V) block would hold two float copies).
        Returns (B, T, V) bool."""
        mask_logits, _ = self.mask_model(r.prompt_ids, r.prompt_mask, r.ids, r.mask)
        return torch.stack([self.keep_from_logits(row) for row in mask_logits])

    def refresh_mask_model(self) -> None:
        """π_ψ ← π_θ, in place (same object for the rollouts and the loss; cast to π_ψ's dtype)."""
        self.mask_model.load_state_dict(self.policy.state_dict())

    def refreshes_at(self, it: int) -> bool:
        """Whether π_ψ is replaced before iteration ``it``'s (0-based) rollout."""
        return it > 0 and it % self.update_every == 0

    # ------------------------------------------------------------------ PPO hooks
    def generate(self, prompt_ids, prompt_mask):
        t, g = self.task, self.a.generation
        mask = MaskPolicyProcessor(self.mask_model, prompt_ids, prompt_mask, self.keep_from_logits)
        return self.policy.generate(
            prompt_ids,
            prompt_mask,
            t.max_new_tokens,
            t.min_new_tokens,
            g,
            logits_processor=LogitsProcessorList([mask]),
        )

    def values_and_logits(self, r: Rollout, need_logits: bool = True):
        """PPO's forward pass, with the policy's logits masked by π_ψ (each sampled token kept,
        the module docstring's numerical guard): PPO's update then computes the ratio and the
        entropy of the masked, renormalised distribution."""
        logits, values = super().values_and_logits(r, need_logits)
        if logits is not None:
            logits = apply_action_mask(logits, keep_labels(self.mask_policy_keep(r), r.ids))
        return logits, values

    def score_chunk(self, chunk: NLPORollout) -> dict[str, Tensor]:
        """From one policy forward: the masked old log-probs (``old_logp``, for the ratio), the
        unmasked ones (``policy_logp``, for the KL reward), values; π_ref's log-probs; π_ψ's
        mask sizes and whether each sampled token lay outside its recomputed mask. All (n, T)."""
        logits, v = super().values_and_logits(chunk)  # unmasked policy logits
        keep = self.mask_policy_keep(chunk)  # (b, T, V)
        masked = apply_action_mask(logits, keep_labels(keep, chunk.ids))
        return {
            "mask_size": keep.sum(-1).float(),
            "outside_mask": ~keep.gather(-1, chunk.ids.unsqueeze(-1)).squeeze(-1),
            "old_logp": logprobs_from_logits(masked, chunk.ids),
            "policy_logp": logprobs_from_logits(logits, chunk.ids),
            "old_values": v,
            "ref_logp": self.ref_logprobs(chunk),
        }

    def kl_logp(self, r: NLPORollout) -> Tensor:
        """The KL-to-reference penalty on the policy's UNMASKED log-probs (RL4LMs)."""
        return r.policy_logp

    def collect_rollout(self, examples) -> tuple[NLPORollout, dict[str, float]]:
        r, stats = super().collect_rollout(examples)
        it = self.current_epoch
        stats.update(
            {
                "nlpo/mask_size_mean": masked_mean(r.mask_size, r.mask).item(),
                "nlpo/outside_mask_share": masked_mean(r.outside_mask.float(), r.mask).item(),
                "nlpo/mask_refreshed": float(self.refreshes_at(it)),
                "nlpo/iterations_since_refresh": float(it % self.update_every),
            }
        )
        return r, stats

    def training_step(self, batch, batch_idx):
        if self.refreshes_at(self.current_epoch):
            self.refresh_mask_model()
        return super().training_step(batch, batch_idx)

    # ------------------------------------------------------------------ checkpoints
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        # Lightning loads the state dict non-strictly (π_ref is not in it): a checkpoint without
        # π_ψ would silently resume with the initial mask policy.
        if not any(k.startswith("mask_model.") for k in checkpoint.get("state_dict", {})):
            raise ConfigError(
                "resume: the checkpoint has no NLPO mask policy (mask_model.*) weights; it was "
                "not written by alg=nlpo. Resume it with its own alg=, or start a fresh run "
                "folder."
            )
