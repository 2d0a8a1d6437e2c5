"""Pure tensor maths shared by every algorithm: masked reductions, log-probs, GAE, KL, PPO and
A-LoL losses. No config objects, no I/O."""

from rft.core.alol import (
    ALOL_LOSSES,
    a_lol_kl_loss,
    a_lol_loss,
    a_lol_ref_free_loss,
    a_lol_seq_loss,
    good_priority_weights,
    nll_loss,
    r_gold_loss,
    r_lol_loss,
    wbc_loss,
)
from rft.core.gae import gae
from rft.core.kl import (
    KL_CONTROLLER_KINDS,
    AdaptiveKLControllerRL4LMs,
    AdaptiveKLControllerZiegler,
    FixedKLController,
    KLController,
    approx_kl,
    kl_penalty_k1,
    make_kl_controller,
)
from rft.core.logprobs import (
    entropy_from_logits,
    logprobs_and_entropy,
    logprobs_from_logits,
    sequence_logprob,
)
from rft.core.masked import masked_mean, masked_sum, masked_var, masked_whiten
from rft.core.ppo import explained_variance, per_token_rewards, ppo_policy_loss, ppo_value_loss

__all__ = [
    "ALOL_LOSSES",
    "KL_CONTROLLER_KINDS",
    "AdaptiveKLControllerRL4LMs",
    "AdaptiveKLControllerZiegler",
    "FixedKLController",
    "KLController",
    "a_lol_kl_loss",
    "a_lol_loss",
    "a_lol_ref_free_loss",
    "a_lol_seq_loss",
    "approx_kl",
    "entropy_from_logits",
    "logprobs_and_entropy",
    "explained_variance",
    "gae",
    "good_priority_weights",
    "kl_penalty_k1",
    "logprobs_from_logits",
    "make_kl_controller",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "nll_loss",
    "per_token_rewards",
    "ppo_policy_loss",
    "ppo_value_loss",
    "r_gold_loss",
    "r_lol_loss",
    "sequence_logprob",
    "wbc_loss",
]
