"""The other GRUE tasks' metric rewards through build_reward: each equals its metric per
completion (RL4LMs' definitions: 1 - TER, sacreBLEU of one segment, ...), the rewards that read
Example.meta get it from the references a task gives, and each fails clearly where it cannot
score (no table, no classifier, no BLEURT package)."""

from __future__ import annotations

import sys

import pytest
import torch

from rft.errors import ConfigError, RewardError
from rft.metrics import intent as intent_mod
from rft.metrics.bleu import segment_sacrebleu
from rft.metrics.chrf import segment_chrf
from rft.metrics.meteor import meteor
from rft.metrics.rouge_l_max import rouge_l_max
from rft.metrics.ter import segment_ter
from rft.metrics.totto import totto_parent
from rft.reward import build_reward
from rft.task.base import Example
from rft.task.totto import raw_table
from tests.conftest import compose_cfg
from tests.task import grue_fixtures as fx

PROMPTS = ["translate English to German: Good morning."] * 3
COMPLETIONS = ["Guten Morgen.", "Morgen gut", ""]
REFS = [["Guten Morgen."], ["Guten Morgen.", "Morgen."], ["Guten Morgen."]]


def reward(name: str, *overrides: str):
    return build_reward(compose_cfg(f"reward={name}", *overrides).reward)


@pytest.mark.parametrize(
    "name,overrides,metric",
    [
        ("sacrebleu", (), lambda c, r: segment_sacrebleu(c, r)),
        ("sacrebleu", ("reward.tokenize=intl",), lambda c, r: segment_sacrebleu(c, r, "intl")),
        ("ter", (), lambda c, r: [1 - t for t in segment_ter(c, r)]),
        ("chrf", (), segment_chrf),
        ("rouge_l_max", (), rouge_l_max),
    ],
)
def test_reward_equals_its_metric_per_completion(name, overrides, metric):
    got = reward(name, *overrides)(PROMPTS, COMPLETIONS, REFS)
    assert got.tolist() == pytest.approx(metric(COMPLETIONS, REFS))
    assert got[2] <= 0.0  # the empty completion: the floor (TER: 1 - 1 = 0), no crash


def test_ter_reward_can_be_negative():
    r = reward("ter")(["p"], ["a b c d e f"], [["x"]])  # 6 edits / 1 reference word
    assert r.tolist() == [pytest.approx(1 - 6.0)]


def test_metric_rewards_without_references_fail_clearly():
    with pytest.raises(RewardError, match="reward=ter scores completions against reference"):
        reward("ter")(["p"], ["x"], [None])


def test_parent_reward_reads_the_table_from_the_task():
    rows = [fx.TOTTO["train"][0], fx.TOTTO["validation"][0]]
    examples = [
        Example(
            "p",
            references=[a["final_sentence"] for a in fx.columns_of(r)],
            meta={"raw_table": raw_table(r)},
        )
        for r in rows
    ]
    texts = ["Jane Doe played the lead in 2005.", "Foo FC had 30 apps."]
    got = reward("parent")(["p", "p"], texts, [e.reward_references for e in examples])
    want = totto_parent(texts, [e.meta["raw_table"] for e in examples])["per_example"]
    assert got.tolist() == pytest.approx(want["parent_overall_f"])
    with pytest.raises(
        RewardError, match=r"reward=parent reads each prompt's 'raw_table'.*task=totto"
    ):
        reward("parent")(["p"], ["x"], [["a reference"]])


def test_intent_reward_offline_names_the_fix(tmp_path):
    intent_mod.classifier.cache_clear()
    with pytest.raises(
        ConfigError,
        match=r"reward=intent_accuracy: intent_accuracy needs the classifier.*reward.model",
    ):
        reward("intent_accuracy", f"reward.model={tmp_path / 'none'}")


def test_intent_reward_is_weighted_hit_plus_meteor(monkeypatch, wordnet_reader):
    class Tok:
        def __call__(self, texts, **kw):
            self.texts = list(texts)
            return {"input_ids": torch.zeros(len(texts), 1)}

    tok = Tok()

    class Net:
        def __call__(self, input_ids):  # label 1 (question) when the input has a "?"
            labels = torch.tensor([int("?" in t) for t in tok.texts])
            return type("O", (), {"logits": torch.nn.functional.one_hot(labels, 4).float()})

    monkeypatch.setattr(intent_mod, "classifier", lambda m, d: (tok, Net(), torch.device("cpu")))
    prompts = ["Hi . <EOU> Hello .  <EOU>"] * 2
    texts = ["How are you ?", "Fine ."]
    refs = [["How are you ? <EOU>"], ["How are you ? <EOU>"]]
    examples = [Example(p, references=r, meta={"intent": [2]}) for p, r in zip(prompts, refs)]
    got = reward("intent_accuracy")(prompts, texts, [e.reward_references for e in examples])
    m = meteor(texts, refs)
    assert got.tolist() == pytest.approx([0.75 * 1 + 0.25 * m[0], 0.75 * 0 + 0.25 * m[1]])


def test_bleurt_reward_without_its_package_names_the_install(monkeypatch):
    from rft.metrics import bleurt as bleurt_mod

    monkeypatch.setitem(sys.modules, "bleurt_pytorch", None)
    bleurt_mod.scorer.cache_clear()
    with pytest.raises(
        ConfigError, match=r"reward=bleurt: bleurt needs the bleurt-pytorch package"
    ):
        reward("bleurt")
    bleurt_mod.scorer.cache_clear()
