"""An LLM judge as reward (``reward=judge``; schema rft.config.JudgeRewardConfig): each
completion is put into a prompt with a rubric, sent to a model behind an OpenAI-compatible API,
and the score is read from its answer.

    text   = reward.template.format(rubric, prompt, completion, reference, references,
                                    min_score, max_score)
    answer = POST {base_url}/chat/completions (the text as the user turn, after system_prompt)
             or POST {base_url}/completions (the text as the prompt), temperature, max_tokens, seed
    score  = the last match of reward.score_pattern in the answer (group 1), or the answer
             itself when it is only a number; it must lie in [min_score, max_score]
             (score_from=text), or
             sum_s p(s) s / sum_s p(s) over the score tokens s in [min_score, max_score] among
             the top_logprobs of the first answer position that has any (score_from=logprobs:
             G-Eval's probability-weighted score, Liu et al. 2023)
    R      = (score - min_score) / (max_score - min_score)     (normalize=true; else the score)

The probability-weighted score is continuous where the stated one is a few integers: a 135M
judge answered "2" to 84 % of IMDB continuations in a few-shot prompt (docs/results.md, issue
#27), a near-constant reward PPO cannot climb, while its probabilities over the digits still
rank them. Each score must be one token of the judge's tokenizer (0-9 in most; "10" is two
tokens in SmolLM2's), so a scale above 9 warns at build time.

An answer without a score in range is *unparsable*: ``on_unparsable=fail`` stops the run with a
RewardError quoting it; ``on_unparsable=score`` gives it ``unparsable_score`` (as the reward, not
normalized again), logs a warning for each batch that has any, and counts them
(``remote/judge/unparsable``, ``remote/judge/unparsable_rate``). Nothing is scored silently.

The judge's requests go through rft.remote.client (key, concurrency, retries, caps, accounting
under ``remote/judge/...``); with ``cache_dir`` its verdicts are cached by the whole request, and
identical requests in one batch are sent once. The server is checked when the reward is built,
before any model loads.
"""

from __future__ import annotations

import logging
import math
import re

from rft.config import JudgeRewardConfig, JudgeScoreFrom, choice
from rft.errors import ConfigError, RewardError
from rft.remote.client import RemoteClient
from rft.remote.openai import Answer, chat_body, completion_body, parse_answer
from rft.reward.remote import reference_list, settings_of

log = logging.getLogger(__name__)

FIELDS = ("rubric", "prompt", "completion", "reference", "references", "min_score", "max_score")
BARE_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*\.?\s*")


def parse_score(answer: str, pattern: re.Pattern, lo: float, hi: float) -> float | None:
    """The score in a judge's answer: group 1 of the last ``pattern`` match, else the answer
    when it is only a number; None when there is none or it is outside [lo, hi].

    >>> p = re.compile(r"(?i)score\\s*[:=]\\s*(-?\\d+(?:\\.\\d+)?)")
    >>> parse_score("Fine. Score: 3. No wait, Score: 7", p, 0, 10), parse_score(" 4\\n", p, 0, 10)
    (7.0, 4.0)
    >>> parse_score("Score: 11", p, 0, 10), parse_score("I cannot grade this.", p, 0, 10)
    (None, None)
    """
    found = list(pattern.finditer(answer))
    if found:
        text = found[-1].group(1)
    else:
        bare = BARE_NUMBER.fullmatch(answer)
        if bare is None:
            return None
        text = bare.group(1)
    try:
        score = float(text)
    except (TypeError, ValueError):
        return None
    return score if lo <= score <= hi else None


def expected_score(positions: list[dict[str, float]], lo: float, hi: float) -> float | None:
    """The probability-weighted score at the first position whose top tokens include a number
    in [lo, hi]: sum p(s) s / sum p(s) over those tokens (their probabilities renormalized);
    None when no position has one.

    >>> expected_score([{" The": -0.1}, {" 2": math.log(0.6), " 4": math.log(0.2), "x": -1}], 0, 9)
    2.5
    >>> expected_score([{" 12": -0.1, "-1": -0.2}], 0, 9) is None
    True
    """
    for top in positions:
        weights: dict[float, float] = {}
        for token, logprob in top.items():
            bare = BARE_NUMBER.fullmatch(token)
            if bare is None:
                continue
            value = float(bare.group(1))
            if lo <= value <= hi:
                weights[value] = weights.get(value, 0.0) + math.exp(logprob)
        total = sum(weights.values())
        if total > 0:
            return sum(v * w for v, w in weights.items()) / total
    return None


class JudgeReward:
    """R = the judge's score of each completion (see the module docstring); keyword
    arguments: JudgeRewardConfig's fields."""

    def __init__(self, **settings):
        s = settings_of(JudgeRewardConfig, settings)
        self.lo, self.hi = float(s.min_score), float(s.max_score)
        if not self.lo < self.hi:
            raise ConfigError(
                f"reward.min_score={s.min_score} must be below reward.max_score={s.max_score}."
            )
        try:
            self.pattern = re.compile(str(s.score_pattern))
        except re.error as e:
            raise ConfigError(f"reward.score_pattern={s.score_pattern!r}: {e}.") from None
        if self.pattern.groups < 1:
            raise ConfigError(
                f"reward.score_pattern={s.score_pattern!r} has no group: put the number in "
                r"parentheses, e.g. 'Score:\s*(\d+)'."
            )
        self.template, self.rubric = str(s.template), str(s.rubric)
        self.render("p", "c", ["r"])  # an unknown field fails here, not on the first batch
        self.chat = choice(s.endpoint) == "chat"
        self.system_prompt, self.model = s.system_prompt, s.model
        self.max_tokens, self.seed = int(s.max_tokens), s.seed
        self.sampling = {"temperature": float(s.temperature)}
        self.fail = choice(s.on_unparsable) == "fail"
        self.unparsable_score = float(s.unparsable_score)
        self.normalize = bool(s.normalize)
        self.logprobs = choice(s.score_from) == JudgeScoreFrom.logprobs.value
        self.top_logprobs = int(s.top_logprobs)
        if self.logprobs:
            if self.top_logprobs < 1:
                raise ConfigError(
                    f"reward.top_logprobs={s.top_logprobs}: score_from=logprobs needs at least "
                    "1 top token per position (20 is vLLM's default cap)."
                )
            if self.lo < 0 or self.hi > 9:
                log.warning(
                    "reward.score_from=logprobs with scores from %g to %g: each score is read "
                    'as one token, and a number outside 0-9 is often several ("10" = "1" '
                    '"0"), so its first digit would be read. Use reward.min_score=0 '
                    "reward.max_score=9 (or 1-5) in the template's scale.",
                    self.lo,
                    self.hi,
                )
        self.client = RemoteClient(s, name="judge", prefix="reward")
        self.client.check_reachable("/models")
        self.n_judged = self.n_unparsable = 0

    def render(self, prompt: str, completion: str, references) -> str:
        refs = reference_list(references) or []
        fields = {
            "rubric": self.rubric,
            "prompt": prompt,
            "completion": completion,
            "reference": refs[0] if refs else "",
            "references": "\n".join(refs),
            "min_score": f"{self.lo:g}",
            "max_score": f"{self.hi:g}",
        }
        try:
            return self.template.format_map(fields)
        except KeyError as e:
            raise ConfigError(
                f"reward.template has the field {{{e.args[0]}}}, which rft does not fill; its "
                f"fields are {', '.join('{' + f + '}' for f in FIELDS)}. Write literal braces "
                "as {{ and }}."
            ) from None
        except (ValueError, IndexError) as e:
            raise ConfigError(
                f"reward.template does not format ({e}): write literal braces as {{{{ and }}}}."
            ) from None

    def body(self, text: str) -> dict:
        top = self.top_logprobs if self.logprobs else 0
        if not self.chat:
            return completion_body(
                self.model, text, self.max_tokens, self.sampling, seed=self.seed, top_logprobs=top
            )
        messages = [{"role": "system", "content": self.system_prompt}] * bool(self.system_prompt)
        messages.append({"role": "user", "content": text})
        return chat_body(
            self.model, messages, self.max_tokens, self.sampling, seed=self.seed, top_logprobs=top
        )

    def score(self, answer: Answer) -> float | None:
        """The judge's score in one answer (score_from), None when it has none in range."""
        if self.logprobs:
            return expected_score(answer.top_logprobs or [], self.lo, self.hi)
        return parse_score(answer.text, self.pattern, self.lo, self.hi)

    def verdicts(
        self, prompts: list[str], completions: list[str], references=None
    ) -> tuple[list[Answer], list[float | None], list[str]]:
        """The judge's answers, their scores (None: unparsable) and each request's name, asked
        through the client (its cache, caps and accounting)."""
        references = list(references) if references is not None else [None] * len(prompts)
        n = len(prompts)
        bodies = [self.body(self.render(*row)) for row in zip(prompts, completions, references)]
        whats = [f"judge request {i + 1} of {n}" for i in range(n)]
        route = "/chat/completions" if self.chat else "/completions"

        def validate(resp, what):
            return parse_answer(resp, what, self.chat, logprobs=self.logprobs).to_json()

        got = [Answer.from_json(a) for a in self.client.post_many(route, bodies, whats, validate)]
        return got, [self.score(a) for a in got], whats

    def __call__(self, prompts: list[str], completions: list[str], references=None) -> list[float]:
        got, scores, whats = self.verdicts(prompts, completions, references)
        n = len(got)
        answers = [a.text for a in got]
        out, bad = [], []
        for i, score in enumerate(scores):
            if score is None:
                bad.append(i)
                out.append(self.unparsable_score)
            elif self.normalize:
                out.append((score - self.lo) / (self.hi - self.lo))
            else:
                out.append(score)
        self.n_judged += n
        self.n_unparsable += len(bad)
        if bad:
            first = answers[bad[0]]
            where = f"no score in [{self.lo:g}, {self.hi:g}] " + (
                f"among its top {self.top_logprobs} tokens at any position"
                if self.logprobs
                else "(reward.score_pattern)"
            )
            if self.fail:
                raise RewardError(
                    f"reward=judge: the answer to {whats[bad[0]]} has {where}: {first[:200]!r} "
                    f"({len(bad)} of {n} answers in this batch). Ask for `Score: N` more firmly "
                    "in reward.rubric / reward.template, fix reward.score_pattern, or set "
                    "reward.on_unparsable=score (with reward.unparsable_score) to give such "
                    "answers a fixed score."
                )
            log.warning(
                "reward=judge: %d of %d answers have %s and get reward.unparsable_score=%g "
                "(first: %r); counted in remote/judge/unparsable.",
                len(bad),
                n,
                where,
                self.unparsable_score,
                first[:200],
            )
        return out

    def pop_stats(self) -> dict[str, float]:
        """``remote/judge/...``: the client's accounting and the unparsable answers so far."""
        out = self.client.pop_stats()
        out["remote/judge/unparsable"] = float(self.n_unparsable)
        if self.n_judged:
            out["remote/judge/unparsable_rate"] = self.n_unparsable / self.n_judged
        return out
