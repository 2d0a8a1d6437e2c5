"""task=reasoning_gym (rft/task/reasoning_gym.py): disjoint seed ranges (reasoning-gym's
seed + i overlap cannot reach across splits), mixtures by weight, prompts with and without a
chat template, SFT targets that the task's own check accepts, and every bad setting named."""

from __future__ import annotations

import pytest

from rft.errors import ConfigError, DataError
from rft.reward.verify import ReasoningGymReward
from tests.task.verifiable_helpers import build, chat_tokenizer

SMALL = ("task.n_train=40", "task.n_val=10", "task.n_test=10")


def rg(*overrides: str):
    return build("reasoning_gym", *SMALL, *overrides)


def test_splits_use_disjoint_seed_ranges_and_each_item_is_its_seed():
    import reasoning_gym

    t = rg()
    assert t.seed_ranges == {"train": (0, 40), "val": (40, 50), "test": (50, 60)}
    seeds = {s: [e.meta["seed"] for e in t.split(s)] for s in ("train", "val", "test")}
    assert seeds["train"] == list(range(40))
    assert set(seeds["val"]) <= set(range(40, 50)) and set(seeds["test"]) <= set(range(50, 60))
    # item j of a split is reasoning-gym's Random(start + j) item: the one of seed start + j
    # (the pitfall itself), so disjoint seeds mean no item is generated for two splits
    knobs = dict(min_terms=2, max_terms=3, min_digits=1, max_digits=2)
    for e in t.train[:5] + t.test[:5]:
        again = reasoning_gym.create_dataset("chain_sum", seed=e.meta["seed"], size=1, **knobs)[0]
        assert again["question"] == e.meta["question"]
    train_q = {e.meta["question"] for e in t.train}
    assert not train_q & {e.meta["question"] for e in t.val + t.test}


def test_construction_is_deterministic():
    a, b = rg(), rg()
    assert [e.prompt for e in a.test] == [e.prompt for e in b.test]
    c = rg("task.seed=1000")
    assert [e.prompt for e in a.train] != [e.prompt for e in c.train]


def test_plain_prompt_reference_and_gold():
    t = rg()
    e = t.train[0]
    question = e.meta["question"]
    assert not t.chat
    assert e.prompt == f"{question}\n{t.instruction}\n" and "<answer>" in t.instruction
    gold = e.references[0]
    assert e.reference == f"<answer>{gold}</answer>"
    assert gold.entry["metadata"]["source_dataset"] == "chain_sum"
    assert e.reward_references == [gold]


def test_chat_prompts_go_through_the_template(tmp_path):
    tok = chat_tokenizer(tmp_path / "tok")
    t = rg(f"model.tiny.tokenizer={tok}", "task.system_prompt=Be exact.")
    e = t.train[0]
    assert t.chat
    assert e.prompt == (
        f"<|system|>Be exact.<|end|>\n<|user|>{e.meta['question']}\n\n{t.instruction}<|end|>\n"
        "<|assistant|>"
    )
    off = rg(f"model.tiny.tokenizer={tok}", "task.chat_template=off")
    assert not off.chat and off.train[0].prompt.startswith(e.meta["question"])


def test_chat_template_on_without_one_names_the_key():
    with pytest.raises(ConfigError, match="task.chat_template=on but the tokenizer of model=tiny"):
        rg("task.chat_template=on")


def test_a_mixture_follows_its_weights_and_each_answer_passes_the_check():
    t = build(
        "reasoning_gym",
        "task.n_train=300",
        "task.n_val=5",
        "task.n_test=20",
        "task.sft_target=cot",
        "task.generators=[{name:chain_sum,weight:3},{name:leg_counting,weight:1,max_animals:3},"
        "{name:gsm_symbolic,weight:1}]",
    )
    gens = [e.meta["generator"] for e in t.train]
    share = {g: gens.count(g) / len(gens) for g in set(gens)}
    assert share["chain_sum"] == pytest.approx(0.6, abs=0.08)  # 3 of 5, n = 300
    assert share["leg_counting"] == pytest.approx(0.2, abs=0.07)
    for e in t.train:
        assert e.references[0].entry["metadata"]["source_dataset"] == e.meta["generator"]
    cot = next(e for e in t.train if e.meta["generator"] == "gsm_symbolic")
    assert "####" not in cot.reference and cot.reference.endswith(
        f"<answer>{cot.references[0]}</answer>"
    )
    check = t.verifier()
    assert isinstance(check, ReasoningGymReward) and check.binary
    sample = t.train[:40] + t.test
    v = check.verdicts(
        [e.prompt for e in sample],
        [e.reference for e in sample],
        [e.reward_references for e in sample],
    )
    assert all(x.correct for x in v)


def test_a_too_small_problem_space_is_refused_with_the_fix():
    with pytest.raises(DataError, match="every val question also occurs among the 2000 train"):
        build(
            "reasoning_gym",
            "task.n_train=2000",
            "task.n_val=5",
            "task.n_test=5",
            "task.generators=[{name:chain_sum,min_terms:2,max_terms:2,min_digits:1,max_digits:1}]",
        )


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "task.generators=[{name:chain_sums}]",
            r"task.generators.0.name='chain_sums': reasoning-gym has no such generator. Did you "
            r"mean \['chain_sum'",
        ),
        (
            "+task.generators.0.max_term=3",
            "task.generators.0.max_term: not a setting of the chain_sum generator",
        ),
        (
            "task.generators.0.min_terms=5",
            "task.generators.0: reasoning-gym refused the chain_sum settings",
        ),
        ("task.generators.0.weight=0", r"task.generators.0.weight=0.0: must be > 0"),
        ("+task.generators.0.seed=3", "task.generators.0.seed: set by the task"),
        ("task.generators=[{weight:1}]", r"task.generators.0=\{'weight': 1\}: each entry is"),
        ("task.generators=[]", "task.generators is empty"),
        ("task.n_val=0", r"task.n_val=0: must be ≥ 1"),
        ("task.pass_k=[0]", r"task.pass_k=\[0\]: every k must be ≥ 1"),
    ],
)
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        rg(override)
