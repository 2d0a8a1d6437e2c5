"""Every guided algorithm with its guide behind a real OpenAI-compatible server on a loopback
port (tests/remote/server.py, a seeded scripted 'model'): the run asks it for roll-ins and
roll-outs and records the accounting; a run killed and resumed ends with the uninterrupted
run's metrics; the same command again is answered from the cache alone."""

from __future__ import annotations

import json

import pytest

from rft.alg.guided import GuidedPPO
from tests.conftest import compose_cfg, tiny_overrides
from tests.remote.server import FakeServer

SMALL = (
    "alg.n_iterations=2",
    "alg.rollout_prompts=4",
    "alg.minibatch_size=2",
    "alg.update_epochs=1",
    "alg.eval_every=0",
    "alg.lr=1e-3",
    "alg.score_batch_size=4",
    "alg.restart_prob.ppo_pp=1.0",  # every sample asks the guide: both paths run on 4 episodes
    "alg.restart_prob.aggrevated=1.0",
    "eval.before_training=false",
    "task.n_eval_prompts=2",
    "task.n_test_prompts=2",
    "eval.batch_size=2",
)


def overrides(data, alg: str, url: str, cache, *extra):
    return tiny_overrides(
        data,
        f"alg={alg}",
        *SMALL,
        f"alg.guide.remote.base_url={url}",
        "alg.guide.remote.model=guide",
        f"alg.guide.remote.cache_dir={cache}",
        "alg.guide.remote.backoff_s=0.001",
        *extra,
    )


def drop_times(metrics: dict) -> dict:
    """Metrics without wall times and the store's reuse accounting (a later run with the same
    final policy reads the test evaluation from the store: same numbers, plus reused/*)."""
    return {k: v for k, v in metrics.items() if not k.startswith(("time/", "reused/"))}


def history(run):
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    return [r for r in rows if "guided/restart_share" in r]


@pytest.mark.parametrize("alg", ["ppo_pp", "aggrevated", "lols", "dlols"])
def test_every_guided_algorithm_runs_with_a_remote_guide(alg, prompts_file, tmp_path, monkeypatch):
    from rft.train import train
    from tests.remote.test_key_never_leaks import KEY, files_holding

    monkeypatch.setenv("RFT_GUIDE_KEY", KEY)
    with FakeServer(api_key=KEY) as srv:
        cfg = compose_cfg(
            *overrides(
                prompts_file,
                alg,
                srv.url,
                tmp_path / "cache",
                "alg.guide.remote.api_key_env=RFT_GUIDE_KEY",
            )
        )
        metrics = train(cfg, run_dir=tmp_path / "run")
        sent = srv.posts("/completions")
    assert "test/reward_mean" in metrics
    assert files_holding(tmp_path, KEY) == []  # run folder and guide cache
    rows = history(tmp_path / "run")
    assert [r["guided/restart_share"] for r in rows] == [1.0, 1.0]
    # each iteration asks for its 4 roll-ins (PPO++) or 4 roll-outs (AggreVaTeD)
    assert len(sent) == 8 and [r["remote/guide/requests"] for r in rows] == [4.0, 8.0]
    assert (
        rows[-1]["remote/guide/completion_tokens"] > 0 and "remote/guide/latency_mean_s" in rows[0]
    )
    rollouts = [s for s in sent if s["body"]["max_tokens"] < 8]  # after the policy's k tokens
    n_aggrevated = sum(r["guided/scheme_aggrevated"] for r in rows)
    assert len(rollouts) == 4 * n_aggrevated


def test_a_run_killed_after_asking_the_guide_resumes_from_the_cache_to_the_same_metrics(
    prompts_file, tmp_path, monkeypatch
):
    """Killed in iteration 2 after its guide requests: the resumed run redoes iteration 2 with
    the cached answers (no request) and ends where the uninterrupted run ends; the same command
    again in a new folder sends nothing at all."""
    from rft.train import train
    from tests.conftest import Killed

    collect = GuidedPPO.collect_rollout

    def dies_after_asking(self, examples):
        out = collect(self, examples)
        if self.current_epoch == 1:
            raise Killed("simulated kill")
        return out

    with FakeServer() as srv:
        straight = train(
            compose_cfg(*overrides(prompts_file, "dlols", srv.url, tmp_path / "c1")),
            run_dir=tmp_path / "straight",
        )
        assert len(srv.posts()) == 8
        killed = overrides(prompts_file, "dlols", srv.url, tmp_path / "c2")
        monkeypatch.setattr(GuidedPPO, "collect_rollout", dies_after_asking)
        with pytest.raises(Killed):
            train(compose_cfg(*killed), run_dir=tmp_path / "resumed")
        assert len(srv.posts()) == 16
        monkeypatch.setattr(GuidedPPO, "collect_rollout", collect)
        resumed = train(compose_cfg(*killed), run_dir=tmp_path / "resumed")
        again = train(
            compose_cfg(*overrides(prompts_file, "dlols", srv.url, tmp_path / "c1")),
            run_dir=tmp_path / "again",
        )
        assert len(srv.posts()) == 16  # neither the resume nor the repeat asked the server
    for m in (resumed, again):
        assert drop_times(m) == pytest.approx(drop_times(straight))
    last = history(tmp_path / "resumed")[-1]  # the resumed process: iteration 2 from the cache
    assert (last["remote/guide/requests"], last["remote/guide/cache_hits"]) == (0.0, 4.0)
    rows = history(tmp_path / "again")
    assert [r["remote/guide/cache_hit_rate"] for r in rows] == [1.0, 1.0]
    losses = [[r["loss/policy"] for r in history(tmp_path / d)] for d in ("straight", "resumed")]
    assert losses[0] == pytest.approx(losses[1])
