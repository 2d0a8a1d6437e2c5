"""The keys of rft's results on a real tiny model and task: identical inputs give the same key,
and changing any one component (one weight, one prompt, the eval seed, the thread count, the
precision, the reward, ...) gives another, whose difference the key names."""

from __future__ import annotations

import copy

import pytest
import torch

from rft.alg.sft import SFTSettings
from rft.errors import instantiate
from rft.model.build import frozen_copy, load_policy
from rft.store.fingerprint import examples_fingerprint, weights_fingerprint
from rft.store.keys import evaluation_key, result_key, warm_start_key
from rft.task.base import Example
from tests.conftest import compose_cfg, tiny_overrides, write_prompts


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    prompts = write_prompts(tmp_path_factory.mktemp("keys") / "prompts.jsonl")
    cfg = compose_cfg(*tiny_overrides(prompts, "alg=ppo"))
    return cfg, load_policy(cfg.model)


@pytest.fixture
def setup(built):
    """(cfg, task, policy, ref): fresh copies each test may change."""
    cfg, policy = copy.deepcopy(built[0]), copy.deepcopy(built[1])
    return cfg, instantiate(cfg.task, _convert_="none"), policy, frozen_copy(policy)


def test_the_same_inputs_give_the_same_key(setup):
    cfg, task, policy, ref = setup
    a = evaluation_key(cfg, task, policy, ref, "test")
    again = load_policy(cfg.model)  # tiny models are rebuilt identically
    b = evaluation_key(cfg, task, again, frozen_copy(again), "test")
    assert a.digest == b.digest
    assert a.kind == "evaluation" and a.parts["threads"] == torch.get_num_threads()
    assert a.parts["eval"]["seed"] == cfg.eval.seed and a.parts["prompts"]["n"] == 4


def one_weight(cfg, task, policy, ref):
    with torch.no_grad():
        next(policy.parameters()).view(-1)[0] += 1e-6
    return "policy.weights"


def one_prompt(cfg, task, policy, ref):
    ex = task.eval_examples("test")
    changed = [Example(ex[0].prompt + "!", ex[0].reference)] + ex[1:]
    task.eval_examples = lambda split: changed
    return "prompts.texts"


def eval_seed(cfg, task, policy, ref):
    cfg.eval.seed += 1
    return "eval.seed"


def threads(cfg, task, policy, ref):
    torch.set_num_threads(2)  # conftest sets 1; restored by the test
    return "threads"


def precision(cfg, task, policy, ref):
    cfg.hardware.precision = "bf16-mixed"
    return "precision"


def reward_setting(cfg, task, policy, ref):
    cfg.reward.include_prompt = not cfg.reward.include_prompt
    return "reward.config.include_prompt"


def reward_choice(cfg, task, policy, ref):
    cfg.reward = compose_cfg("reward=meteor").reward
    return "reward.config._target_"


def reference_weights(cfg, task, policy, ref):
    with torch.no_grad():
        next(ref.parameters()).view(-1)[-1] *= 2
    return "reference.weights"


def generation(cfg, task, policy, ref):
    cfg.eval.generation.top_k = 0
    return "eval.generation.top_k"


def max_new_tokens(cfg, task, policy, ref):
    task.max_new_tokens += 1
    return "task.max_new_tokens"


def attention(cfg, task, policy, ref):
    cfg.hardware.attention = "eager"
    return "attention"


def code(cfg, task, policy, ref):
    cfg.store.match_code = "version"
    return "code.source"


@pytest.mark.parametrize(
    "change",
    [
        one_weight,
        one_prompt,
        eval_seed,
        threads,
        precision,
        reward_setting,
        reward_choice,
        reference_weights,
        generation,
        max_new_tokens,
        attention,
        code,
    ],
)
def test_changing_one_component_misses_and_names_it(setup, change):
    cfg, task, policy, ref = setup
    before = evaluation_key(cfg, task, policy, ref, "test")
    try:
        name = change(cfg, task, policy, ref)
        after = evaluation_key(cfg, task, policy, ref, "test")
    finally:
        torch.set_num_threads(1)
    assert after.digest != before.digest
    diff = before.diff(after.parts)
    # another reward brings its own settings along; every other change is that one component
    assert diff == [name] or (change is reward_choice and name in diff)


def test_the_split_and_its_samples_per_prompt_are_in_the_key(setup):
    cfg, task, policy, ref = setup
    test, val = (evaluation_key(cfg, task, policy, ref, s) for s in ("test", "val"))
    assert test.digest != val.digest
    assert test.parts["eval"]["samples_per_prompt"] == cfg.eval.samples_per_prompt
    assert val.parts["eval"]["samples_per_prompt"] == cfg.eval.val_samples_per_prompt
    cfg.eval.before_training = not cfg.eval.before_training  # when, not what: same key
    assert evaluation_key(cfg, task, policy, ref, "test").digest == test.digest


def test_without_perplexity_the_reference_is_not_in_the_key(setup):
    cfg, task, policy, ref = setup
    cfg.eval.perplexity = False
    a = evaluation_key(cfg, task, policy, ref, "test")
    with torch.no_grad():
        next(ref.parameters()).view(-1)[0] += 1
    assert evaluation_key(cfg, task, policy, ref, "test").digest == a.digest
    assert a.parts["reference"] is None


def test_warm_start_key_covers_the_sft_settings_data_and_seed(setup):
    cfg, task, policy, _ = setup
    cfg.alg.warm_start.steps = 4
    key = lambda: warm_start_key(cfg, task, policy, SFTSettings.for_warm_start(cfg.alg))  # noqa: E731
    base = key()
    cfg.alg.warm_start.data_frac = 0.5
    assert base.diff(key().parts) == ["sft.data_frac"]
    cfg.alg.warm_start.data_frac = 1.0
    cfg.seed = 1
    assert base.diff(key().parts) == ["seed"]
    cfg.seed = 0
    cfg.alg.lr = 1.0  # the RL phase's settings do not change the warm start
    assert key().digest == base.digest
    pairs = task.sft_pairs()
    task.sft_pairs = lambda: pairs[:-1]
    assert base.diff(key().parts) == ["data.n", "data.texts"]


def test_result_key_refuses_to_override_the_environment(setup):
    cfg = setup[0]
    with pytest.raises(ValueError, match="threads"):
        result_key("x", cfg, threads=4)
    k = result_key("dpo/ref_logps", cfg, pairs=examples_fingerprint([Example("p", "r")]))
    assert set(k.parts) >= {"pairs", "precision", "threads", "device", "versions", "code"}


def test_weights_fingerprint_sees_dtype_shape_and_ties():
    w = torch.zeros(2, 3)
    base = weights_fingerprint({"w": w, "v": w.clone()})
    assert weights_fingerprint({"w": w, "v": w}) != base  # tied vs equal copies
    assert weights_fingerprint({"w": w, "v": w.clone().double()}) != base  # dtype
    assert weights_fingerprint({"w": w, "v": w.clone().reshape(3, 2)}) != base  # shape
    assert weights_fingerprint({"w": w, "v": w.clone()}) == base  # bytes, not identity
    bf = torch.ones(3, dtype=torch.bfloat16)
    assert weights_fingerprint({"b": bf}) != weights_fingerprint({"b": bf.clone().fill_(2)})


def test_a_reward_cache_folder_is_not_an_input_but_a_model_folder_is(tmp_path):
    """A judge's cache_dir fills as runs score: hashing it would change the key of every
    evaluation after the first (issue #27's second seed recomputed test_init). A model folder
    named by the reward is an input: changing its files changes the key."""
    from rft.store.fingerprint import reward_parts

    cache, model = tmp_path / "judge_cache", tmp_path / "model"
    cache.mkdir(), model.mkdir()
    (model / "w.bin").write_bytes(b"1")
    cfg = {"_target_": "rft.reward.judge.JudgeReward", "cache_dir": str(cache), "model": str(model)}
    before = reward_parts(cfg)
    (cache / "ab.json").write_text("{}")
    assert reward_parts(cfg) == before
    assert list(before["files"]) == [str(model)]
    (model / "w.bin").write_bytes(b"2")
    assert reward_parts(cfg) != before
