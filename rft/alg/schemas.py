"""Typed schemas of the ``alg`` group: one per family, on two shared bases.

    AlgConfig                     what every algorithm has (target, name, optimiser)
    ├── OnlineConfig              sample → score → update, once per iteration
    │   ├── ActorCriticConfig ── PPOConfig ── NLPOConfig, GuidedPPOConfig
    │   │                     └─ A2CConfig, TRPOConfig
    │   └── GroupConfig
    └── StepConfig                a budget of optimizer steps over fixed data
        ├── SFTConfig, OfflineRLConfig, DPOConfig
        └── RewardBackboneConfig ── RewardClassifierConfig, BradleyTerryRewardConfig

A field is declared once, on the highest schema that has it; a family that publishes another
default re-declares only the default (``redefault``), keeping the base's help and adding the
source of its own value. The modules mirror this tree: rft.alg.online.OnlineRL and
rft.alg.steps.StepModule (docs/adding-a-family.md).

One name per idea, across every family:
- ``alg.kl.beta`` is the weight of the KL to π_ref (PPO's initial coefficient, the group
  family's β, A-LoL's β_kl, DPO's β);
- ``alg.update_epochs`` counts passes of updates over each rollout (PPO's epochs, GRPO's μ);
- ``alg.dataset_epochs`` counts passes over a fixed dataset when ``alg.max_steps = -1``.
The names they replace (``RENAMED``) are refused on the command line with the new key
(``check_renamed``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from rft.config import GenerationConfig, ModelConfig, RemoteGuideConfig, block, knob
from rft.errors import ConfigError


def redefault(schema: type, name: str, default: Any, source: str | None = None) -> Any:
    """A field inherited from ``schema`` with another default: the base's help, plus where the
    family's own value comes from (``source``)."""
    base = next(f for f in dataclasses.fields(schema) if f.name == name)
    help_ = base.metadata["help"] + (f" ({source})" if source else "")
    if callable(default) and not isinstance(default, (int, float, str, bool)):
        return dataclasses.field(default_factory=default, metadata={"help": help_})
    return dataclasses.field(default=default, metadata={"help": help_})


# ---------------------------------------------------------------------------------- bases
@dataclass
class AlgConfig:
    _target_: str = knob(MISSING, "the LightningModule class; set by conf/alg/<option>.yaml")
    name: str = knob(MISSING, "algorithm name (logs, run folders)")
    lr: float = knob(1e-5, "AdamW learning rate of the policy")
    weight_decay: float = knob(0.0, "AdamW weight decay")
    max_grad_norm: float | None = knob(1.0, "clip the gradient norm to this; null = no clipping")


@dataclass
class WarmStartConfig:
    """An SFT phase at the start of an RL run (Razin et al.: a short SFT fixes vanishing gradients)."""

    steps: int = knob(0, "optimizer steps of SFT before RL; 0 = none")
    data_frac: float = knob(1.0, "fraction of the task's SFT pairs used")
    lr: float = knob(1e-5, "SFT learning rate (GRUE supervised: 1e-5)")
    batch_size: int = knob(16, "SFT pairs per optimizer step")


@dataclass
class OnlineConfig(AlgConfig):
    """Online RL (rft.alg.online.OnlineRL): each iteration samples completions of
    ``rollout_prompts`` train prompts, scores them, and makes ``update_epochs`` passes of
    minibatch updates over them."""

    n_iterations: int = knob(20, "iterations: one generation batch (rollout) and its updates each")
    rollout_prompts: int = knob(32, "prompts per iteration")
    samples_per_prompt: int = knob(
        1, "K completions per prompt; K > 1 logs the per-prompt reward std (Razin et al.)"
    )
    minibatch_size: int = knob(8, "episodes per optimizer step")
    update_epochs: int = knob(1, "passes of minibatch updates over each rollout")
    ent_coef: float = knob(0.0, "entropy bonus coefficient")
    tis_cap: float | None = knob(
        None,
        "truncated importance sampling: weight each token's policy loss by min(π_trainer /"
        " π_sampler, tis_cap) (rollout.backend=vllm; verl / TRL: 2); null = off",
    )
    generation: GenerationConfig = block(
        GenerationConfig, "rollout sampling (evaluation uses eval.generation)"
    )
    warm_start: WarmStartConfig = block(WarmStartConfig, "an optional SFT phase before RL")
    score_batch_size: int = knob(16, "sequences per forward pass when scoring a rollout")
    eval_every: int = knob(10, "evaluate on val prompts every N iterations (0 = never)")


@dataclass
class StepConfig(AlgConfig):
    """Step-based training on fixed data (rft.alg.steps.StepModule): a budget of optimizer steps
    whose batches are a pure function of (seed, step)."""

    batch_size: int = knob(16, "training examples per optimizer step")
    max_steps: int = knob(
        200, "the optimizer-step budget; -1 = dataset_epochs passes over the data"
    )
    dataset_epochs: int = knob(1, "passes over the data when max_steps = -1")
    eval_every: int = knob(50, "evaluate on val prompts every N optimizer steps (0 = never)")


# ---------------------------------------------------------------------------------- SFT
@dataclass
class SFTConfig(StepConfig):
    """Supervised finetuning (docs/algorithms.md §2); GRUE supervised: lr 1e-5, batch 16."""

    name: str = knob("sft", "algorithm name (logs, run folders)")
    batch_size: int = redefault(StepConfig, "batch_size", 16, "SFT pairs; GRUE supervised: 16")
    dataset_epochs: int = redefault(StepConfig, "dataset_epochs", 10, "GRUE supervised: 10")
    data_frac: float = knob(1.0, "fraction of the SFT pairs used (Razin et al. study ≈1%)")


# ---------------------------------------------------------------------------------- PPO
class KLKind(str, Enum):
    fixed = "fixed"
    adaptive_rl4lms = "adaptive_rl4lms"
    adaptive_ziegler = "adaptive_ziegler"


@dataclass
class KLConfig:
    """The per-token KL penalty β · (log π - log π_ref) and its controller."""

    kind: KLKind = knob(KLKind.adaptive_rl4lms, "fixed | adaptive_rl4lms | adaptive_ziegler")
    beta: float = knob(
        0.1, "KL coefficient β; the adaptive controllers start from it (GRUE IMDB: 0.1)"
    )
    target: float | None = knob(0.1, "target KL of the adaptive controllers (GRUE IMDB: 0.1)")
    horizon: int = knob(10000, "adaptive_ziegler only: the controller's horizon")


class ValueModel(str, Enum):
    shared = "shared"  # value head on the policy's trunk (cheap)
    separate = "separate"  # RL4LMs: a separate copy of the LM + linear head


class ScoreNorm(str, Enum):
    none = "none"  # the reward as the reward function returns it (RL4LMs, GRUE)
    scale = "scale"  # score / running std: the KL coefficient β then means the same for any scale
    standardize = "standardize"  # (score - running mean) / running std


@dataclass
class ActorCriticConfig(OnlineConfig):
    """What PPO, A2C and TRPO share (rft.alg.ppo.ActorCritic; RL4LMs runs all three through one
    wrapper): the per-token KL-penalised reward and its β controller, GAE, the value function."""

    gamma: float = knob(
        1.0,
        "discount γ (GRUE: 0.99); 1.0: over 48 tokens γ<1 adds a position trend to the returns",
    )
    lam: float = knob(0.95, "GAE λ (GRUE: 0.95)")
    whiten_rewards: bool = knob(False, "whiten per-token rewards over the rollout before GAE")
    value_model: ValueModel = knob(
        ValueModel.shared, "shared (value head on the policy trunk) | separate (RL4LMs: LM copy)"
    )
    value_head_lr: float | None = knob(
        5e-4, "lr of the fresh linear value head(s); null = alg.lr (RL4LMs: one lr for all)"
    )
    kl: KLConfig = block(KLConfig, "the KL penalty to the frozen reference and its controller")
    score_norm: ScoreNorm = knob(
        ScoreNorm.none,
        "none (default: RL4LMs and GRUE use the raw score, and docs/results.md was measured"
        " with it) | scale: score / running std | standardize: (score - running mean) / running"
        " std; running moments over every score seen (all ranks), kept in the checkpoint."
        " scale when a reward's spread is small next to β · KL (objective/score_to_kl < 1)",
    )
    kl_dominance_warn: float = knob(
        1.0,
        "warn when std(score) / (β · mean KL per sequence), logged as objective/score_to_kl,"
        " falls below this (the KL penalty then outweighs the reward's spread); at most once"
        " per 10 iterations; 0 = never",
    )


@dataclass
class PPOConfig(ActorCriticConfig):
    """PPO for LMs, RL4LMs style (docs/algorithms.md §1), sized for a 2-core CPU (~20 min on
    SmolLM2-135M); experiment=grue_imdb_ppo sets the published GRUE numbers."""

    name: str = knob("ppo", "algorithm name (logs, run folders)")
    n_iterations: int = redefault(OnlineConfig, "n_iterations", 20, "GRUE: 50")
    rollout_prompts: int = redefault(
        OnlineConfig, "rollout_prompts", 32, "GRUE: 10 envs x 128 steps = 1280 episodes"
    )
    minibatch_size: int = redefault(OnlineConfig, "minibatch_size", 8, "GRUE: 64")
    update_epochs: int = redefault(OnlineConfig, "update_epochs", 2, "PPO epochs; GRUE: 5")
    lr: float = redefault(AlgConfig, "lr", 2e-5, "GRUE: 1e-6 with 40x more episodes per iteration")
    max_grad_norm: float | None = redefault(AlgConfig, "max_grad_norm", 0.5, "GRUE: 0.5")
    clip_range: float = knob(0.2, "policy ratio clip ε (GRUE: 0.2)")
    clip_range_vf: float | None = knob(0.2, "value clip around the old values; null = no clipping")
    vf_coef: float = knob(0.5, "weight of the value loss (GRUE: 0.5)")


# ---------------------------------------------------------------------------------- A2C, TRPO
class A2COptimizer(str, Enum):
    rmsprop = "rmsprop"  # RL4LMs / SB3 A2C: RMSprop(alpha, eps)
    adamw = "adamw"  # rft's usual optimizer (alg.weight_decay)


@dataclass
class A2CConfig(ActorCriticConfig):
    """A2C as RL4LMs runs it (a copy of SB3's A2C; docs/algorithms.md §16): one gradient step
    per iteration on the whole rollout, the same KL reward, β controller and GAE as PPO.
    Sized like alg=ppo for a 2-core CPU; RL4LMs' IMDB config: lr 1e-6, 2 episodes of 48 tokens
    per iteration, 100 iterations, KL 0.1 / target 0.5."""

    name: str = knob("a2c", "algorithm name (logs, run folders)")
    rollout_prompts: int = redefault(
        OnlineConfig, "rollout_prompts", 32, "alg=ppo's rollout; RL4LMs IMDB: 2 episodes"
    )
    minibatch_size: int = knob(
        8,
        "episodes per forward/backward: A2C takes ONE optimizer step on the whole rollout"
        " (RL4LMs), its gradient accumulated over these chunks (exact: the loss is a sum of"
        " per-token terms over the rollout's token count)",
    )
    update_epochs: int = redefault(
        OnlineConfig, "update_epochs", 1, "A2C: exactly 1 gradient step per rollout (RL4LMs)"
    )
    lr: float = redefault(
        AlgConfig,
        "lr",
        2e-5,
        "RL4LMs A2C: 7e-4, IMDB config 1e-6; rft: alg=ppo's lr (RMSprop's first steps are"
        " ≈ 3-10x lr per weight, as its square average starts at 0)",
    )
    max_grad_norm: float | None = redefault(AlgConfig, "max_grad_norm", 0.5, "RL4LMs A2C: 0.5")
    lam: float = redefault(ActorCriticConfig, "lam", 1.0, "RL4LMs A2C: 1.0")
    vf_coef: float = knob(0.5, "weight of the (unclipped) value loss (RL4LMs A2C: 0.5)")
    normalize_advantage: bool = knob(
        False, "whiten the advantages over the rollout (RL4LMs A2C: False)"
    )
    optimizer: A2COptimizer = knob(
        A2COptimizer.rmsprop,
        "rmsprop (RL4LMs A2C: use_rms_prop=True) | adamw (alg.weight_decay, as alg=ppo)",
    )
    rms_alpha: float = knob(0.99, "RMSprop's square-average decay (RL4LMs A2C: 0.99)")
    rms_eps: float = knob(1e-5, "RMSprop's ε (RL4LMs A2C: rms_prop_eps 1e-5)")


@dataclass
class TRPOConfig(ActorCriticConfig):
    """TRPO as RL4LMs runs it (a copy of sb3-contrib's TRPO; docs/algorithms.md §16): a natural
    gradient step (conjugate gradient on Fisher-vector products) with a KL-constrained
    backtracking line search, then separate critic updates; the same KL reward, β controller
    and GAE as PPO. RL4LMs runs it on one synthetic task only (no GRUE task); the defaults are
    sb3-contrib's where they fit a 2-core CPU, and say so where not."""

    name: str = knob("trpo", "algorithm name (logs, run folders)")
    rollout_prompts: int = redefault(
        OnlineConfig, "rollout_prompts", 32, "alg=ppo's rollout; sb3-contrib: 2048 steps"
    )
    minibatch_size: int = redefault(
        OnlineConfig,
        "minibatch_size",
        8,
        "critic minibatches, in episodes (sb3-contrib: batch_size 128 transitions)",
    )
    update_epochs: int = redefault(
        OnlineConfig,
        "update_epochs",
        10,
        "critic epochs: passes of value minibatches per rollout (sb3-contrib n_critic_updates:"
        " 10); the actor takes one trust-region step",
    )
    micro_batch_size: int = knob(
        2,
        "episodes per forward of the actor's whole-rollout passes (the gradient, each"
        " Fisher-vector product, the line search); exact: each is a sum of per-token terms."
        " A product's double backward holds ≈ 1 GB per episode of SmolLM2-135M (112 tokens)",
    )
    lr: float = redefault(
        AlgConfig,
        "lr",
        1e-5,
        "the CRITIC's lr (the actor's step comes from max_kl); sb3-contrib: 1e-3, RL4LMs'"
        " config: 1e-5 for its separate value LM",
    )
    max_grad_norm: float | None = redefault(
        AlgConfig, "max_grad_norm", None, "critic steps; sb3-contrib TRPO: no clipping"
    )
    max_kl: float = knob(
        0.01,
        "trust region δ: a step is accepted only if mean KL(π_θ ‖ π_old) < max_kl (sb3-contrib"
        " target_kl: 0.01; not alg.kl.target, which steers the KL-to-reference β)",
    )
    cg_max_steps: int = knob(
        10, "conjugate-gradient iterations at most (sb3-contrib: 15; CPU-sized: 10)"
    )
    fisher_fraction: float = knob(
        0.25,
        "share of the rollout's episodes (a random subset per iteration) whose KL defines the"
        " Fisher-vector products (Schulman et al. 2015 suggest a subsample); the gradient and"
        " the line search use every episode (RL4LMs: 1.0; CPU-sized: 0.25, each product costs"
        " ≈ 12 forward passes of its episodes)",
    )
    cg_damping: float = knob(0.1, "damping added to the Fisher-vector products (sb3-contrib: 0.1)")
    cg_residual_tol: float = knob(1e-10, "CG stops when ‖r‖² falls below this (sb3-contrib: 1e-10)")
    line_search_shrink: float = knob(
        0.8, "backtracking factor of the step (sb3-contrib line_search_shrinking_factor: 0.8)"
    )
    line_search_max_tries: int = knob(
        10, "step sizes tried at most (sb3-contrib line_search_max_iter: 10)"
    )
    normalize_advantage: bool = knob(
        True, "whiten the advantages over the rollout (sb3-contrib TRPO: True)"
    )


# ---------------------------------------------------------------------------------- NLPO
class NLPOMaskType(str, Enum):
    learned_top_p = "learned_top_p"  # smallest prefix of π_ψ's sorted probs reaching top_mask
    learned_top_k = "learned_top_k"  # π_ψ's top int(top_mask) tokens


@dataclass
class NLPOConfig(PPOConfig):
    """NLPO (RL4LMs, Ramamurthy et al. 2023): PPO with invalid-action masking by a mask policy
    π_ψ, a frozen copy of π_θ refreshed every target_update_iterations."""

    name: str = knob("nlpo", "algorithm name (logs, run folders)")
    mask_type: NLPOMaskType = knob(
        NLPOMaskType.learned_top_p, "learned_top_p (RL4LMs default) | learned_top_k"
    )
    top_mask: float = knob(
        0.9, "learned_top_p: the kept probability mass p (RL4LMs: 0.9); learned_top_k: k"
    )
    min_tokens_to_keep: int = knob(100, "never keep fewer tokens than this (RL4LMs: 100)")
    target_update_iterations: int = knob(
        5, "replace π_ψ by a copy of π_θ every N iterations (RL4LMs IMDB: 5, CommonGen: 20)"
    )


# ----------------------------------------------------------------- guide-policy RL (RLGF)
class GuideScheduleKind(str, Enum):
    ppo_pp = "ppo_pp"  # every iteration PPO++: roll-in = guide, roll-out = policy
    aggrevated = "aggrevated"  # every iteration AggreVaTeD: roll-in = policy, roll-out = guide
    lols = "lols"  # each iteration PPO++ with probability ppo_pp_prob, else AggreVaTeD
    dlols = "dlols"  # AggreVaTeD while iteration < τ, then PPO++ (D2LOLS in the RLGF code)


@dataclass
class GuideScheduleConfig:
    """Which scheme (PPO++ or AggreVaTeD) each iteration runs."""

    kind: GuideScheduleKind = knob(
        GuideScheduleKind.ppo_pp, "ppo_pp | aggrevated | lols (random mix) | dlols (switch at τ)"
    )
    ppo_pp_prob: float = knob(0.8, "lols: P(an iteration is PPO++) (RLGF code: `tau: 0.8`)")
    switch_iteration: int | None = knob(
        None,
        "dlols: τ, the first PPO++ iteration (0-based; RLGF IMDB: 20 of 50); null:"
        " round(switch_fraction · n_iterations)",
    )
    switch_fraction: float = knob(0.4, "dlols: τ / n_iterations when switch_iteration is null")
    guide_critic: bool = knob(
        False,
        "a second critic of the guide's value for AggreVaTeD iterations (RLGF code: on for"
        " LOLS / DLOLS; off: one critic, RLGF's plain AggreVaTeD)",
    )


@dataclass
class RestartProbConfig:
    """β, the mixing parameter: P(a sample restarts from a roll-in) per scheme."""

    ppo_pp: float = knob(
        0.6, "PPO++ iterations (RLGF code IMDB 0.6, paper table 0.2; CommonGen, LOLS/DLOLS: 0.8)"
    )
    aggrevated: float = knob(0.8, "AggreVaTeD iterations (RLGF: 0.8)")


@dataclass
class GuideConfig:
    """The guide π_g and its decoding."""

    model: ModelConfig | None = knob(
        None,
        "any model config (+model@alg.guide.model=<option>); null: the frozen reference, i.e."
        " the initial policy (with model.init_from=<SFT run>: the paper's BC guide), shared",
    )
    init_from: str | None = knob(
        None, "an earlier run's folder or policy/ for the guide, applied on top of `model`"
    )
    generation: GenerationConfig = block(
        lambda: GenerationConfig(do_sample=True, top_k=50, top_p=0.92),
        "the guide's own sampling for roll-ins and roll-outs (RLGF IMDB: top_k 50, top_p 0.92)",
    )
    remote: RemoteGuideConfig = block(
        RemoteGuideConfig,
        "a guide behind an OpenAI-compatible API instead of a local model, on when"
        " remote.base_url is set (README 'Remote models'; rft/remote/guide.py)",
    )


@dataclass
class GuidedPPOConfig(PPOConfig):
    """PPO++ / AggreVaTeD / LOLS / DLOLS (RLGF): PPO whose rollouts mix guide and policy tokens."""

    name: str = knob("ppo_pp", "algorithm name (logs, run folders)")
    schedule: GuideScheduleConfig = block(GuideScheduleConfig, "which scheme each iteration runs")
    restart_prob: RestartProbConfig = block(RestartProbConfig, "β per scheme")
    guide: GuideConfig = block(GuideConfig, "the guide policy and its decoding")
    target_coef: float = knob(
        0.0,
        'RLGF "target regularization": + coef · NLL of the reference continuation in every'
        " minibatch loss (RLGF code: 0.1); 0 = off",
    )
    score_rollins: bool = knob(
        True,
        "also score the complete roll-ins for the guided/reward_{guide,policy}_only logs (one"
        " more reward call)",
    )


# ---------------------------------------------------------------- group-baseline family
class AdvantageEstimator(str, Enum):
    group_norm = "group_norm"  # (r - mean_g) / max(std_g, std_floor)   GRPO, DAPO, GSPO
    group_mean = "group_mean"  # r - mean_g                              Dr. GRPO
    leave_one_out = "leave_one_out"  # r - mean of the other G-1         RLOO
    batch_whiten = "batch_whiten"  # per-token returns whitened over the batch   REINFORCE++


class LossAggregation(str, Enum):
    seq_mean_token_mean = "seq_mean_token_mean"  # mean_i (Σ_t ℓ_it / |y_i|)   GRPO
    token_mean = "token_mean"  # Σ_it ℓ_it / Σ_i |y_i|   DAPO, REINFORCE++
    constant = "constant"  # Σ_it ℓ_it / (B · max_new_tokens)   Dr. GRPO
    seq_mean_token_sum = "seq_mean_token_sum"  # mean_i Σ_t ℓ_it


class RatioLevel(str, Enum):
    token = "token"  # ρ_t = π_θ(y_t) / π_old(y_t), clipped per token (PPO, GRPO)
    sequence_sum = "sequence_sum"  # exp(Σ_t log ρ_t), clipped per sequence (RLOO)
    sequence_mean = "sequence_mean"  # exp(mean_t log ρ_t), clipped per sequence (GSPO)


class KLPlacement(str, Enum):
    none = "none"
    reward = "reward"  # β·k1 subtracted from the reward (per sequence or per token)
    loss = "loss"  # β·k added to the per-token loss, aggregated like it


class KLEstimator(str, Enum):
    k1 = "k1"  # log r                (unbiased, can be negative)
    k2 = "k2"  # (log r)^2 / 2        (biased, low variance)
    k3 = "k3"  # (1/r - 1) + log r    (unbiased, ≥ 0; GRPO)


class PromptSampling(str, Enum):
    uniform = "uniform"  # every train prompt equally likely (the same draw as alg=ppo)
    std_aware = "std_aware"  # p ∝ max(estimated reward std, floor) (Razin et al.: gradient ∝ std)
    learnability = "learnability"  # p ∝ max(p̂(1-p̂), floor): the pass-rate variance (Foster et al.)


@dataclass
class GroupKLConfig:
    """The KL to the frozen reference: where it enters, which estimator, its weight."""

    placement: KLPlacement = knob(
        KLPlacement.loss, "none | reward (k1 subtracted from r) | loss (β·k in the loss; GRPO)"
    )
    estimator: KLEstimator = knob(
        KLEstimator.k3, "k1 | k2 | k3 for placement=loss (GRPO: k3); placement=reward uses k1"
    )
    beta: float = knob(0.04, "KL coefficient β (DeepSeekMath GRPO: 0.04; TRL's default: 0)")


@dataclass
class OverlongConfig:
    """DAPO's soft overlong punishment: 0 up to L_max - buffer, then linearly down to -penalty at
    L_max (L_max = task.max_new_tokens)."""

    buffer_frac: float = knob(
        0.0,
        "the linear zone as a share of task.max_new_tokens (DAPO: 4096 of 20480 = 0.2); 0 = off",
    )
    penalty: float = knob(1.0, "the shaping at L_max (DAPO: 1)")


@dataclass
class StdSamplerConfig:
    """prompt_sampling=std_aware: a running estimate of each train prompt's reward std under the
    policy, and prompts drawn in proportion to it."""

    floor: float = knob(
        0.02, "p ∝ max(std estimate, floor): no prompt starves (its std may have changed)"
    )
    prior: float | None = knob(
        None, "std estimate of a never-seen prompt; null: the mean estimate of the seen ones"
    )
    momentum: float = knob(
        0.0, "new estimate = momentum · old + (1 - momentum) · observed std; 0: the last seen"
    )
    init_from: str | None = knob(
        None,
        "a mode=extract run folder (or its reward matrix) whose per-prompt std seeds the"
        " estimates of the prompts it sampled",
    )


@dataclass
class GroupConfig(OnlineConfig):
    """Group-baseline policy gradients (docs/algorithms.md §9), sized for a 2-core CPU:
    8 prompts × G = 4 completions per iteration (32 episodes, alg=ppo's rollout)."""

    name: str = knob("grpo", "algorithm name (logs, run folders)")
    rollout_prompts: int = redefault(OnlineConfig, "rollout_prompts", 8, "8 groups")
    samples_per_prompt: int = redefault(
        OnlineConfig, "samples_per_prompt", 4, "G; TRL GRPO: 8; DeepSeekMath: 64"
    )
    minibatch_size: int = redefault(
        OnlineConfig, "minibatch_size", 8, "rollout_prompts × G is one update per batch"
    )
    update_epochs: int = redefault(
        OnlineConfig,
        "update_epochs",
        1,
        "GRPO's μ; old log-probs are kept from generation time",
    )
    micro_batch_size: int = knob(8, "sequences per forward/backward (gradient accumulation)")
    lr: float = redefault(AlgConfig, "lr", 2e-5, "TRL GRPO: 1e-6 with 8 GPUs' batches")
    max_grad_norm: float | None = redefault(AlgConfig, "max_grad_norm", 1.0, "TRL: 1.0")
    advantage: AdvantageEstimator = knob(
        AdvantageEstimator.group_norm,
        "group_norm (GRPO) | group_mean (Dr. GRPO) | leave_one_out (RLOO) | batch_whiten"
        " (REINFORCE++)",
    )
    std_floor: float = knob(
        0.01,
        "group_norm divides by max(std, std_floor): a near-constant group is not blown up to"
        " ±1 (logged: group/std_floored_share)",
    )
    std_unbiased: bool = knob(True, "Bessel-corrected group std (TRL, verl)")
    aggregation: LossAggregation = knob(
        LossAggregation.seq_mean_token_mean,
        "seq_mean_token_mean (GRPO) | token_mean (DAPO) | constant (Dr. GRPO) | seq_mean_token_sum",
    )
    ratio: RatioLevel = knob(
        RatioLevel.token, "token (GRPO) | sequence_sum (RLOO) | sequence_mean (GSPO)"
    )
    clip_low: float = knob(0.2, "ε_low: the ratio is clipped below at 1 - ε_low")
    clip_high: float = knob(0.2, "ε_high: clipped above at 1 + ε_high (DAPO clip-higher: 0.28)")
    kl: GroupKLConfig = block(GroupKLConfig, "the KL to the frozen reference")
    log_kl: bool = knob(
        True, "score the reference every iteration to log k1/k2/k3 even when kl.beta = 0"
    )
    dynamic_sampling: bool = knob(
        False,
        "DAPO: drop groups whose rewards are all equal and draw more prompts until the batch is"
        " full",
    )
    max_sampling_rounds: int = knob(
        4, "dynamic sampling: generation rounds per batch at most (the last fills with what it has)"
    )
    overlong: OverlongConfig = block(OverlongConfig, "DAPO's overlong reward shaping")
    prompt_sampling: PromptSampling = knob(
        PromptSampling.uniform,
        "uniform | std_aware (p ∝ estimated reward std, with a floor) | learnability (p ∝"
        " estimated p(1-p), the pass-rate variance of Foster et al. 2025; std² for 0/1 rewards)",
    )
    std_sampler: StdSamplerConfig = block(
        StdSamplerConfig,
        "prompt_sampling=std_aware | learnability (floor and prior on the statistic's scale:"
        " a std, or a variance ≤ 0.25)",
    )


# ----------------------------------------------------------------- offline RL (A-LoL family)
class OfflineLoss(str, Enum):
    nll = "nll"  # NLL_θ(y|x), token-summed (behaviour cloning of the data)
    wbc = "wbc"  # R · NLL_θ (reward-weighted behaviour cloning)
    r_gold = "r_gold"  # R · Σ_t max(π_θ(y_t|·), min_prob) · (-log π_θ(y_t|·))  (GOLD)
    r_lol = "r_lol"  # R · clip(ρ, 1-ε, 1+ε) · NLL_θ, ρ = π_θ(y|x) / π_ref(y|x) detached
    a_lol = "a_lol"  # A+ · clip(ρ, 1-ε, 1+ε) · NLL_θ
    a_lol_ref_free = "a_lol_ref_free"  # A+ · NLL_θ (ρ ≡ 1)
    a_lol_seq = "a_lol_seq"  # A+ · Σ_t clip(ρ_t, 1-ε, 1+ε) · (-log π_θ(y_t|·)), per-token ρ_t
    a_lol_kl = "a_lol_kl"  # A+ · NLL_θ + β · (log π_θ(y|x) - log π_ref(y|x)), no clipping


class OfflineSampling(str, Enum):
    # with replacement, p ∝ A+ (A-LoL variants: A ≤ 0 never drawn) or ∝ R (wbc / r_gold / r_lol)
    good_priority = "good_priority"
    uniform = "uniform"  # seeded passes over all pairs (A ≤ 0 pairs then carry a zero weight)


@dataclass
class ValueRefConfig:
    """V_ref(x), the reference policy's value: a head on π_ref's last hidden states of the prompt."""

    n_prompts: int = knob(256, "val prompts whose π_ref samples train the head (-1: all)")
    samples_per_prompt: int = knob(1, "π_ref samples per prompt (reference code: 1)")
    max_value: float = knob(
        1.0, "V = sigmoid(·) · max_value; 1 fits rewards in [0, 1] (reference: 2 for its IMDB)"
    )
    n_heads: int = knob(
        8, "attention heads of the learned query (reference: 8; fewer if hidden size not divisible)"
    )
    dropout: float = knob(0.1, "on prompt states and attention output (reference code: 0.1)")
    epochs: int = knob(
        10, "reference: 5 (generic script) / 10 (HH); the best held-out epoch is kept"
    )
    lr: float = knob(1.0e-4, "AdamW (reference: 1e-5 on a 7B model's 4k-dim states)")
    batch_size: int = knob(16, "prompts per V_ref optimizer step")
    holdout_frac: float = knob(0.2, "share of the prompts held out to pick the best epoch")
    generation: GenerationConfig = block(GenerationConfig, "how π_ref samples the val prompts")


@dataclass
class OfflineKLConfig:
    """The KL term of a_lol_kl."""

    beta: float = knob(0.2, "a_lol_kl only: weight of the KL term (reference kl_beta: 0.2)")


@dataclass
class OfflineRLConfig(StepConfig):
    """A-LoL and its offline baselines (Baheti et al., ICLR 2024): one module, loss by name."""

    name: str = knob("a_lol", "algorithm name (logs, run folders)")
    loss: OfflineLoss = knob(
        OfflineLoss.a_lol,
        "nll | wbc | r_gold | r_lol | a_lol | a_lol_ref_free | a_lol_seq | a_lol_kl",
    )
    sampling: OfflineSampling = knob(
        OfflineSampling.good_priority,
        "good_priority (p ∝ A+, or ∝ R for wbc/r_gold/r_lol) | uniform (seeded passes)",
    )
    lr: float = redefault(AlgConfig, "lr", 2.0e-5, "reference generic script: 2e-5")
    batch_size: int = redefault(
        StepConfig, "batch_size", 16, "pairs; reference: 16, 4 x 4 accumulation in HH"
    )
    max_steps: int = redefault(
        StepConfig,
        "max_steps",
        200,
        "before scaling: good_priority A-LoL variants run int(max_steps · share of A > 0), as"
        " the reference code",
    )
    eval_every: int = redefault(StepConfig, "eval_every", 50, "scaled like max_steps")
    clip_eps: float | None = knob(
        0.9, "ε (ppo_clip): ρ clipped to [1-ε, 1+ε] (HH experiments: 0.9); null = no clip"
    )
    kl: OfflineKLConfig = block(OfflineKLConfig, "a_lol_kl's KL to π_ref")
    min_prob: float = knob(0.1, "r_gold only: lower bound on the per-token weight π_θ(y_t|·)")
    n_train_pairs: int = knob(-1, "a seeded subset of this many train pairs (-1: all)")
    data_path: str | None = knob(
        None,
        "learn from this JSONL/CSV's (prompt, completion) rows instead of the task's train split"
        " (the task still gives the val/test prompts), e.g. a DPO run's preference_pairs.jsonl",
    )
    data_prompt_key: str = knob("prompt", "data_path: the prompt column")
    data_completion_keys: list[str] = block(
        lambda: ["completion"],
        "data_path: the completion column(s); each non-empty one gives a row ([chosen] of a"
        " preference file: its preferred completions; [chosen, rejected]: both)",
    )
    score_batch_size: int = knob(
        32, "sequences per batch when scoring rewards / V_ref / π_ref samples"
    )
    value: ValueRefConfig = block(ValueRefConfig, "V_ref(x): the advantage's baseline")


# ----------------------------------------------------------------- preference optimisation
class PreferenceLoss(str, Enum):
    sigmoid = "sigmoid"  # DPO: -(1-ε) log σ(βΔ) - ε log σ(-βΔ)
    ipo = "ipo"  # (Δ_avg - 1/(2β))², per-token averaged log-ratios
    hinge = "hinge"  # SLiC: max(0, 1 - βΔ)


class PairSource(str, Enum):
    task = "task"  # the task's own (prompt, chosen, rejected) rows (task.chosen_key / rejected_key)
    sampled = "sampled"  # samples of pairs.policy per train prompt, best vs worst by the reward


@dataclass
class PreferencePairsConfig:
    """Where the preference pairs come from."""

    source: PairSource = knob(
        PairSource.task,
        "task: the task's chosen/rejected columns | sampled: samples_per_prompt completions of"
        " pairs.policy per train prompt, ranked by the configured reward (best vs worst)",
    )
    n_prompts: int = knob(
        -1, "a seeded subset of this many train prompts (task: pairs) to use (-1: all)"
    )
    samples_per_prompt: int = knob(4, "sampled: completions per prompt (≥ 2)")
    policy: str | None = knob(
        None, "sampled: the policy that samples (a run or policy folder); null = the initial policy"
    )
    generation: GenerationConfig = block(GenerationConfig, "sampled: how the pairs are sampled")


@dataclass
class PreferenceKLConfig:
    """β of the preference losses: the weight of the KL to π_ref in the objective DPO solves."""

    beta: float = knob(
        0.1, "β, the implicit reward's scale (A-LoL paper's DPO baseline: 0.1; IPO: τ)"
    )


@dataclass
class DPOConfig(StepConfig):
    """DPO and its variants on preference pairs (docs/algorithms.md §11): one module, loss by name."""

    name: str = knob("dpo", "algorithm name (logs, run folders)")
    loss: PreferenceLoss = knob(PreferenceLoss.sigmoid, "sigmoid (DPO) | ipo | hinge (SLiC)")
    kl: PreferenceKLConfig = block(PreferenceKLConfig, "β, the weight of the KL to π_ref")
    label_smoothing: float = knob(
        0.0, "ε of the sigmoid loss (cDPO): the share of pairs assumed mislabelled; in [0, 0.5)"
    )
    reference_free: bool = knob(False, "drop the π_ref terms (log π_ref := 0); π_ref is not run")
    lr: float = redefault(
        AlgConfig,
        "lr",
        2.0e-5,
        "full finetuning, as the A-LoL family; the A-LoL paper's DPO: 2e-4 with LoRA on LLaMA-7B",
    )
    batch_size: int = redefault(
        StepConfig, "batch_size", 16, "preference pairs; 2× sequences per forward"
    )
    score_batch_size: int = knob(
        32, "sequences per batch when sampling / scoring pairs and computing π_ref's log-probs"
    )
    pairs: PreferencePairsConfig = block(PreferencePairsConfig, "the preference pairs")


# ----------------------------------------------------------------- reward models trained in rft
@dataclass
class RewardBackboneConfig(StepConfig):
    """What both reward models share: the backbone, the step budget, the held-out evaluation."""

    backbone: str = knob(
        "minilm",
        "minilm (the packaged all-MiniLM-L6-v2: offline) | tiny_bert | tiny_gpt2 (random, tests)"
        " | a hub id or folder of any encoder or decoder (AutoModelForSequenceClassification)",
    )
    lr: float = redefault(AlgConfig, "lr", 5.0e-5, "BERT-style finetuning: 2e-5 to 5e-5")
    batch_size: int = redefault(
        StepConfig, "batch_size", 16, "examples (classifier) or pairs (Bradley–Terry)"
    )
    max_length: int = knob(256, "input truncation, in the backbone's tokens")
    eval_batch_size: int = knob(64, "texts per forward pass in the held-out evaluation")
    eval_every: int = redefault(
        StepConfig, "eval_every", 0, "held-out metrics on task.n_eval_prompts val examples"
    )


@dataclass
class RewardClassifierConfig(RewardBackboneConfig):
    """A sequence classifier on labelled text (cross-entropy); reward = P(label)."""

    name: str = knob("reward_classifier", "algorithm name (logs, run folders)")
    label_key: str = knob("label", "the label column (task=imdb: the review's 0/1 label)")
    classes: list[str] = block(
        lambda: ["NEGATIVE", "POSITIVE"],
        "class names, in label-index order (saved as id2label); labels are names or indices",
    )


@dataclass
class BradleyTerryRewardConfig(RewardBackboneConfig):
    """A Bradley–Terry scalar reward model on preference pairs; reward = its score."""

    name: str = knob("reward_model", "algorithm name (logs, run folders)")
    margin: float = knob(0.0, "m in -log σ(s_w - s_l - m); 0 = plain Bradley–Terry")


# ---------------------------------------------------------------------------------- registry
SCHEMAS: dict[str, type] = {
    "sft_schema": SFTConfig,
    "ppo_schema": PPOConfig,
    "nlpo_schema": NLPOConfig,
    "a2c_schema": A2CConfig,
    "trpo_schema": TRPOConfig,
    "guided_schema": GuidedPPOConfig,
    "group_schema": GroupConfig,
    "offline_schema": OfflineRLConfig,
    "dpo_schema": DPOConfig,
    "reward_classifier_schema": RewardClassifierConfig,
    "reward_model_schema": BradleyTerryRewardConfig,
}


def register() -> None:
    """Put every alg schema in Hydra's ConfigStore (idempotent; rft/__init__.py calls it)."""
    cs = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        cs.store(group="alg", name=name, node=node)


# ---------------------------------------------------------------------------------- renamed keys
RENAMED: dict[str, str] = {
    "alg.n_epochs": (
        "alg.update_epochs (passes of updates over each rollout: ppo, nlpo, the guided and"
        " group families) or alg.dataset_epochs (passes over the data when alg.max_steps=-1:"
        " sft, the A-LoL family, dpo, reward models)"
    ),
    "alg.num_iterations": "alg.update_epochs (GRPO's μ: passes over each generation batch)",
    "alg.max_epochs": "alg.dataset_epochs (passes over the data when alg.max_steps=-1)",
    "alg.kl.init_beta": "alg.kl.beta (the adaptive controllers start from it)",
    "alg.beta": "alg.kl.beta (DPO's β: the weight of the KL to π_ref)",
    "alg.beta_kl": "alg.kl.beta (a_lol_kl's weight of the KL term)",
    "alg.cache_dir": (
        "store.path (the A-LoL family's and DPO's rewards, V_ref, pairs and π_ref log-probs are"
        " shared across runs through the result store; `rft cache ls` lists them)"
    ),
}


def override_key(override: str) -> str:
    """The dotted key of a command-line override: ``+alg.n_epochs=3`` -> ``alg.n_epochs``."""
    return override.split("=", 1)[0].lstrip("+~")


def check_renamed(overrides: list[str]) -> None:
    """A ConfigError naming the new key for the first override that uses a renamed one."""
    for o in overrides:
        key = override_key(o)
        if key in RENAMED:
            raise ConfigError(
                f"{key} was renamed: use {RENAMED[key]}. (One name per idea across every "
                f"algorithm; `rft explain alg=<option>` lists the current keys.)"
            )
