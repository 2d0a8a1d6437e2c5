"""Mutation check: do the tests catch small deliberate bugs? Run by hand, not in CI.

    python scripts/mutation_check.py              # every mutation (~10 minutes on 2 cores)
    python scripts/mutation_check.py --only flip_advantage_sign drop_kl_penalty

For each mutation (file, exact old snippet, new snippet) it copies the working tree to a
temporary folder (the checkout itself is never touched), applies the one edit there, runs its
test files with ``python -m pytest -x -q`` and PYTHONPATH pointing at the copy (so the copy's
rft is imported, not the editable install), and prints a table: mutation | file | caught? |
by which tests. A snippet that is not found (the code moved) is reported as "SNIPPET NOT
FOUND", never as caught. The exit status is 0 only when every mutation was applied and caught.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "outputs", "multirun", "wandb", "lightning_logs", "__pycache__", "*.egg-info"
)

LEARN = "tests/learning/test_learning.py"
WIRE = "tests/learning/test_wiring.py"
GROUP = "tests/alg/test_group.py"
SCORE_NORM = "tests/alg/test_score_norm.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


NLPO = "tests/alg/test_nlpo.py"
A2C = "tests/alg/test_a2c.py"
TRPO = "tests/alg/test_trpo.py"
AC_LEARN = "test_a2c_and_trpo_learn_and_flipped_reward_unlearns"
GRUE_TASKS = "tests/task/test_grue_tasks.py"
GRUE_METRICS = "tests/metrics/test_grue_metrics.py"
LORA = "tests/test_lora.py"
GW = "tests/learning/test_group_wiring.py"
EACH = f"{GW}::test_each_options_knobs_reach_the_advantages_and_the_loss"
REMOTE = "tests/remote"

MUTATIONS = [
    Mutation(
        "nlpo_unmasked_ratio",  # the update's ratio and entropy from the unmasked policy
        "rft/alg/nlpo.py",
        "logits = apply_action_mask(logits, keep_labels(self.mask_policy_keep(r), r.ids))",
        "logits = logits",
        (f"{NLPO}::test_one_minibatch_gives_ratio_one_and_the_kl_reward_is_unmasked",),
    ),
    Mutation(
        "nlpo_kl_reward_from_masked_logprobs",
        "rft/alg/nlpo.py",
        "        return r.policy_logp",
        "        return r.old_logp",
        (f"{NLPO}::test_one_minibatch_gives_ratio_one_and_the_kl_reward_is_unmasked",),
    ),
    Mutation(
        "nlpo_rollouts_unmasked",
        "rft/alg/nlpo.py",
        "logits_processor=LogitsProcessorList([mask]),",
        "logits_processor=None,",
        (f"{NLPO}::test_every_rollout_token_lies_in_the_mask_policys_kept_set",),
    ),
    Mutation(
        "nlpo_mask_policy_never_refreshed",
        "rft/alg/nlpo.py",
        "self.mask_model.load_state_dict(self.policy.state_dict())",
        "pass",
        (f"{NLPO}::test_mask_policy_is_refreshed_exactly_every_target_update_iterations",),
    ),
    Mutation(
        "nlpo_mask_policy_not_restored_on_resume",  # π_ψ rebuilt from the initial policy
        "rft/alg/nlpo.py",
        'if not any(k.startswith("mask_model.") for k in checkpoint.get("state_dict", {})):',
        'for k in [k for k in checkpoint["state_dict"] if k.startswith("mask_model.")]:\n'
        '            del checkpoint["state_dict"][k]\n'
        "        if False:",
        (f"{NLPO}::test_resume_after_kill_matches_uninterrupted_run",),
    ),
    Mutation(
        "nlpo_top_p_needs_more_than_top_mask",  # a prefix reaching top_mask exactly gets one more
        "rft/core/nlpo.py",
        "keep_sorted = before < top_p",
        "keep_sorted = before <= top_p",
        ("tests/core/test_nlpo.py",),
    ),
    Mutation(
        "flip_advantage_sign",
        "rft/core/ppo.py",
        "    pg_loss1 = -advantages * ratio\n    pg_loss2 = -advantages * ratio.clamp(",
        "    pg_loss1 = advantages * ratio\n    pg_loss2 = advantages * ratio.clamp(",
        ("tests/core/test_ppo.py", f"{LEARN}::test_ppo_learns_and_flipped_reward_unlearns"),
    ),
    # A2C and TRPO (rft/core/a2c.py, rft/core/trpo.py, rft/alg/a2c.py, rft/alg/trpo.py)
    Mutation(
        "a2c_advantage_sign_flipped",
        "rft/core/a2c.py",
        "policy = -masked_sum(advantages * logp, mask) / n",
        "policy = masked_sum(advantages * logp, mask) / n",
        (f"{A2C}::test_one_update_equals_a_naive_token_by_token_step", f"{LEARN}::{AC_LEARN}"),
    ),
    Mutation(
        "a2c_chunks_averaged_on_their_own",  # each chunk its own token mean: not the batch step
        "rft/alg/a2c.py",
        "logp, values, ent, adv[idx], mb.returns, mb.mask, a.vf_coef, a.ent_coef, n_tokens",
        "logp, values, ent, adv[idx], mb.returns, mb.mask, a.vf_coef, a.ent_coef, None",
        (f"{A2C}::test_one_update_equals_a_naive_token_by_token_step",),
    ),
    Mutation(
        "trpo_accepts_without_the_kl_check",
        "rft/core/trpo.py",
        "if kl < max_kl and surr > surrogate_old:",
        "if surr > surrogate_old:",
        (
            "tests/core/test_trpo.py::test_line_search_backtracks_until_the_kl_is_inside_the_region",
            f"{TRPO}::test_accepted_step_lies_inside_the_trust_region",
        ),
    ),
    Mutation(
        "trpo_rejected_step_not_restored",  # θ stays at the last (shrunk) try
        "rft/alg/trpo.py",
        "            self.sync_old_policy(old, params)\n",
        "            pass\n",
        (f"{TRPO}::test_a_step_that_does_not_improve_is_refused_and_the_critic_still_learns",),
    ),
    Mutation(
        "every_alol_variant_is_nll",
        "rft/alg/alol.py",
        "self.loss_fn = ALOL_LOSSES[self.loss_name]",
        'self.loss_fn = ALOL_LOSSES["nll"]',
        (f"{LEARN}::test_reward_weighted_variant_beats_nll_and_flipped_reward_loses",),
    ),
    Mutation(
        "drop_kl_penalty",
        "rft/alg/ppo.py",
        "r.reward_scores, self.kl_logp(r), r.ref_logp, r.mask, self.kl_ctl.beta",
        "r.reward_scores, self.kl_logp(r), r.ref_logp, r.mask, 0.0",
        (f"{WIRE}::test_kl_penalty_keeps_the_policy_near_the_reference",),
    ),
    Mutation(
        "ignore_model_init_from",
        "rft/model/load.py",
        "    if model_cfg.init_from:\n        folder = _resolve_init_from(model_cfg.init_from)\n",
        "    if False:\n        folder = _resolve_init_from(model_cfg.init_from)\n",
        ("tests/integration/test_train.py::test_sft_then_ppo_with_init_from",),
    ),
    Mutation(
        "skip_advantage_whitening",
        "rft/alg/ppo.py",
        "adv = masked_whiten(mb.advantages, mb.policy_mask)",
        "adv = mb.advantages",
        (f"{WIRE}::test_first_minibatch_sees_ratio_one_and_whitened_advantages",),
    ),
    Mutation(
        "reference_logprobs_as_old",
        "rft/alg/ppo.py",
        '"old_logp": logprobs_from_logits(logits, chunk.ids),',
        '"old_logp": self.ref_logprobs(chunk),',
        (f"{WIRE}::test_first_minibatch_sees_ratio_one_and_whitened_advantages",),
    ),
    Mutation(
        "vf_coef_ignored",
        "rft/alg/ppo.py",
        "loss = pg_loss + a.vf_coef * vf_loss",
        "loss = pg_loss + vf_loss",
        (f"{WIRE}::test_first_minibatch_sees_ratio_one_and_whitened_advantages",),
    ),
    Mutation(
        "entropy_bonus_sign_flipped",
        "rft/alg/ppo.py",
        "- a.ent_coef * entropy",
        "+ a.ent_coef * entropy",
        (f"{WIRE}::test_first_minibatch_sees_ratio_one_and_whitened_advantages",),
    ),
    Mutation(
        "no_gradient_clipping",
        "rft/alg/base.py",
        "        if not self.max_grad_norm:\n            return\n",
        "        return\n",
        (f"{WIRE}::test_gradient_clipping_rescales_the_gradient_to_max_grad_norm",),
    ),
    Mutation(
        "rl4lms_kl_controller_gain_doubled",
        "rft/core/kl.py",
        "self.beta = self.beta * (1 + 0.1 * e)",
        "self.beta = self.beta * (1 + 0.2 * e)",
        (f"{WIRE}::test_kl_coefficient_follows_its_formula_on_the_logged_kl",),
    ),
    Mutation(
        "sft_loss_summed_per_sequence",
        "rft/alg/sft.py",
        "return -masked_mean(logprobs_from_logits(logits, c_ids), c_mask)",
        "return -(logprobs_from_logits(logits, c_ids) * c_mask).sum() / len(examples)",
        (f"{WIRE}::test_sft_loss_is_the_token_mean_nll_of_the_reference_given_the_prompt",),
    ),
    Mutation(
        "alol_advantage_not_clamped",
        "rft/core/alol.py",
        "return torch.where(advantage > 0, advantage * ratio, 0.0)",
        "return advantage * ratio",
        ("tests/core/test_alol.py",),
    ),
    # CommonGen (issue #13): metrics, references plumbing, truncation, evaluation errors
    Mutation(
        "meteor_first_reference_only",
        "rft/metrics/meteor.py",
        "meteor_score([tok(r) for r in refs], h,",
        "meteor_score([tok(refs[0])], h,",
        ("tests/metrics",),
    ),
    Mutation(
        "cider_sigma_wrong",
        "rft/metrics/cider.py",
        "N, SIGMA = 4, 6.0",
        "N, SIGMA = 4, 60.0",
        ("tests/metrics",),
    ),
    Mutation(
        "coverage_without_stemming",
        "rft/metrics/coverage.py",
        "    return _stemmer().stem(word)",
        "    return word",
        ("tests/metrics",),
    ),
    Mutation(
        "ppo_reward_gets_one_reference",
        "rft/alg/online.py",
        "refs = [e.reward_references for e in examples for _ in range(k)]",
        "refs = [e.reference for e in examples for _ in range(k)]",
        ("tests/learning/test_seq2seq.py",),
    ),
    Mutation(
        "prompts_always_cut_on_the_left",
        "rft/rollout/prompts.py",
        '    if truncation == "left":\n        rows = [x[max(0, len(x) - max_tokens) :] for x in rows]',
        "    if True:\n        rows = [x[max(0, len(x) - max_tokens) :] for x in rows]",
        ("tests/rollout/test_prompts.py", "tests/test_eval.py"),
    ),
    Mutation(
        "text_metric_se_over_samples",
        "rft/eval/text.py",
        'out.metrics[f"{key}_se"] = stats.clustered_mean(per, k)[1]',
        'out.metrics[f"{key}_se"] = stats.clustered_mean(per, 1)[1]',
        ("tests/test_eval_text.py",),
    ),
    # PPO score normalisation (alg.score_norm) and the KL-dominance ratio
    Mutation(
        "score_norm_scale_ignored",
        "rft/alg/ppo.py",
        "return normalize_scores(r.scores, self.score_moments, self.score_norm)",
        "return r.scores",
        (
            f"{SCORE_NORM}::test_score_fed_to_the_reward_is_normalised_by_the_running_moments",
            f"{SCORE_NORM}::test_guided_family_normalises_too",
        ),
    ),
    Mutation(
        "score_moments_not_restored_on_resume",
        "rft/alg/ppo.py",
        'self.score_moments.load_state_dict(checkpoint["score_moments"])',
        "pass",
        (f"{SCORE_NORM}::test_moments_survive_kill_and_resume",),
    ),
    Mutation(
        "score_to_kl_uses_the_raw_score",
        "rft/alg/ppo.py",
        '"objective/score_to_kl": self.score_to_kl(r.reward_scores, beta, kl_seq),',
        '"objective/score_to_kl": self.score_to_kl(r.scores, beta, kl_seq),',
        (f"{SCORE_NORM}::test_score_fed_to_the_reward_is_normalised_by_the_running_moments",),
    ),
    Mutation(
        "kl_dominance_warning_not_rate_limited",
        "rft/alg/ppo.py",
        "if self._kl_warned_at is not None and it - self._kl_warned_at < KL_WARN_EVERY:",
        "if False:",
        (f"{SCORE_NORM}::test_warning_when_the_kl_penalty_dominates",),
    ),
    Mutation(
        "score_moments_from_the_local_rank_only",
        "rft/alg/ppo.py",
        "everyone = self.all_gather(r.scores).flatten()",
        "everyone = r.scores",
        (f"{SCORE_NORM}::test_ddp_ranks_merge_every_ranks_scores",),
    ),
    Mutation(
        "group_advantage_sign_flipped",
        "rft/core/group.py",
        "centred = g - g.mean(dim=1, keepdim=True)  # (n, G)",
        "centred = g.mean(dim=1, keepdim=True) - g  # (n, G)",
        (
            "tests/core/test_group.py",
            f"{LEARN}::test_group_family_learns_and_flipped_reward_unlearns",
        ),
    ),
    Mutation(
        "group_micro_batch_normalised_alone",
        "rft/core/group.py",
        "n = per_token.shape[0] if n_sequences is None else n_sequences",
        "n = per_token.shape[0]",
        (
            "tests/core/test_group.py",
            f"{GROUP}::test_gradient_accumulation_does_not_change_the_update",
        ),
    ),
    Mutation(
        "group_std_floor_ignored",
        "rft/core/group.py",
        "adv = centred / std.clamp(min=std_floor) if std_floor > 0 else centred / std",
        "adv = centred / std",
        ("tests/core/test_group.py",),
    ),
    Mutation(
        "group_kl_not_in_the_loss",
        "rft/alg/group.py",
        "                loss = loss + a.kl.beta * kl_loss",
        "                loss = loss",
        (f"{GROUP}::test_kl_estimators_are_logged_side_by_side_and_k3_is_nonnegative",),
    ),
    Mutation(
        "dynamic_sampling_keeps_zero_std_groups",
        "rft/alg/group.py",
        "has_spread = std > 0",
        "has_spread = std >= 0",
        (f"{GROUP}::test_dynamic_sampling_keeps_exactly_the_groups_that_have_a_spread",),
    ),
    Mutation(
        "std_sampler_not_restored_on_resume",
        "rft/alg/group.py",
        'self.sampler.load_state_dict(g["sampler"])',
        "pass",
        (f"{GROUP}::test_resume_after_kill_matches_uninterrupted_run",),
    ),
    Mutation(
        "group_old_logp_skipped_with_several_steps",
        "rft/alg/group.py",
        'return steps > 1 or self.kl_placement == "reward"',
        'return self.kl_placement == "reward"',
        (f"{GROUP}::test_one_step_per_batch_skips_the_old_logprob_pass_exactly",),
    ),
    # the group family's knobs (issue 25): one mis-wiring per knob of rft/alg/group.py, each
    # caught by a wiring test of tests/learning/test_group_wiring.py (or tests/alg/test_group.py)
    Mutation(
        "group_advantage_estimator_ignored",  # every option gets GRPO's group_norm
        "rft/alg/group.py",
        "adv = group_advantages(scores, self.G, self.estimator, a.std_floor, a.std_unbiased)",
        'adv = group_advantages(scores, self.G, "group_norm", a.std_floor, a.std_unbiased)',
        (f"{EACH}[dr_grpo]", f"{EACH}[rloo]"),
    ),
    Mutation(
        "group_batch_whiten_ignored",  # REINFORCE++ gets group advantages
        "rft/alg/group.py",
        'if self.estimator == "batch_whiten":',
        "if False:",
        (f"{EACH}[reinforce_pp]",),
    ),
    Mutation(
        "group_std_floor_not_passed",
        "rft/alg/group.py",
        "adv = group_advantages(scores, self.G, self.estimator, a.std_floor, a.std_unbiased)",
        "adv = group_advantages(scores, self.G, self.estimator, 0.01, a.std_unbiased)",
        (f"{GW}::test_std_floor_and_bessel_correction_reach_group_norm",),
    ),
    Mutation(
        "group_std_unbiased_not_passed",
        "rft/alg/group.py",
        "adv = group_advantages(scores, self.G, self.estimator, a.std_floor, a.std_unbiased)",
        "adv = group_advantages(scores, self.G, self.estimator, a.std_floor, True)",
        (f"{GW}::test_std_floor_and_bessel_correction_reach_group_norm",),
    ),
    Mutation(
        "group_aggregation_ignored",  # every option averages per sequence (GRPO)
        "rft/alg/group.py",
        "self.aggregation = choice(a.aggregation)",
        'self.aggregation = "seq_mean_token_mean"',
        (f"{EACH}[dr_grpo]", f"{EACH}[dapo]", f"{EACH}[reinforce_pp]"),
    ),
    Mutation(
        "group_ratio_level_ignored",  # RLOO and GSPO get per-token ratios
        "rft/alg/group.py",
        "self.ratio_level = choice(a.ratio)",
        'self.ratio_level = "token"',
        (f"{EACH}[rloo]", f"{EACH}[gspo]"),
    ),
    Mutation(
        "group_clip_high_is_clip_low",  # DAPO's clip-higher lost
        "rft/alg/group.py",
        "per_token, ratio = clipped_surrogate(logp - old, mb.advantages, a.clip_low, a.clip_high)",
        "per_token, ratio = clipped_surrogate(logp - old, mb.advantages, a.clip_low, a.clip_low)",
        (f"{EACH}[dapo]",),
    ),
    Mutation(
        "group_sequence_clip_range_fixed",  # GSPO's tiny range replaced by PPO's
        "rft/alg/group.py",
        "per_seq, ratio = clipped_surrogate(log_s, seq_adv, a.clip_low, a.clip_high)",
        "per_seq, ratio = clipped_surrogate(log_s, seq_adv, 0.2, 0.2)",
        (f"{EACH}[gspo]",),
    ),
    Mutation(
        "group_kl_placement_ignored",  # RLOO / REINFORCE++'s KL goes into the loss
        "rft/alg/group.py",
        'self.kl_placement = choice(a.kl.placement) if a.kl.beta > 0 else "none"',
        'self.kl_placement = "loss" if a.kl.beta > 0 else "none"',
        (f"{EACH}[rloo]", f"{EACH}[reinforce_pp]"),
    ),
    Mutation(
        "group_kl_estimator_ignored",
        "rft/alg/group.py",
        "kl_t = kl_estimate(logp, mb.ref_logp, self.kl_kind)",
        'kl_t = kl_estimate(logp, mb.ref_logp, "k1")',
        (f"{EACH}[grpo]", f"{GW}::test_entropy_bonus_and_kl_estimator_reach_the_loss"),
    ),
    Mutation(
        "group_kl_in_reward_without_beta",  # RLOO's sequence reward loses β Σ k1
        "rft/alg/group.py",
        "scores = sequence_kl_penalised_scores(scores, b.old_logp, b.ref_logp, b.mask, beta)",
        "scores = sequence_kl_penalised_scores(scores, b.old_logp, b.ref_logp, b.mask, 0.0)",
        (f"{EACH}[rloo]",),
    ),
    Mutation(
        "group_token_kl_reward_without_beta",  # REINFORCE++'s per-token -β k1 lost
        "rft/alg/group.py",
        "r_t = terminal_token_rewards(scores, b.old_logp, b.ref_logp, b.mask, beta)",
        "r_t = terminal_token_rewards(scores, b.old_logp, b.ref_logp, b.mask, 0.0)",
        (f"{EACH}[reinforce_pp]",),
    ),
    Mutation(
        "group_log_kl_ignored",
        "rft/alg/group.py",
        'self.use_ref = self.kl_placement != "none" or a.log_kl',
        'self.use_ref = self.kl_placement != "none"',
        (f"{GW}::test_log_kl_scores_the_reference_only_when_asked",),
    ),
    Mutation(
        "group_entropy_bonus_dropped",
        "rft/alg/group.py",
        "loss = loss - a.ent_coef * ent_agg",
        "loss = loss",
        (f"{GW}::test_entropy_bonus_and_kl_estimator_reach_the_loss",),
    ),
    Mutation(
        "group_update_epochs_ignored",
        "rft/alg/group.py",
        "for _ in range(a.update_epochs):",
        "for _ in range(1):",
        (f"{GW}::test_passes_minibatches_and_micro_batches_are_the_configured_ones",),
    ),
    Mutation(
        "group_minibatch_is_the_whole_batch",
        "rft/alg/group.py",
        "for mb_idx in torch.randperm(len(b), device=b.ids.device).split(a.minibatch_size):",
        "for mb_idx in torch.randperm(len(b), device=b.ids.device).split(len(b)):",
        (f"{GW}::test_passes_minibatches_and_micro_batches_are_the_configured_ones",),
    ),
    Mutation(
        "group_micro_batch_is_the_minibatch",
        "rft/alg/group.py",
        "                    a.micro_batch_size\n",
        "                    a.minibatch_size\n",
        (f"{GW}::test_passes_minibatches_and_micro_batches_are_the_configured_ones",),
    ),
    Mutation(
        "group_max_grad_norm_ignored",
        "rft/alg/online.py",
        "self.max_grad_norm = self.a.max_grad_norm",
        "self.max_grad_norm = 1.0",
        (f"{GW}::test_gradient_clipping_rescales_the_first_step_to_max_grad_norm",),
    ),
    Mutation(
        "group_overlong_penalty_ignored",
        "rft/alg/group.py",
        "                self.a.overlong.penalty,\n",
        "                1.0,\n",
        (f"{GW}::test_overlong_shaping_uses_the_configured_buffer_and_penalty",),
    ),
    Mutation(
        "group_overlong_buffer_fixed",  # DAPO's 20 % whatever buffer_frac says
        "rft/alg/group.py",
        "self.overlong_buffer = max(1, round(frac * task.max_new_tokens)) if frac > 0 else 0",
        "self.overlong_buffer = max(1, round(0.2 * task.max_new_tokens)) if frac > 0 else 0",
        (f"{GW}::test_overlong_shaping_uses_the_configured_buffer_and_penalty",),
    ),
    Mutation(
        "group_tis_cap_ignored",
        "rft/alg/group.py",
        "per_token = per_token * tis_weights(old, mb.sampler_logp, a.tis_cap)",
        "per_token = per_token * tis_weights(old, mb.sampler_logp, 2.0)",
        (f"{GW}::test_tis_cap_weights_the_policy_term",),
    ),
    Mutation(
        "group_std_sampler_knobs_not_passed",  # floor, prior, momentum left at the defaults
        "rft/alg/group.py",
        "len(task.train), s.floor, s.prior, s.momentum, statistic=statistic",
        "len(task.train), 0.02, statistic=statistic",
        (f"{GW}::test_std_aware_sampler_gets_the_configured_floor_prior_and_momentum",),
    ),
    Mutation(
        "group_prompt_sampling_ignored",  # std_aware runs the uniform draw
        "rft/alg/group.py",
        'if mode != "uniform":  # std_aware: p ∝ std; learnability: p ∝ p(1-p)',
        "if False:",
        (f"{GW}::test_std_aware_sampler_gets_the_configured_floor_prior_and_momentum",),
    ),
    Mutation(
        "dynamic_sampling_ignored",
        "rft/alg/group.py",
        "filtered=self.a.dynamic_sampling)\n            if not self.a.dynamic_sampling:",
        "filtered=False)\n            if True:",
        (f"{GROUP}::test_dynamic_sampling_keeps_exactly_the_groups_that_have_a_spread",),
    ),
    Mutation(
        "dynamic_sampling_rounds_fixed",  # max_sampling_rounds ignored
        "rft/alg/group.py",
        "if missing <= 0 or rounds.n >= self.a.max_sampling_rounds:",
        "if missing <= 0 or rounds.n >= 4:",
        (f"{GROUP}::test_dynamic_sampling_keeps_exactly_the_groups_that_have_a_spread",),
    ),
    Mutation(
        "dynamic_sampling_fills_with_dropped_groups_first",
        "rft/alg/group.py",
        "parts = kept + dropped",
        "parts = dropped + kept",
        (f"{GROUP}::test_dynamic_sampling_keeps_exactly_the_groups_that_have_a_spread",),
    ),
    Mutation(
        "bt_loss_sign_flipped",  # the Bradley-Terry loss rewards ranking the rejected text higher
        "rft/core/reward_model.py",
        "F.softplus(-(chosen.float() - rejected.float() - margin))",
        "F.softplus(chosen.float() - rejected.float() - margin)",
        (
            "tests/core/test_reward_model.py::test_bradley_terry_loss_by_hand",
            "tests/alg/test_reward_model.py::test_tiny_bradley_terry_model_ranks_an_easy_pair_set",
        ),
    ),
    # DPO family (issue 15): the sign of Δ, π_ref's cached log-probs misaligned with the pair
    Mutation(
        "dpo_delta_sign_flipped",  # every variant then prefers the rejected completion
        "rft/core/dpo.py",
        "return (policy_chosen - rc) - (policy_rejected - rr)",
        "return (policy_rejected - rr) - (policy_chosen - rc)",
        ("tests/core/test_dpo.py", "tests/learning/test_dpo_learning.py"),
    ),
    Mutation(
        "dpo_ref_chosen_rejected_swapped",
        "rft/alg/dpo.py",
        "rc, rr = ref[:, 0], ref[:, 1]",
        "rc, rr = ref[:, 1], ref[:, 0]",
        ("tests/alg/test_dpo.py::test_variant_trains_two_steps_and_changes_the_policy",),
    ),
    Mutation(
        "lora_reference_keeps_the_adapters_on",  # π_ref = π_θ: no KL, no A-LoL ratio
        "rft/model/lora.py",
        "            layer.enable_adapters(False)",
        "            pass",
        (f"{LORA}::test_reference_is_the_base_model_with_the_adapters_off",),
    ),
    Mutation(
        "lora_export_without_the_adapters",  # policy/ = the untrained base
        "rft/model/lora.py",
        'sd[f"{name}.weight"] = w.detach().to(dtype) + delta.to(dtype)',
        "pass",
        (f"{LORA}::test_ppo_trains_only_the_adapters_and_exports_merged_weights",),
    ),
    Mutation(
        "lora_resume_onto_other_base_weights",
        "rft/model/lora.py",
        "    if saved == now:\n        return",
        "    return",
        (f"{LORA}::test_resume_with_other_lora_settings_names_the_key",),
    ),
    Mutation(
        "tis_weight_not_truncated",
        "rft/core/tis.py",
        "return log_ratio.clamp(max=20.0).exp().clamp(max=cap)",
        "return log_ratio.clamp(max=20.0).exp()",
        ("tests/core/test_tis.py::test_tis_weights_by_hand",),
    ),
    # verifiable rewards (issue #26)
    Mutation(
        "pass_at_k_plug_in_estimator",  # 1-(1-c/n)^k: sampling with replacement, biased
        "rft/eval/verifiable.py",
        "return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))",
        "return float(1.0 - (1.0 - c / n) ** k)",
        ("tests/test_eval_verifiable.py::test_pass_at_k_hand_computed",),
    ),
    Mutation(
        "verifier_metrics_not_reported",
        "rft/eval/evaluate.py",
        "split_metrics.update(vm)",
        "pass",
        (
            "tests/test_eval_verifiable.py::"
            "test_evaluation_reports_verifier_metrics_in_metrics_samples_and_per_prompt",
        ),
    ),
    Mutation(
        "answer_tag_first_not_last",
        "rft/reward/answers.py",
        "return found[-1].strip() if found else None",
        "return found[0].strip() if found else None",
        ("tests/reward/test_verify.py::test_the_last_answer_wins_and_a_missing_one_is_none",),
    ),
    Mutation(
        "unsafe_scorer_run_in_the_trainer",  # countdown's parse_expr on model text, in-process
        "rft/reward/verify.py",
        "            if safe:\n",
        "            if True:\n",
        (
            "tests/reward/test_verify.py::test_countdown_answers_are_scored_in_the_sandbox_never_here",
        ),
    ),
    Mutation(
        "code_passes_without_the_token",  # an early exit(0) counts as passing
        "rft/reward/code.py",
        'return "passed" if token in ex.stdout.split() else "failed"',
        'return "passed"',
        ("tests/reward/test_code.py::test_an_early_exit_zero_does_not_pass",),
    ),
    Mutation(
        "sandbox_keeps_the_network",
        "rft/sandbox.py",
        'cmd.append("--net")',
        "pass",
        ("tests/test_sandbox.py::test_a_socket_connect_reaches_nothing",),
    ),
    Mutation(
        "learnability_weighs_by_std",  # std instead of p(1-p) = std² for {0, 1} rewards
        "rft/rollout/std_sampler.py",
        "return np.square(stds)",
        "return stds",
        (
            "tests/rollout/test_std_sampler.py::test_learnability_weighs_by_pass_rate_variance_by_hand",
        ),
    ),
    Mutation(
        "parent_lambda_fixed_at_half",
        "rft/metrics/parent.py",
        "1.0 - sum(lcs_length(v, reference) / len(v) for v in entries) / len(entries)",
        "0.5",
        (f"{GRUE_METRICS}::test_parent_reference_vector",),
    ),
    Mutation(
        "rouge_l_max_without_the_weight_factor_exponent",
        "rft/metrics/rouge_l_max.py",
        "WEIGHT_FACTOR = 1.2",
        "WEIGHT_FACTOR = 1.0",
        (f"{GRUE_METRICS}::test_rouge_l_max_by_hand",),
    ),
    Mutation(
        "ter_reward_is_ter_not_one_minus_ter",
        "rft/reward/textgen.py",
        "return [1.0 - t for t in segment_ter(completions, references)]",
        "return segment_ter(completions, references)",
        ("tests/reward/test_grue_rewards.py::test_reward_equals_its_metric_per_completion",),
    ),
    Mutation(
        "totto_prompt_without_the_titled_copy",
        "rft/task/totto.py",
        "return linearize_subtable(sub) + linearize_subtable(sub, page, section)",
        "return linearize_subtable(sub, page, section)",
        (f"{GRUE_TASKS}::test_totto_linearisation_with_highlighted_cells_and_headers",),
    ),
    Mutation(
        "daily_dialog_context_one_turn_short",
        "rft/task/daily_dialog.py",
        "prompt = EOU.join(context[-context_size:])",
        "prompt = EOU.join(context[-context_size + 1 :])",
        (f"{GRUE_TASKS}::test_daily_dialog_context_window_from_the_release_files",),
    ),
    Mutation(
        "intent_label_not_shifted",
        "rft/metrics/intent.py",
        "gold = [int(i) - 1 for i in intents[s : s + batch_size]]",
        "gold = [int(i) for i in intents[s : s + batch_size]]",
        (f"{GRUE_METRICS}::test_intent_accuracy_glue",),
    ),
    # remote models (rft/remote, rft/reward/{remote,judge}.py)
    Mutation(
        "remote_ignores_retry_after",  # always the exponential backoff
        "rft/remote/client.py",
        "asked = retry_after_s(headers)",
        "asked = None",
        (
            f"{REMOTE}/test_client.py::test_retry_after_is_honoured",
            f"{REMOTE}/test_client.py::test_a_long_retry_after_stops_at_once",
        ),
    ),
    Mutation(
        "remote_cache_key_without_seed",  # the K samples of a prompt collapse onto one answer
        "rft/remote/client.py",
        '{"url": url, "body": body, "seed": seed, "tag": self.cache_tag}',
        '{"url": url, "body": body, "tag": self.cache_tag}',
        (f"{REMOTE}/test_client.py::test_cache_second_run_sends_nothing",),
    ),
    Mutation(
        "remote_guide_drops_eos",  # a guide that ended its text gives no EOS in policy tokens
        "rft/remote/guide.py",
        "            if a.stopped:\n                row.append(tok.eos_token_id)",
        "            if False:\n                row.append(tok.eos_token_id)",
        (f"{REMOTE}/test_guide.py::test_text_answers_are_re_encoded_with_the_policy_tokenizer",),
    ),
    Mutation(
        "judge_score_not_normalized",
        "rft/reward/judge.py",
        "out.append((score - self.lo) / (self.hi - self.lo))",
        "out.append(score)",
        ("tests/reward/test_judge.py::test_scores_are_parsed_and_normalized",),
    ),
]


def copy_tree(dst: Path) -> None:
    shutil.copytree(REPO, dst, ignore=IGNORE, symlinks=True)


def run_tests(root: Path, tests: tuple[str, ...], timeout: int) -> tuple[bool, str, float]:
    """(caught, which tests failed, seconds). Caught = pytest failed (or errored / timed out)."""
    env = {**os.environ, "PYTHONPATH": str(root), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return True, f"timeout after {timeout}s", time.perf_counter() - t0
    dt = time.perf_counter() - t0
    failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", r.stdout, re.M)))
    if r.returncode == 0:
        return False, "-", dt
    if r.returncode == 5:  # no tests collected: a renamed test, not a catch
        return False, "NO TESTS COLLECTED", dt
    return True, ", ".join(failed) or f"pytest exit {r.returncode}", dt


def check_copy_imports_itself(root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", "import rft; print(rft.__file__)"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not out.startswith(str(root)):
        raise SystemExit(f"the copy imports rft from {out}, not from {root}: check PYTHONPATH")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", nargs="*", help="mutation names to run (default: all)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per mutation's tests")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = ap.parse_args()
    muts = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list:
        for m in muts:
            print(f"{m.name:36s} {m.file:22s} {' '.join(m.tests)}")
        return 0
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="rft-mutation-") as tmp:
        base = Path(tmp) / "clean"
        copy_tree(base)
        check_copy_imports_itself(base)
        for m in muts:
            work = Path(tmp) / m.name
            shutil.copytree(base, work, symlinks=True)
            target = work / m.file
            text = target.read_text() if target.is_file() else ""
            n = text.count(m.old)
            if n != 1:
                why = "FILE NOT FOUND" if not target.is_file() else f"SNIPPET FOUND {n} TIMES"
                if n == 0 and target.is_file():
                    why = "SNIPPET NOT FOUND (code moved?)"
                rows.append((m.name, m.file, why, "-", 0.0))
                ok = False
            else:
                target.write_text(text.replace(m.old, m.new))
                caught, by, dt = run_tests(work, m.tests, args.timeout)
                rows.append((m.name, m.file, "yes" if caught else "NO", by, dt))
                ok &= caught
            print(f"  {m.name}: {rows[-1][2]} ({rows[-1][4]:.0f}s)", flush=True)
            shutil.rmtree(work, ignore_errors=True)
    print("\n| mutation | file | caught? | by which tests | s |\n|---|---|---|---|---|")
    for name, f, caught, by, dt in rows:
        print(f"| {name} | {f} | {caught} | {by} | {dt:.0f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
