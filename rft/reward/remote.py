"""A reward-model server as reward (``reward=remote``; schema rft.config.RemoteRewardConfig):
batches of (prompt, completion, references) POSTed over HTTP, one score read back per row.

The JSON contract (``protocol=rft``), one request per ``batch_size`` rows:

    POST {base_url}{path}                                   (path default: /score)
    {"prompts":     ["...", ...],
     "completions": ["...", ...],                           (the policy's text, prompt excluded)
     "references":  [["...", ...] or null, ...],            (the task's references per row)
     "model":       "..."}                                  (only when reward.model is set)
    -> 200 {"scores": [0.73, ...]}                          (one finite number per row, in order;
                                                             other keys are ignored)

``protocol=openrlhf`` speaks OpenRLHF's ``serve_rm`` instead: ``{"query": [prompt +
completion], "prompts": [...], "labels": [first reference or ""]}`` -> ``{"rewards": [...]}``.

Everything about the transport (key, concurrency across batches, timeouts, retries, caps,
accounting under ``remote/reward/...``, an optional cache) is rft.remote.client's. The server is
checked when the reward is built, before any model loads: GET {base_url}{health_path}, where any
HTTP answer below 500 counts as up. A missing, short or non-numeric ``scores`` is one
RemoteError naming the field, the batch and its rows: rft never makes up a score.
"""

from __future__ import annotations

import math

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rft.config import RemoteRewardConfig, choice
from rft.errors import ConfigError, RemoteError
from rft.remote.client import RemoteClient


def settings_of(schema: type, given: dict, prefix: str = "reward"):
    """The schema's defaults overlaid with the keys a reward was built with (an unknown key or a
    wrong type is a ConfigError naming it)."""
    given = {k: v for k, v in given.items() if k != "_target_"}
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), given)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{prefix}: {str(e).splitlines()[0]} ({schema.__name__}).") from None


def reference_list(refs) -> list[str] | None:
    """A row's references as a list of strings (None stays None).

    >>> reference_list("a"), reference_list(["a", "b"]), reference_list(None)
    (['a'], ['a', 'b'], None)
    """
    if refs is None:
        return None
    if isinstance(refs, str):
        return [refs]
    return [str(r) for r in refs]


def check_scores(scores, n: int, what: str, field: str = "scores") -> list[float]:
    """``scores`` as n finite floats, or a RemoteError naming the field and the request.

    >>> check_scores([1, 0.5], 2, "r")
    [1.0, 0.5]
    """
    if not isinstance(scores, list):
        raise RemoteError(
            f"malformed answer to {what}: `{field}` is "
            f"{'missing' if scores is None else type(scores).__name__}, not a list of numbers."
        )
    if len(scores) != n:
        raise RemoteError(
            f"malformed answer to {what}: `{field}` has {len(scores)} values for {n} rows; the "
            "server must return one score per row, in order."
        )
    out = []
    for i, v in enumerate(scores):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok:
            raise RemoteError(
                f"malformed answer to {what}: `{field}[{i}]` is {v!r}, not a finite number."
            )
        out.append(float(v))
    return out


class RemoteReward:
    """R = the server's score of each (prompt, completion, references) row (see the module
    docstring for the JSON contract); keyword arguments: RemoteRewardConfig's fields."""

    def __init__(self, **settings):
        s = settings_of(RemoteRewardConfig, settings)
        self.route, self.protocol = str(s.path), choice(s.protocol)
        self.batch_size = int(s.batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"reward.batch_size={self.batch_size}: must be ≥ 1.")
        self.model = s.model
        self.client = RemoteClient(s, name="reward", prefix="reward")
        self.client.check_reachable(str(s.health_path), list_models=False)
        self.field = "rewards" if self.protocol == "openrlhf" else "scores"

    def body(self, prompts: list[str], completions: list[str], references: list) -> dict:
        if self.protocol == "openrlhf":
            labels = [(reference_list(r) or [""])[0] for r in references]
            out = {"query": [p + c for p, c in zip(prompts, completions)], "prompts": prompts}
            out["labels"] = labels
        else:
            out = {
                "prompts": list(prompts),
                "completions": list(completions),
                "references": [reference_list(r) for r in references],
            }
        if self.model:
            out["model"] = self.model
        return out

    def __call__(self, prompts: list[str], completions: list[str], references=None) -> list[float]:
        references = list(references) if references is not None else [None] * len(prompts)
        n, b = len(prompts), self.batch_size
        starts = list(range(0, n, b))
        bodies = [
            self.body(prompts[s : s + b], completions[s : s + b], references[s : s + b])
            for s in starts
        ]
        whats = [
            f"reward batch {j + 1} of {len(starts)} (rows {s}-{min(s + b, n) - 1})"
            for j, s in enumerate(starts)
        ]
        sizes = [min(b, n - s) for s in starts]

        def validate(resp, what):
            j = whats.index(what)
            field = resp.get(self.field) if isinstance(resp, dict) else None
            return check_scores(field, sizes[j], what, self.field)

        out: list[float] = []
        for scores in self.client.post_many(self.route, bodies, whats, validate=validate):
            out += scores
        return out

    def pop_stats(self) -> dict[str, float]:
        """``remote/reward/...``: requests, retries, latency, cache (rft.remote.client)."""
        return self.client.pop_stats()
