"""RLGF's black-box guide (Chang et al. 2023: "a dynamic black-box guide LLM such as GPT-3")
behind an OpenAI-compatible API: the guided family's roll-ins and roll-outs by a model rft only
reaches over HTTP (``alg.guide.remote``; config: rft.config.RemoteGuideConfig).

    roll-in   the guide completes the prompt              prompt            -> L tokens
    roll-out  the guide continues the policy's k tokens    prompt + prefix   -> the rest

Both return POLICY tokens, as the local guide does (rft/rollout/guide.py): the rollout buffer,
the log-probs, the KL and the losses are per policy token. The guided family sees the remote
guide as one more generator (``RemoteGuideGenerator``: a PolicyLM with the policy's tokenizer
whose ``generate`` asks the server), so its code is the same for a local and a remote guide.

What is sent (``prompt_format``):
- ``text`` (any server): the prompt as the POLICY reads it (its last ``task.prompt_max_tokens``
  policy tokens, decoded), plus for a roll-out the text of the policy's first k tokens. The
  answer's text is re-encoded with the policy tokenizer and cut to ``task.max_new_tokens``;
  a roll-out's is appended after the policy's exact k tokens (``splice``), as the local guide
  does with another tokenizer. The guide is asked for max_new_tokens - k of its own tokens
  (max_new_tokens for a roll-in); its tokens are not the policy's, so the lengths are matched
  in policy tokens after re-encoding. ``finish_reason == "stop"`` (the guide ended the text:
  EOS or the end of its chat turn) becomes the policy's EOS.
- ``token_ids`` (completions on vLLM serving a model with the policy's tokenizer): the policy's
  prompt ids + prefix ids are sent and the generated ids read back (``return_token_ids``): no
  text round trip, so a served copy of the local guide samples exactly what it would sample
  locally (same ids in, same ids out, up to the server's numerics and seed).

Endpoints (``endpoint``): ``completions`` continues raw text (RLGF's setting). ``chat`` sends the
prompt as the user turn (after ``system_prompt``); a roll-out's prefix goes as a partial
assistant turn that the server continues (``chat_prefill``: vLLM's ``continue_final_message``,
``add_generation_prompt=false``). A chat server without that (api.openai.com's chat models have
no assistant prefill) cannot continue the policy's words: with ``chat_prefill=false`` roll-outs
after a prefix stop with an error that says so, and roll-ins (PPO++) still work.

Seeds and cache. Request i of a call's roll-ins (roll-outs) carries the seed
``rft.rng.remote_request_seeds(seed, word, 0 (1), n)[i]``, ``word`` drawn from the iteration's
seeded torch generator (the ``iteration`` argument of ``roll_in`` / ``roll_out``): a seeded server (vLLM) answers
a resumed run as it answered the first one, and the K samples of one prompt differ. Answers are
cached on disk (``cache_dir``) keyed by the server, the whole request and that seed
(rft/remote/cache.py): a resumed or repeated run sends only what it has not asked before.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from rft.config import choice
from rft.errors import ConfigError, RemoteError
from rft.model.generate import Completions
from rft.remote.client import RemoteClient
from rft.remote.openai import Answer, chat_body, completion_body, parse_answer, sampling_fields
from rft.rng import remote_request_seeds
from rft.rollout.guide import decode_rows
from rft.rollout.restart import forced_prefix_of, prefix_mask, splice

log = logging.getLogger(__name__)

ROLL_IN, ROLL_OUT = 0, 1  # the ``call`` word of remote_request_seeds

PREFIX = "alg.guide.remote"


def check_remote_guide(guide_cfg, prefix: str = "alg.guide") -> None:
    """Settings that contradict each other (run before any model loads)."""
    r = guide_cfg.remote
    if not r.base_url:
        return
    if guide_cfg.get("model") is not None or guide_cfg.get("init_from"):
        raise ConfigError(
            f"{prefix}.remote.base_url={r.base_url} and a local guide ({prefix}.model / "
            f"{prefix}.init_from) are both set: the guide is one or the other. Drop one."
        )
    if choice(r.endpoint) == "chat" and choice(r.prompt_format) == "token_ids":
        raise ConfigError(
            f"{prefix}.remote.prompt_format=token_ids needs endpoint=completions (a chat request"
            " is messages of text). Use prompt_format=text with endpoint=chat."
        )
    sampling_fields(guide_cfg.generation, bool(r.vllm_extras), f"{prefix}.generation")


class RemoteGuide:
    """The guide as a remote model: ``roll_in`` and ``roll_out`` give what the local guide's
    paths in rft.alg.guided give (policy tokens), ``pop_stats`` its accounting.

    cfg: RemoteGuideConfig (``alg.guide.remote``); generation: ``alg.guide.generation``;
    tokenizer: the policy's; seed: the run's."""

    def __init__(
        self,
        cfg,
        generation,
        tokenizer,
        max_new_tokens: int,
        min_new_tokens: int,
        seed: int,
        prefix: str = PREFIX,
    ):
        self.cfg, self.tokenizer, self.seed, self.prefix = cfg, tokenizer, int(seed), prefix
        self.max_new_tokens, self.min_new_tokens = int(max_new_tokens), int(min_new_tokens)
        self.chat = choice(cfg.endpoint) == "chat"
        self.token_ids = choice(cfg.prompt_format) == "token_ids"
        if self.chat and self.token_ids:
            raise ConfigError(
                f"{prefix}.prompt_format=token_ids needs endpoint=completions (a chat request "
                "is messages of text). Use prompt_format=text with endpoint=chat."
            )
        self.extras = bool(cfg.vllm_extras)
        gen_key = prefix.rsplit(".", 1)[0] + ".generation"
        self.sampling = sampling_fields(generation, self.extras, gen_key)
        self.client = RemoteClient(
            cfg,
            name="guide",
            prefix=prefix,
            reject_hint=(
                f"If it names a field rft sends that this server does not know (top_k, "
                f"min_tokens, add_special_tokens, return_token_ids), set {prefix}.vllm_extras"
                f"=false (and {prefix}.prompt_format=text)."
            ),
        )
        self.route = "/chat/completions" if self.chat else "/completions"
        self.policy_tokens = 0  # tokens of the answers after re-encoding (vs the guide's own)
        self._warned_no_ids = False

    def check_reachable(self) -> None:
        """One clear error at start-up when the server is down, refuses the key or does not
        serve ``model`` (rft.checks.preflight calls it before any model loads)."""
        self.client.check_reachable("/models")

    # ------------------------------------------------------------------ requests
    def _body(self, prompt, prefix, max_tokens: int, min_tokens: int, seed: int) -> dict:
        send_seed = seed if self.cfg.send_seed else None
        if not self.chat:
            return completion_body(
                self.cfg.model,
                prompt + prefix,
                max_tokens,
                self.sampling,
                seed=send_seed,
                min_tokens=min_tokens,
                vllm_extras=self.extras,
                token_ids=self.token_ids,
            )
        messages = [{"role": "system", "content": self.cfg.system_prompt}] * bool(
            self.cfg.system_prompt
        )
        messages.append({"role": "user", "content": prompt})
        if prefix:
            if not self.cfg.chat_prefill:
                raise RemoteError(
                    f"{self.prefix}.endpoint=chat with chat_prefill=false cannot continue the "
                    "policy's first k tokens (AggreVaTeD roll-outs: alg=aggrevated, lols, dlols): "
                    "the server would answer the prompt afresh. Use endpoint=completions, or a "
                    "server that continues a partial assistant turn (vLLM) with chat_prefill=true."
                )
            messages.append({"role": "assistant", "content": prefix})
        return chat_body(
            self.cfg.model,
            messages,
            max_tokens,
            self.sampling,
            seed=send_seed,
            min_tokens=min_tokens,
            vllm_extras=self.extras,
            prefill=bool(prefix),
        )

    def _ask(self, bodies: list[dict], seeds: list[int], kind: str) -> list[Answer]:
        n = len(bodies)
        whats = [f"{kind} request {i + 1} of {n}" for i in range(n)]

        def validate(resp, what):
            return parse_answer(resp, what, self.chat).to_json()

        got = self.client.post_many(self.route, bodies, whats, validate=validate, seeds=seeds)
        return [Answer.from_json(a) for a in got]

    def _policy_tokens(self, answers: list[Answer], width: list[int]) -> tuple[Tensor, Tensor]:
        """Each answer in policy tokens, (B, T): its ids where the server sent them
        (token_ids), else its text re-encoded; the policy's EOS where the guide stopped; row i
        cut to width[i]."""
        tok, T = self.tokenizer, self.max_new_tokens
        ids = torch.full((len(answers), T), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        texts = [a.text for a in answers]
        enc = tok(texts, add_special_tokens=False)["input_ids"] if texts else []
        for i, a in enumerate(answers):
            row = list(enc[i])
            if self.token_ids:
                if a.token_ids is not None:
                    row = [x for x in a.token_ids if x != tok.eos_token_id]
                elif not self._warned_no_ids:
                    self._warned_no_ids = True
                    log.warning(
                        "%s.prompt_format=token_ids, but the server returns no token_ids (an "
                        "older vLLM?): its text is re-encoded instead.",
                        self.prefix,
                    )
            if a.stopped:
                row.append(tok.eos_token_id)
            row = row[: width[i]]
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        self.policy_tokens += int(mask.sum())
        return ids, mask

    def _prompts(self, p_ids: Tensor, p_mask: Tensor) -> list:
        if self.token_ids:
            return [row[m.bool()].tolist() for row, m in zip(p_ids.cpu(), p_mask.cpu())]
        return decode_rows(self.tokenizer, p_ids, p_mask)

    # ------------------------------------------------------------------ the guided interface
    def roll_in(
        self, p_ids: Tensor, p_mask: Tensor, iteration: int
    ) -> tuple[Tensor, Tensor, list[str]]:
        """Complete roll-ins of the prompts (B, P) (policy tokens, left-padded): (ids, mask)
        (B, max_new_tokens) in policy tokens, and the guide's texts."""
        prompts, T = self._prompts(p_ids, p_mask), self.max_new_tokens
        empty = [] if self.token_ids else ""
        seeds = remote_request_seeds(self.seed, iteration, ROLL_IN, len(prompts))
        bodies = [self._body(p, empty, T, self.min_new_tokens, s) for p, s in zip(prompts, seeds)]
        answers = self._ask(bodies, seeds, "roll-in")
        ids, mask = self._policy_tokens(answers, [T] * len(answers))
        return ids.to(p_ids.device), mask.to(p_ids.device), [a.text for a in answers]

    def roll_out(
        self, p_ids: Tensor, p_mask: Tensor, forced: Tensor, k: Tensor, iteration: int
    ) -> Completions:
        """Mixed sequences (B, max_new_tokens) in policy tokens: row i is forced[i, :k_i] (the
        policy's own tokens, exactly) followed by the guide's continuation of prompt + them."""
        tok, T = self.tokenizer, self.max_new_tokens
        prompts = self._prompts(p_ids, p_mask)
        k_list = [int(x) for x in k.tolist()]
        fmask = prefix_mask(k.to(forced.device), forced.shape[1])
        if self.token_ids:
            prefixes = [row[m].tolist() for row, m in zip(forced.cpu(), fmask.cpu())]
        else:
            prefixes = decode_rows(tok, forced, fmask)
        seeds = remote_request_seeds(self.seed, iteration, ROLL_OUT, len(prompts))
        bodies = [
            self._body(p, x, max(1, T - ki), max(0, self.min_new_tokens - ki), s)
            for p, x, ki, s in zip(prompts, prefixes, k_list, seeds)
        ]
        answers = self._ask(bodies, seeds, "roll-out")
        cont_ids, cont_mask = self._policy_tokens(answers, [T - ki for ki in k_list])
        ids, mask = splice(forced.cpu(), k.cpu(), cont_ids, cont_mask, T, tok.pad_token_id)
        return Completions(ids=ids.to(p_ids.device), mask=mask.to(p_ids.device))

    def pop_stats(self) -> dict[str, float]:
        """The client's accounting (rft.remote.client) and the answers' length in policy
        tokens, ``remote/guide/...``."""
        return {**self.client.pop_stats(), "remote/guide/policy_tokens": float(self.policy_tokens)}


class RemoteGuideGenerator:
    """The remote guide as a generator (rft/model/generate.py): a ``PolicyLM`` whose tokenizer
    is the policy's and whose completions come from the server, so the guided family samples it
    exactly as it samples a local guide (``sample(guide, ...)``, a guided restart's prefix in a
    ForcedPrefixProcessor). Each call draws one word from torch's generator, which the caller
    has seeded for the iteration: the requests' seeds, and so the disk cache's keys, are the
    same in a resumed run."""

    def __init__(self, guide: RemoteGuide):
        self.guide = guide

    def generate(
        self,
        lm,
        prompt_ids: Tensor,
        prompt_mask: Tensor,
        max_new_tokens: int,
        min_new_tokens: int,
        generation,
        logits_processor=None,
    ) -> Completions:
        word = int(torch.randint(0, 2**30, ()).item())
        forced = forced_prefix_of(logits_processor)
        if forced is None:
            ids, mask, _ = self.guide.roll_in(prompt_ids, prompt_mask, word)
            return Completions(ids=ids, mask=mask)
        return self.guide.roll_out(prompt_ids, prompt_mask, forced[0], forced[1], word)

    def stats(self) -> dict[str, float]:
        return self.guide.pop_stats()


def remote_guide_policy(guide_cfg, tokenizer, max_new_tokens: int, min_new_tokens: int, seed: int):
    """The guide of ``alg.guide.remote`` as a PolicyLM with the policy's ``tokenizer`` (no
    weights: it only generates, through the server)."""
    from rft.model.policy import PolicyLM

    guide = RemoteGuide(
        guide_cfg.remote, guide_cfg.generation, tokenizer, max_new_tokens, min_new_tokens, seed
    )
    lm = PolicyLM(None, tokenizer, kind="causal", generator=RemoteGuideGenerator(guide))
    return lm.eval()
