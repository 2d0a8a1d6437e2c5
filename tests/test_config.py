"""Every config option composes; bad keys, choices and types fail at compose time."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from tests.conftest import CONF, compose_cfg

# Options that need a value the user must give.
REQUIRED = {
    ("task", "jsonl"): ["task.path=x.jsonl"],
    ("model", "hf"): ["model.name_or_path=gpt2"],
    ("reward", "custom"): ["reward._target_=rft.reward.basic.length_reward"],
}
GROUPS = ["task", "model", "alg", "reward", "hardware", "logger", "experiment", "sweep"]


def options(group: str) -> list[str]:
    d = CONF / group
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes(group, option):
    cfg = compose_cfg(f"{group}={option}", *REQUIRED.get((group, option), []))
    assert cfg[group] is not None if group in cfg else True
    if group == "alg":
        assert cfg.alg._target_.startswith("rft.alg.")


def test_default_config_is_imdb_ppo_smollm2_cpu():
    cfg = compose_cfg()
    assert (cfg.task.name, cfg.alg.name, cfg.model.name, cfg.hardware.name) == (
        "imdb",
        "ppo",
        "smollm2_135m",
        "cpu",
    )
    # GRUE IMDB task shape (algorithms.md §6)
    assert (cfg.task.prompt_max_tokens, cfg.task.max_new_tokens, cfg.task.min_new_tokens) == (
        64,
        48,
        48,
    )
    assert (cfg.task.n_train, cfg.task.n_val, cfg.task.n_test) == (20000, 5000, 5000)


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("alg.lrr=1e-5")
    assert "lrr" in str(e.value) + str(e.value.__cause__)


def test_unknown_choice_lists_options():
    with pytest.raises(Exception) as e:
        compose_cfg("alg=ppoo")
    msg = str(e.value)
    assert "ppoo" in msg and "ppo" in msg and "sft" in msg


def test_wrong_type_rejected():
    with pytest.raises((ConfigCompositionException, ValidationError)) as e:
        compose_cfg("alg.lr=fast")
    assert "lr" in str(e.value) + str(e.value.__cause__)


def test_enum_value_rejected_with_choices():
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError)) as e:
        compose_cfg("alg.kl.kind=magic")
    text = str(e.value) + str(e.value.__cause__)
    assert "adaptive_rl4lms" in text and "fixed" in text


def test_grue_experiment_sets_published_numbers():
    cfg = compose_cfg("experiment=grue_imdb_ppo")
    a = cfg.alg
    assert (a.lr, a.n_epochs, a.minibatch_size, a.n_iterations) == (1e-6, 5, 64, 50)
    assert a.rollout_prompts * a.samples_per_prompt == 1280
    assert (a.kl.init_beta, a.kl.target, a.generation.top_k) == (0.1, 0.1, 50)
    assert a.value_model.value == "separate"
    assert a.gamma == 0.99 and a.lam == 0.95 and a.value_head_lr is None
