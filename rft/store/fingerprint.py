"""Fingerprints: short exact identities of the large or scattered inputs a result depends on,
for the components of a store key (rft.store.key).

- ``weights_fingerprint``: every tensor of a state dict, bytes as they sit in memory, with its
  name, dtype and shape (xxh3-128: ~0.1 s for SmolLM2-135M's 0.5 GB of fp32 on one core;
  tied tensors, e.g. an LM head sharing the embedding, are hashed once and recorded as tied);
- ``tokenizer_fingerprint``: the tokenizer's full serialisation, padding / truncation sides and
  special tokens;
- ``policy_parts``: a policy's weights, architecture config, tokenizer and kind;
- ``examples_fingerprint``: the exact texts of prompts and their references;
- ``reward_parts``: the reward's resolved config, the source of any reward code outside rft, and
  a stat fingerprint of local files it names (a classifier's folder);
- ``code_identity``: rft's version and a hash of its own source (``store.match_code``);
- ``environment_parts``: precision, torch threads, device, world size, attention kernel,
  rollout backend, library versions.

Exact means any change of a byte changes the fingerprint; xxh3 is not a cryptographic hash, which
is fine here (keys guard against accidents, not adversaries; 128 bits make accidental collisions
negligible).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import os
from pathlib import Path
from typing import Any

import torch
import xxhash

from rft.store.key import canonical_json, jsonable


def _hex(h) -> str:
    return "xxh3:" + h.hexdigest()


# -------------------------------------------------------------------------------------- weights
def tensor_bytes(t: torch.Tensor) -> memoryview:
    """A tensor's elements as raw bytes (on the CPU, contiguous): what is hashed."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous().reshape(-1)
    return memoryview(t.view(torch.uint8).numpy())


def weights_fingerprint(obj: torch.nn.Module | dict) -> str:
    """An exact hash of a module's state dict (or a state dict): names, dtypes, shapes and
    bytes of every tensor, non-tensor entries by repr. Two modules get the same fingerprint
    exactly when their state dicts are equal bit for bit (tied tensors included as ties).

    >>> import torch
    >>> a = torch.nn.Linear(2, 2)
    >>> weights_fingerprint(a) == weights_fingerprint(a.state_dict())
    True
    >>> with torch.no_grad():
    ...     a.weight[0, 0] += 1e-7
    >>> weights_fingerprint(a) == weights_fingerprint(torch.nn.Linear(2, 2))
    False
    """
    sd = obj.state_dict() if hasattr(obj, "state_dict") else obj
    h = xxhash.xxh3_128()
    seen: dict[tuple, str] = {}
    with torch.no_grad():
        for name in sorted(sd):
            t = sd[name]
            if not isinstance(t, torch.Tensor):
                h.update(f"{name}|{t!r}\n".encode())
                continue
            head = f"{name}|{t.dtype}|{tuple(t.shape)}"
            view = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), t.dtype)
            view += (tuple(t.shape), t.stride())
            if view in seen:  # the same memory under another name: a tied weight
                h.update(f"{head}|tied:{seen[view]}\n".encode())
                continue
            seen[view] = name
            h.update(f"{head}\n".encode())
            h.update(tensor_bytes(t))
    return _hex(h)


def tokenizer_fingerprint(tok) -> str:
    """A tokenizer's identity: its full serialisation (fast tokenizers) or vocabulary, its
    class, padding / truncation sides and special tokens."""
    h = xxhash.xxh3_128()
    head = {
        "class": type(tok).__name__,
        "padding_side": getattr(tok, "padding_side", None),
        "truncation_side": getattr(tok, "truncation_side", None),
        "special": getattr(tok, "special_tokens_map", {}),
    }
    h.update(canonical_json(head).encode())
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(canonical_json(sorted(tok.get_vocab().items())).encode())
    return _hex(h)


_VOLATILE_CONFIG_KEYS = ("_name_or_path", "transformers_version", "_commit_hash")


def architecture_fingerprint(model) -> str:
    """The model's config (architecture, rope, vocabulary size, ...), where it was loaded from
    and the transformers version that wrote it left out."""
    config = getattr(model, "config", None)
    if config is None:
        return "none"
    d = config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))
    d = {k: v for k, v in d.items() if k not in _VOLATILE_CONFIG_KEYS}
    return f"{d.get('model_type', '?')} " + _hex(xxhash.xxh3_128(canonical_json(d).encode()))


def policy_parts(policy) -> dict[str, str]:
    """A PolicyLM's key components: weights, architecture, tokenizer and kind."""
    inner = getattr(policy, "model", policy)
    if not hasattr(inner, "config") and hasattr(getattr(policy, "policy", None), "model"):
        inner = policy.policy.model  # LoRA π_ref: the policy's model with the adapters off
    return {
        "weights": weights_fingerprint(policy),
        "architecture": architecture_fingerprint(inner),
        "tokenizer": tokenizer_fingerprint(policy.tokenizer),
        "kind": str(getattr(policy, "kind", "causal")),
    }


# -------------------------------------------------------------------------------------- texts
def examples_fingerprint(examples, *, with_reward: bool = False) -> dict[str, Any]:
    """The exact texts of a list of rft.task.base.Example (prompt, reference, references; the
    data's own reward too with ``with_reward``), in order: {"n", "texts"}."""
    h = xxhash.xxh3_128()
    for e in examples:
        row = [e.prompt, e.reference, list(e.references)]
        if with_reward:
            row.append(e.reward)
        h.update(canonical_json(row).encode() + b"\n")
    return {"n": len(examples), "texts": _hex(h)}


def strings_fingerprint(texts) -> dict[str, Any]:
    """The exact list of strings (e.g. prompts alone): {"n", "texts"}."""
    h = xxhash.xxh3_128()
    for t in texts:
        h.update(canonical_json(t).encode() + b"\n")
    return {"n": len(texts), "texts": _hex(h)}


# -------------------------------------------------------------------------------------- files
def files_fingerprint(path: str | Path) -> str:
    """A local file or folder by (relative name, size, modification time) of each file: cheap,
    and it changes whenever a file is rewritten (a retrained reward model in the same folder)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = xxhash.xxh3_128()
    for p in files:
        st = p.stat()
        rel = p.name if p == path else p.relative_to(path).as_posix()
        h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"{len(files)} files " + _hex(h)


def source_fingerprint(target: str) -> str | None:
    """The source file of an importable ``module.attr`` (a reward's ``_target_``), hashed;
    None where it cannot be found (a builtin, a C extension)."""
    module, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
        src = inspect.getsourcefile(obj) or inspect.getfile(obj)
        return _hex(xxhash.xxh3_128(Path(src).read_bytes()))
    except Exception:  # noqa: BLE001 - an identity we cannot read only makes the key coarser
        return None


def _walk(x: Any, found: list[tuple[str, str]], key: str = "") -> None:
    if isinstance(x, dict):
        for k, v in x.items():
            _walk(v, found, k)
    elif isinstance(x, list):
        for v in x:
            _walk(v, found, key)
    elif isinstance(x, str):
        found.append((key, x))


# keys whose folder holds what a reward has already answered (a remote judge's verdicts), not
# what it answers: their contents grow as runs score, and hashing them would give every run a
# new key (a second seed could not reuse the first's test_init)
NOT_INPUTS = frozenset({"cache_dir"})


def reward_parts(reward_cfg) -> dict[str, Any]:
    """The reward's identity: its resolved config; for every ``_target_`` outside rft, the
    hash of its source file (rft's own code is in ``code``); for every string that names an
    existing local file or folder (a classifier's model), its files_fingerprint, caches
    (``NOT_INPUTS``) excepted."""
    config = jsonable(reward_cfg)
    strings: list[tuple[str, str]] = []
    _walk(config, strings)
    code, files = {}, {}
    for key, s in strings:
        if key == "_target_" and not s.startswith("rft."):
            code[s] = source_fingerprint(s)
        elif (
            key not in NOT_INPUTS
            and (os.sep in s or s.startswith("."))
            and Path(s).expanduser().exists()
        ):
            files[s] = files_fingerprint(Path(s).expanduser())
    out: dict[str, Any] = {"config": config}
    if code:
        out["code"] = code
    if files:
        out["files"] = files
    return out


# ------------------------------------------------------------------------------ code and host
@functools.lru_cache(maxsize=2)
def code_identity(match: str = "source") -> dict[str, str]:
    """rft's identity: its version and, with ``match="source"`` (store.match_code), a hash of
    every .py file of the rft package (any edit of rft's code misses every entry: safe; with
    ``"version"``, only the version counts, for edits you know change no result)."""
    import rft

    out = {"rft": rft.__version__}
    if match == "source":
        root = Path(rft.__file__).resolve().parent
        h = xxhash.xxh3_128()
        for p in sorted(root.rglob("*.py")):
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
        out["source"] = _hex(h)
    return out


def library_versions(*extra: str) -> dict[str, str | None]:
    """Installed versions of the libraries that compute results (torch, transformers,
    tokenizers) and of ``extra`` ones (peft, vllm); None where not installed."""
    out = {}
    for name in ("torch", "transformers", "tokenizers", *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_identity(device: torch.device | str | None = None) -> dict[str, Any]:
    """Where the numbers are computed: CPU with its kernel ISA (AVX2 and AVX-512 kernels round
    differently), or the GPU's name and compute capability."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(idx)
        return {
            "type": "cuda",
            "name": torch.cuda.get_device_name(idx),
            "capability": f"{major}.{minor}",
        }
    if device.type == "cpu":
        return {"type": "cpu", "isa": torch.backends.cpu.get_cpu_capability()}
    return {"type": device.type}
