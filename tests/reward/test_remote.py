"""reward=remote against a real reward server on a loopback port (tests/remote/server.py): the
JSON contract both ways, batches, the OpenRLHF protocol, malformed answers named, a server down
at build time, the stats a run records."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from rft.config import RemoteRewardConfig, WeightedSumRewardConfig
from rft.errors import ConfigError, RemoteError
from rft.reward import build_reward
from tests.remote.server import FakeServer, default_scorer

PROMPTS = [f"prompt {i}" for i in range(7)]
COMPLETIONS = ["good good bad", "bad", "", "good", "fun good dull good", "x", "good x"]
REFS = [["r a", "r b"], "only one", None, [], ["r"], None, ["z"]]


def reward_cfg(url: str, **kw):
    base = {"base_url": url, "backoff_s": 0.001, "jitter": 0.0}
    return OmegaConf.merge(OmegaConf.structured(RemoteRewardConfig), {**base, **kw})


def test_scores_follow_the_contract_in_batches():
    with FakeServer() as srv:
        r = build_reward(reward_cfg(srv.root, batch_size=3, model="rm-1", max_concurrency=1))
        scores = r(PROMPTS, COMPLETIONS, REFS)
        bodies = [p["body"] for p in srv.posts("/score")]
    assert scores.tolist() == pytest.approx(default_scorer(PROMPTS, COMPLETIONS, REFS))
    assert [len(b["prompts"]) for b in bodies] == [3, 3, 1]
    assert bodies[0] == {
        "prompts": PROMPTS[:3],
        "completions": COMPLETIONS[:3],
        "references": [["r a", "r b"], ["only one"], None],
        "model": "rm-1",
    }
    assert bodies[1]["references"] == [[], ["r"], None]
    s = r.pop_stats()
    assert s["remote/reward/requests"] == 3 and s["remote/reward/answers"] == 3
    assert s["remote/reward/latency_mean_s"] > 0


def test_openrlhf_protocol():
    with FakeServer() as srv:
        r = build_reward(reward_cfg(srv.root, path="/get_reward", protocol="openrlhf"))
        scores = r(PROMPTS[:3], COMPLETIONS[:3], REFS[:3])
        (body,) = [p["body"] for p in srv.posts("/get_reward")]
    assert body == {
        "query": [p + c for p, c in zip(PROMPTS[:3], COMPLETIONS[:3])],
        "prompts": PROMPTS[:3],
        "labels": ["r a", "only one", ""],
    }
    assert scores.tolist() == pytest.approx(default_scorer(PROMPTS[:3], COMPLETIONS[:3], None))


@pytest.mark.parametrize(
    "scorer,fault,match",
    [
        (None, "nofield", r"reward batch 1 of 2 \(rows 0-3\): `scores` is missing"),
        (lambda p, c, r: [1.0] * (len(c) - 1), None, r"`scores` has 3 values for 4 rows"),
        (lambda p, c, r: [1.0, "high", 0.0, 0.0][: len(c)], None, r"`scores\[1\]` is 'high'"),
        (lambda p, c, r: [1.0, None, 0.0, 0.0][: len(c)], None, r"`scores\[1\]` is None"),
    ],
)
def test_malformed_answers_name_the_field_and_the_batch(scorer, fault, match):
    with FakeServer(**({"scorer": scorer} if scorer else {})) as srv:
        r = build_reward(reward_cfg(srv.root, batch_size=4, max_concurrency=1))
        srv.faults += [fault] if fault else []
        with pytest.raises(RemoteError, match=match):
            r(PROMPTS, COMPLETIONS, REFS)


def test_a_server_down_at_build_time_is_one_clear_error():
    with FakeServer() as srv:
        root = srv.root
    with pytest.raises(
        RemoteError, match=r"the reward server .* cannot be reached at start-up: GET .*/health"
    ):
        build_reward(reward_cfg(root))
    with pytest.raises(ConfigError, match=r"reward.base_url is not set"):
        build_reward(OmegaConf.structured(RemoteRewardConfig))
    with pytest.raises(ConfigError, match=r"reward: Key 'url' not in 'RemoteRewardConfig'"):
        from rft.reward.remote import RemoteReward

        RemoteReward(url="http://x")


def test_a_weighted_sum_passes_its_remote_terms_stats_on():
    with FakeServer() as srv:
        terms = {
            "rm": {"weight": 2.0, "reward": {**reward_cfg(srv.root)}},
            "len": {
                "weight": 1.0,
                "reward": {"_target_": "rft.reward.basic.length_reward", "target_words": 2},
            },
        }
        cfg = OmegaConf.merge(OmegaConf.structured(WeightedSumRewardConfig), {"terms": terms})
        r = build_reward(cfg)
        scores = r(PROMPTS[:2], COMPLETIONS[:2], REFS[:2])
    rm = default_scorer(None, COMPLETIONS[:2], None)
    assert scores.tolist() == pytest.approx([2 * rm[0] + 0.5, 2 * rm[1] + 0.5])
    assert r.pop_stats()["remote/reward/requests"] == 1
    assert build_reward({"_target_": "rft.reward.basic.length_reward"}).pop_stats() == {}
