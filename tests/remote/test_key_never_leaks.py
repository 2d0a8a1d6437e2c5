"""The API key of a remote model is read from where the config says and never written: not to
config.yaml, history, metrics, checkpoints, the W&B (offline) run, the console or the log. A
whole PPO run with reward=judge behind a server that demands the key, as a user would run it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.conftest import PPO_SMALL, compose_cfg, tiny_overrides, write_prompts
from tests.remote.server import FakeServer

KEY = "sk-rft-test-9f8e7d6c5b4a39281706"


def answer(body: dict, chat: bool) -> dict:
    return {"text": "Score: 7", "finish_reason": "stop", "completion_tokens": 3}


def files_holding(folder: Path, secret: str) -> list[str]:
    hits = []
    for p in folder.rglob("*"):
        if p.is_file() and secret.encode() in p.read_bytes():
            hits.append(str(p.relative_to(folder)))
    return hits


# W&B (offline) for one of the two (each train() ends its own W&B run: rft.loggers.close_loggers,
# tests/integration/test_wandb_runs.py); the guard below covers a run another test left open.
@pytest.mark.parametrize("source,logger", [("env", "wandb"), ("file", "csv")])
def test_the_key_is_used_but_never_written(source, logger, tmp_path, monkeypatch, capfd, caplog):
    import wandb

    from rft.train import train

    if wandb.run is not None:
        wandb.finish()
    if source == "env":
        monkeypatch.setenv("RFT_JUDGE_KEY", KEY)
        key_args = ["reward.api_key_env=RFT_JUDGE_KEY"]
    else:
        (tmp_path / "judge.key").write_text(KEY + "\n")
        key_args = [f"reward.api_key_file={tmp_path / 'judge.key'}"]
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "run"))
    data = write_prompts(tmp_path / "p.jsonl", n=12)
    run = tmp_path / "run"
    with FakeServer(api_key=KEY, models=("judge",), generator=answer) as srv:
        overrides = tiny_overrides(
            data,
            *PPO_SMALL,
            f"logger={logger}",
            "reward=judge",
            f"reward.base_url={srv.url}",
            "reward.model=judge",
            f"reward.cache_dir={tmp_path / 'run' / 'judge_cache'}",
            *key_args,
        )
        with caplog.at_level(logging.DEBUG):
            metrics = train(compose_cfg(*overrides), run_dir=run)
        judged = srv.posts("/chat/completions")
    # the key was sent, the judge scored the run (7 of 10)
    assert judged and {r["headers"]["Authorization"] for r in judged} == {f"Bearer {KEY}"}
    assert metrics["reward/mean"] == pytest.approx(0.7)
    assert (run / "config.yaml").is_file() and (run / "checkpoints").is_dir()
    assert any((run / "judge_cache").rglob("*.json"))
    assert any(run.rglob("*.wandb")) if logger == "wandb" else (run / "csv").is_dir()
    assert files_holding(run, KEY) == []
    out, err = capfd.readouterr()
    assert KEY not in out + err and KEY not in caplog.text
