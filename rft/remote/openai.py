"""The OpenAI-compatible surface rft uses (``vllm serve``, api.openai.com and look-alikes):
request bodies for ``POST /completions`` and ``POST /chat/completions``, and the one answer rft
reads back from each, checked field by field.

Sampling. ``do_sample=false`` is ``temperature 0`` (greedy); otherwise ``temperature`` and
``top_p``. vLLM's extra fields (``vllm_extras``) add ``top_k`` (when > 0), ``min_tokens`` and
``add_special_tokens=false`` (the prompt is read as the local guide reads it: no BOS added).
Beam search has no equivalent on this API.
"""

from __future__ import annotations

from dataclasses import dataclass

from rft.errors import ConfigError, RemoteError


@dataclass(frozen=True)
class Answer:
    """What rft keeps of one choice: its text, why it ended ("stop": the model ended it (EOS,
    end of turn); "length": max_tokens), the generated token ids when the server returns them
    (vLLM ``return_token_ids``), and the usage it reported."""

    text: str
    finish_reason: str | None
    token_ids: list[int] | None = None
    # per generated position, the server's top tokens and their log-probabilities (asked for
    # with ``logprobs``; the LLM judge's score_from=logprobs reads them)
    top_logprobs: list[dict[str, float]] | None = None

    @property
    def stopped(self) -> bool:
        """The model ended the text itself (an EOS, or the end of its chat turn)."""
        return self.finish_reason == "stop"

    def to_json(self) -> dict:
        out = {"text": self.text, "finish_reason": self.finish_reason, "token_ids": self.token_ids}
        if self.top_logprobs is not None:
            out["top_logprobs"] = self.top_logprobs
        return out

    @classmethod
    def from_json(cls, d: dict) -> Answer:
        return cls(d["text"], d.get("finish_reason"), d.get("token_ids"), d.get("top_logprobs"))


def sampling_fields(generation, vllm_extras: bool, key: str) -> dict:
    """The request fields of a GenerationConfig (``key``: its config key, for errors)."""
    if int(generation.num_beams) > 1:
        raise ConfigError(
            f"{key}.num_beams={generation.num_beams}: a remote model samples through the "
            "OpenAI-compatible API, which has no beam search. Set it to 1."
        )
    if not generation.do_sample:
        return {"temperature": 0.0}
    out = {"temperature": float(generation.temperature), "top_p": float(generation.top_p)}
    if vllm_extras and int(generation.top_k) > 0:
        out["top_k"] = int(generation.top_k)
    return out


def completion_body(
    model: str | None,
    prompt: str | list[int],
    max_tokens: int,
    sampling: dict,
    *,
    seed: int | None = None,
    min_tokens: int = 0,
    vllm_extras: bool = False,
    token_ids: bool = False,
    top_logprobs: int = 0,
) -> dict:
    """``POST /completions``: continue ``prompt`` (text, or token ids on vLLM) by at most
    ``max_tokens`` tokens; ``token_ids`` asks vLLM for the generated ids too; ``top_logprobs``
    > 0 for that many top tokens per position (``"logprobs": N``)."""
    body: dict = {"prompt": prompt, "max_tokens": int(max_tokens), "n": 1, **sampling}
    if model:
        body["model"] = model
    if seed is not None:
        body["seed"] = int(seed)
    if vllm_extras:
        body["add_special_tokens"] = False
        if min_tokens > 0:
            body["min_tokens"] = int(min_tokens)
    if token_ids:
        body["return_token_ids"] = True
    if top_logprobs > 0:
        body["logprobs"] = int(top_logprobs)
    return body


def chat_body(
    model: str | None,
    messages: list[dict],
    max_tokens: int,
    sampling: dict,
    *,
    seed: int | None = None,
    min_tokens: int = 0,
    vllm_extras: bool = False,
    prefill: bool = False,
    top_logprobs: int = 0,
) -> dict:
    """``POST /chat/completions``. ``prefill``: the last message is a partial assistant turn
    the server continues (vLLM: ``continue_final_message``, without a new generation prompt);
    ``top_logprobs`` > 0 for that many top tokens per position (the chat form:
    ``"logprobs": true, "top_logprobs": N``)."""
    body: dict = {"messages": messages, "max_tokens": int(max_tokens), "n": 1, **sampling}
    if model:
        body["model"] = model
    if seed is not None:
        body["seed"] = int(seed)
    if vllm_extras and min_tokens > 0:
        body["min_tokens"] = int(min_tokens)
    if prefill:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    if top_logprobs > 0:
        body.update(logprobs=True, top_logprobs=int(top_logprobs))
    return body


def _field(obj, path: list, what: str, whole) -> object:
    """obj[path[0]][path[1]]..., or a RemoteError naming the missing field and the request."""
    cur = obj
    for i, part in enumerate(path):
        ok = (
            isinstance(cur, dict)
            and part in cur
            or isinstance(cur, list)
            and isinstance(part, int)
            and part < len(cur)
        )
        if not ok:
            name = _name(path[: i + 1])
            raise RemoteError(
                f"malformed answer to {what}: no field `{name}` (answer: {_short(whole)}). The "
                "server is not answering as the OpenAI API does; check the endpoint and the server."
            )
        cur = cur[part]
    return cur


def _name(path: list) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _short(obj, n: int = 300) -> str:
    text = repr(obj)
    return text[:n] + ("..." if len(text) > n else "")


def parse_answer(resp, what: str, chat: bool, logprobs: bool = False) -> Answer:
    """The first choice of a completions (``choices[0].text``) or chat
    (``choices[0].message.content``) answer; a missing or mistyped field is a RemoteError naming
    it and the request. ``logprobs``: the top tokens per position are read too
    (``choices[0].logprobs.top_logprobs``, or the chat form ``choices[0].logprobs.content``).

    >>> parse_answer({"choices": [{"text": " hi", "finish_reason": "length"}]}, "r", chat=False)
    Answer(text=' hi', finish_reason='length', token_ids=None, top_logprobs=None)
    """
    path = ["choices", 0, "message", "content"] if chat else ["choices", 0, "text"]
    text = _field(resp, path, what, resp)
    if not isinstance(text, str):
        raise RemoteError(
            f"malformed answer to {what}: `{_name(path)}` is {type(text).__name__}, not a "
            f"string (answer: {_short(resp)})."
        )
    choice = resp["choices"][0]
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise RemoteError(
            f"malformed answer to {what}: `choices[0].finish_reason` is {finish!r}, not a string."
        )
    ids = choice.get("token_ids")
    if ids is not None and not (
        isinstance(ids, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in ids)
    ):
        raise RemoteError(
            f"malformed answer to {what}: `choices[0].token_ids` is not a list of integers "
            f"(answer: {_short(resp)})."
        )
    top = _top_logprobs(choice, what, chat, resp) if logprobs else None
    return Answer(text, finish, ids, top)


def _top_logprobs(choice: dict, what: str, chat: bool, resp) -> list[dict[str, float]]:
    """Per generated position, {token text: log-probability} of the server's top tokens.

    >>> _top_logprobs({"logprobs": {"top_logprobs": [{" 7": -0.1, " 8": -2.4}]}}, "r", False, {})
    [{' 7': -0.1, ' 8': -2.4}]
    >>> chat = {"token": "7", "logprob": -0.1, "top_logprobs": [{"token": "7", "logprob": -0.1}]}
    >>> _top_logprobs({"logprobs": {"content": [chat]}}, "r", True, {})
    [{'7': -0.1}]
    """
    path = ["choices", 0, "logprobs", "content" if chat else "top_logprobs"]
    if not isinstance(choice.get("logprobs"), dict):
        raise RemoteError(
            f"the answer to {what} has no `choices[0].logprobs`: the server did not return "
            "log-probabilities, which reward.score_from=logprobs reads. Use a server that does "
            f"(vLLM, OpenAI-style completions), or reward.score_from=text (answer: {_short(resp)})."
        )
    positions = _field({"choices": [choice]}, path, what, resp)
    out = []
    try:
        for pos in positions:
            if chat:
                out.append({str(t["token"]): float(t["logprob"]) for t in pos["top_logprobs"]})
            else:  # a position may be null (vLLM: the prompt's first token)
                out.append({str(k): float(v) for k, v in (pos or {}).items()})
    except (TypeError, KeyError, ValueError, AttributeError):
        raise RemoteError(
            f"malformed answer to {what}: `{_name(path)}` is not a list of top tokens with "
            f"log-probabilities (answer: {_short(resp)}). Does the server return logprobs?"
        ) from None
    return out
