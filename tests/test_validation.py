"""Cross-field errors fail before anything loads, through the class alg._target_ names; an old
knob name is refused with the new one."""

from __future__ import annotations

import pytest

import rft.model.load
import rft.train
from rft.alg.schemas import RENAMED, check_renamed
from rft.errors import ConfigError
from tests.conftest import compose_cfg, run_cli, tiny_overrides

BAD = [
    # a group size that does not divide the batch
    (("alg=grpo", "alg.minibatch_size=5"), r"alg\.minibatch_size=5 must divide the 32 episodes"),
    # NLPO whose mask cannot keep anything
    (("alg=nlpo", "alg.top_mask=1.5"), r"alg\.top_mask=1\.5: with alg\.mask_type=learned_top_p"),
    (("alg=nlpo", "alg.mask_type=learned_top_k", "alg.top_mask=0"), r"kept tokens k"),
    # a guided algorithm whose guide cannot be found
    (("alg=ppo_pp", "alg.guide.init_from=/nowhere/run"), r"alg\.guide\.init_from='/nowhere/run'"),
    (
        ("alg=dlols", "+model@alg.guide.model=hf"),
        r"alg\.guide\.model\.name_or_path is required with alg\.guide\.model\.loader=hf",
    ),
    (("alg=ppo", "alg.kl.target=0"), r"alg\.kl\.target=0\.0 with alg\.kl\.kind=adaptive_rl4lms"),
    (("alg=ppo", "alg.update_epochs=0"), r"alg\.update_epochs=0: must be ≥ 1"),
    (("alg=rloo", "alg.samples_per_prompt=1"), r"alg\.samples_per_prompt=1: the leave_one_out"),
    (("alg=sft", "alg.data_frac=0"), r"alg\.data_frac=0\.0: must be in \(0, 1\]"),
    (("alg=dpo", "alg.kl.beta=0"), r"alg\.kl\.beta=0\.0: must be > 0"),
    (("alg=a_lol", "alg.n_train_pairs=0"), r"alg\.n_train_pairs=0"),
    (("alg=sft", "alg.max_steps=-1", "alg.dataset_epochs=0"), r"dataset_epochs ≥ 1"),
    (("alg=reward_model", "alg.max_length=0"), r"alg\.max_length=0: the backbone's input length"),
    (("alg=ppo", "model.init_from=/nowhere/run"), r"model\.init_from='/nowhere/run'"),
    (("alg=ppo", "alg.tis_cap=2"), r"alg\.tis_cap=2\.0 corrects for a sampler"),
]


@pytest.fixture
def loads(monkeypatch):
    """Every loader train() could reach: a call is recorded (and fails the run loudly)."""
    calls = []

    def refuse(name):
        def loader(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called before the config was checked")

        return loader

    for module, name in [
        (rft.train, "instantiate"),
        (rft.train, "build_reward"),
        (rft.train, "load_trained_policy"),
        (rft.train, "warm_start"),
        (rft.model.load, "load_model"),
    ]:
        monkeypatch.setattr(module, name, refuse(name))
    return calls


@pytest.mark.parametrize(("overrides", "match"), BAD)
def test_cross_field_errors_fail_before_any_model_loads(
    overrides, match, prompts_file, tmp_path, loads
):
    cfg = compose_cfg(*tiny_overrides(prompts_file), *overrides)
    with pytest.raises(ConfigError, match=match):
        rft.train.train(cfg, run_dir=tmp_path)
    assert loads == []
    assert not (tmp_path / "config.yaml").exists()  # not even the run folder was written


def test_the_loader_spy_sees_a_load(prompts_file, tmp_path, loads):
    # the test above can fail: a valid config reaches the task loader, and the spy notices
    with pytest.raises(AssertionError, match="instantiate was called"):
        rft.train.train(compose_cfg(*tiny_overrides(prompts_file)), run_dir=tmp_path)
    assert loads == ["instantiate"]


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_an_old_key_names_the_new_one(old):
    new = RENAMED[old].split()[0]
    with pytest.raises(ConfigError, match=rf"{old} was renamed: use {new}"):
        check_renamed(["alg=ppo", f"{old}=1"])
    check_renamed([f"{new}=1", "alg.lr=1e-5"])  # current names pass


def test_the_command_line_refuses_an_old_key_in_one_line():
    r = run_cli("alg=grpo", "alg.num_iterations=2", timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "rft: error: alg.num_iterations was renamed: use alg.update_epochs (GRPO's μ: passes over"
        " each generation batch). (One name per idea across every algorithm; `rft explain"
        " alg=<option>` lists the current keys.)"
    ]


def all_knob_paths() -> set[str]:
    """Every dotted knob of every alg schema (nested blocks included)."""
    import dataclasses

    from rft.alg.schemas import SCHEMAS

    out = set()

    def walk(schema, prefix):
        for f in dataclasses.fields(schema):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            if dataclasses.is_dataclass(default):
                walk(type(default), f"{prefix}{f.name}.")
            else:
                out.add(f"{prefix}{f.name}")

    for schema in SCHEMAS.values():
        walk(schema, "alg.")
    return out


def test_one_name_per_idea():
    knobs = all_knob_paths()
    assert not knobs & set(RENAMED)  # the old names are gone from every schema
    leaves = {k.rsplit(".", 1)[-1] for k in knobs}
    pairs = {n for n in leaves if n.startswith("n_") and f"num_{n[2:]}" in leaves}
    assert not pairs, pairs  # no n_x beside a num_x
    # the KL weight is alg.kl.beta in every family that has one
    kl = {k for k in knobs if "beta" in k.rsplit(".", 1)[-1]}
    assert kl == {"alg.kl.beta"}, kl
