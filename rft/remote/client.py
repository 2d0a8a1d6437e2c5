"""One HTTP client for every server rft calls (a remote guide, a reward-model server, an LLM
judge): JSON over HTTP(S) with the standard library, bounded concurrency, retries, caps, a disk
cache and per-run accounting.

What one request goes through (``RemoteClient.post_many``):

1. the cache (``cache_dir``): a hit is returned and nothing is sent;
2. the caps: once ``max_requests`` requests were sent, or the server reported
   ``max_total_tokens`` tokens, the run stops with a RemoteError naming the key;
3. the request, at most ``max_concurrency`` in flight, each socket operation limited to
   ``timeout_s``;
4. on 408 / 409 / 429 / 5xx (or ``x-should-retry: true``), a timeout or a dropped connection,
   up to ``max_retries`` more tries. The wait before retry n is the server's ``retry-after-ms``
   or ``Retry-After`` (seconds or an HTTP date) when it sends one, else
   min(backoff_s · 2^n, backoff_max_s) · (1 - jitter · U), U ~ Uniform[0, 1) (openai-python's
   rule). A Retry-After above ``retry_after_max_s`` (an exhausted quota) stops at once. Any
   other status (400, 401, 404, ...) is not retried: its error says what to fix;
5. the answer must be JSON, and pass the caller's ``validate`` (which names the missing or
   wrong field and the request) before it is cached;
6. the accounting: requests, retries, failed tries, the ``usage`` tokens, cache hits, latency,
   time spent waiting (``stats()`` / ``pop_stats()``, keys ``remote/<name>/...``).

When one request of a batch fails for good the others are abandoned (no further tries) and one
RemoteError reaches the training loop: the run stops, its last checkpoint is intact, and the
same command resumes; cached answers are not asked for again.

The API key is read once from the environment variable or file the config names, sent only in
the ``Authorization`` header, and cut out of every message this module writes (a server's error
text may quote it); it is never part of a cache key, a cache file, a log line or a stat.

Why the standard library and not httpx / the openai SDK: every request here is a small JSON
POST whose cost is the server's generation time; a new connection per request costs
milliseconds against that, and the retry, cap and cache rules above are rft's own either way.
"""

from __future__ import annotations

import dataclasses
import email.utils
import http.client
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from rft.errors import ConfigError, RemoteError
from rft.remote.cache import ResponseCache, cache_key

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429}
TRANSIENT = (
    urllib.error.URLError,  # connection refused, DNS, reset while connecting
    http.client.HTTPException,  # RemoteDisconnected, IncompleteRead, BadStatusLine
    ConnectionError,
    TimeoutError,
    socket.timeout,
)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Aborted(Exception):
    """Another request of the same batch failed for good: stop trying this one."""


def read_api_key(settings, prefix: str) -> str | None:
    """The API key from ``api_key_env`` or ``api_key_file`` (None when neither is set); a
    variable that is unset or a file that is missing is a ConfigError naming the key."""
    env, file = settings.get("api_key_env"), settings.get("api_key_file")
    if env and file:
        raise ConfigError(
            f"{prefix}.api_key_env={env} and {prefix}.api_key_file={file} are both set: keep one."
        )
    if env:
        key = os.environ.get(env, "").strip()
        if not key:
            raise ConfigError(
                f"{prefix}.api_key_env={env}: the environment variable {env} is not set or empty. "
                f"Export it before the run (export {env}=...), or name a file with "
                f"{prefix}.api_key_file, or drop {prefix}.api_key_env for a server without a key."
            )
        return key
    if file:
        path = Path(str(file)).expanduser()
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise ConfigError(
                f"{prefix}.api_key_file={file}: cannot read it ({e.strerror or e}). Write the key "
                "on the file's first line, or use api_key_env."
            ) from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise ConfigError(f"{prefix}.api_key_file={file}: its first line is empty.")
        return key
    return None


def retry_after_s(headers) -> float | None:
    """The wait a server asks for: ``retry-after-ms``, else ``Retry-After`` in seconds (a
    number) or as an HTTP date; None without either (or unparsable).

    >>> retry_after_s({"Retry-After": "2"}), retry_after_s({"retry-after-ms": "150"})
    (2.0, 0.15)
    """
    if headers is None:
        return None
    get = headers.get
    ms = get("retry-after-ms") or get("Retry-After-Ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = get("Retry-After") or get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_s(attempt: int, base: float, cap: float, jitter: float, u: float) -> float:
    """Wait before retry ``attempt`` (0-based) without a Retry-After:
    min(base · 2^attempt, cap) · (1 - jitter · u).

    >>> backoff_s(0, 0.5, 8.0, 0.0, 0.3), backoff_s(3, 0.5, 8.0, 0.0, 0.3), backoff_s(9, 0.5, 8.0, 0.25, 1.0)
    (0.5, 4.0, 6.0)
    """
    return min(base * 2.0**attempt, cap) * (1.0 - jitter * u)


def should_retry(status: int, headers) -> bool:
    """408 / 409 / 429 / 5xx, unless the server says otherwise in ``x-should-retry``."""
    hint = (headers.get("x-should-retry") or "").lower() if headers is not None else ""
    if hint in ("true", "false"):
        return hint == "true"
    return status in RETRY_STATUS or status >= 500


class RemoteClient:
    """JSON requests to one server, for one user of it (``name``: guide, reward, judge).

    ``settings`` has RemoteServerConfig's fields (a DictConfig or a dict); ``prefix`` is their
    config key (``alg.guide.remote``, ``reward``) for error messages; ``reject_hint`` is added to
    the error of a request the server refuses (400 / 422)."""

    def __init__(self, settings, name: str, prefix: str, reject_hint: str = ""):
        self.name, self.prefix, self.reject_hint = name, prefix, reject_hint
        if dataclasses.is_dataclass(settings):  # a schema instance rather than its DictConfig
            settings = dataclasses.asdict(settings)
        base = settings.get("base_url")
        if not base:
            raise ConfigError(
                f"{prefix}.base_url is not set: give the server's API root, e.g. "
                f"{prefix}.base_url=http://127.0.0.1:8000/v1 (README 'Remote models')."
            )
        parsed = urllib.parse.urlsplit(str(base))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                f"{prefix}.base_url={base!r} is not an http(s) URL; e.g. http://127.0.0.1:8000/v1."
            )
        self.base_url = str(base).rstrip("/")
        self.model = settings.get("model")
        self._read_limits(settings)
        cache_dir = settings.get("cache_dir")
        self.cache = ResponseCache(cache_dir) if cache_dir else None
        self._key = read_api_key(settings, prefix)
        # No proxy for a server on this machine (an http_proxy meant for the internet would
        # otherwise carry loopback requests); the environment's proxies for any other host.
        handlers = [urllib.request.ProxyHandler({})] if parsed.hostname in LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)
        self._rng = random.Random()  # jitter only: never the training streams
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self.counts = {
            "requests": 0,  # HTTP requests sent (every try)
            "answers": 0,  # requests answered 2xx with valid JSON
            "retries": 0,
            "failed_tries": 0,  # tries that got a retryable status or no answer
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cache_hits": 0,
            "cache_misses": 0,
            "wait_s": 0.0,  # time spent in backoff / Retry-After waits
        }
        self._latencies: list[float] = []

    def _read_limits(self, settings) -> None:
        """Timeouts, concurrency, retries, backoff and caps from ``settings``, each checked."""
        prefix = self.prefix
        self.timeout = float(settings.get("timeout_s"))
        self.max_concurrency = int(settings.get("max_concurrency"))
        self.max_retries = int(settings.get("max_retries"))
        self.backoff = float(settings.get("backoff_s"))
        self.backoff_max = float(settings.get("backoff_max_s"))
        self.jitter = float(settings.get("jitter"))
        self.retry_after_max = float(settings.get("retry_after_max_s"))
        self.max_requests = int(settings.get("max_requests") or 0)
        self.max_total_tokens = int(settings.get("max_total_tokens") or 0)
        self.wait_ready = float(settings.get("wait_ready_s") or 0.0)
        self.cache_tag = str(settings.get("cache_tag") or "")
        for key, v, lo in (
            ("timeout_s", self.timeout, 1e-9),
            ("max_concurrency", self.max_concurrency, 1),
            ("max_retries", self.max_retries, 0),
            ("backoff_s", self.backoff, 0),
            ("backoff_max_s", self.backoff_max, 0),
            ("retry_after_max_s", self.retry_after_max, 0),
            ("max_requests", self.max_requests, 0),
            ("max_total_tokens", self.max_total_tokens, 0),
            ("wait_ready_s", self.wait_ready, 0),
        ):
            if v < lo:
                raise ConfigError(f"{prefix}.{key}={v}: must be ≥ {lo:g}.")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"{prefix}.jitter={self.jitter}: must be in [0, 1].")

    def __repr__(self) -> str:  # never the key
        return f"RemoteClient({self.name}: {self.describe()})"

    # ------------------------------------------------------------------ messages
    def describe(self) -> str:
        model = f" (model {self.model})" if self.model else ""
        return f"the {self.name} server {self.base_url}{model}"

    def scrub(self, text: str) -> str:
        """``text`` with the API key cut out (a server's error body may quote it)."""
        return text.replace(self._key, "***") if self._key else text

    def url(self, route: str) -> str:
        return self.base_url + "/" + route.lstrip("/")

    # ------------------------------------------------------------------ one HTTP exchange
    def _send(self, method: str, url: str, body: bytes | None) -> tuple[int, Any, bytes]:
        headers = {"Accept": "application/json", "User-Agent": "rft"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:  # a status the server chose: read its body
            try:
                raw = e.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                e.close()
            return e.code, e.headers, raw

    def _reserve(self, what: str) -> None:
        """Count a request about to be sent, or stop at a cap."""
        with self._lock:
            c = self.counts
            if self.max_requests and c["requests"] >= self.max_requests:
                raise RemoteError(
                    f"{self.describe()}: {self.prefix}.max_requests={self.max_requests} reached "
                    f"({c['requests']} requests sent by this run) before {what}. Raise the cap "
                    f"(0: none) and rerun the same command: the run resumes from its last "
                    "checkpoint, and cached answers are not requested again."
                )
            tokens = c["prompt_tokens"] + c["completion_tokens"]
            if self.max_total_tokens and tokens >= self.max_total_tokens:
                raise RemoteError(
                    f"{self.describe()}: {self.prefix}.max_total_tokens={self.max_total_tokens} "
                    f"reached ({tokens} tokens reported by the server) before {what}. Raise the "
                    "cap (0: none) and rerun the same command: the run resumes from its last "
                    "checkpoint, and cached answers are not requested again."
                )
            c["requests"] += 1

    def request(self, method: str, route: str, body: dict | None, what: str) -> dict | list | None:
        """One request with its retries; the parsed JSON answer. ``what`` names the request in
        messages (e.g. ``roll-in request 3 of 16``)."""
        url = self.url(route)
        data = json.dumps(body).encode() if body is not None else None
        last = ""
        for attempt in range(self.max_retries + 1):
            if self._abort.is_set():
                raise Aborted
            self._reserve(what)
            t0 = time.perf_counter()
            try:
                status, headers, raw = self._send(method, url, data)
            except TRANSIENT as e:
                status, headers, raw = None, None, b""
                reason = getattr(e, "reason", None) or e
                last = f"no answer ({type(reason).__name__}: {reason})"
            latency = time.perf_counter() - t0
            if status is not None and 200 <= status < 300:
                return self._answer(raw, latency, method, url, what)
            if status is not None:
                if not should_retry(status, headers):
                    raise self._refused(status, raw, method, url, what)
                last = f"HTTP {status}: {self._excerpt(raw)}"
            with self._lock:
                self.counts["failed_tries"] += 1
            if attempt == self.max_retries:
                break
            wait_s = self._wait_before_retry(attempt, headers, what)
            log.warning(
                "%s: %s, try %d of %d: %s; retrying in %.2f s.",
                self.describe(),
                what,
                attempt + 1,
                self.max_retries + 1,
                self.scrub(last),
                wait_s,
            )
            with self._lock:
                self.counts["retries"] += 1
                self.counts["wait_s"] += wait_s
            if self._abort.wait(wait_s):
                raise Aborted
        raise RemoteError(
            f"{self.describe()}: {what} ({method} {url}) failed {self.max_retries + 1} times; "
            f"last: {self.scrub(last)}. Check that the server is up and not overloaded, then "
            f"rerun the same command: the run resumes from its last checkpoint and cached "
            f"answers are not requested again. More patience: {self.prefix}.max_retries="
            f"{self.max_retries}, {self.prefix}.timeout_s={self.timeout:g}."
        )

    def _wait_before_retry(self, attempt: int, headers, what: str) -> float:
        asked = retry_after_s(headers)
        if asked is None:
            return backoff_s(
                attempt, self.backoff, self.backoff_max, self.jitter, self._rng.random()
            )
        if asked > self.retry_after_max:
            raise RemoteError(
                f"{self.describe()}: {what} was refused and the server asks to wait {asked:.0f} s "
                f"(Retry-After), more than {self.prefix}.retry_after_max_s="
                f"{self.retry_after_max:g}: a rate limit or quota that will not clear soon. Check "
                "the account's limits, or raise retry_after_max_s to wait; then rerun the same "
                "command (it resumes; cached answers are not requested again)."
            )
        return asked

    def _answer(self, raw: bytes, latency: float, method: str, url: str, what: str):
        try:
            out = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RemoteError(
                f"{self.describe()}: the answer to {what} ({method} {url}) is not JSON: "
                f"{self._excerpt(raw)!r}. Is {self.prefix}.base_url the API root of an "
                "OpenAI-compatible server (or the reward server)?"
            ) from None
        usage = out.get("usage") if isinstance(out, dict) else None
        with self._lock:
            self.counts["answers"] += 1
            self._latencies.append(latency)
            if isinstance(usage, dict):
                for k in ("prompt_tokens", "completion_tokens"):
                    v = usage.get(k)
                    if isinstance(v, int) and not isinstance(v, bool):
                        self.counts[k] += v
        return out

    def _excerpt(self, raw: bytes, n: int = 300) -> str:
        text = raw.decode("utf-8", errors="replace").strip().replace("\n", " ")
        return self.scrub(text[:n] + ("..." if len(text) > n else ""))

    def _refused(self, status: int, raw: bytes, method: str, url: str, what: str) -> RemoteError:
        head = f"{self.describe()}: {what} ({method} {url}) was refused: HTTP {status}: "
        body = self._excerpt(raw)
        if status in (401, 403):
            where = (
                f"no key is configured: set {self.prefix}.api_key_env or {self.prefix}.api_key_file"
                if self._key is None
                else f"check the key that {self.prefix}.api_key_env / api_key_file names"
            )
            return RemoteError(f"{head}{body}. The server wants another API key: {where}.")
        if status == 404:
            return RemoteError(
                f"{head}{body}. Check {self.prefix}.base_url (an OpenAI-compatible API root "
                f"usually ends in /v1) and {self.prefix}.model (vLLM: --served-model-name)."
            )
        hint = f" {self.reject_hint}" if self.reject_hint and status in (400, 422) else ""
        return RemoteError(f"{head}{body}.{hint}")

    # ------------------------------------------------------------------ batches
    def post_many(
        self,
        route: str,
        bodies: Sequence[dict],
        whats: Sequence[str],
        validate: Callable[[Any, str], Any] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[Any]:
        """POST each body to ``route``; the (validated) answers in order.

        ``validate(answer, what)`` raises a RemoteError naming a wrong field and returns what
        is kept (and cached); answers are cached under (url, body, seed, cache_tag), ``seeds``
        being each request's seed whether or not the body carries it. Identical requests in
        one batch are sent once when caching."""
        url = self.url(route)
        out: list[Any] = [None] * len(bodies)
        keys: list[str | None] = [None] * len(bodies)
        todo: dict[str | int, list[int]] = {}  # one request per distinct key
        for i, body in enumerate(bodies):
            if self.cache is not None:
                seed = seeds[i] if seeds is not None else None
                keys[i] = cache_key({"url": url, "body": body, "seed": seed, "tag": self.cache_tag})
                hit = self.cache.get(keys[i])
                if hit is not None and "answer" in hit:
                    out[i] = hit["answer"]
                    with self._lock:
                        self.counts["cache_hits"] += 1
                    continue
                with self._lock:
                    self.counts["cache_misses"] += 1
            todo.setdefault(keys[i] if keys[i] is not None else i, []).append(i)
        if not todo:
            return out

        def one(i: int):
            answer = self.request("POST", route, bodies[i], whats[i])
            kept = validate(answer, whats[i]) if validate is not None else answer
            if self.cache is not None and keys[i] is not None:
                self.cache.put(keys[i], {"url": url, "request": bodies[i], "answer": kept})
            return kept

        self._abort.clear()
        firsts = [rows[0] for rows in todo.values()]
        if len(firsts) == 1 or self.max_concurrency == 1:
            results = {i: one(i) for i in firsts}
        else:
            results = self._run_concurrently(one, firsts)
        for rows in todo.values():
            for i in rows:
                out[i] = results[rows[0]]
        return out

    def _run_concurrently(self, fn, items: list[int]) -> dict[int, Any]:
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items)))
        try:
            futures = {pool.submit(fn, i): i for i in items}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self._abort.set()  # the others stop at their next try or wait
                errors = [f.exception() for f in failed]
                raise next((e for e in errors if not isinstance(e, Aborted)), errors[0])
            return {futures[f]: f.result() for f in futures}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._abort.clear()

    # ------------------------------------------------------------------ start-up
    def check_reachable(self, route: str = "/models", list_models: bool = True) -> None:
        """Fail fast, before any model loads, when the server cannot be reached, refuses the
        key, or (``list_models``: an OpenAI-compatible ``GET /models``) does not serve
        ``model``. Polls an unreachable server for up to ``wait_ready_s``."""
        url = self.url(route)
        deadline = time.monotonic() + self.wait_ready
        while True:
            try:
                status, _, raw = self._send("GET", url, None)
                problem = None if status < 500 else f"HTTP {status}: {self._excerpt(raw)}"
            except TRANSIENT as e:
                reason = getattr(e, "reason", None) or e
                status, raw, problem = None, b"", f"{type(reason).__name__}: {reason}"
            if problem is None or time.monotonic() >= deadline:
                break
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        if problem is not None:
            waited = f" (polled for {self.wait_ready:g} s)" if self.wait_ready else ""
            raise RemoteError(
                f"{self.describe()} cannot be reached at start-up{waited}: GET {url}: "
                f"{self.scrub(problem)}. Start the server first (README 'Remote models': vllm "
                f"serve ...) or fix {self.prefix}.base_url; {self.prefix}.wait_ready_s waits for "
                "one that is still loading."
            )
        if status in (401, 403):
            raise self._refused(status, raw, "GET", url, "the start-up check")
        if not list_models or status != 200 or not self.model:
            return
        try:
            served = [str(m.get("id")) for m in json.loads(raw.decode("utf-8")).get("data", [])]
        except (ValueError, AttributeError, UnicodeDecodeError):
            return  # not an OpenAI model list: the first real request will say more
        if served and str(self.model) not in served:
            raise ConfigError(
                f"{self.prefix}.model={self.model}: {self.base_url} does not serve it; it "
                f"serves {served}. Set {self.prefix}.model to one of them (vLLM: the "
                "--served-model-name)."
            )

    # ------------------------------------------------------------------ accounting
    def stats(self) -> dict[str, float]:
        """Run totals so far, ``remote/<name>/<counter>``, with the cache hit rate."""
        with self._lock:
            c = dict(self.counts)
        p = f"remote/{self.name}/"
        out = {p + k: float(v) for k, v in c.items()}
        looked_up = c["cache_hits"] + c["cache_misses"]
        if looked_up:
            out[p + "cache_hit_rate"] = c["cache_hits"] / looked_up
        return out

    def pop_stats(self) -> dict[str, float]:
        """``stats()`` plus the mean and max latency of the answers since the previous call
        (what a training iteration records in its history row)."""
        out = self.stats()
        with self._lock:
            lat, self._latencies = self._latencies, []
        if lat:
            p = f"remote/{self.name}/"
            out[p + "latency_mean_s"] = sum(lat) / len(lat)
            out[p + "latency_max_s"] = max(lat)
        return out
