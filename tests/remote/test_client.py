"""rft.remote.client against a real HTTP server on a loopback port (tests/remote/server.py):
retries and their waits, Retry-After, caps, accounting, the cache, faults named in errors."""

from __future__ import annotations

import time

import pytest
from omegaconf import OmegaConf

from rft.config import RemoteServerConfig
from rft.errors import ConfigError, RemoteError
from rft.remote.client import RemoteClient
from rft.remote.openai import completion_body, parse_answer
from tests.remote.server import FakeServer, scripted_completion

FAST = {"backoff_s": 0.001, "backoff_max_s": 0.002, "jitter": 0.0, "timeout_s": 2.0}


def settings(url: str, **kw):
    return OmegaConf.merge(
        OmegaConf.structured(RemoteServerConfig), {"base_url": url, **FAST, **kw}
    )


def body(prompt: str = "a prompt", seed: int = 1) -> dict:
    return completion_body("guide", prompt, 4, {"temperature": 1.0}, seed=seed)


def validate(resp, what):
    return parse_answer(resp, what, chat=False).to_json()


def test_answers_come_back_in_order_with_usage_counted():
    with FakeServer() as srv:
        c = RemoteClient(settings(srv.url, max_concurrency=4), "guide", "alg.guide.remote")
        prompts = [f"prompt {i}" for i in range(6)]
        got = c.post_many("/completions", [body(p) for p in prompts], ["r"] * 6, validate=validate)
    assert [g["text"] for g in got] == [scripted_completion(p, 4, 0, 1)[0] for p in prompts]
    s = c.pop_stats()
    # the server reports prompt tokens = words of the prompt (2), completion = words written
    completion = sum(scripted_completion(p, 4, 0, 1)[2] for p in prompts)
    assert s["remote/guide/requests"] == 6 and s["remote/guide/answers"] == 6
    assert s["remote/guide/prompt_tokens"] == 12
    assert s["remote/guide/completion_tokens"] == completion
    assert s["remote/guide/retries"] == 0 and s["remote/guide/latency_max_s"] > 0
    assert "remote/guide/latency_mean_s" not in c.pop_stats()  # latency: since the last pop


@pytest.mark.parametrize("fault", ["500", "503", "429", "drop", "slow:0.6"])
def test_transient_faults_are_retried(fault):
    with FakeServer() as srv:
        srv.faults += [fault, fault]
        c = RemoteClient(settings(srv.url, timeout_s=0.3), "guide", "g")
        got = c.post_many("/completions", [body()], ["r"], validate=validate)
    assert got[0]["text"] == scripted_completion("a prompt", 4, 0, 1)[0]
    s = c.stats()
    assert (s["remote/guide/requests"], s["remote/guide/retries"]) == (3, 2)
    assert s["remote/guide/failed_tries"] == 2 and s["remote/guide/answers"] == 1


def test_backoff_doubles_up_to_its_cap():
    """Without Retry-After the waits are backoff_s · 2^n capped (jitter 0): 0.05, 0.1, 0.1."""
    with FakeServer() as srv:
        srv.faults += ["500"] * 3
        c = RemoteClient(settings(srv.url, backoff_s=0.05, backoff_max_s=0.1), "guide", "g")
        t0 = time.perf_counter()
        c.post_many("/completions", [body()], ["r"])
        elapsed = time.perf_counter() - t0
    assert c.stats()["remote/guide/wait_s"] == pytest.approx(0.25)
    assert 0.25 <= elapsed < 1.5


@pytest.mark.parametrize("fault,wait", [("429:0.3", 0.3), ("429ms:200", 0.2)])
def test_retry_after_is_honoured(fault, wait):
    """The server's wait replaces the (here 1 ms) backoff."""
    with FakeServer() as srv:
        srv.faults.append(fault)
        c = RemoteClient(settings(srv.url), "guide", "g")
        t0 = time.perf_counter()
        c.post_many("/completions", [body()], ["r"])
        elapsed = time.perf_counter() - t0
        times = [r for r in srv.requests if r["method"] == "POST"]
    assert len(times) == 2
    assert c.stats()["remote/guide/wait_s"] == pytest.approx(wait)
    assert wait <= elapsed < wait + 1.0


def test_a_long_retry_after_stops_at_once():
    with FakeServer() as srv:
        srv.faults.append("429:3600")
        c = RemoteClient(settings(srv.url, retry_after_max_s=5), "guide", "alg.guide.remote")
        t0 = time.perf_counter()
        with pytest.raises(RemoteError, match=r"wait 3600 s.*alg.guide.remote.retry_after_max_s=5"):
            c.post_many("/completions", [body()], ["roll-in request 1 of 1"])
    assert time.perf_counter() - t0 < 1.0


def test_retries_exhausted_name_the_server_the_request_and_the_fix():
    with FakeServer() as srv:
        srv.faults += ["500"] * 3
        c = RemoteClient(
            settings(srv.url, max_retries=2, model="guide"), "guide", "alg.guide.remote"
        )
        with pytest.raises(RemoteError) as e:
            c.post_many("/completions", [body()], ["roll-in request 1 of 1"])
    msg = str(e.value)
    assert f"the guide server {srv.url} (model guide)" in msg
    assert "roll-in request 1 of 1" in msg and "failed 3 times" in msg and "HTTP 500" in msg
    assert "rerun the same command" in msg and "alg.guide.remote.max_retries=2" in msg


def test_one_failure_abandons_the_rest_of_the_batch():
    """The failing request stops the batch: the others make no further tries."""
    with FakeServer() as srv:
        srv.faults += ["400"] + ["500"] * 50
        c = RemoteClient(
            settings(
                srv.url, max_retries=20, backoff_s=0.05, backoff_max_s=0.05, max_concurrency=4
            ),
            "guide",
            "g",
        )
        with pytest.raises(RemoteError, match="HTTP 400"):
            c.post_many("/completions", [body(str(i)) for i in range(4)], ["r"] * 4)
        assert len(srv.posts()) < 12


def test_malformed_answers_name_the_field_and_the_request():
    with FakeServer() as srv:
        c = RemoteClient(settings(srv.url), "guide", "alg.guide.remote")
        srv.faults.append("malformed")
        with pytest.raises(RemoteError, match=r"answer to roll-in request 2 of 5 .*is not JSON"):
            c.post_many("/completions", [body()], ["roll-in request 2 of 5"], validate=validate)
        srv.faults.append("nofield")
        with pytest.raises(RemoteError, match=r"roll-out request 1 of 3: no field `choices`"):
            c.post_many("/completions", [body()], ["roll-out request 1 of 3"], validate=validate)
    with pytest.raises(RemoteError, match=r"`choices\[0\].message`"):
        parse_answer({"choices": [{"text": "x"}]}, "judge request 1 of 1", chat=True)
    with pytest.raises(RemoteError, match=r"`choices\[0\].text` is int"):
        parse_answer({"choices": [{"text": 3}]}, "r", chat=False)


def test_caps_stop_the_run_naming_the_key():
    with FakeServer() as srv:
        c = RemoteClient(
            settings(srv.url, max_requests=3, max_concurrency=1), "guide", "alg.guide.remote"
        )
        with pytest.raises(RemoteError, match=r"alg.guide.remote.max_requests=3 reached"):
            c.post_many("/completions", [body(str(i)) for i in range(5)], ["r"] * 5)
        assert len(srv.posts()) == 3
        # retries count: 2 failures + 1 answer reach a cap of 3
        srv.faults += ["500", "500"]
        c = RemoteClient(settings(srv.url, max_requests=3), "guide", "g")
        c.post_many("/completions", [body()], ["r"])
        with pytest.raises(RemoteError, match="max_requests=3"):
            c.post_many("/completions", [body("other")], ["r"])
        # tokens: usage of the first answer (2 prompt + ≤4 completion) reaches a cap of 2
        c = RemoteClient(settings(srv.url, max_total_tokens=2), "guide", "reward")
        c.post_many("/completions", [body()], ["r"])
        with pytest.raises(RemoteError, match=r"reward.max_total_tokens=2 reached \(\d+ tokens"):
            c.post_many("/completions", [body("other")], ["r"])


def test_cache_second_run_sends_nothing(tmp_path):
    bodies = [body(f"p{i}", seed=i) for i in range(5)] + [body("p0", seed=0)]  # last: a repeat
    with FakeServer() as srv:
        c = RemoteClient(settings(srv.url, cache_dir=str(tmp_path)), "guide", "g")
        first = c.post_many(
            "/completions", bodies, ["r"] * 6, validate=validate, seeds=list(range(5)) + [0]
        )
        assert len(srv.posts()) == 5  # the repeat in one batch is sent once
        again = RemoteClient(settings(srv.url, cache_dir=str(tmp_path)), "guide", "g")
        second = again.post_many(
            "/completions", bodies, ["r"] * 6, validate=validate, seeds=list(range(5)) + [0]
        )
        assert len(srv.posts()) == 5
        # another seed (the K samples of one prompt) or cache_tag is another entry
        again.post_many("/completions", [bodies[0]], ["r"], seeds=[99])
        tagged = RemoteClient(
            settings(srv.url, cache_dir=str(tmp_path), cache_tag="v2"), "guide", "g"
        )
        tagged.post_many("/completions", [bodies[0]], ["r"], seeds=[0])
        assert len(srv.posts()) == 7
    assert second == first
    s = again.stats()
    assert s["remote/guide/cache_hits"] == 6 and s["remote/guide/requests"] == 1
    assert s["remote/guide/cache_hit_rate"] == pytest.approx(6 / 7)


def test_malformed_answers_are_not_cached(tmp_path):
    with FakeServer() as srv:
        c = RemoteClient(settings(srv.url, cache_dir=str(tmp_path)), "guide", "g")
        srv.faults.append("nofield")
        with pytest.raises(RemoteError):
            c.post_many("/completions", [body()], ["r"], validate=validate, seeds=[1])
        got = c.post_many("/completions", [body()], ["r"], validate=validate, seeds=[1])
    assert got[0]["text"] and len(srv.posts()) == 2


def test_key_from_env_or_file_is_sent_and_never_shown(tmp_path, monkeypatch):
    key = "sk-test-0123456789abcdef"
    monkeypatch.setenv("RFT_TEST_KEY", key)
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    with FakeServer(api_key=key) as srv:
        for kw in ({"api_key_env": "RFT_TEST_KEY"}, {"api_key_file": str(key_file)}):
            c = RemoteClient(settings(srv.url, **kw), "guide", "g")
            c.check_reachable()
            c.post_many("/completions", [body()], ["r"])
            assert key not in repr(c) and key not in str(c.stats())
        assert {r["headers"]["Authorization"] for r in srv.requests} == {f"Bearer {key}"}
        # a server quoting the key in its error: the message carries *** instead
        monkeypatch.setenv("RFT_TEST_KEY", key + "x")
        c = RemoteClient(settings(srv.url, api_key_env="RFT_TEST_KEY"), "guide", "alg.guide.remote")
        srv.api_key = key  # rejects key + "x"
        with pytest.raises(RemoteError, match="wants another API key") as e:
            c.post_many("/completions", [body()], ["r"])
        assert key not in str(e.value)


def test_missing_key_sources_name_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("RFT_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"reward.api_key_env=RFT_NO_SUCH_KEY: .*not set"):
        RemoteClient(
            settings("http://127.0.0.1:9/v1", api_key_env="RFT_NO_SUCH_KEY"), "reward", "reward"
        )
    with pytest.raises(ConfigError, match=r"reward.api_key_file=.*nope.txt: cannot read it"):
        RemoteClient(
            settings("http://127.0.0.1:9/v1", api_key_file=str(tmp_path / "nope.txt")),
            "reward",
            "reward",
        )
    with pytest.raises(ConfigError, match=r"reward.base_url is not set"):
        RemoteClient(settings(None), "reward", "reward")
    with pytest.raises(ConfigError, match=r"reward.base_url='localhost:8000' is not an http"):
        RemoteClient(settings("localhost:8000"), "reward", "reward")


def test_start_up_check():
    with FakeServer(models=("guide",)) as srv:
        RemoteClient(settings(srv.url, model="guide"), "guide", "g").check_reachable()
        with pytest.raises(
            ConfigError, match=r"alg.guide.remote.model=other: .* serves \['guide'\]"
        ):
            RemoteClient(
                settings(srv.url, model="other"), "guide", "alg.guide.remote"
            ).check_reachable()
        port = srv.port
    # the server is gone: one error naming it and what to do, after wait_ready_s of polling
    c = RemoteClient(
        settings(f"http://127.0.0.1:{port}/v1", wait_ready_s=0.3), "guide", "alg.guide.remote"
    )
    t0 = time.perf_counter()
    with pytest.raises(
        RemoteError,
        match=r"cannot be reached at start-up \(polled for 0.3 s\).*Start the server.*alg.guide.remote.base_url",
    ):
        c.check_reachable()
    assert time.perf_counter() - t0 >= 0.3


def test_refusals_are_not_retried_and_say_what_to_fix():
    with FakeServer() as srv:
        c = RemoteClient(
            settings(srv.url, model="nope"), "guide", "alg.guide.remote", reject_hint="HINT"
        )
        with pytest.raises(
            RemoteError, match=r"HTTP 404: .*does not exist.*Check alg.guide.remote.base_url"
        ):
            c.post_many("/completions", [completion_body("nope", "x", 4, {})], ["r"])
        srv.faults.append("400")
        with pytest.raises(RemoteError, match=r"HTTP 400: .*injected 400.*HINT"):
            c.post_many("/completions", [body()], ["r"])
        assert c.stats()["remote/guide/retries"] == 0
