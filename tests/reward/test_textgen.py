"""The metric rewards through build_reward (CheckedReward) on a batch: each equals its metric
(plus RL4LMs' repeat penalty when on), single-string references work, no references and
mismatched prompts fail with a message naming the mismatch, WeightedSum combines them."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from rft.errors import ConfigError, RewardError
from rft.metrics import MetricUnavailable
from rft.metrics.bertscore import bertscore_f1
from rft.metrics.bleu import sentence_nmt_bleu, sentence_sacrebleu
from rft.metrics.cider import CiderIdf, cider_d
from rft.metrics.meteor import meteor
from rft.metrics.rouge import rouge
from rft.reward import build_reward
from rft.reward.textgen import concept_string, repeat_penalties
from tests.conftest import compose_cfg

PROMPTS = [
    "generate a sentence with: dog frisbee catch.",
    "generate a sentence with: dog frisbee catch.",
    "generate a sentence with: apple tree pick.",
    "generate a sentence with: apple tree pick.",
]
COMPLETIONS = [
    "A dog catches a frisbee in the park.",
    "dog frisbee catch",  # repeats the concept string: penalised
    "A boy picks an apple from the tree.",
    "",  # empty: scores 0, no crash
]
REFS = [
    ["The dog caught the frisbee.", "A dog jumps to catch a frisbee."],
    ["The dog caught the frisbee.", "A dog jumps to catch a frisbee."],
    ["A boy picks apples from the tree.", "She picked an apple off the tree."],
    ["A boy picks apples from the tree.", "She picked an apple off the tree."],
]
PENALTY = torch.tensor([0.0, -1.0, 0.0, 0.0])


def reward(name: str, *overrides: str):
    return build_reward(compose_cfg(f"reward={name}", *overrides).reward)


def check(name, want, *overrides):
    """The reward built from conf/reward/<name>.yaml equals ``want``, and with the repeat penalty
    on, ``want`` + penalty."""
    want = torch.tensor(want, dtype=torch.float32)
    got = reward(name, *overrides)(PROMPTS, COMPLETIONS, REFS)
    assert torch.allclose(got, want, atol=1e-6), (got, want)
    assert got[3] == 0.0
    pen = reward(name, *overrides, "reward.repeat_penalty=true")(PROMPTS, COMPLETIONS, REFS)
    assert torch.allclose(pen, want + PENALTY, atol=1e-6)


def test_meteor(wordnet_reader):
    check("meteor", meteor(COMPLETIONS, REFS))


@pytest.mark.parametrize("variant", ["rouge1", "rouge2", "rougeL", "rougeLsum"])
def test_rouge_variants(variant):
    check("rouge", rouge(COMPLETIONS, REFS)[variant], f"reward.variant={variant}")


def test_rouge_default_is_rouge1_and_a_bad_variant_fails_at_compose():
    assert compose_cfg("reward=rouge").reward.variant.value == "rouge1"
    with pytest.raises(Exception, match="rouge3"):
        compose_cfg("reward=rouge", "reward.variant=rouge3")


def test_bleu_nmt_and_sacrebleu():
    check("bleu", sentence_nmt_bleu(COMPLETIONS, REFS))
    check("bleu", sentence_sacrebleu(COMPLETIONS, REFS), "reward.implementation=sacrebleu")
    assert sentence_sacrebleu(COMPLETIONS, REFS)[0] > 0  # smoothed: non-zero without a 4-gram


def test_cider_idf_over_the_batch():
    want = cider_d(COMPLETIONS, REFS)
    assert want[0] > 0 and want[2] > 0
    check("cider", want)


def test_cider_idf_from_a_reference_file(tmp_path):
    path = tmp_path / "refs.jsonl"
    groups = [REFS[0], REFS[2], ["A cat sleeps on the mat."]]
    with path.open("w") as f:
        f.write(json.dumps(groups[0]) + "\n")  # a plain list
        f.write(json.dumps({"concept_set": "x", "scene": groups[1]}) + "\n")  # CommonGen JSONL
        f.write(json.dumps({"references": groups[2]}) + "\n")
    want = cider_d(COMPLETIONS, REFS, CiderIdf(groups))
    check("cider", want, "reward.idf=references", f"reward.idf_references={path}")
    # fixed idf: one prompt's rewards do not depend on the other prompts in the batch
    r = reward("cider", "reward.idf=references", f"reward.idf_references={path}")
    alone = r(PROMPTS[:1], COMPLETIONS[:1], REFS[:1])
    assert alone[0].item() == pytest.approx(want[0], rel=1e-6)
    with pytest.raises(ConfigError, match="idf_references"):
        reward("cider", "reward.idf=references")


def test_spider_is_cider_alone_and_says_so_once(caplog):
    import rft.reward.textgen as textgen

    textgen._warned.discard("spider")
    with caplog.at_level(logging.WARNING, logger="rft.reward.textgen"):
        check("spider", [2 * v for v in cider_d(COMPLETIONS, REFS)], "reward.cider_coeff=2")
    warnings = [r for r in caplog.records if "SPICE is unavailable" in r.getMessage()]
    assert len(warnings) == 1  # two rewards built, one warning


def test_bertscore():
    check("bertscore", bertscore_f1(COMPLETIONS, REFS))


def test_coverage_reads_the_concepts_from_the_prompt():
    # dog frisbee catch: 3/3, 3/3; apple tree pick: "picks", "apple", "tree" 3/3; empty 0
    check("coverage", [1.0, 1.0, 1.0, 0.0])
    r = reward("coverage")
    assert r(["generate a sentence with: dog cat."], ["A dog."], None).tolist() == [0.5]
    with pytest.raises(RewardError, match="not a CommonGen prompt"):
        r(["Write about a dog."], ["A dog."], None)
    custom = reward("coverage", "reward.prompt_prefix='Concepts: '")
    assert custom(["Concepts: dog cat."], ["cats"], None).tolist() == [0.5]


@pytest.mark.parametrize("name", ["rouge", "bleu", "cider", "spider"])
@pytest.mark.parametrize("refs", [None, [None] * 4, [[]] * 4])
def test_no_references_is_a_clear_error(name, refs):
    with pytest.raises(RewardError, match=f"reward={name} .*has none: the task gives no ref"):
        reward(name)(PROMPTS, COMPLETIONS, refs)


def test_a_single_string_reference_is_accepted():
    r = reward("rouge")
    one = r(PROMPTS, COMPLETIONS, [refs[0] for refs in REFS])
    assert torch.allclose(one, torch.tensor(rouge(COMPLETIONS, [[x[0]] for x in REFS])["rouge1"]))


def test_repeat_penalty_by_hand():
    p = "generate a sentence with: dog frisbee catch."
    texts = [
        "A dog catches a frisbee.",  # 0
        "The DOG FRISBEE CATCH game.",  # the whole concept string, any case: -1
        "generate a sentence with: dog",  # the prefix: -1
        "They generated noise.",  # "generate" as a substring (RL4LMs tests substrings): -1
        "Sentences.",  # "sentence": -1
        "dog frisbee",  # not the whole concept string: 0
    ]
    assert repeat_penalties([p] * 6, texts) == [0.0, -1.0, -1.0, -1.0, -1.0, 0.0]
    assert concept_string("ctx generate a sentence with:  a b c .  ") == "a b c"
    with pytest.raises(RewardError, match="reward.prompt_prefix"):
        concept_string("generate a sentence with: no final dot")


def test_weighted_sum_combines_metric_rewards():
    cfg = compose_cfg(
        "reward=weighted_sum",
        "~reward.terms.sentiment",
        "+reward.terms.rouge={weight:2.0,reward:{_target_:rft.reward.textgen.RougeReward}}",
        "+reward.terms.cover={weight:0.5,reward:{_target_:rft.reward.textgen.CoverageReward}}",
    )
    got = build_reward(cfg.reward)(PROMPTS, COMPLETIONS, REFS)
    want = 2.0 * torch.tensor(rouge(COMPLETIONS, REFS)["rouge1"]) + 0.5 * torch.tensor(
        [1.0, 1.0, 1.0, 0.0]
    )
    assert torch.allclose(got, want, atol=1e-6)


def test_meteor_reward_without_wordnet_fails_when_built(tmp_path):
    with pytest.raises(MetricUnavailable, match="setup_wordnet.py"):
        reward("meteor", f"reward.wordnet_dir={tmp_path}")


def test_empty_completions_are_counted_and_logged_not_silent(caplog):
    """An empty completion scores the metric's floor (0), and the reward says so: one warning
    naming the reward and the count, and a running n_empty / n_scored."""
    import logging

    from rft.reward.base import build_reward

    fn = build_reward({"_target_": "rft.reward.textgen.CoverageReward"})
    prompts = ["generate a sentence with: dog frisbee catch."] * 3
    with caplog.at_level(logging.WARNING):
        out = fn(prompts, ["The dog catches a frisbee.", "   ", ""], [["x"]] * 3)
    assert out.tolist() == [1.0, 0.0, 0.0]
    assert (fn.n_empty, fn.n_scored) == (2, 3)
    assert any(
        "2 of 3 completions" in r.message and "CoverageReward" in r.message for r in caplog.records
    )
