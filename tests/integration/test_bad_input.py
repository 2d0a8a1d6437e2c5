"""Each bad input gets one clear message naming the key or file (and line) and the fix."""

from __future__ import annotations

import json
import os

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
        assert f"previous checkpoint ({ckpt}, step 2) is intact" in msg
        assert "one save needs about " in msg and " MiB)" in msg
        assert "rerun the same command" in msg
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names == ["state.ckpt", "state.json"]


# the free-space warning and every other full-disk case: tests/integration/test_disk_full.py


# ------------------------------------------------------------------ the user's own code raises
USER_REWARDS = """\
def boom(prompts, completions, references):
    scores = []
    for c in completions:
        scores.append(len(c) / 0)
    return scores


class Picky:
    def __init__(self, word="great"):
        raise ValueError(f"no lexicon for {word!r}")

    def __call__(self, prompts, completions, references):
        return [0.0] * len(completions)
"""


@pytest.fixture
def user_rewards(tmp_path, monkeypatch):
    """A user's reward module ``h4_user_rewards`` on sys.path (and PYTHONPATH for the CLI)."""
    import sys

    path = tmp_path / "h4_user_rewards.py"
    path.write_text(USER_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    yield path
    sys.modules.pop("h4_user_rewards", None)


def test_exception_in_a_users_reward_names_it_with_its_own_frame(
    user_rewards, prompts_file, tmp_path
):
    from rft.errors import UserCodeError

    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *PPO_SMALL),
        "reward=custom",
        "reward._target_=h4_user_rewards.boom",
    )
    with pytest.raises(UserCodeError) as e:
        train(cfg, run_dir=tmp_path / "run")
    msg = str(e.value)
    assert msg.startswith(
        "reward h4_user_rewards:boom raised ZeroDivisionError: division by zero\n"
    )
    assert f'File "{user_rewards}", line 4, in boom\n    scores.append(len(c) / 0)' in msg
    assert "reward._target_=h4_user_rewards.boom" in msg
    assert "fn(prompts, completions, references)" in msg
    # the user's frame only: nothing of rft's, Lightning's or Hydra's stack
    assert msg.count('File "') == 1
    assert "/rft/" not in msg and "lightning" not in msg


def test_exception_in_a_users_reward_class_init_names_it(user_rewards, prompts_file, tmp_path):
    from rft.errors import UserCodeError

    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *PPO_SMALL),
        "reward=custom",
        "reward._target_=h4_user_rewards.Picky",
        "+reward.word=superb",
    )
    with pytest.raises(UserCodeError) as e:
        train(cfg, run_dir=tmp_path / "run")
    msg = str(e.value)
    assert msg.startswith(
        "reward h4_user_rewards:Picky raised ValueError: no lexicon for 'superb'\n"
    )
    assert f'File "{user_rewards}", line 10, in __init__' in msg
    assert msg.count('File "') == 1 and "hydra" not in msg
    assert msg.endswith("set reward._target_ to another callable.")


def test_cli_exception_in_a_users_reward_is_one_message(user_rewards, prompts_file, tmp_path):
    p = run_cli(
        *tiny_overrides(prompts_file, *PPO_SMALL),
        "reward=custom",
        "reward._target_=h4_user_rewards.boom",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert p.returncode == 2, p.stderr[-2000:]
    assert "rft: error: reward h4_user_rewards:boom raised ZeroDivisionError" in p.stderr
    assert f'File "{user_rewards}", line 4, in boom' in p.stderr
    assert "Traceback" not in p.stderr


def test_rft_own_reward_bug_keeps_its_traceback():
    """Only user code is wrapped: an exception in rft's own reward is a bug to report whole."""
    import functools

    from rft.reward.basic import length_reward

    r = CheckedReward(functools.partial(length_reward, target_words=0), name="length_reward")
    with pytest.raises(ZeroDivisionError):
        r(["p"], ["a b"], [None])


# ------------------------------------------------------------------ damaged files rft reads
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-iteration tiny PPO run: its checkpoints/state.ckpt and policy/ to damage copies of."""
    from tests.conftest import write_prompts

    root = tmp_path_factory.mktemp("finished")
    prompts = write_prompts(root / "prompts.jsonl")
    over = tiny_overrides(prompts, *PPO_SMALL)
    train(compose_cfg(*over), run_dir=root / "run")
    return root / "run", over


def test_truncated_state_ckpt_names_the_file_and_the_fix(finished_run, tmp_path):
    run, over = finished_run
    good = (run / "checkpoints" / "state.ckpt").read_bytes()
    bad = tmp_path / "old" / "checkpoints" / "state.ckpt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError) as e:
        train(compose_cfg(*over, f"resume={tmp_path / 'old'}"), run_dir=tmp_path / "run")
    msg = str(e.value)
    assert msg.startswith(
        f"{bad} is damaged or not a checkpoint: torch cannot read it (RuntimeError: "
        "PytorchStreamReader failed reading zip archive: failed finding central directory)."
    )
    assert "resume from an earlier checkpoint" in msg.lower() and f"delete {bad}" in msg


@pytest.mark.parametrize("kind", ["torch_dict", "text"])
def test_foreign_file_as_resume_is_rejected_by_name(finished_run, tmp_path, kind):
    import torch

    run, over = finished_run
    f = tmp_path / "weights.pt"
    if kind == "torch_dict":
        torch.save({"weights": torch.zeros(3), "step": 7}, f)
    else:
        f.write_text("not a checkpoint\n")
    with pytest.raises(DataError) as e:
        train(compose_cfg(*over, f"resume={f}"), run_dir=tmp_path / "run")
    msg = str(e.value)
    if kind == "torch_dict":
        assert msg.startswith(
            f"{f} is not a training checkpoint rft wrote: it holds a dict with keys "
            "['step', 'weights'], without pytorch-lightning_version, state_dict, loops, "
            "optimizer_states."
        )
        assert "model.init_from=<run folder>" in msg
    else:
        assert msg.startswith(f"{f} is damaged or not a checkpoint: torch cannot read it (")
    assert f"delete {f} to start this run fresh" in msg
    assert not (tmp_path / "run" / "history.jsonl").exists()


def test_a_runs_own_damaged_checkpoint_is_named_on_restart(finished_run, tmp_path):
    """Started again in a folder whose state.ckpt was cut short (e.g. a copy that stopped)."""
    import shutil

    run, over = finished_run
    shutil.copytree(run / "checkpoints", tmp_path / "run" / "checkpoints")
    ckpt = tmp_path / "run" / "checkpoints" / "state.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(DataError, match=rf"^{ckpt} is damaged or not a checkpoint"):
        train(compose_cfg(*over), run_dir=tmp_path / "run")


@pytest.mark.parametrize("cut", ["tensors", "header"])
def test_truncated_safetensors_in_init_from_names_the_file(finished_run, tmp_path, cut):
    import shutil

    run, over = finished_run
    shutil.copytree(run / "policy", tmp_path / "sft" / "policy")
    st = tmp_path / "sft" / "policy" / "model.safetensors"
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2] if cut == "tensors" else data[:100])
    with pytest.raises(DataError) as e:
        train(compose_cfg(*over, f"model.init_from={tmp_path / 'sft'}"), run_dir=tmp_path / "run")
    msg = str(e.value)
    if cut == "tensors":
        assert msg.startswith(f"{st} is truncated: {len(data) // 2} bytes, but its header ")
        assert f"describes {len(data)} bytes of tensors" in msg
    else:
        assert msg.startswith(f"{st} is damaged: not a readable safetensors file (100 bytes;")
    assert "init_from" in msg and "Copy or export it again" in msg


# ------------------------------------------------------------------ settings the machine / generator cannot honour
def test_gpu_without_cuda_names_the_key_before_anything_loads(prompts_file, tmp_path, monkeypatch):
    from rft import checks

    monkeypatch.setattr(checks, "usable_gpus", lambda: 0)
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), "hardware=gpu")
    with pytest.raises(ConfigError) as e:
        train(cfg, run_dir=tmp_path / "run")
    msg = str(e.value)
    assert msg.startswith(
        "hardware.accelerator=gpu (hardware=gpu), but this machine has no usable GPU"
    )
    assert "hardware=cpu" in msg
    assert not (tmp_path / "run").exists()  # failed before the run folder, data or models


def test_more_gpus_than_the_machine_has(prompts_file, tmp_path, monkeypatch):
    from rft import checks

    monkeypatch.setattr(checks, "usable_gpus", lambda: 1)
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *PPO_SMALL), "hardware=gpu_ddp", "hardware.devices=2"
    )
    with pytest.raises(ConfigError, match=r"^hardware.devices=2, but this machine has 1 GPU\(s\)"):
        train(cfg, run_dir=tmp_path / "run")


def test_cli_gpu_on_this_cpu_machine(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    p = run_cli("model=tiny", "logger=none", "hardware=gpu", f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 2
    assert "rft: error: hardware.accelerator=gpu (hardware=gpu)" in p.stderr
    assert "hardware=cpu" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "override, expected",
    [
        ("alg.generation.top_p=0", r"^alg.generation.top_p=0.0: must be in \(0, 1\]"),
        ("alg.generation.top_p=1.5", r"^alg.generation.top_p=1.5: must be in \(0, 1\]"),
        (
            "alg.generation.temperature=0",
            r"^alg.generation.temperature=0.0 with alg.generation.do_sample=true: .* must be > 0"
            r".*set alg.generation.do_sample=false",
        ),
        ("alg.generation.top_k=-1", r"^alg.generation.top_k=-1: must be an integer ≥ 0"),
        ("eval.generation.temperature=-1", r"^eval.generation.temperature=-1.0 with eval"),
        ("eval.generation.num_beams=0", r"^eval.generation.num_beams=0: must be an integer ≥ 1"),
    ],
)
def test_decoding_settings_the_generator_rejects(prompts_file, tmp_path, override, expected):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), override)
    with pytest.raises(ConfigError, match=expected):
        train(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_greedy_decoding_ignores_sampling_settings():
    from rft.checks import check_generation

    check_generation({"do_sample": False, "temperature": 0.0, "top_p": 0.0, "top_k": -1}, "x")


def test_decoding_setting_rejected_at_generate_time_names_the_key():
    """What preflight does not know, transformers' own ValueError, still names the key."""
    import torch
    from omegaconf import OmegaConf

    from rft.model.load import _tiny_tokenizer, build_tiny, prepare_tokenizer
    from rft.model.policy import PolicyLM

    tok = prepare_tokenizer(_tiny_tokenizer(None))
    tiny = OmegaConf.create({"arch": "gpt2", "n_embd": 16, "n_layer": 1, "n_head": 2})
    policy = PolicyLM(build_tiny(tiny, tok), tok)
    cfg = OmegaConf.create(
        {"alg": {"generation": {"do_sample": True, "top_k": -1, "top_p": 1.0, "temperature": 1.0}}}
    )
    ids = torch.tensor([[tok.eos_token_id, 42]])
    policy.model.train()
    with pytest.raises(ConfigError) as e:
        policy.generate(ids, torch.ones_like(ids), 4, 4, cfg.alg.generation)
    msg = str(e.value)
    assert msg.startswith("the generator rejected the decoding settings of alg.generation (")
    assert "top_k=-1" in msg and "`top_k` has to be a strictly positive integer" in msg
    assert policy.model.training  # the mode before the call is restored


def test_exception_in_a_users_class_built_from_the_config_names_its_key(user_rewards):
    """rft.errors.instantiate (tasks, reward classes, ...): one UserCodeError, no Hydra text."""
    from omegaconf import OmegaConf

    from rft.errors import UserCodeError, instantiate

    cfg = OmegaConf.create({"task": {"_target_": "h4_user_rewards.Picky", "word": "x"}})
    with pytest.raises(UserCodeError) as e:
        instantiate(cfg.task)
    msg = str(e.value)
    assert msg.startswith("task h4_user_rewards:Picky raised ValueError: no lexicon for 'x'\n")
    assert msg.endswith("Fix it, or set task._target_ to another callable.")
    assert "Error in call to target" not in msg
