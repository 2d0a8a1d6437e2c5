"""Guide-policy RL (RLGF: Chang et al. 2023, "Learning to Generate Better Than Your LLM";
docs/algorithms.md §4): PPO++, AggreVaTeD, LOLS and DLOLS as ONE roll-in / roll-out schedule over
the shared PPO update of rft.alg.ppo.

A scheme says who rolls in, who rolls out, with which β, and which critic learns:

    scheme       roll-in   roll-out   policy loss on          critic trained on
    PPO++        guide     policy     policy suffix  t ≥ k    policy suffix t ≥ k
    AggreVaTeD   policy    guide      policy prefix  t < k    guide tokens  t ≥ k

A schedule is a pure function (iteration, rng) -> scheme:
    ppo_pp      PPO++ every iteration
    aggrevated  AggreVaTeD every iteration
    lols        PPO++ with probability ppo_pp_prob (0.8), else AggreVaTeD with the guide critic
    dlols       AggreVaTeD (guide critic) while iteration < τ, then PPO++

One iteration (``collect_rollout``; the rest is PPO's ``training_step``):
  1. the scheme for this iteration; restart flags ~ Bernoulli(β), one per sample;
  2. roll-in (``restart_rollins``): the roll-in policy samples complete sequences for the
     restarted samples; k ~ Uniform{1..L-1} on each (0 if L < 2) — rft/rollout/restart.py;
  3. roll-out (``roll_out``): one batched ``generate`` in which row i copies its first k_i
     roll-in tokens and then samples (k = 0 rows sample everything) — rft/rollout/guide.py;
  4. reward on the whole mixed sequence (``score_rewards``); the buffer carries its scheme, so
     the scheme's critic scores it and learns from it (``critic(r)``); policy log-probs, values
     and reference log-probs on every token; the per-token KL penalty on every token; GAE over
     the whole sequence;
  5. PPO epochs with the scheme's policy / value masks (+ the optional target NLL).

Encoder-decoder models (T5, RLGF's and GRUE's CommonGen policy). A roll-in is a DECODER prefix:
policy and guide both read the whole prompt (a seq2seq model with its encoder, + EOS for T5,
rft/model/policy.py; a causal one as its left context), and restarts happen only inside the
generated sequence, never inside the prompt. k and L count decoder tokens after the decoder
start token; the roll-out's forced copy starts at decoder step 0; the policy / value losses, the
per-token KL and GAE run over decoder positions exactly as over a causal completion. A causal
guide for a seq2seq policy (or a seq2seq guide for a causal one) works the same way: what one
model generates after the prompt is the other's decoder prefix / continuation (through text
when the tokenizers differ). tests/learning/test_seq2seq.py runs DLOLS on task=commongen with a
T5 policy and both a T5 and a GPT-2 guide.

Deviations from the RLGF code (Cornell-RL/tril), on purpose:
- Roll-ins are generated only for the samples that restart (the code generates them for the
  whole batch and ignores the others): the mixed sequences have the same distribution, and
  1-β of the roll-in generation is saved. Guide-only / policy-only rewards are thus logged on
  the restarted samples' roll-ins.
- The LOLS coin and the restart draws come from streams seeded by (seed, iteration), not one
  stream over the run, so a resumed run repeats them; the distribution is the same.
- L counts a roll-in's tokens including its EOS (the code counts non-pad tokens, and pad = EOS
  for GPT-2, so it excludes it); the same when generations run to max_new_tokens (IMDB).
- The critic is PPO's (``value_model: shared`` by default, a value head on the policy trunk;
  the code uses a separate critic LM: ``value_model: separate``). The LOLS / DLOLS guide critic
  is a second value head (and value LM if separate).
- Target regularization is off by default (the code uses 0.1 for every algorithm, PPO
  included; rft's alg=ppo has no such term, so off keeps the family comparable):
  ``alg.target_coef=0.1``. Its reference continuations end with EOS when shorter than
  max_new_tokens, as in rft's SFT.
- DLOLS' τ defaults to round(0.4 · n_iterations) (the code: 20 of 50 iterations on IMDB);
  ``alg.schedule.switch_iteration`` sets it directly.
- The guide may use another tokenizer (the code requires a shared one): sequences are converted
  through text (rft/rollout/guide.py says how L and k map).
- PPO-level differences are rft's PPO's (see rft/alg/ppo.py): constant learning rate (code:
  linear decay), AdamW eps 1e-8 (code: 1e-5), advantages whitened per minibatch over the
  policy mask (the code does not whiten), value loss without the 0.5 factor.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rft.alg.ppo import PPO, Critic, Rollout
from rft.config import choice
from rft.core import logprobs_from_logits, masked_mean
from rft.diagnostics.reward_stats import rollout_reward_spread
from rft.errors import ConfigError
from rft.model.generate import Completions
from rft.model.policy import PolicyLM, ValueHead
from rft.remote.guide import check_remote_guide, remote_guide_policy
from rft.rng import restart_generator, schedule_rng
from rft.rollout.guide import (
    check_guide_config,
    convert_completions,
    decode_rows,
    load_guide,
    same_tokenizer,
    sample,
)
from rft.rollout.prompts import encode_continuations, encode_prompts
from rft.rollout.restart import (
    forced_prefix,
    loss_masks,
    prefix_mask,
    sample_restart_flags,
    sample_rollin_lengths,
    shift_left,
    splice,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ schedule
@dataclass(frozen=True)
class Scheme:
    """Who rolls in and out in one iteration, with which restart probability β, and which
    critic (the policy's or the guide's) the value loss trains."""

    name: str  # "ppo_pp" | "aggrevated"
    rollin: str  # "guide" | "policy"
    rollout: str  # "policy" | "guide"
    restart_prob: float
    critic: str  # "policy" | "guide"


@dataclass(frozen=True)
class Schedule:
    """The algorithm: a pure map (iteration, rng) -> Scheme (see the module docstring)."""

    kind: str  # ppo_pp | aggrevated | lols | dlols
    beta_ppo_pp: float
    beta_aggrevated: float
    ppo_pp_prob: float = 0.8  # lols
    switch_iteration: int = 0  # dlols: τ
    guide_critic: bool = False  # AggreVaTeD iterations train the guide critic

    @classmethod
    def from_config(cls, a) -> Schedule:
        s = a.schedule
        tau = s.switch_iteration
        if tau is None:
            tau = round(s.switch_fraction * a.n_iterations)
        return cls(
            choice(s.kind),
            a.restart_prob.ppo_pp,
            a.restart_prob.aggrevated,
            s.ppo_pp_prob,
            int(tau),
            bool(s.guide_critic),
        )

    def __call__(self, iteration: int, rng: np.random.Generator) -> Scheme:
        if self.kind == "ppo_pp":
            ppo_pp = True
        elif self.kind == "aggrevated":
            ppo_pp = False
        elif self.kind == "lols":
            ppo_pp = bool(rng.random() < self.ppo_pp_prob)
        elif self.kind == "dlols":
            ppo_pp = iteration >= self.switch_iteration
        else:
            raise ValueError(
                f"unknown schedule {self.kind!r}; allowed: ppo_pp, aggrevated, lols, dlols"
            )
        if ppo_pp:
            return Scheme("ppo_pp", "guide", "policy", self.beta_ppo_pp, "policy")
        return Scheme(
            "aggrevated",
            "policy",
            "guide",
            self.beta_aggrevated,
            "guide" if self.guide_critic else "policy",
        )


# ------------------------------------------------------------------------------------- buffer
@dataclass
class GuidedRollout(Rollout):
    """A Rollout plus the scheme that produced it (whose critic scores and learns from it),
    k (N,), the roll-in tokens each sample copied, and the reference continuations (N, T)
    for the target regularization (None when it is off)."""

    scheme: Scheme | None = None
    rollin_len: torch.Tensor | None = None
    target_ids: torch.Tensor | None = None
    target_mask: torch.Tensor | None = None


@dataclass
class RollIns:
    """The roll-ins of one iteration: k (N,) roll-in tokens each sample copies (0 = not
    restarted), the roll-in tokens (N, T) (pad where not restarted), and for the restarted
    samples ``sub`` their texts and full lengths L (None when none restarted)."""

    k: Tensor
    ids: Tensor
    sub: list[int]
    texts: list[str]
    lengths: Tensor | None


# ------------------------------------------------------------------------------------- module
class GuidedPPO(PPO):
    supports_tis = False

    @classmethod
    def check_config(cls, cfg) -> None:
        """Ranges a schema cannot express, and a guide that can be found; each message names
        the key."""
        super().check_config(cfg)
        a = cfg.alg
        for key, v in (
            ("restart_prob.ppo_pp", a.restart_prob.ppo_pp),
            ("restart_prob.aggrevated", a.restart_prob.aggrevated),
            ("schedule.ppo_pp_prob", a.schedule.ppo_pp_prob),
            ("schedule.switch_fraction", a.schedule.switch_fraction),
        ):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"alg.{key}={v}: must be a probability / fraction in [0, 1].")
        if a.schedule.switch_iteration is not None and a.schedule.switch_iteration < 0:
            raise ConfigError(
                f"alg.schedule.switch_iteration={a.schedule.switch_iteration}: must be ≥ 0 (or null)."
            )
        if a.target_coef < 0:
            raise ConfigError(f"alg.target_coef={a.target_coef}: must be ≥ 0 (0 = off).")
        check_guide_config(a.guide, cfg.model)
        check_remote_guide(a.guide)

    def __init__(self, cfg, task, policy: PolicyLM, ref: PolicyLM, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        a = cfg.alg
        self.schedule = Schedule.from_config(a)
        if (
            self.schedule.kind == "dlols"
            and not 0 < self.schedule.switch_iteration < a.n_iterations
        ):
            log.warning(
                "alg=dlols with τ=%d and %d iterations runs only %s.",
                self.schedule.switch_iteration,
                a.n_iterations,
                "PPO++" if self.schedule.switch_iteration <= 0 else "AggreVaTeD",
            )
        if a.target_coef > 0:
            task.sft_pairs()  # fails clearly when no train example carries a reference
        if a.guide.remote.base_url:  # a black-box guide behind an API: one more generator
            T = task.max_new_tokens
            self.guide = remote_guide_policy(
                a.guide, policy.tokenizer, T, task.min_new_tokens, cfg.seed
            )
        else:
            self.guide = load_guide(a.guide, cfg.model, ref)  # frozen; may be `ref` itself
        self.same_tokenizer = same_tokenizer(self.guide.tokenizer, policy.tokenizer)
        self.guide_value_head: ValueHead | None = None
        self.guide_value_model: PolicyLM | None = None
        if self.schedule.guide_critic:
            self.guide_value_head = ValueHead(policy.hidden_size)
            if self.value_model is not None:
                self.guide_value_model = copy.deepcopy(policy)
        # Two critics, one trained per iteration: DDP must look for unused parameters.
        self.has_unused_parameters = self.guide_value_head is not None

    def trainable_parameters(self):
        params = super().trainable_parameters()
        for m in (self.guide_value_head, self.guide_value_model):
            if m is not None:
                params += list(m.parameters())
        return params

    # ------------------------------------------------------------------ losses
    def critic(self, r: GuidedRollout) -> Critic:
        """The guide critic for rollouts whose scheme trains it, else PPO's."""
        if r.scheme is None or r.scheme.critic != "guide" or self.guide_value_head is None:
            return super().critic(r)
        return self.guide_value_model, self.guide_value_head

    def extra_loss(self, mb: GuidedRollout):
        """RLGF's target regularization: target_coef · NLL of the reference continuation."""
        if not self.a.target_coef or mb.target_ids is None:
            return 0.0, {}
        logits, _ = self.policy(mb.prompt_ids, mb.prompt_mask, mb.target_ids, mb.target_mask)
        nll = -masked_mean(logprobs_from_logits(logits, mb.target_ids), mb.target_mask)
        return self.a.target_coef * nll, {"loss/target_nll": nll}

    # ------------------------------------------------------------------ generation
    def _guide_prompts(self, prompts, p_ids, p_mask):
        if self.same_tokenizer:
            return p_ids, p_mask
        t = self.task
        return encode_prompts(
            self.guide.tokenizer, prompts, t.prompt_max_tokens, self.device, t.prompt_truncation
        )

    def roll_in(self, who: str, prompts: list[str], p_ids, p_mask):
        """Complete sequences of the roll-in policy, in policy tokens: (ids, mask) (n, T), and
        their texts as that policy wrote them (for the guide-/policy-only rewards)."""
        t = self.task
        if who == "policy":
            c = sample(
                self.policy, p_ids, p_mask, t.max_new_tokens, t.min_new_tokens, self.a.generation
            )
            return (
                c.ids,
                c.mask,
                self.policy.tokenizer.batch_decode(c.ids, skip_special_tokens=True),
            )
        g_ids, g_mask = self._guide_prompts(prompts, p_ids, p_mask)
        c = sample(
            self.guide, g_ids, g_mask, t.max_new_tokens, t.min_new_tokens, self.a.guide.generation
        )
        texts = self.guide.tokenizer.batch_decode(c.ids, skip_special_tokens=True)
        if self.same_tokenizer:
            return c.ids, c.mask, texts
        ids, mask = convert_completions(
            self.guide.tokenizer, self.policy.tokenizer, c.ids, c.mask, t.max_new_tokens
        )
        return ids, mask, texts

    def roll_out(self, who: str, prompts: list[str], p_ids, p_mask, forced, k) -> Completions:
        """Mixed sequences in policy tokens (N, T): row i copies forced[i, :k_i], then the
        roll-out policy samples."""
        t, tok = self.task, self.policy.tokenizer
        if who == "policy":
            return sample(
                self.policy,
                p_ids,
                p_mask,
                t.max_new_tokens,
                t.min_new_tokens,
                self.a.generation,
                forced,
                k,
            )
        g_ids, g_mask = self._guide_prompts(prompts, p_ids, p_mask)
        gen = self.a.guide.generation
        if self.same_tokenizer:
            return sample(
                self.guide, g_ids, g_mask, t.max_new_tokens, t.min_new_tokens, gen, forced, k
            )
        # Another tokenizer: the guide copies the TEXT of the policy's k tokens (k' guide tokens),
        # continues, and its continuation comes back re-encoded after the policy's exact k tokens.
        gtok = self.guide.tokenizer
        texts = decode_rows(tok, forced, prefix_mask(k, forced.shape[1]))
        g_forced, g_fmask = encode_continuations(
            gtok, texts, t.max_new_tokens, eos=False, width=t.max_new_tokens, device=self.device
        )
        g_k = g_fmask.sum(-1)
        c = sample(
            self.guide, g_ids, g_mask, t.max_new_tokens, t.min_new_tokens, gen, g_forced, g_k
        )
        cont_ids, cont_mask = shift_left(c.ids, c.mask, g_k, gtok.pad_token_id)
        cont_ids, cont_mask = convert_completions(gtok, tok, cont_ids, cont_mask, t.max_new_tokens)
        ids, mask = splice(forced, k, cont_ids, cont_mask, t.max_new_tokens, tok.pad_token_id)
        return Completions(ids=ids, mask=mask)

    # ------------------------------------------------------------------ one iteration
    def collect_rollout(self, examples) -> tuple[GuidedRollout, dict[str, float]]:
        it = self.current_epoch
        scheme = self.schedule(it, schedule_rng(self.cfg.seed, it))
        gen = restart_generator(self.cfg.seed, it)
        K, tok = self.a.samples_per_prompt, self.policy.tokenizer
        prompts = [e.prompt for e in examples for _ in range(K)]
        t = self.task
        # the reward gets every reference of a prompt (CommonGen: its concept set's); the target
        # regularization learns the one ``reference``
        refs = [e.reward_references for e in examples for _ in range(K)]
        targets = [e.reference for e in examples for _ in range(K)]
        t0 = time.perf_counter()
        p_ids, p_mask = encode_prompts(
            tok, prompts, t.prompt_max_tokens, self.device, t.prompt_truncation
        )
        rollins = self.restart_rollins(scheme, prompts, p_ids, p_mask, gen)
        t1 = time.perf_counter()
        forced = forced_prefix(rollins.ids, rollins.k, tok.pad_token_id)
        comp = self.roll_out(scheme.rollout, prompts, p_ids, p_mask, forced, rollins.k)
        t2 = time.perf_counter()
        scores, rollin_scores = self.score_rewards(prompts, refs, comp, rollins)
        t3 = time.perf_counter()
        r = self.make_buffer(scheme, p_ids, p_mask, comp, scores, rollins.k, targets)
        self.score_rollout(r)
        t4 = time.perf_counter()
        n_tokens = int(comp.mask.sum()) + (
            int(rollins.lengths.sum()) if rollins.lengths is not None else 0
        )
        stats: dict[str, float] = {
            "time/rollin_s": t1 - t0,
            "time/rollout_s": t2 - t0,
            "time/reward_s": t3 - t2,
            "time/score_s": t4 - t3,
            "time/rollout_tokens_per_s": n_tokens / max(t2 - t0, 1e-9),
            **self.rollout_stats(r, rollins, rollin_scores),
            **self.policy.generation_stats(),  # time/weight_sync_s (rollout.backend=vllm)
            **self.guide.generation_stats(),  # a remote guide's requests, tokens, latency
        }
        log.info(
            "iteration %d: %s (roll-in %s, roll-out %s, β=%.2f, %s critic): %.0f%% restarted, "
            "mean k %.1f",
            it + 1,
            scheme.name,
            scheme.rollin,
            scheme.rollout,
            scheme.restart_prob,
            scheme.critic,
            100 * stats["guided/restart_share"],
            stats["guided/rollin_len"],
        )
        return r, stats

    def restart_rollins(
        self, scheme: Scheme, prompts: list[str], p_ids, p_mask, gen: torch.Generator
    ) -> RollIns:
        """Restart flags ~ Bernoulli(β) from ``gen``; the roll-in policy's complete sequences
        for the restarted samples; k ~ Uniform{1..L-1} on each, from ``gen``."""
        N, T, pad = len(prompts), self.task.max_new_tokens, self.policy.tokenizer.pad_token_id
        restart = sample_restart_flags(N, scheme.restart_prob, gen)
        sub = restart.nonzero().flatten().tolist()
        k = torch.zeros(N, dtype=torch.long)
        rollin_ids = torch.full((N, T), pad, dtype=torch.long, device=self.device)
        texts, lengths = [], None
        if sub:
            ids, mask, texts = self.roll_in(
                scheme.rollin, [prompts[i] for i in sub], p_ids[sub], p_mask[sub]
            )
            lengths = mask.sum(-1)
            k[sub] = sample_rollin_lengths(lengths, torch.ones(len(sub), dtype=torch.bool), gen)
            rollin_ids[sub] = ids
        return RollIns(k=k.to(self.device), ids=rollin_ids, sub=sub, texts=texts, lengths=lengths)

    def score_rewards(
        self, prompts: list[str], refs: list, comp: Completions, rollins: RollIns
    ) -> tuple[Tensor, Tensor | None]:
        """R of the mixed sequences (N,), and of the complete roll-ins when
        ``alg.score_rollins`` (for the guide-/policy-only rewards; None otherwise)."""
        texts = self.policy.tokenizer.batch_decode(comp.ids, skip_special_tokens=True)
        scores = self.reward_fn(prompts, texts, refs).to(self.device)
        rollin_scores = None
        if self.a.score_rollins and rollins.sub:
            sub = rollins.sub
            rollin_scores = self.reward_fn(
                [prompts[i] for i in sub], rollins.texts, [refs[i] for i in sub]
            )
        return scores, rollin_scores

    def make_buffer(
        self, scheme: Scheme, p_ids, p_mask, comp: Completions, scores, k, targets
    ) -> GuidedRollout:
        """The rollout buffer with the scheme's loss masks (and the target continuations:
        ``targets``, each prompt's reference or None)."""
        policy_mask, value_mask = loss_masks(comp.mask, k, scheme.name)
        r = GuidedRollout(
            p_ids,
            p_mask,
            comp.ids,
            comp.mask,
            scores,
            policy_mask=policy_mask,
            value_mask=value_mask,
            scheme=scheme,
            rollin_len=k,
        )
        if self.a.target_coef > 0:
            T, tok = self.task.max_new_tokens, self.policy.tokenizer
            r.target_ids, r.target_mask = encode_continuations(
                tok,
                [x or "" for x in targets],
                T,
                eos=[bool(x) for x in targets],
                width=T,
                device=self.device,
            )
        return r

    def rollout_stats(
        self, r: GuidedRollout, rollins: RollIns, rollin_scores: Tensor | None
    ) -> dict[str, float]:
        """The scheme, the restarts, rewards by who generated, and the per-prompt spread."""
        s, k, scores = r.scheme, r.rollin_len, r.scores
        restarted = k > 0
        stats: dict[str, float] = {
            "guided/scheme_aggrevated": float(s.name == "aggrevated"),  # 0 = PPO++, 1 = AggreVaTeD
            "guided/guide_critic": float(s.critic == "guide"),
            "guided/restart_prob": s.restart_prob,
            "guided/restart_share": restarted.float().mean().item(),
            "guided/rollin_len": k[restarted].float().mean().item() if restarted.any() else 0.0,
            "guided/policy_token_share": (r.policy_mask.sum() / r.mask.sum().clamp(min=1)).item(),
        }
        # Samples written by one policy alone: the unrestarted roll-outs, and the roll-ins.
        if (~restarted).any():
            stats[f"guided/reward_{s.rollout}_only"] = scores[~restarted].mean().item()
        if rollin_scores is not None:
            stats[f"guided/reward_{s.rollin}_only"] = rollin_scores.mean().item()
        if restarted.any():
            stats["guided/reward_mixed"] = scores[restarted].mean().item()
        if rollins.lengths is not None:  # L, the length of the complete roll-ins
            stats["guided/rollin_full_len"] = rollins.lengths.float().mean().item()
        # per-prompt reward spread, as PPO logs it
        stats.update(
            rollout_reward_spread(scores, self.a.samples_per_prompt, self.cfg.diag.std_threshold)
        )
        return stats

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        sd = checkpoint["state_dict"]
        for key in [key for key in sd if key.startswith("guide.")]:  # frozen, rebuilt from config
            del sd[key]
