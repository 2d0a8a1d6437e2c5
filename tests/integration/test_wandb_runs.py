"""Two runs in one process (a local --multirun, a driver script) get two W&B runs: Lightning's
WandbLogger.finalize leaves the wandb run open, so without rft.loggers.close_loggers the second
run's metrics went into the first run's W&B run."""

from __future__ import annotations

import pytest

from tests.conftest import PPO_SMALL, compose_cfg, tiny_overrides, write_prompts


def test_each_train_call_logs_to_its_own_wandb_run_and_ends_it(tmp_path, monkeypatch):
    import wandb

    from rft.train import train

    if wandb.run is not None:
        wandb.finish()
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = write_prompts(tmp_path / "p.jsonl", n=12)
    ids = []
    for name in ("a", "b"):
        run = tmp_path / name
        train(compose_cfg(*tiny_overrides(data, *PPO_SMALL, "logger=wandb")), run_dir=run)
        assert wandb.run is None, "the run's W&B run is still open after train() returned"
        (offline,) = (run / "wandb").glob("offline-run-*")  # this run's own W&B folder
        assert any(offline.glob("*.wandb"))
        ids.append((run / ".wandb_id").read_text().strip())
        assert offline.name.endswith(ids[-1])
    assert ids[0] != ids[1]


def test_a_failed_run_ends_its_wandb_run_too(tmp_path, monkeypatch):
    import wandb

    from rft import train as train_mod

    if wandb.run is not None:
        wandb.finish()
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = write_prompts(tmp_path / "p.jsonl", n=12)

    def run_then_fail(cfg, module, run_dir, ckpt, desc, loggers, eval_before):
        assert loggers[0].experiment is wandb.run is not None  # started, as the first metric would
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(train_mod, "run_module", run_then_fail)
    with pytest.raises(RuntimeError, match="killed mid-run"):
        train_mod.train(
            compose_cfg(*tiny_overrides(data, *PPO_SMALL, "logger=wandb")), run_dir=tmp_path / "r"
        )
    assert wandb.run is None
