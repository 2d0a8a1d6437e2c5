"""Each bad input gets one clear message naming the key or file (and line) and the fix."""

from __future__ import annotations

import json

import pytest

from rft.errors import ConfigError, DataError, RewardError
from rft.reward.base import CheckedReward
from rft.train import train
from tests.conftest import PPO_SMALL, compose_cfg, run_cli, tiny_overrides


def test_cli_unknown_key_no_traceback():
    p = run_cli("alg.lrr=1")
    assert p.returncode != 0
    assert "lrr" in p.stderr and "Traceback" not in p.stderr


def test_cli_unknown_choice_lists_options():
    p = run_cli("alg=ppoo")
    assert p.returncode != 0
    assert "Available options in 'alg'" in p.stderr and "Traceback" not in p.stderr


def test_cli_missing_data_dir_is_one_clear_line(tmp_path):
    p = run_cli(
        "model=tiny",
        "logger=none",
        f"task.data_dir={tmp_path / 'nope'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert p.returncode == 2
    assert "task.data_dir" in p.stderr and "RFT_DATA_DIR" in p.stderr
    assert "Traceback" not in p.stderr


def test_missing_data_dir_error(tmp_path):
    cfg = compose_cfg("model=tiny", "logger=none", f"task.data_dir={tmp_path}")
    with pytest.raises(DataError, match="no IMDB files"):
        train(cfg, run_dir=tmp_path / "run")


def test_malformed_jsonl_row_names_file_and_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a"}\n{"prompt": "b"\n{"prompt": "c"}\n')
    cfg = compose_cfg(*tiny_overrides(f, *PPO_SMALL))
    with pytest.raises(DataError, match=r"p\.jsonl:2: not valid JSON"):
        train(cfg, run_dir=tmp_path / "run")


def test_missing_prompt_field_names_key(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a"}\n{"question": "b"}\n')
    cfg = compose_cfg(*tiny_overrides(f, *PPO_SMALL))
    with pytest.raises(DataError, match=r"p\.jsonl:2: no 'prompt' field.*task.prompt_key"):
        train(cfg, run_dir=tmp_path / "run")


def test_empty_prompt_file(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("\n")
    cfg = compose_cfg(*tiny_overrides(f, *PPO_SMALL))
    with pytest.raises(DataError, match="no prompts"):
        train(cfg, run_dir=tmp_path / "run")


def test_csv_prompts_work_and_bad_csv_column(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("text,answer\n" + "".join(f"prompt {i},ref {i}\n" for i in range(20)))
    cfg = compose_cfg(
        *tiny_overrides(f, *PPO_SMALL), "task.prompt_key=text", "task.reference_key=answer"
    )
    from rft.errors import instantiate

    task = instantiate(cfg.task, _convert_="none")
    assert len(task.train) + len(task.val) + len(task.test) == 20
    assert task.train[0].reference.startswith("ref")
    bad = compose_cfg(*tiny_overrides(f, *PPO_SMALL))
    with pytest.raises(DataError, match=r"p\.csv:2: no 'prompt' field"):
        instantiate(bad.task, _convert_="none")


def nan_reward(prompts, completions, references):
    return [float("nan")] * len(completions)


def short_reward(prompts, completions, references):
    return [1.0] * (len(completions) - 1)


def test_reward_nan_is_rejected():
    r = CheckedReward(nan_reward, name="nan_reward")
    with pytest.raises(RewardError, match="non-finite"):
        r(["p"], ["c"], [None])


def test_reward_wrong_count_is_rejected():
    r = CheckedReward(short_reward, name="short_reward")
    with pytest.raises(RewardError, match="returned 1 values for 2 completions"):
        r(["p", "q"], ["c", "d"], [None, None])


def test_reward_nan_during_training_keeps_checkpoint(prompts_file, tmp_path):
    """A bad reward stops the run with a clear error; the last saved checkpoint still loads."""
    over = tiny_overrides(prompts_file, *PPO_SMALL)
    run = tmp_path / "run"
    train(compose_cfg(*over), run_dir=run)
    ckpt = run / "checkpoints" / "state.ckpt"
    before = ckpt.stat().st_mtime_ns
    cfg = compose_cfg(
        *over,
        "alg.n_iterations=4",
        "reward=custom",
        "reward._target_=tests.integration.test_bad_input.nan_reward",
    )
    with pytest.raises(RewardError):
        train(cfg, run_dir=run)
    import torch

    assert ckpt.stat().st_mtime_ns == before
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1


def test_unimportable_reward_target(prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *PPO_SMALL), "reward=custom", "reward._target_=nope.module.fn"
    )
    with pytest.raises(ConfigError, match="reward._target_='nope.module.fn' could not be imported"):
        train(cfg, run_dir=tmp_path / "run")


def test_resume_path_missing(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), f"resume={tmp_path / 'nope'}")
    with pytest.raises(ConfigError, match="resume=.*no checkpoint there"):
        train(cfg, run_dir=tmp_path / "run")


def test_init_from_missing(prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *PPO_SMALL), f"model.init_from={tmp_path / 'nope'}"
    )
    with pytest.raises(ConfigError, match="model.init_from=.*no save_pretrained checkpoint"):
        train(cfg, run_dir=tmp_path / "run")


def test_minibatch_larger_than_rollout(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), "alg.minibatch_size=64")
    with pytest.raises(ConfigError, match="alg.minibatch_size=64"):
        train(cfg, run_dir=tmp_path / "run")


def _fails_midway(error: BaseException):
    """A Trainer.save_checkpoint that writes part of the file, then raises ``error``."""

    def save(self, filepath, *a, **k):
        with open(filepath, "wb") as f:
            f.write(b"partial")
        raise error

    return save


@pytest.mark.parametrize("cause", ["kill", "disk_full"])
def test_failed_save_keeps_previous_checkpoint(prompts_file, tmp_path, monkeypatch, cause):
    """A save that dies halfway leaves the previous state.ckpt byte-identical (step 2). A full
    disk (ENOSPC) is one DiskFullError that names the folder, the size and the step a rerun
    resumes from, and leaves no half-written temp file."""
    import errno

    import lightning as L

    from rft.callbacks import DiskFullError

    run = tmp_path / "run"
    train(compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL)), run_dir=run)
    ckpt = run / "checkpoints" / "state.ckpt"
    good = ckpt.read_bytes()

    error, expected = {
        "kill": (RuntimeError("killed during save"), RuntimeError),
        "disk_full": (OSError(errno.ENOSPC, "No space left on device"), DiskFullError),
    }[cause]
    monkeypatch.setattr(L.Trainer, "save_checkpoint", _fails_midway(error))
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL, "alg.n_iterations=3"))
    with pytest.raises(expected) as e:
        train(cfg, run_dir=run)
    assert ckpt.read_bytes() == good
    assert json.loads((run / "checkpoints" / "state.json").read_text())["step"] == 2
    if cause == "disk_full":
        msg = str(e.value)
        assert str(run / "checkpoints") in msg
        assert "previous checkpoint (step 2) is intact" in msg
        assert "GB" in msg and "rerun the same command" in msg
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names == ["state.ckpt", "state.json"]


def test_low_disk_space_warns_before_training(prompts_file, tmp_path, monkeypatch, caplog):
    import logging
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with caplog.at_level(logging.WARNING, logger="rft.callbacks"):
        train(compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL)), run_dir=tmp_path / "run")
    warned = [r.getMessage() for r in caplog.records if "GB free" in r.getMessage()]
    assert len(warned) == 1 and "saves will fail" in warned[0]
