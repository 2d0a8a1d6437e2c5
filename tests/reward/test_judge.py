"""reward=judge against a real OpenAI-compatible server on a loopback port whose 'judge' is
scripted: the rendered prompt and request, the score parsed and normalized, the unparsable
policies (fail / a fixed score with a warning, counted), bad settings named, the cache."""

from __future__ import annotations

import logging
import math
import re

import pytest
from omegaconf import OmegaConf

from rft.config import JudgeRewardConfig
from rft.errors import ConfigError, RemoteError, RewardError
from rft.reward import build_reward
from tests.remote.server import FakeServer

COMPLETIONS = ["good good bad", "bad", "good ???", "good good good good good good good"]


def judge(body: dict, chat: bool) -> dict:
    """Scores 2 per 'good' in the graded text (capped at 10); '???' gets a refusal, more than
    five 'good' an out-of-range 12."""
    text = body["messages"][-1]["content"] if chat else body["prompt"]
    graded = re.search(r"Text:\n(.*)\n\nReply", text, re.S).group(1)
    n = graded.split().count("good")
    if "???" in graded:
        answer = "I cannot grade this."
    elif n > 5:
        answer = "Score: 12"
    else:
        answer = f"It reads fine. Score: {2 * n}"
    return {"text": answer, "finish_reason": "stop", "completion_tokens": len(answer.split())}


def judge_cfg(url: str, **kw):
    base = {"base_url": url, "model": "judge", "backoff_s": 0.001, "jitter": 0.0}
    return OmegaConf.merge(OmegaConf.structured(JudgeRewardConfig), {**base, **kw})


def test_scores_are_parsed_and_normalized():
    with FakeServer(models=("judge",), generator=judge) as srv:
        r = build_reward(judge_cfg(srv.url, rubric="Count the good words.", max_concurrency=1))
        scores = r(["p1", "p2"], COMPLETIONS[:2], [["ref a", "ref b"], None])
        body = srv.posts("/chat/completions")[0]["body"]
    assert scores.tolist() == pytest.approx([0.4, 0.0])  # Score 4 and 0 of [0, 10]
    assert body["messages"] == [
        {
            "role": "user",
            "content": "You grade a text written in answer to a prompt.\n"
            "Rubric: Count the good words.\n\nPrompt:\np1\n\nText:\ngood good bad\n\n"
            "Reply with one line `Score: N`, N an integer from 0 to 10.",
        }
    ]
    assert (body["model"], body["temperature"], body["max_tokens"], body["seed"]) == (
        "judge",
        0.0,
        32,
        0,
    )


def test_completions_endpoint_raw_scores_and_template_fields():
    template = (
        "{rubric}|{reference}|{references}|{min_score}-{max_score}\nText:\n{completion}\n\nReply"
    )
    with FakeServer(models=("judge",), generator=judge) as srv:
        r = build_reward(
            judge_cfg(
                srv.url, endpoint="completions", template=template, normalize=False, seed=None
            )
        )
        assert r(["p"], ["good good"], [["a", "b"]]).tolist() == [4.0]
        body = srv.posts("/completions")[0]["body"]
    assert body["prompt"].startswith(
        "How well does the text answer or continue the prompt?|a|a\nb|0-10\n"
    )
    assert "seed" not in body


def test_unparsable_answers_fail_by_default_naming_the_answer():
    with FakeServer(models=("judge",), generator=judge) as srv:
        r = build_reward(judge_cfg(srv.url))
        with pytest.raises(RewardError) as e:
            r(["p"] * 3, COMPLETIONS[:3], None)
    msg = str(e.value)
    assert "judge request 3 of 3 has no score in [0, 10]" in msg
    assert "'I cannot grade this.'" in msg and "reward.on_unparsable=score" in msg


def test_unparsable_answers_get_the_fixed_score_with_a_warning_and_are_counted(caplog):
    with FakeServer(models=("judge",), generator=judge) as srv:
        r = build_reward(judge_cfg(srv.url, on_unparsable="score", unparsable_score=-1.0))
        with caplog.at_level(logging.WARNING, logger="rft.reward.judge"):
            scores = r(["p"] * 4, COMPLETIONS, None)
        assert "2 of 4 answers have no score in [0, 10]" in caplog.text
        assert "'I cannot grade this.'" in caplog.text
        r(["p"], COMPLETIONS[:1], None)
    assert scores.tolist() == pytest.approx([0.4, 0.0, -1.0, -1.0])  # out of range: unparsable
    s = r.pop_stats()
    assert s["remote/judge/unparsable"] == 2 and s["remote/judge/unparsable_rate"] == 0.4
    assert s["remote/judge/requests"] == 5


def test_verdicts_are_cached_and_repeats_sent_once(tmp_path):
    with FakeServer(models=("judge",), generator=judge) as srv:
        cfg = judge_cfg(srv.url, cache_dir=str(tmp_path))
        first = build_reward(cfg)(["p", "p", "q"], ["good", "good", "bad"], None)
        assert len(srv.posts()) == 2  # the repeated (prompt, completion) once
        second = build_reward(cfg)(["p", "p", "q"], ["good", "good", "bad"], None)
        assert len(srv.posts()) == 2
    assert second.tolist() == first.tolist() == pytest.approx([0.2, 0.2, 0.0])


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"template": "{prompt} {answer}"}, r"reward.template has the field \{answer\}"),
        ({"template": "Score {"}, r"reward.template does not format"),
        ({"score_pattern": r"Score: \d+"}, r"reward.score_pattern=.* has no group"),
        ({"score_pattern": r"Score: (\d+"}, r"reward.score_pattern=.*missing \)"),
        ({"min_score": 5, "max_score": 5}, r"reward.min_score=5.0 must be below"),
    ],
)
def test_bad_settings_name_the_key(kw, match):
    with pytest.raises(ConfigError, match=match):
        build_reward(judge_cfg("http://127.0.0.1:9/v1", **kw))


def test_a_judge_not_serving_the_model_fails_at_build_time():
    with FakeServer(models=("judge",), generator=judge) as srv:
        with pytest.raises(ConfigError, match=r"reward.model=gpt-x: .* serves \['judge'\]"):
            build_reward(judge_cfg(srv.url, model="gpt-x"))


def digit_judge(body: dict, chat: bool) -> dict:
    """Answers ' It is 2' with top tokens at each position: the first holds no number, the
    second ' 2' (p 0.5), ' 4' (0.25) and ' x' (0.25), in the completions or the chat form;
    '???' in the graded text gets top tokens without any number."""
    text = body["messages"][-1]["content"] if chat else body["prompt"]
    top = [{" It": math.log(0.9), " I": math.log(0.1)}]
    if "???" not in text:
        top.append({" 2": math.log(0.5), " 4": math.log(0.25), " x": math.log(0.25)})
    if chat:
        lp = {
            "content": [
                {
                    "token": next(iter(t)),
                    "logprob": next(iter(t.values())),
                    "top_logprobs": [{"token": k, "logprob": v} for k, v in t.items()],
                }
                for t in top
            ]
        }
    else:
        lp = {"top_logprobs": top, "tokens": [next(iter(t)) for t in top]}
    return {"text": " It is 2", "finish_reason": "stop", "completion_tokens": 3, "logprobs": lp}


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_logprob_scores_are_the_probability_weighted_mean(endpoint):
    """score_from=logprobs: (2 * 0.5 + 4 * 0.25) / 0.75 at the first position with a score
    token, normalized to [0, 9]; the request asks for the top tokens in the endpoint's form."""
    with FakeServer(models=("judge",), generator=digit_judge) as srv:
        cfg = judge_cfg(srv.url, endpoint=endpoint, score_from="logprobs", max_score=9)
        cfg.top_logprobs = 5
        scores = build_reward(cfg)(["p"], ["good"], None)
        body = srv.posts()[-1]["body"]
    assert scores.tolist() == pytest.approx([(2 * 0.5 + 4 * 0.25) / 0.75 / 9])
    if endpoint == "chat":
        assert (body["logprobs"], body["top_logprobs"]) == (True, 5)
    else:
        assert body["logprobs"] == 5 and "top_logprobs" not in body


def test_logprob_scores_unparsable_without_a_score_token_and_cached(tmp_path, caplog):
    with FakeServer(models=("judge",), generator=digit_judge) as srv:
        cfg = judge_cfg(
            srv.url,
            endpoint="completions",
            score_from="logprobs",
            max_score=9,
            on_unparsable="score",
            cache_dir=str(tmp_path),
        )
        with caplog.at_level(logging.WARNING, logger="rft.reward.judge"):
            first = build_reward(cfg)(["p", "p"], ["good", "???"], None).tolist()
        assert "1 of 2 answers have no score in [0, 9] among its top 20 tokens" in caplog.text
        again = build_reward(cfg)(["p", "p"], ["good", "???"], None).tolist()
        assert len(srv.posts("/completions")) == 2  # the second reward read the cache
    assert first == again == pytest.approx([(2 / 0.75 * 0.5 + 4 / 0.75 * 0.25) / 9, 0.0])


def test_logprob_scores_need_a_server_that_returns_them():
    with FakeServer(models=("judge",), generator=judge) as srv:
        r = build_reward(judge_cfg(srv.url, score_from="logprobs", max_score=9))
        with pytest.raises(RemoteError, match=r"no `choices\[0\].logprobs`.*score_from=text"):
            r(["p"], ["good"], None)


def test_logprob_scores_warn_for_a_scale_of_several_tokens(caplog):
    with FakeServer(models=("judge",), generator=digit_judge) as srv:
        with caplog.at_level(logging.WARNING, logger="rft.reward.judge"):
            build_reward(judge_cfg(srv.url, score_from="logprobs"))
    assert "scores from 0 to 10" in caplog.text and "reward.max_score=9" in caplog.text
    with pytest.raises(ConfigError, match="reward.top_logprobs=0"):
        build_reward(judge_cfg("http://127.0.0.1:9/v1", score_from="logprobs", top_logprobs=0))
