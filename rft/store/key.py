"""A result's key: a kind and named components, hashed into the entry's address.

Everything that determines a result goes into its key as a named component (``parts``), e.g.
``{"policy": {"weights": "xxh3:…", ...}, "eval": {"seed": 7919, ...}, "threads": 2}``. The
store's address is a hash of the canonical JSON of (format, kind, parts): two keys address the
same entry exactly when every component is equal. Components stay readable in the entry's
manifest, so a miss can be explained by naming the components that differ from the nearest
entry of the same kind (``diff``), down to nested keys (``eval.seed``).

Values must be JSON data (dicts with string keys, lists, strings, numbers, bools, None);
``jsonable`` converts the config types rft uses (OmegaConf nodes, Enums, paths, tuples).
Floats are written with ``repr``, which round-trips exactly, so 1e-5 and 1.0000000000000001e-5
are different keys. Large inputs (weights, prompts) enter as fingerprints
(rft.store.fingerprint), never as themselves.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePath
from typing import Any

KEY_FORMAT = 1  # bump when the meaning of a component changes: every old entry misses


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON data (OmegaConf containers resolved, Enums by value, paths and
    other scalars as strings, tuples as lists). Non-finite floats become strings ("nan"), so
    the canonical JSON is strict JSON."""
    try:  # OmegaConf is a dependency of rft, but keep this module importable without it
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, (DictConfig, ListConfig)):
            x = OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(x, Enum):
        return jsonable(x.value)
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    if isinstance(x, PurePath):
        return str(x)
    return str(x)


def canonical_json(obj: Any) -> str:
    """One spelling of ``obj``: sorted keys, no whitespace, strict JSON."""
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Key:
    """What a result was made from: its ``kind`` (e.g. ``evaluation``) and named ``parts``.

    >>> k = Key("evaluation", {"eval": {"seed": 7919}, "threads": 2})
    >>> k.digest == Key("evaluation", {"threads": 2, "eval": {"seed": 7919}}).digest
    True
    >>> k.diff({"eval": {"seed": 1}, "threads": 2})
    ['eval.seed']
    """

    kind: str
    parts: Mapping[str, Any]

    def __post_init__(self):
        object.__setattr__(self, "parts", jsonable(self.parts))

    @property
    def digest(self) -> str:
        """The entry's address: 32 hex characters of sha256 over (format, kind, parts)."""
        blob = canonical_json({"format": KEY_FORMAT, "kind": self.kind, "parts": self.parts})
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def diff(self, other_parts: Mapping[str, Any]) -> list[str]:
        """The dotted names of the components whose values differ from ``other_parts``."""
        return diff_parts(self.parts, jsonable(other_parts))

    def describe(self) -> str:
        """``kind <digest[:12]>``: how logs name the entry."""
        return f"{self.kind} {self.digest[:12]}"


def diff_parts(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names where two component trees differ (a name present on one side only counts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            name = f"{prefix}.{k}" if prefix else k
            if k not in a or k not in b:
                out.append(name)
            else:
                out += diff_parts(a[k], b[k], name)
        return out
    return [] if canonical_json(a) == canonical_json(b) else [prefix or "(value)"]
