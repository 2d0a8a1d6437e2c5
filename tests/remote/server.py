"""A real OpenAI-compatible HTTP server for the remote tests: stdlib ``http.server`` on a free
loopback port, in a thread, answering from a deterministic generator (or any callable a test
gives it: a tiny model, a scripted judge) and injecting faults on request.

    with FakeServer(api_key="sk-test") as srv:       # srv.url = http://127.0.0.1:<port>/v1
        srv.faults += ["429:0.2", "500", "drop"]      # the next three POSTs fail so, in order
        ...
        srv.requests                                  # every request: method, path, headers, body

Routes: GET /v1/models, GET /health, POST /v1/completions, POST /v1/chat/completions,
POST /score (rft's reward contract), POST /get_reward (OpenRLHF's).

Faults (each consumed by one POST): ``429`` / ``429:<s>`` (Retry-After: s) / ``429ms:<ms>``
(retry-after-ms), ``500`` / ``503`` / any status, ``slow:<s>`` (answer after s seconds),
``malformed`` (200 with a body that is not JSON), ``nofield`` (200 with JSON lacking
``choices``), ``drop`` (close the connection without an answer).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = "good bad great fun dull film story plot scene music happy sad".split()


def scripted_completion(prompt, max_tokens: int, min_tokens: int = 0, seed=None) -> tuple:
    """A deterministic 'model': words drawn from (prompt, seed); it may stop early (after
    min_tokens) with probability 1/8 per word. Returns (text, finish_reason, n_tokens)."""
    rng = random.Random(f"{prompt}|{seed}")
    words = []
    while len(words) < max_tokens:
        if len(words) >= max(min_tokens, 1) and rng.random() < 0.125:
            return "".join(" " + w for w in words), "stop", len(words)
        words.append(rng.choice(WORDS))
    return "".join(" " + w for w in words), "length", len(words)


def default_generator(body: dict, chat: bool) -> dict:
    """One choice for a completions / chat request body."""
    if chat:
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in body["messages"])
    else:
        prompt = body["prompt"]
        prompt = prompt if isinstance(prompt, str) else json.dumps(prompt)
    text, finish, n = scripted_completion(
        prompt, body.get("max_tokens", 16), body.get("min_tokens", 0), body.get("seed")
    )
    return {"text": text, "finish_reason": finish, "completion_tokens": n}


def default_scorer(prompts: list[str], completions: list[str], references: list) -> list[float]:
    """Share of 'good' among the completion's words (0 for an empty one)."""
    return [c.split().count("good") / max(1, len(c.split())) for c in completions]


class FakeServer:
    def __init__(
        self,
        api_key: str | None = None,
        models: tuple[str, ...] = ("guide",),
        generator: Callable[[dict, bool], dict] = default_generator,
        scorer: Callable[[list, list, list], list] = default_scorer,
    ):
        self.api_key, self.models = api_key, list(models)
        self.generator, self.scorer = generator, scorer
        self.faults: list[str] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FakeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server._handle(self, "GET")

            def do_POST(self):
                server._handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client that left: quiet
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def posts(self, path_suffix: str = "") -> list[dict]:
        return [
            r for r in self.requests if r["method"] == "POST" and r["path"].endswith(path_suffix)
        ]

    # ------------------------------------------------------------------ one request
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(n) if n else b""
        body = json.loads(raw) if raw else None
        with self.lock:
            self.requests.append(
                {"method": method, "path": h.path, "headers": dict(h.headers), "body": body}
            )
            fault = self.faults.pop(0) if method == "POST" and self.faults else None
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._send(h, 401, {"error": {"message": "Incorrect API key provided"}})
        if fault is not None and self._fault(h, fault):
            return
        if method == "GET" and h.path == "/v1/models":
            return self._send(h, 200, {"object": "list", "data": [{"id": m} for m in self.models]})
        if method == "GET" and h.path == "/health":
            return self._send(h, 200, {"status": "ok"})
        if method == "POST" and h.path in ("/v1/completions", "/v1/chat/completions"):
            if body.get("model") is not None and body["model"] not in self.models:
                msg = f"The model `{body['model']}` does not exist."
                return self._send(h, 404, {"error": {"message": msg}})
            return self._send(h, 200, self._completion(body, h.path.endswith("chat/completions")))
        if method == "POST" and h.path == "/score":
            scores = self.scorer(body["prompts"], body["completions"], body["references"])
            return self._send(h, 200, {"scores": scores})
        if method == "POST" and h.path == "/get_reward":
            completions = [q[len(p) :] for q, p in zip(body["query"], body["prompts"])]
            rewards = self.scorer(body["prompts"], completions, body["labels"])
            return self._send(h, 200, {"rewards": rewards, "scores": rewards})
        return self._send(h, 404, {"error": {"message": f"no route {method} {h.path}"}})

    def _completion(self, body: dict, chat: bool) -> dict:
        out = self.generator(body, chat)
        choice = {"index": 0, "finish_reason": out["finish_reason"]}
        if chat:
            choice["message"] = {"role": "assistant", "content": out["text"]}
        else:
            choice["text"] = out["text"]
        if body.get("return_token_ids") and "token_ids" in out:
            choice["token_ids"] = out["token_ids"]
        if body.get("logprobs") and "logprobs" in out:  # the generator's, in the API's form
            choice["logprobs"] = out["logprobs"]
        prompt = body.get("prompt") or body.get("messages")
        n_prompt = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
        return {
            "id": "cmpl-test",
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": out["completion_tokens"],
                "total_tokens": n_prompt + out["completion_tokens"],
            },
        }

    def _fault(self, h: BaseHTTPRequestHandler, fault: str) -> bool:
        """Act out one fault; True when the request is answered (or dropped) by it."""
        kind, _, arg = fault.partition(":")
        if kind == "slow":
            time.sleep(float(arg))
            return False
        if kind == "drop":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return True
        if kind == "malformed":
            self._send_raw(h, 200, b'{"choices": [{"text": "unfinished', {})
            return True
        if kind == "nofield":
            self._send(h, 200, {"id": "x", "object": "text_completion"})
            return True
        if kind == "429ms":
            self._send(h, 429, {"error": "rate limited"}, {"retry-after-ms": arg})
            return True
        status = int(kind)
        headers = {"Retry-After": arg} if arg else {}
        self._send(h, status, {"error": {"message": f"injected {status}"}}, headers)
        return True

    def _send(self, h, status: int, obj, headers: dict | None = None) -> None:
        self._send_raw(h, status, json.dumps(obj).encode(), headers or {})

    @staticmethod
    def _send_raw(h, status: int, raw: bytes, headers: dict) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(raw)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(raw)
        except OSError:  # the client timed out and left
            pass


def model_generator(lm) -> Callable[[dict, bool], dict]:
    """Answers from a local PolicyLM (a tiny random model): the prompt (text, or token ids) is
    continued by ``lm.generate``, greedily at temperature 0, else sampled under the request's
    seed; one request at a time. Returns the text, the generated ids and why it ended."""
    import torch

    from rft.config import GenerationConfig

    lock = threading.Lock()
    tok = lm.tokenizer

    def generate(body: dict, chat: bool) -> dict:
        assert not chat, "model_generator serves /completions"
        prompt = body["prompt"]
        ids = (
            prompt
            if isinstance(prompt, list)
            else tok(prompt, add_special_tokens=False)["input_ids"]
        )
        t = float(body.get("temperature", 1.0))
        gen = GenerationConfig(
            do_sample=t > 0,
            top_k=int(body.get("top_k", 0)),
            top_p=float(body.get("top_p", 1.0)),
            temperature=t if t > 0 else 1.0,
        )
        p = torch.tensor([ids], dtype=torch.long)
        with lock, torch.random.fork_rng():
            torch.manual_seed(int(body.get("seed") or 0))
            c = lm.generate(
                p, torch.ones_like(p), body["max_tokens"], body.get("min_tokens", 0), gen
            )
        out = c.ids[0][c.mask[0].bool()].tolist()
        stopped = bool(out) and out[-1] == tok.eos_token_id
        return {
            "text": tok.decode(out, skip_special_tokens=True),
            "token_ids": out,
            "finish_reason": "stop" if stopped else "length",
            "completion_tokens": len(out),
        }

    return generate
