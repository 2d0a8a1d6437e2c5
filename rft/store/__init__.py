"""A content-addressed store of results that runs reuse instead of recomputing: evaluations of
an unchanged policy, SFT warm starts, π_ref and reward scores of offline data.

- ``key``: a result's key, a kind and named components, hashed into its address;
- ``fingerprint``: exact identities of weights, tokenizers, texts, reward code, rft's code;
- ``keys``: which components make the key of each kind of result rft reuses;
- ``store``: the folder (atomic publish, checksums, one entry per key under concurrent writers,
  a lease so that concurrent jobs compute a result once);
- ``cached``: reuse-or-compute wrappers a run calls, and what it reports (``Reuse``);
- ``cli``: ``rft cache ls | show | verify | prune``.
"""

from rft.store.cached import (
    Reuse,
    cached,
    cached_evaluation,
    cached_policy,
    cached_tensor,
    open_store,
    reuse_metrics,
)
from rft.store.key import Key
from rft.store.store import Entry, ResultStore, default_store_path

__all__ = [
    "Entry",
    "Key",
    "ResultStore",
    "Reuse",
    "cached",
    "cached_evaluation",
    "cached_policy",
    "cached_tensor",
    "default_store_path",
    "open_store",
    "reuse_metrics",
]
