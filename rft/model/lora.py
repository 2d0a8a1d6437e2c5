"""LoRA policies through peft (``model.lora.*``): the policy trains low-rank adapters on its
target layers, every base weight stays frozen.

    π_θ   = PolicyLM(peft model)                       W x + (alpha / r) · B A x
    π_ref = LoraReference(π_θ): the same modules, adapters off        W x

π_ref needs no second copy of the model: it calls the policy's own peft model with the adapters
switched off (what peft's ``disable_adapter()`` does, layer by layer) and in eval mode, as a
frozen copy would run. With B = 0 at the start (peft's init), π_θ = π_ref exactly at step 0, as
with a frozen copy. PPO's value head reads the policy's (adapted) trunk, unchanged.

Under bf16-mixed autocast the adapted layers' frozen base weights are held in bf16
(``model.lora.base_dtype``, ``lora_base_dtype``): autocast would cast them to bf16 at every
matmul anyway, so the forward and backward compute the same numbers with half the base's
memory and no per-call casts. The adapters, norms, embeddings and LM head stay fp32, and the
merged export is computed in fp32 (bf16 base + fp32 update).

What is stored where:
- ``checkpoints/state.ckpt``: the adapters (and value heads, optimizer state, ...), not the base
  weights, which a resume rebuilds from the model config (``checkpoint_identity`` checks that
  they are the same weights, and the same adapter shape, before anything is loaded);
- ``policy/``: the merged weights W + (alpha / r) · B A in plain ``save_pretrained`` format, so
  ``AutoModelForCausalLM.from_pretrained`` loads it without peft and ``model.init_from`` starts
  from it like from any run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import struct
import warnings
from pathlib import Path

import torch
from torch import nn

from rft.device import autocast_dtype
from rft.errors import ConfigError
from rft.model.generate import HFGenerator
from rft.model.policy import PolicyLM

log = logging.getLogger(__name__)

ADAPTER_MARK = ".lora_"
"""Every state-dict key of a LoRA adapter tensor contains this (lora_A, lora_B, lora_embedding_*,
lora_magnitude_vector); base weights never do."""


# ------------------------------------------------------------------------------------ config
def lora_enabled(lora_cfg) -> bool:
    return lora_cfg is not None and int(lora_cfg.r) > 0


def check_lora_config(model_cfg) -> None:
    """The model.lora settings on their own (the target names are checked against the model
    when the adapters are added)."""
    lo = model_cfg.lora
    if lo.r < 0:
        raise ConfigError(f"model.lora.r={lo.r}: the LoRA rank must be ≥ 0 (0 = LoRA off).")
    if not lora_enabled(lo):
        return
    if lo.alpha is not None and lo.alpha <= 0:
        raise ConfigError(f"model.lora.alpha={lo.alpha}: must be > 0 (null: 2 · r).")
    if not 0 <= lo.dropout < 1:
        raise ConfigError(f"model.lora.dropout={lo.dropout}: must be in [0, 1).")
    if lo.dropout > 0 and model_cfg.disable_dropout:
        raise ConfigError(
            f"model.lora.dropout={lo.dropout} contradicts model.disable_dropout=true (no dropout, "
            "so that RL log-ratios compare like with like). Set model.lora.dropout=0, or "
            "model.disable_dropout=false to have dropout everywhere."
        )
    if lo.get("base_dtype") not in BASE_DTYPES:
        raise ConfigError(
            f"model.lora.base_dtype={lo.base_dtype}: one of null (the autocast dtype under"
            " bf16-mixed / 16-mixed, else the model's), float32, bfloat16."
        )
    if lo.target_modules is not None and len(lo.target_modules) == 0:
        raise ConfigError(
            "model.lora.target_modules=[]: name at least one layer (e.g. [q_proj,v_proj]), or "
            "null for every linear layer except the LM head."
        )


BASE_DTYPES = (None, "float32", "bfloat16")


def lora_base_dtype(lora_cfg, precision: str) -> torch.dtype | None:
    """The dtype the adapted layers' frozen base weights are held in (None: as loaded).

    Under bf16-mixed (16-mixed) autocast every matmul of a frozen linear layer casts its fp32
    weight to bf16 (fp16) at each call, so holding it so gives the same numbers at half the
    memory; the
    norms, embeddings, LM head and the adapters themselves stay as loaded (fp32)."""
    if not lora_enabled(lora_cfg):
        return None
    name = lora_cfg.get("base_dtype")
    if name is None:
        return autocast_dtype(precision) if str(precision).endswith("-mixed") else None
    return getattr(torch, name)


def adaptable_layers(model: nn.Module) -> list[str]:
    """The names of the layers rft adapts: linear layers and GPT-2's Conv1D, the LM head
    excluded (it is often tied to the input embeddings, which a merged export would untie)."""
    from transformers.pytorch_utils import Conv1D

    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear | Conv1D) and name and name.rsplit(".", 1)[-1] != "lm_head"
    ]


def check_target_modules(model: nn.Module, targets: list[str]) -> None:
    """Every name in ``targets`` matches an adaptable layer. peft matches a name exactly or as
    the suffix after a dot and fails only when NONE matches, so one typo would silently adapt
    fewer layers."""
    layers = adaptable_layers(model)
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in layers)]
    if missing:
        kinds = sorted({n.rsplit(".", 1)[-1] for n in layers})
        raise ConfigError(
            f"model.lora.target_modules={list(targets)}: {missing} match no linear layer of this "
            f"model (the LM head and embeddings are not adapted). Its linear layers are named "
            f"{kinds}; name some of those, or null for all of them."
        )


# ------------------------------------------------------------------------------------ adapters
def add_lora(
    policy: PolicyLM, lora_cfg, seed: int = 0, base_dtype: torch.dtype | None = None
) -> PolicyLM:
    """``policy`` with fresh LoRA adapters (``lora_cfg``: model.lora) on its target layers and
    every base weight frozen, the adapted layers' base weights in ``base_dtype`` (None: as
    loaded; see lora_base_dtype); ``policy`` itself when LoRA is off. Logs the parameter
    counts."""
    if not lora_enabled(lora_cfg):
        return policy
    from peft import LoraConfig, TaskType, get_peft_model

    targets = list(lora_cfg.target_modules) if lora_cfg.target_modules is not None else None
    if targets is not None:
        check_target_modules(policy.model, targets)
    r = int(lora_cfg.r)
    config = LoraConfig(
        r=r,
        lora_alpha=float(lora_cfg.alpha) if lora_cfg.alpha is not None else 2.0 * r,
        lora_dropout=float(lora_cfg.dropout),
        target_modules=targets if targets is not None else "all-linear",
        task_type=TaskType.SEQ_2_SEQ_LM if policy.is_seq2seq else TaskType.CAUSAL_LM,
    )
    # A's random init from its own seeded stream: the same adapters whatever ran before (a warm
    # start, a data pass), and the global RNG untouched.
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)
        # GPT-2's Conv1D stores W transposed; peft notices and says so each time
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        try:
            model = get_peft_model(policy.model, config)
        except ValueError as e:  # peft's verdict on a layer type it cannot adapt
            raise ConfigError(
                f"model.lora.target_modules={targets}: peft cannot adapt them ({e}). Name "
                "linear layers (see rft.model.lora.adaptable_layers)."
            ) from None
    if base_dtype is not None:
        for layer in adapted_layers(model).values():
            base = layer.get_base_layer()
            if base.weight.dtype != base_dtype:
                base.weight = nn.Parameter(base.weight.detach().to(base_dtype), requires_grad=False)
    merge = bool(lora_cfg.get("merge_for_generation", True))
    generator = MergedLoRAGenerator() if merge else HFGenerator()
    out = PolicyLM(model, policy.tokenizer, kind=policy.kind, generator=generator)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info(
        "LoRA r=%d alpha=%g on %d layers (%s): %s trainable of %s parameters (%.2f%%)",
        r,
        config.lora_alpha,
        len(adapted_layers(model)),
        ",".join(adapted_kinds(model)),
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / max(total, 1),
    )
    return out


def has_adapters(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def adapted_layers(peft_model) -> dict[str, nn.Module]:
    """The LoRA-wrapped layers of ``peft_model``, by their name in the base model."""
    from peft.tuners.lora import LoraLayer

    return {
        name: m
        for name, m in peft_model.get_base_model().named_modules()
        if isinstance(m, LoraLayer)
    }


def adapted_kinds(peft_model) -> list[str]:
    """The distinct last name parts of the adapted layers (q_proj, v_proj, ...)."""
    return sorted({name.rsplit(".", 1)[-1] for name in adapted_layers(peft_model)})


def base_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """The base model's own tensors under the names the plain model has (adapters left out,
    ``q_proj.base_layer.weight`` back to ``q_proj.weight``): the weights of π_ref."""
    return {
        k.replace(".base_layer.", "."): v
        for k, v in peft_model.get_base_model().state_dict().items()
        if ADAPTER_MARK not in k
    }


@torch.no_grad()
def merged_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """The base weights with each adapted layer's update added, W + (alpha / r) · B A, under
    the plain model's names. New tensors only for the adapted layers (the rest are the model's
    own); the model is not touched, unlike peft's merge_and_unload."""
    sd = base_state_dict(peft_model)
    for name, layer in adapted_layers(peft_model).items():
        w = layer.get_base_layer().weight
        delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters)
        # in the wider of the two dtypes: a bf16-held base (lora_base_dtype) exports fp32
        dtype = torch.promote_types(w.dtype, delta.dtype)
        sd[f"{name}.weight"] = w.detach().to(dtype) + delta.to(dtype)
    return sd


@contextlib.contextmanager
def merged_for_generation(peft_model):
    """Sampling on merged weights: each adapted layer's base weight is swapped for W + (alpha/r)
    · B A, computed in float32 and held in the base weight's dtype, and the adapters are off;
    on exit the original base tensors are put back as they were (not unmerged by subtraction,
    which would not restore them exactly) and the adapters are on again. Under bf16 autocast a
    bf16 base is what autocast would run anyway, so this only spares the adapters' two extra
    matmuls per layer and step (the LoRA rollout ran ≈ 25 % slower than full finetuning's
    without it). The sampled distribution equals the unmerged one up to float rounding, as
    vLLM's merged copy does; the trainer rescores every rollout with its own forward pass.
    Nothing changes when the model is not a LoRA model. (``MergedLoRAGenerator`` samples in
    this context; model.lora.merge_for_generation=false builds the policy with the plain
    ``HFGenerator`` instead.)"""
    if not has_adapters(peft_model):
        yield
        return
    layers = list(adapted_layers(peft_model).values())
    swapped = []
    with torch.no_grad():
        for layer in layers:
            w = layer.get_base_layer().weight
            delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters)
            merged = (w.to(torch.float32) + delta.to(torch.float32)).to(w.dtype)
            swapped.append((w, w.data))
            w.data = merged
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)  # also gives the adapters their requires_grad back
        for w, original in swapped:
            w.data = original


class MergedLoRAGenerator(HFGenerator):
    """Hugging Face's generate on merged weights (``merged_for_generation``): a LoRA policy's
    generator when model.lora.merge_for_generation is true (the default)."""

    def sampling_weights(self, lm):
        return merged_for_generation(lm.model)


def save_merged(peft_model, folder: Path) -> None:
    """``folder`` as ``save_pretrained`` writes it for the plain (merged) model: loads with
    transformers alone."""
    base = peft_model.get_base_model()
    base.save_pretrained(folder, state_dict=merged_state_dict(peft_model), safe_serialization=True)


# ------------------------------------------------------------------------------------ π_ref
class AdaptersOff:
    """Calls into ``peft_model`` (or one of its parts, ``target``) with the adapters switched
    off and in eval mode; every other attribute is the model's own. What LoraReference holds as
    its ``model``, so the code that calls ``lm.model(...)``, ``lm.model.generate(...)`` or
    ``lm.model.get_encoder()(...)`` on π_ref gets the base weights."""

    def __init__(self, peft_model, target=None, layers=None):
        self._peft = peft_model
        self._target = target if target is not None else peft_model
        self._layers = layers if layers is not None else list(adapted_layers(peft_model).values())

    @contextlib.contextmanager
    def off(self):
        """peft's ``disable_adapter()``, done directly on the adapted layers: the same
        ``enable_adapters`` call per layer, without its walk over every module of the model to
        collect the adapter status first (a 30-layer model: 19 ms per call instead of 45)."""
        m = self._peft
        was_training = m.training
        m.eval()  # as a frozen copy runs: no dropout, no train-mode-only behaviour
        for layer in self._layers:
            layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in self._layers:
                layer.enable_adapters(True)  # also gives the adapters their requires_grad back
            m.train(was_training)

    def __call__(self, *args, **kwargs):
        with self.off():
            return self._target(*args, **kwargs)

    def generate(self, *args, **kwargs):
        with self.off():
            return self._target.generate(*args, **kwargs)

    def get_encoder(self):
        return AdaptersOff(self._peft, self._target.get_encoder(), self._layers)

    def __getattr__(self, name):
        if name in ("_peft", "_target", "_layers"):  # not yet set (copy / unpickling)
            raise AttributeError(name)
        return getattr(self._target, name)


class LoraReference(PolicyLM):
    """π_ref of a LoRA policy: the policy's own model with the adapters off, quacking like the
    frozen PolicyLM copy it replaces (forward, generate, tokenizer, hidden_size, ...).

    It owns no parameters and no submodules (the policy is held in a tuple, not registered), so
    it adds nothing to the module's parameters, state dict or checkpoint, and setting its
    train/eval mode or ``requires_grad_(False)`` cannot touch the policy. ``parameters()`` and
    ``state_dict()`` give the frozen base weights (what a frozen copy would hold, under the same
    names: weights fingerprints of π_ref, e.g. DPO's and A-LoL's caches, stay meaningful), and
    ``to(device)`` moves the shared model."""

    def __init__(self, policy: PolicyLM):
        super().__init__(AdaptersOff(policy.model), policy.tokenizer, kind=policy.kind)
        self._policy = (policy,)

    @property
    def policy(self) -> PolicyLM:
        return self._policy[0]

    def parameters(self, recurse: bool = True):
        peft_model = self.policy.model
        for name, p in peft_model.get_base_model().named_parameters():
            if ADAPTER_MARK not in name:
                yield p

    def state_dict(self, *args, **kwargs):
        return {f"model.{k}": v for k, v in base_state_dict(self.policy.model).items()}

    def to(self, *args, **kwargs):
        device, dtype, *_ = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None:
            raise TypeError(
                "π_ref of a LoRA policy shares the policy's weights: it cannot take a dtype of "
                "its own."
            )
        self.policy.to(device)
        return self


# ------------------------------------------------------------------------------------ resume
def base_fingerprint(peft_model) -> str:
    """A cheap hash of the frozen base weights (per-tensor sum and absolute sum, float64)."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, t in base_state_dict(peft_model).items():
            if t.is_floating_point():
                h.update(name.encode())
                s = (t.sum(dtype=torch.float64).item(), t.abs().sum(dtype=torch.float64).item())
                h.update(struct.pack("dd", *s))
    return h.hexdigest()[:16]


def checkpoint_identity(policy: PolicyLM | None) -> dict | None:
    """What a LoRA checkpoint must match to be loaded: the adapter shape and the base weights
    it was trained on (they are not in the checkpoint). None for a full-weight policy."""
    if policy is None or not has_adapters(policy.model):
        return None
    c = policy.model.peft_config["default"]
    return {
        "r": int(c.r),
        "alpha": float(c.lora_alpha),
        "target_modules": adapted_kinds(policy.model),
        "base_dtype": base_weights_dtype(policy.model),
        "base": base_fingerprint(policy.model),
    }


def base_weights_dtype(peft_model) -> str:
    layers = list(adapted_layers(peft_model).values())
    dtype = layers[0].get_base_layer().weight.dtype if layers else torch.float32
    return str(dtype).removeprefix("torch.")


def check_resume_identity(saved: dict | None, now: dict | None) -> None:
    """A resume loads adapters only onto the base weights and adapter shape they were trained
    with: a ConfigError naming model.lora / model.init_from otherwise."""
    if saved is not None and "base_dtype" not in saved:  # written before model.lora.base_dtype
        saved = {**saved, "base_dtype": "float32"}
    if saved == now:
        return
    fix = "Resume with the model.* settings of the run that wrote the checkpoint, or start fresh."
    if saved is None:
        raise ConfigError(
            "resume: the checkpoint holds full weights (a run without LoRA), but "
            f"model.lora.r={now['r']} asks for LoRA adapters. {fix}"
        )
    if now is None:
        raise ConfigError(
            f"resume: the checkpoint holds LoRA adapters (model.lora.r={saved['r']}) and not the "
            "base weights, but this run has LoRA off (model.lora.r=0). " + fix
        )
    if saved["base_dtype"] != now["base_dtype"]:
        raise ConfigError(
            f"resume: the checkpoint's LoRA adapters were trained on base weights held in "
            f"{saved['base_dtype']}, this run holds them in {now['base_dtype']} "
            "(model.lora.base_dtype, whose null follows hardware.precision). Set "
            f"model.lora.base_dtype={saved['base_dtype']} to resume it."
        )
    if saved["base"] != now["base"]:
        raise ConfigError(
            "resume: the checkpoint's LoRA adapters were trained on other base weights than "
            "the model.* settings load now (model.name_or_path / model.init_from / model.tiny "
            f"changed, or the model.init_from folder was rewritten). {fix}"
        )
    diff = {k: (saved[k], now[k]) for k in saved if k != "base" and saved[k] != now[k]}
    raise ConfigError(
        "resume: the checkpoint's LoRA adapters differ from model.lora now ("
        + ", ".join(f"{k}: {a} in the checkpoint, {b} now" for k, (a, b) in diff.items())
        + f"). {fix}"
    )


def base_weight_keys(module: nn.Module, keys) -> list[str]:
    """Those of the state-dict ``keys`` of ``module`` that are base weights of a LoRA model
    inside it (frozen; a resume rebuilds them from the model config): what a LoRA checkpoint
    leaves out. Adapters, value heads and every other model's weights stay."""
    prefixes = tuple(f"{name}." for name, m in module.named_modules() if has_adapters(m))
    if not prefixes:
        return []
    return [k for k in keys if ADAPTER_MARK not in k and k.startswith(prefixes)]
