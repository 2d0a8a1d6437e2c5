"""Every config option composes and resolves; no YAML value restates a schema default; bad keys,
choices and types fail at compose time with the message naming them."""

from __future__ import annotations

import shutil
from pathlib import Path

import hydra.utils
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

import rft.config as rft_config
from tests.conftest import CONF, compose_cfg, run_cli

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


def compose_resolved(*overrides: str, conf: Path = CONF) -> dict:
    """The composed job config with every interpolation resolved (``${hydra:...}`` included)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        job = {k: cfg[k] for k in cfg if k != "hydra"}
        out = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in job.items()
        }
        out["__choices__"] = OmegaConf.to_container(cfg.hydra.runtime.choices)
        out["__hydra__"] = OmegaConf.to_container(cfg.hydra, resolve=False)
    return out


ALL_OPTIONS = [(g, o) for g in GROUPS for o in options(g)]


@pytest.mark.parametrize("group,option", ALL_OPTIONS)
def test_every_option_composes(group, option, monkeypatch):
    monkeypatch.setenv("RFT_DATA_DIR", "/data/from/env")
    d = compose_resolved(f"{group}={option}", *REQUIRED.get((group, option), []))
    assert d["__choices__"][group] == option
    if d["task"]["name"] == "imdb":  # task.data_dir resolves from the environment
        assert d["task"]["data_dir"] == "/data/from/env"
    # the class each option builds is importable (what Hydra will instantiate)
    for node in (d["alg"], d["task"]):
        hydra.utils.get_class(node["_target_"])
    if group == "alg":
        assert d["alg"]["name"] == option
        assert str(d["experiment_name"]) == f"imdb_{option}"


@pytest.mark.parametrize("alg", options("alg"))
def test_debug_experiment_composes_with_every_alg(alg):
    d = compose_resolved("experiment=debug", f"alg={alg}")
    assert (d["alg"]["name"], d["model"]["name"], d["experiment_name"]) == (alg, "tiny", "debug")
    a = d["alg"]
    # every family gets a small budget
    if "n_iterations" in a:
        assert (a["n_iterations"], a["rollout_prompts"], a["minibatch_size"]) == (3, 8, 4)
    elif "n_train_pairs" in a:
        assert (a["n_train_pairs"], a["max_steps"], a["value"]["n_prompts"]) == (32, 6, 16)
    elif "pairs" in a:  # DPO family: debug's task=imdb has no preference columns, so the
        # pairs are ranked samples of the initial policy, for a few prompts only
        pairs = a["pairs"]
        assert (a["max_steps"], a["batch_size"]) == (6, 4)
        assert (pairs["source"], pairs["n_prompts"], pairs["samples_per_prompt"]) == (
            "sampled",
            16,
            2,
        )
    else:
        assert (a["max_steps"], a["batch_size"]) == (6, 4)


# Keys a YAML may restate on purpose: the SLURM slots the README tells cluster users to fill in.
RESTATEMENT_OK = {
    f"hydra.launcher.{k}" for k in ("partition", "account", "qos", "constraint", "setup")
}


def _leaves(d, prefix=""):
    if isinstance(d, dict) and d:
        for k, v in d.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], d


def _select(d, key):
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return "<absent>"
        d = d[part]
    return d


def _restated(conf: Path, group: str, option: str) -> list[str]:
    """Own keys of conf/<group>/<option>.yaml whose value the option would get without them."""
    path = conf / group / f"{option}.yaml"
    text = path.read_text()
    body = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    defaults = body.pop("defaults", None)
    global_pkg = "@package _global_" in text
    ov = [f"{group}={option}", *REQUIRED.get((group, option), [])]

    def composed():
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            cfg = compose(config_name="config", overrides=ov, return_hydra_config=True)
            return OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)

    full = composed()
    head = "# @package _global_\n" if global_pkg else ""
    path.write_text(head + (OmegaConf.to_yaml({"defaults": defaults}) if defaults else ""))
    try:
        stripped = composed()
    except ConfigCompositionException:  # reward=custom: without its one key nothing is left
        stripped = {}
    finally:
        path.write_text(text)
    found = []
    for key, value in _leaves(body, "" if global_pkg else f"{group}."):
        if key in RESTATEMENT_OK or key.startswith("hydra.sweeper.params."):
            continue  # sweeper params are command-line overrides per job, not config values
        if _select(full, key) != value:
            continue  # set again later (the REQUIRED overrides above)
        if _select(stripped, key) == value:
            found.append(f"{key}: {value!r}")
    return found


def test_no_yaml_value_restates_a_default(tmp_path):
    """Every key of every conf/<group>/<option>.yaml changes something: the value the option
    would get without the key (schema default, or the option it extends) differs."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    groups = [
        p.name for p in sorted(conf.iterdir()) if p.is_dir() and p.name != "experiment_family"
    ]
    restated = {}
    for group in groups:
        for option in sorted(p.stem for p in (conf / group).glob("*.yaml")):
            if found := _restated(conf, group, option):
                restated[f"{group}/{option}.yaml"] = found
    assert restated == {}


def test_restatement_check_catches_a_restated_default(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    ppo = conf / "alg" / "ppo.yaml"
    ppo.write_text(ppo.read_text() + "lam: 0.95\nkl:\n  beta: 0.2\n")
    assert _restated(conf, "alg", "ppo") == ["alg.lam: 0.95"]
    lols = conf / "alg" / "lols.yaml"  # a variant restating what it inherits from ppo_pp.yaml
    lols.write_text(lols.read_text() + "gamma: 0.99\n")
    assert _restated(conf, "alg", "lols") == ["alg.gamma: 0.99"]


def test_every_schema_field_has_help():
    import dataclasses

    missing = []
    for name, obj in vars(rft_config).items():
        if (
            isinstance(obj, type)
            and dataclasses.is_dataclass(obj)
            and obj.__module__ == rft_config.__name__
        ):
            missing += [
                f"{name}.{f.name}" for f in dataclasses.fields(obj) if not f.metadata.get("help")
            ]
    assert missing == []


def test_explain_lists_every_knob_with_help_and_source():
    from rft.explain import explain, format_knobs

    knobs = {k.key: k for k in explain(["alg=lols", "alg.lr=3e-5"])}
    g = knobs["alg.gamma"]  # set by the base the variant extends
    assert (g.value, g.default, g.changed, g.source) == (0.99, 1.0, True, "conf/alg/ppo_pp.yaml")
    assert "discount" in g.help
    assert (knobs["alg.lr"].source, knobs["alg.lr"].value) == ("command line", 3e-5)
    rp = knobs["alg.restart_prob.ppo_pp"]
    assert (rp.value, rp.default, rp.source) == (0.8, 0.6, "conf/alg/lols.yaml")
    top_p = knobs["alg.guide.generation.top_p"]  # the block's own default, not GenerationConfig's
    assert (top_p.value, top_p.default, top_p.changed) == (0.92, 0.92, False)
    assert not knobs["alg.lam"].changed and knobs["alg.lam"].source is None
    assert knobs["eval.seed"].value == 7919 and "seed" in knobs["eval.seed"].help
    text = format_knobs(list(knobs.values()), changed_only=True)
    lines = [ln for ln in text.splitlines() if ln.startswith("alg.")]
    assert lines and all("*" in ln and "set by" in ln for ln in lines)
    assert not any(ln.startswith("alg.lam ") for ln in lines)


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
    assert "Key 'lrr' not in 'PPOConfig'" in str(e.value.__cause__)


def test_unknown_choice_lists_options():
    with pytest.raises(Exception) as e:
        compose_cfg("alg=ppoo")
    msg = str(e.value)
    # Hydra's list of the group's options, one per line
    assert "Available options in 'alg'" in msg
    assert {"\tppo", "\tsft", "\ta_lol_kl", "\tdlols"} <= set(msg.splitlines())


def test_wrong_type_rejected():
    with pytest.raises((ConfigCompositionException, ValidationError)) as e:
        compose_cfg("alg.lr=fast")
    cause = str(e.value.__cause__)
    # OmegaConf names the expected type, the full key and the schema
    assert "could not be converted to Float" in cause
    assert "full_key: alg.lr" in cause and "PPOConfig" in cause


def test_enum_value_rejected_with_choices():
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError)) as e:
        compose_cfg("alg.kl.kind=magic")
    text = str(e.value) + str(e.value.__cause__)
    assert "adaptive_rl4lms" in text and "fixed" in text


def test_grue_experiment_sets_published_numbers():
    cfg = compose_cfg("experiment=grue_imdb_ppo")
    a = cfg.alg
    assert (a.lr, a.update_epochs, a.minibatch_size, a.n_iterations) == (1e-6, 5, 64, 50)
    assert a.rollout_prompts * a.samples_per_prompt == 1280
    assert (a.kl.beta, a.kl.target, a.generation.top_k) == (0.1, 0.1, 50)
    assert a.value_model.value == "separate"
    assert a.gamma == 0.99 and a.lam == 0.95 and a.value_head_lr is None
    # what the file does not restate because alg=ppo's defaults already are GRUE's
    assert (a.samples_per_prompt, a.clip_range, a.vf_coef, a.ent_coef, a.max_grad_norm) == (
        1,
        0.2,
        0.5,
        0.0,
        0.5,
    )
    assert a.kl.kind.value == "adaptive_rl4lms" and a.clip_range_vf is None
    assert cfg.reward.include_prompt is True and cfg.reward.model == "lvwerra/distilbert-imdb"


def test_help_lists_only_the_choices_a_user_picks():
    r = run_cli("--help", timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    groups = r.stdout.split("== Config groups")[1].split("== Composed config")[0]
    assert "_schema" not in groups and "experiment_family" not in groups
    listed = {line.split(":")[0] for line in groups.splitlines() if ":" in line}
    assert {"alg", "task", "model", "reward", "hardware", "logger", "experiment", "sweep"} <= listed
    flat = " ".join(groups.split())
    for option in options("alg"):
        assert f" {option}," in flat or f" {option} " in f"{flat} ", option
