"""Every failure a user can cause leaves through one door: `rft: error: <one line>` naming the
key or file and the fix, exit code 2, whatever library raised it (rft/door.py). Composing
(Hydra, OmegaConf), the run folder, model folders and shapes transformers rejects, rewards that
return something unusable, weighted sums that cannot vary, runs that cannot learn (strict)."""

from __future__ import annotations

import json
import logging

import pytest
from omegaconf import OmegaConf

from rft.errors import ConfigError, DataError, RewardError
from rft.reward.base import CheckedReward, build_reward
from rft.train import train
from tests.conftest import PPO_SMALL, compose_cfg, run_cli, tiny_overrides


def error_lines(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if x.startswith("rft: error:")]


# ------------------------------------------------------------------------------ composing
@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "alg.lr=abc",
            "rft: error: Error merging override alg.lr=abc: Value 'abc' of type 'str' could not"
            " be converted to Float. Fix the value (`rft explain",
        ),
        (
            "alg.kl.kind=bogus",
            "rft: error: Error merging override alg.kl.kind=bogus: Invalid value 'bogus',"
            " expected one of [fixed, adaptive_rl4lms, adaptive_ziegler]. Fix the value",
        ),
        ("alg.lrr=1", "Key 'lrr' not in 'PPOConfig'. Check the key's spelling"),
        ("alg=ppoo", "Could not find 'alg/ppoo'. Available options in 'alg': a2c, a_lol,"),
        ("model.lora.r=[1", "rft: error: no viable alternative at input '[1'. Quote a value"),
        ("task=jsonl", "rft: error: task.path is required but not set (required: the train file"),
    ],
)
def test_cli_compose_errors_are_one_line_with_exit_code_2(override, expected, tmp_path):
    p = run_cli("model=tiny", "logger=none", override, f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 2, p.stderr[-2000:]
    (line,) = error_lines(p.stderr)
    assert expected in line
    assert "Traceback" not in p.stderr and "HYDRA_FULL_ERROR" not in p.stderr
    assert "full_key:" not in p.stderr  # OmegaConf's extra lines are folded into the one


def test_cli_run_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    p = run_cli("model=tiny", "logger=none", f"hydra.run.dir={blocker / 'run'}")
    assert p.returncode == 2
    (line,) = error_lines(p.stderr)
    assert line == (
        f"rft: error: cannot write the run folder ({blocker / 'run'}: Not a directory). Set "
        "hydra.run.dir=<a folder you can write to> (hydra.sweep.dir with --multirun), or run "
        "from such a folder."
    )
    assert "Traceback" not in p.stderr


def test_an_os_error_on_a_path_a_setting_names_names_the_key(tmp_path):
    """The door traces an OSError back to the setting whose value is the path (or a folder
    above it), whichever module raised it."""
    from rft.door import user_error

    cfg = OmegaConf.create({"store": {"path": str(tmp_path / "cache")}, "seed": 0})
    err = user_error(PermissionError(13, "Permission denied", str(tmp_path / "cache" / "x")), cfg)
    assert isinstance(err, ConfigError)
    assert str(err).startswith(f"store.path='{tmp_path / 'cache'}': {tmp_path / 'cache' / 'x'}")
    assert "Point store.path at a folder you can write to" in str(err)
    # a path no setting names is not the user's to fix: it keeps its traceback
    assert user_error(PermissionError(13, "Permission denied", "/elsewhere"), cfg) is None
    assert user_error(RuntimeError("a bug"), cfg) is None


def test_nan_in_any_knob_is_rejected_before_anything_loads(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), "alg.kl.beta=nan")
    with pytest.raises(ConfigError, match=r"^alg.kl.beta=nan: not a number \(KL coefficient"):
        train(cfg, run_dir=tmp_path / "run")


def test_an_interpolation_that_does_not_resolve_names_its_key(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), "experiment_name=${nope.x}")
    with pytest.raises(ConfigError, match=r"^experiment_name: its value does not resolve"):
        train(cfg, run_dir=tmp_path / "run")


# ------------------------------------------------------------------------------ model settings
@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.tiny.n_head=3", "model.tiny.n_embd=64 is not divisible by model.tiny.n_head=3"),
        ("model.tiny.n_layer=0", "model.tiny.n_layer=0: must be ≥ 1"),
        ("model.tiny.n_embd=-8", "model.tiny.n_embd=-8: must be ≥ 1"),
        ("model.kind=seq2seq", "model.tiny.arch=gpt2 with model.kind=seq2seq: t5 is a seq2seq"),
        ("model.tiny.tokenizer=/nope/tok", "model.tiny.tokenizer='/nope/tok': no such folder"),
    ],
)
def test_model_shapes_and_folders_transformers_rejects_name_the_key(
    prompts_file, tmp_path, override, expected
):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), override)
    with pytest.raises(ConfigError) as e:
        train(cfg, run_dir=tmp_path / "run")
    assert str(e.value).startswith(expected)


def test_a_model_folder_transformers_rejects_names_the_key(prompts_file, tmp_path):
    bad = tmp_path / "not_a_model"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
    over = tiny_overrides(prompts_file, *PPO_SMALL)
    cfg = compose_cfg(*over, "model.loader=hf", f"model.name_or_path={bad}")
    with pytest.raises(ConfigError) as e:
        train(cfg, run_dir=tmp_path / "run")
    msg = str(e.value)
    assert msg.startswith(f"model.name_or_path='{bad}' could not be loaded: ")
    assert "Point it at a folder that save_pretrained wrote" in msg


# ------------------------------------------------------------------------------ rewards
def returns(value):
    def reward(prompts, completions, references):
        return value(len(completions)) if callable(value) else value

    return reward


@pytest.mark.parametrize(
    "value, expected",
    [
        (lambda n: ["high"] * n, "returned str 'high' at index 0 (completion 'c0')"),
        (lambda n: [None] * n, "returned NoneType 'None' at index 0"),
        (lambda n: [[1.0]] * n, "returned list '[1.0]' at index 0"),
        ("good", "a reward returned str 'good', expected a list of floats"),
        (0.5, "a reward returned float '0.5', expected a list of floats"),
        (lambda n: {"a": 1.0}, "a reward returned dict"),
        (lambda n: [1.0] * (n + 1), "returned 3 values for 2 completions"),
        (lambda n: [float("inf")] * n, "returned 2 non-finite value(s)"),
    ],
)
def test_a_reward_returning_something_unusable_names_its_key(value, expected):
    r = CheckedReward(returns(value), name="mine", key="reward._target_=my.mod.mine")
    with pytest.raises(RewardError) as e:
        r(["p0", "p1"], ["c0", "c1"], [None, None])
    assert expected in str(e.value)
    assert "reward._target_=my.mod.mine" in str(e.value)


def test_numpy_and_tensor_rewards_are_accepted():
    import numpy as np
    import torch

    for out in (np.array([0.1, 0.2]), np.float32([0.1, 0.2]), torch.tensor([[0.1], [0.2]])):
        scores = CheckedReward(returns(out), name="ok")(["p", "q"], ["a", "b"], None)
        assert scores.tolist() == pytest.approx([0.1, 0.2])


def _sum(*terms):
    return {
        "_target_": "rft.reward.combine.WeightedSum",
        "terms": {name: {"weight": w, "reward": {"_target_": target}} for name, w, target in terms},
    }


LENGTH = "rft.reward.basic.length_reward"
CONST = "tests.learning.words.constant_reward"


def test_weighted_sum_that_cannot_vary_is_caught_when_built():
    with pytest.raises(ConfigError, match=r"^reward.terms: every weight is 0 \(a, b\)"):
        build_reward(OmegaConf.create(_sum(("a", 0.0, LENGTH), ("b", 0, CONST))))
    with pytest.raises(ConfigError, match=r"same reward cancel \(a \+ b: their weights sum to 0\)"):
        build_reward(OmegaConf.create(_sum(("a", 1.0, LENGTH), ("b", -1.0, LENGTH))))
    with pytest.raises(ConfigError, match=r"^reward.terms.a.weight='heavy': must be a finite"):
        build_reward(OmegaConf.create(_sum(("a", "heavy", LENGTH))))
    # weights that sum to 0 over different rewards are a real difference of rewards
    build_reward(OmegaConf.create(_sum(("a", 1.0, LENGTH), ("b", -1.0, CONST))))


def test_a_reward_with_no_spread_is_named_once_and_is_an_error_under_strict(
    prompts_file, tmp_path, caplog
):
    over = [
        *tiny_overrides(prompts_file, *PPO_SMALL),
        "reward=custom",
        f"reward._target_={CONST}",
        "eval.before_training=false",
        "degenerate_after=4",  # one 4-completion batch (the default waits for 128 in a row)
    ]
    with caplog.at_level(logging.WARNING, logger="rft"):
        train(compose_cfg(*over), run_dir=tmp_path / "warn")
    warned = [r.getMessage() for r in caplog.records if "scored 0.5" in r.getMessage()]
    assert len(warned) == 1  # once, although every batch of both iterations is constant
    assert warned[0].startswith(
        "reward constant_reward: the last 4 completions it scored all scored 0.5,"
    )
    assert f"reward._target_={CONST}" in warned[0]
    from rft.degenerate import DegenerateRunError

    with pytest.raises(DegenerateRunError) as e:
        train(compose_cfg(*over, "strict=true"), run_dir=tmp_path / "strict")
    assert str(e.value).endswith(
        "(strict=true makes this an error; strict=false lets such a run go on with a warning)"
    )
    assert not (tmp_path / "strict" / "checkpoints" / "state.ckpt").exists()  # first rollout


def test_cli_strict_degenerate_run_is_one_line(prompts_file, tmp_path):
    p = run_cli(
        *tiny_overrides(prompts_file, *PPO_SMALL),
        "reward=custom",
        f"reward._target_={CONST}",
        "strict=true",
        "degenerate_after=4",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert p.returncode == 2
    (line,) = error_lines(p.stderr)
    assert line.startswith("rft: error: reward constant_reward: the last ")  # (eval's batch: 8)
    assert "completions it scored all scored 0.5" in line
    assert "Traceback" not in p.stderr


# ------------------------------------------------------------------------------ data files
@pytest.mark.parametrize(
    "content, expected",
    [
        (b'{"prompt": "caf\xe9"}\n', r"p\.jsonl: not UTF-8 text \(byte 15"),
        (b'{"prompt": "a"}\n{"prompt": "  "}\n', r"p\.jsonl:2: 'prompt' is empty"),
    ],
)
def test_jsonl_bytes_and_empty_prompts_name_the_file(prompts_file, tmp_path, content, expected):
    f = tmp_path / "p.jsonl"
    f.write_bytes(content)
    with pytest.raises(DataError, match=expected):
        train(compose_cfg(*tiny_overrides(f, *PPO_SMALL)), run_dir=tmp_path / "run")


def test_csv_row_with_more_fields_than_the_header(tmp_path):
    from rft.errors import instantiate

    f = tmp_path / "p.csv"
    f.write_text("prompt,reference\na,b\nc,d,e\n")
    cfg = compose_cfg(*tiny_overrides(f, *PPO_SMALL))
    with pytest.raises(DataError, match=r"p\.csv:3: 3 fields, but the header names 2"):
        instantiate(cfg.task, _convert_="none")


def test_a_gz_file_that_is_not_gzip_names_it(tmp_path):
    from rft.errors import instantiate

    imdb = tmp_path / "imdb"
    imdb.mkdir()
    (imdb / "train.jsonl.gz").write_bytes(b"plain text, not gzip\n")
    (imdb / "test.jsonl.gz").write_bytes(b"plain text, not gzip\n")
    cfg = compose_cfg("model=tiny", f"task.data_dir={tmp_path}")
    with pytest.raises(DataError, match=r"train\.jsonl\.gz: not a complete gzip file"):
        instantiate(cfg.task, _convert_="none")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("alg.lr=inf", r"^alg.lr=inf: not a finite number \(AdamW learning rate"),
        ("alg.warm_start.lr=0", r"^alg.warm_start.lr=0.0: a learning rate must be > 0"),
        ("alg.weight_decay=-1", r"^alg.weight_decay=-1.0: AdamW's weight decay must be ≥ 0"),
        ("alg.score_batch_size=0", r"^alg.score_batch_size=0: a batch size must be ≥ 1"),
        ("eval.batch_size=-2", r"^eval.batch_size=-2: .*must be ≥ 1"),
        ("seed=-1", r"^seed=-1: a seed must be in \[0, 2\^32\)"),
        ("model.lora.dropout=1.5", r"^model.lora.dropout=1.5: a dropout probability must be in"),
        ("alg.max_grad_norm=-1", r"^alg.max_grad_norm=-1.0: must be > 0 \(null turns gradient"),
        ("alg.eval_every=-1", r"^alg.eval_every=-1: must be ≥ 0 \(0 = never\)"),
        ("checkpoint.every_n_iterations=0", r"^checkpoint.every_n_iterations=0: must be ≥ 1"),
    ],
)
def test_knobs_named_alike_are_checked_alike_before_anything_loads(
    prompts_file, tmp_path, override, expected
):
    """Learning rates, weight decays, batch sizes, seeds and dropouts of every schema (they
    failed inside torch or numpy, or trained NaN weights)."""
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), override)
    with pytest.raises(ConfigError, match=expected):
        train(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
