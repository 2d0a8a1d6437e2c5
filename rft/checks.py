"""Checks at the seams, run before any model loads: what the config asks of the machine
(``hardware``) and of the generator (every ``*.generation`` block), and the integrity of the
files rft reads (``state.ckpt`` to resume from, a ``policy/`` folder's safetensors).

Each failure is one ConfigError / DataError naming the key or file and the fix, instead of the
library's error from deep inside Lightning, transformers or safetensors minutes later.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from rft.errors import ConfigError, DataError


def preflight(cfg: DictConfig) -> None:
    """Everything that can be checked from the config alone, before data or models load."""
    check_values(cfg)
    check_hardware(cfg.hardware)
    for key, gen in generation_blocks(cfg):
        check_generation(gen, key)
    from rft.rollout.backend import check_rollout_config

    check_rollout_config(cfg)  # rollout.backend=vllm: installed, and a setup it can serve
    check_remote_guide_server(cfg)  # alg.guide.remote: consistent, up, serving its model


# -------------------------------------------------------------------------------- every value
def _help(cfg: DictConfig, key: str) -> str | None:
    """The schema help of a dotted ``key`` of ``cfg`` (None where no schema declares it)."""
    from rft.config import help_of

    parent, _, name = key.rpartition(".")
    try:
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return help_of(OmegaConf.get_type(node), name)
    except Exception:  # noqa: BLE001 - no help is no reason to fail
        return None


def _leaves(node, key: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{key}[{i}]")
    else:
        yield key, node


def check_values(cfg: DictConfig) -> None:
    """What holds for every knob: a required value is set, every ``${...}`` resolves, and no
    number is NaN (no knob means anything by it; a NaN learning rate or coefficient trains
    NaN weights that fail later, far from the setting)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
        values = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        first = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"{key}: its value does not resolve ({first}). Fix the ${{...}} reference, or give "
            f"the value itself: {key}=<value>."
        ) from None
    if missing:
        key = missing[0]
        what = _help(cfg, key)
        raise ConfigError(
            f"{key} is required but not set{f' ({what})' if what else ''}. Set {key}=<value>"
            " (`rft explain <your overrides>` lists every knob)."
        )
    for key, v in _leaves(values):
        if isinstance(v, float) and not math.isfinite(v):
            what = _help(cfg, key)
            word = "not a number" if math.isnan(v) else "not a finite number"
            raise ConfigError(
                f"{key}={v}: {word}{f' ({what})' if what else ''}. Give it a finite value (null"
                " turns off the knobs whose help says so)."
            )
        check_by_name(key, v)


# Knobs whose name says what they are, in every schema: learning rates, weight decays, batch
# sizes (of updates, scoring, evaluation), seeds, dropout probabilities, gradient-clipping
# norms and evaluation / checkpoint intervals. A wrong one otherwise fails inside torch (AdamW's
# "Invalid weight_decay value", a split of size 0) or trains NaN weights, far from the setting.
def check_by_name(key: str, v) -> None:
    name = key.rsplit(".", 1)[-1]
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return
    if (name == "lr" or name.endswith("_lr")) and not v > 0:
        raise ConfigError(f"{key}={v}: a learning rate must be > 0.")
    if name == "weight_decay" and v < 0:
        raise ConfigError(f"{key}={v}: AdamW's weight decay must be ≥ 0 (0 = none).")
    if name.endswith("batch_size") and v < 1:
        raise ConfigError(f"{key}={v}: a batch size must be ≥ 1.")
    if (name == "seed" or name.endswith("_seed")) and not 0 <= v < 2**32:
        raise ConfigError(f"{key}={v}: a seed must be in [0, 2^32) (numpy's and torch's seeds).")
    if name == "dropout" and not 0 <= v < 1:
        raise ConfigError(f"{key}={v}: a dropout probability must be in [0, 1).")
    if name == "max_grad_norm" and v <= 0:
        # torch would scale every gradient by max_grad_norm / ||g|| < 0: gradient ascent
        raise ConfigError(f"{key}={v}: must be > 0 (null turns gradient clipping off).")
    if name == "eval_every" and v < 0:
        raise ConfigError(f"{key}={v}: must be ≥ 0 (0 = never).")
    if name == "degenerate_after" and v < 1:
        raise ConfigError(f"{key}={v}: must be ≥ 1 (completions in a row; 1 = the first batch).")
    if name.startswith("every_n") and v < 1:
        raise ConfigError(f"{key}={v}: must be ≥ 1.")


# -------------------------------------------------------------------------------- hardware
def usable_gpus() -> int:
    """GPUs Lightning's ``accelerator="gpu"`` can use here (CUDA devices, or 1 for Apple MPS).
    Lightning's own detection, which does not initialise CUDA (safe before DDP forks)."""
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    if CUDAAccelerator.is_available():
        return CUDAAccelerator.auto_device_count()
    return 1 if MPSAccelerator.is_available() else 0


ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")


def check_hardware(hw: DictConfig) -> None:
    """What Lightning's Trainer would reject after the models have loaded (an accelerator or
    strategy it does not know, a device count it cannot use), and a GPU setting on a machine
    without one ("No supported gpu backend found!"), here, by key."""
    from lightning.pytorch.strategies import StrategyRegistry

    if str(hw.accelerator) not in ACCELERATORS:
        raise ConfigError(
            f"hardware.accelerator={hw.accelerator!r}: choose one of {', '.join(ACCELERATORS)}"
            " (or a hardware= option: cpu, gpu, gpu_ddp, ...)."
        )
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if str(hw.strategy) not in strategies:
        raise ConfigError(
            f"hardware.strategy={hw.strategy!r}: not a Lightning strategy. Use auto, ddp or fsdp"
            " (every name: lightning.pytorch.strategies.StrategyRegistry)."
        )
    if hw.num_nodes < 1:
        raise ConfigError(f"hardware.num_nodes={hw.num_nodes}: must be ≥ 1 (machines).")
    if hw.torch_threads is not None and hw.torch_threads < 0:
        raise ConfigError(
            f"hardware.torch_threads={hw.torch_threads}: must be ≥ 1 (null: torch's default)."
        )
    check_devices(hw)
    if str(hw.accelerator) not in ("gpu", "cuda"):
        return
    n = usable_gpus()
    if n == 0:
        import torch

        why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise ConfigError(
            f"hardware.accelerator={hw.accelerator} (hardware={hw.name}), but this machine has no "
            f"usable GPU ({why}). Run on the CPU with hardware=cpu (or hardware=cpu_fp32), or "
            "install a CUDA build of torch (make install TORCH_SPEC=torch)."
        )
    devices = hw.devices
    if isinstance(devices, int) and devices > n:
        raise ConfigError(
            f"hardware.devices={devices}, but this machine has {n} GPU(s). Set "
            f"hardware.devices={n} (or -1 for all of them)."
        )


def check_devices(hw: DictConfig) -> None:
    """hardware.devices as Lightning takes it: a count ≥ 1, -1 (every GPU) or "auto", or a
    non-empty list of GPU indices; on the CPU a count of processes."""
    devices = hw.devices
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    gpu = str(hw.accelerator) in ("gpu", "cuda", "auto", "mps", "tpu")
    ok = (
        devices == "auto"
        or (isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1)
        or (gpu and devices == -1)
        or (
            gpu
            and isinstance(devices, (list, ListConfig))
            and len(devices) > 0
            and all(isinstance(d, int) and d >= 0 for d in devices)
        )
    )
    if not ok:
        allowed = (
            "a count ≥ 1, -1 (every GPU), auto, or a list of GPU indices"
            if gpu
            else ("a count ≥ 1 (processes) or auto")
        )
        raise ConfigError(
            f"hardware.devices={hw.devices!r} with hardware.accelerator={hw.accelerator}: give "
            f"{allowed}."
        )


# -------------------------------------------------------------------------------- decoding
def generation_blocks(cfg: DictConfig) -> list[tuple[str, dict]]:
    """(full key, settings) of every decoding block in the config: ``alg.generation``,
    ``eval.generation``, ``alg.value.generation``, ``alg.guide.generation``, ..."""
    found: list[tuple[str, dict]] = []

    def walk(node, key: str) -> None:
        if not isinstance(node, dict):
            return
        for k, v in node.items():
            sub = f"{key}.{k}" if key else str(k)
            if k == "generation" and isinstance(v, dict) and "do_sample" in v:
                found.append((sub, v))
            else:
                walk(v, sub)

    for top in ("alg", "eval", "diag"):
        if top in cfg:
            walk(OmegaConf.to_container(cfg[top], resolve=True), top)
    return found


def check_generation(gen, key: str) -> None:
    """Sampling settings transformers rejects mid-rollout (temperature ≤ 0, top_k < 0) or
    silently turns into something else (top_p = 0 is greedy decoding, top_p > 1 is ignored).
    Greedy decoding and beam search (do_sample=false) ignore all three."""
    beams = gen.get("num_beams", 1)
    if beams is not None and (int(beams) != beams or beams < 1):
        raise ConfigError(f"{key}.num_beams={beams}: must be an integer ≥ 1 (1: no beam search).")
    if not gen.get("do_sample"):
        return
    t, k, p = gen.get("temperature"), gen.get("top_k"), gen.get("top_p")
    if t is not None and not (math.isfinite(t) and t > 0):
        raise ConfigError(
            f"{key}.temperature={t} with {key}.do_sample=true: sampling divides the logits by the "
            f"temperature, so it must be > 0. For greedy decoding set {key}.do_sample=false."
        )
    if k is not None and (int(k) != k or k < 0):
        raise ConfigError(f"{key}.top_k={k}: must be an integer ≥ 0 (0 turns top-k filtering off).")
    if p is not None and not (0 < p <= 1):
        raise ConfigError(
            f"{key}.top_p={p}: must be in (0, 1] (1 turns nucleus sampling off; 0 would keep only "
            f"the most likely token, i.e. greedy decoding: set {key}.do_sample=false for that)."
        )


# -------------------------------------------------------------------------------- files
# What Lightning needs to resume a fit; every state.ckpt rft writes has them.
CHECKPOINT_KEYS = ("pytorch-lightning_version", "state_dict", "loops", "optimizer_states")


def check_state_checkpoint(path: Path) -> None:
    """``path`` is a complete training checkpoint, not a truncated or foreign file. The tensors
    are memory-mapped, not read: this costs milliseconds, not a second copy of the state."""
    import torch

    fix = (
        f"Resume from an earlier checkpoint (resume=<another run folder>), or delete {path} "
        "to start this run fresh."
    )
    try:
        ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure to read means the file is unusable
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0]  # torch's first sentence
        raise DataError(
            f"{path} is damaged or not a checkpoint: torch cannot read it "
            f"({type(e).__name__}: {first[:200]}). A truncated file is what a copy cut short "
            f"leaves (rft's own saves are atomic). {fix}"
        ) from None
    missing = [k for k in CHECKPOINT_KEYS if not (isinstance(ckpt, dict) and k in ckpt)]
    if missing:
        what = (
            f"a dict with keys {sorted(map(str, ckpt))[:8]}"
            if isinstance(ckpt, dict)
            else (f"a {type(ckpt).__name__}")
        )
        raise DataError(
            f"{path} is not a training checkpoint rft wrote: it holds {what}, without "
            f"{', '.join(missing)}. For starting from a trained policy's weights use "
            f"model.init_from=<run folder>. {fix}"
        )


def check_safetensors(path: Path) -> None:
    """A .safetensors file is complete: its header parses and the file is as long as the
    header's tensor offsets say (a truncated copy fails here, by name)."""
    size = path.stat().st_size
    fix = (
        "Copy or export it again (a run rewrites policy/ at each checkpoint), or point the "
        "init_from setting at another run."
    )
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"its header claims {n} bytes")
            header = json.loads(f.read(n))
        end = max(
            (t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0
        )
    except (struct.error, ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"{path} is damaged: not a readable safetensors file ({size} bytes; {e}). {fix}"
        ) from None
    want = 8 + n + end
    if size < want:
        raise DataError(
            f"{path} is truncated: {size} bytes, but its header describes {want} bytes of "
            f"tensors. {fix}"
        )


def check_model_folder(folder: Path) -> None:
    """Every safetensors file of a save_pretrained folder is complete."""
    for f in sorted(Path(folder).glob("*.safetensors")):
        check_safetensors(f)


# -------------------------------------------------------------------------------- remote guide
def check_remote_guide_server(cfg: DictConfig) -> None:
    """A remote guide (``alg.guide.remote.base_url`` set) that contradicts the rest of
    ``alg.guide``, is down, refuses the key or does not serve ``model`` fails here, before any
    model loads. (A remote reward or judge checks its server when ``build_reward`` builds it,
    which is also before any model loads.)"""
    from rft.config import choice

    if choice(cfg.get("mode") or "train") != "train":
        return  # extract / evaluate never ask the guide
    guide = OmegaConf.select(cfg, "alg.guide", default=None)
    if guide is None or not OmegaConf.select(guide, "remote.base_url", default=None):
        return
    from rft.remote.client import RemoteClient

    # its settings are the guided family's to check (GuidedPPO.check_config, rft.remote.guide)
    RemoteClient(guide.remote, "guide", "alg.guide.remote").check_reachable("/models")
