"""Answers of remote servers cached on disk, one JSON file per request.

The key is the SHA-256 of everything that determines an answer: the server (base URL, route),
the whole request body (model, prompt or messages, sampling parameters, seed, ...), the
request's seed even where it is not sent (so the K samples of one prompt are K entries), and the
config's ``cache_tag``. The API key is never part of a key or a file. A resumed run, or the same
command run again, finds its answers here and sends nothing; with a seeded server the cache only
saves money, with an unseeded one it is also what makes the rerun repeat the first run.

Files are written under a temporary name and renamed (``<key[:2]>/<key>.json``), so a kill
leaves no half-written entry and processes sharing the folder (DDP ranks, sweep jobs) never
read one; an unreadable file is a miss (logged) and is written again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def cache_key(parts: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``parts`` as canonical JSON (sorted keys, no spaces).

    >>> cache_key({"b": 1, "a": [1, 2]}) == cache_key({"a": [1, 2], "b": 1})
    True
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """``get(key) -> dict | None`` and ``put(key, record)`` over a folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self.path(key)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:  # a damaged entry: ask again, and overwrite it
            log.warning("remote cache: %s is unreadable (%s); asking the server again.", p, e)
            return None

    def put(self, key: str, record: dict) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        # pid and thread: concurrent writers of one key (threads, ranks) never share a temp file
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps(record, ensure_ascii=False))
        os.replace(tmp, p)

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("??/*.json"))
