"""Reward models trained in rft (rft/alg/reward_model.py): alg=reward_classifier and
alg=reward_model train on the tiny backbones, save a folder reward=classifier loads and scores
with, learn an easy synthetic set, resume exactly, and name each bad input. The maths is pinned
in tests/core/test_reward_model.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rft.alg.reward_model import BradleyTerryRewardModel, RewardClassifier, build_backbone
from rft.errors import ConfigError, DataError
from rft.io import read_history
from rft.reward import build_reward
from rft.train import train
from tests.conftest import (
    REWARD_MODEL_SMALL,
    compose_cfg,
    imdb_dir,
    run_killed_then_resumed,
    tiny_overrides,
)

GOOD = "good great lovely fun happy superb".split()
BAD = "bad awful boring dull sad poor".split()
FILLER = "the film was a plot scene actor story".split()


def _sentence(rng: random.Random, words: list[str]) -> str:
    ws = [rng.choice(words) for _ in range(3)] + [rng.choice(FILLER) for _ in range(3)]
    rng.shuffle(ws)
    return " ".join(ws)


def write_labelled(path: Path, n: int = 60, seed: int = 0, label=None) -> Path:
    """Easy sentiment: a row's label is POSITIVE iff its words come from GOOD. Labels as names
    on even rows, as indices on odd rows (both are accepted); ``label(i)`` overrides."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            y = rng.random() < 0.5
            value = ["NEGATIVE", "POSITIVE"][y] if i % 2 == 0 else int(y)
            row = {"prompt": _sentence(rng, GOOD if y else BAD), "label": value}
            if label is not None:
                row["label"] = label(i)
            f.write(json.dumps(row) + "\n")
    return path


def write_preferences(path: Path, n: int = 60, seed: int = 0, row_fn=None) -> Path:
    """Pairs whose chosen completion uses GOOD words and rejected one BAD words."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            row = {
                "prompt": f"Review {i}:",
                "chosen": " " + _sentence(rng, GOOD),
                "rejected": " " + _sentence(rng, BAD),
            }
            f.write(json.dumps(row_fn(i, row) if row_fn else row) + "\n")
    return path


def rm_overrides(data: Path | None, alg: str, *extra: str) -> list[str]:
    """A tiny reward-model run on a JSONL task (None: ``extra`` names the task): every held-out
    row evaluated."""
    jsonl = ("task.reference_key=null", "task.val_fraction=0.2", "task.test_fraction=0.2")
    # Bradley-Terry reads the same preference columns as alg=dpo
    pairs = (
        ("task.chosen_key=chosen", "task.rejected_key=rejected") if alg == "reward_model" else ()
    )
    return tiny_overrides(
        data,
        *(jsonl + pairs if data is not None else ()),
        "task.n_eval_prompts=-1",
        "task.n_test_prompts=-1",
        "hardware.torch_threads=1",
        "eval.before_training=false",
        f"alg={alg}",
        *REWARD_MODEL_SMALL,
        *extra,
    )


def _scores(reward, prompts, completions) -> list[float]:
    """build_reward's checked reward returns a tensor: as floats."""
    return torch.as_tensor(reward(prompts, completions)).tolist()


def _saved_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "reward_model" / "model.safetensors"))


def _changed(run: Path, backbone: str, labels: list[str]) -> list[str]:
    """Names of the saved tensors that differ from the backbone's initial ones."""
    init = build_backbone(backbone, labels)[0].state_dict()
    return [k for k, v in _saved_weights(run).items() if not torch.equal(v, init[k])]


# ------------------------------------------------------------------ train, save, load, score
@pytest.mark.parametrize("backbone", ["tiny_bert", "tiny_gpt2"])
def test_classifier_trains_saves_and_scores_through_reward_classifier(tmp_path, backbone):
    data = write_labelled(tmp_path / "labelled.jsonl")
    run = tmp_path / "run"
    m = train(
        compose_cfg(*rm_overrides(data, "reward_classifier", f"alg.backbone={backbone}")), run
    )
    assert {"test/accuracy", "test/ece", "test/brier", "test/loss"} <= set(m)
    assert json.loads((run / "reward_model_metrics.json").read_text())["test/ece"] == m["test/ece"]
    losses = [r["rm/loss"] for r in read_history(run / "history.jsonl") if "rm/loss" in r]
    assert len(losses) == 2
    # both steps moved the classification head (and the body)
    changed = _changed(run, backbone, ["NEGATIVE", "POSITIVE"])
    assert any("score" in k or "classifier" in k for k in changed) and len(changed) > 2
    conf = json.loads((run / "reward_model" / "config.json").read_text())
    assert conf["id2label"] == {"0": "NEGATIVE", "1": "POSITIVE"}
    assert conf["label2id"] == {"NEGATIVE": 0, "POSITIVE": 1}

    cfg = compose_cfg(
        "reward=classifier", f"reward.model={run / 'reward_model'}", "reward.device=cpu"
    )
    reward = build_reward(cfg.reward)
    prompts = ["the film was", "a", "boring dull sad plot, and the actor was awful too"]
    completions = [" good great", " lovely", " bad"]
    batched = _scores(reward, prompts, completions)
    one_by_one = [_scores(reward, [p], [c])[0] for p, c in zip(prompts, completions)]
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    assert all(0.0 <= r <= 1.0 for r in batched)


@pytest.mark.parametrize("backbone", ["tiny_bert", "tiny_gpt2"])
def test_bradley_terry_model_trains_and_reward_classifier_returns_its_raw_score(tmp_path, backbone):
    data = write_preferences(tmp_path / "pairs.jsonl")
    run = tmp_path / "run"
    m = train(compose_cfg(*rm_overrides(data, "reward_model", f"alg.backbone={backbone}")), run)
    assert {"test/pairwise_accuracy", "test/loss", "test/score_gap"} <= set(m)
    assert (run / "reward_model_metrics.json").is_file()
    assert len(_changed(run, backbone, ["SCORE"])) > 2

    # reward.label stays at its default POSITIVE: a 1-label model ignores it
    cfg = compose_cfg(
        "reward=classifier", f"reward.model={run / 'reward_model'}", "reward.device=cpu"
    )
    reward = build_reward(cfg.reward)
    prompts, completions = ["Review 1:", "Review 2:", "x"], [" good fun", " bad", " the plot was"]
    batched = _scores(reward, prompts, completions)
    assert batched == pytest.approx(
        [_scores(reward, [p], [c])[0] for p, c in zip(prompts, completions)], abs=1e-5
    )
    # the raw score: the model's one logit on prompt + completion
    model, tok = reward.fn.model, reward.fn.tokenizer
    with torch.no_grad():
        logit = model(**tok(prompts[0] + completions[0], return_tensors="pt")).logits[0, 0]
    assert batched[0] == pytest.approx(logit.item(), abs=1e-5)


# ------------------------------------------------------------------ learning
def test_tiny_classifier_separates_an_easy_labelled_set(tmp_path):
    # 120 rows, 40 steps of 8 (~5 s). Chance is 0.5; measured held-out accuracy 1.0 with
    # seeds 0, 1, 2 (loss 0.69 -> < 0.1).
    data = write_labelled(tmp_path / "labelled.jsonl", n=120)
    extra = ("alg.max_steps=40", "alg.batch_size=8", "checkpoint.every_n_iterations=100")
    m = train(compose_cfg(*rm_overrides(data, "reward_classifier", *extra)), tmp_path / "run")
    assert m["test/n"] == 24
    assert m["test/accuracy"] >= 0.9
    assert m["test/loss"] < 0.4


def test_tiny_bradley_terry_model_ranks_an_easy_pair_set(tmp_path):
    data = write_preferences(tmp_path / "pairs.jsonl", n=120)
    extra = ("alg.max_steps=40", "alg.batch_size=8", "checkpoint.every_n_iterations=100")
    m = train(compose_cfg(*rm_overrides(data, "reward_model", *extra)), tmp_path / "run")
    assert m["test/pairwise_accuracy"] >= 0.9
    assert m["test/score_gap"] > 0


# ------------------------------------------------------------------ resume
@pytest.mark.parametrize(
    "alg,module_cls,write",
    [
        ("reward_classifier", RewardClassifier, write_labelled),
        ("reward_model", BradleyTerryRewardModel, write_preferences),
    ],
)
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch, alg, module_cls, write):
    data = write(tmp_path / "data.jsonl")
    # 20 steps = two blocks of 10: killed in the second block, resumed from the first's end
    ov = rm_overrides(data, alg, "alg.max_steps=20", "alg.eval_every=5")
    full = train(compose_cfg(*ov), tmp_path / "full")
    resumed = run_killed_then_resumed(ov, module_cls, 1, tmp_path / "resumed", monkeypatch)
    assert resumed == pytest.approx(full, abs=1e-6)

    def losses(run):
        rows = [r for r in read_history(run / "history.jsonl") if "rm/loss" in r]
        return [r["iteration"] for r in rows], [r["rm/loss"] for r in rows]

    steps, full_losses = losses(tmp_path / "full")
    assert steps == list(range(1, 21))
    assert losses(tmp_path / "resumed")[0] == steps
    assert losses(tmp_path / "resumed")[1] == pytest.approx(full_losses, abs=1e-6)
    a, b = _saved_weights(tmp_path / "full"), _saved_weights(tmp_path / "resumed")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# ------------------------------------------------------------------ IMDB (real data)
@pytest.mark.skipif(imdb_dir() is None, reason="IMDB files not found (RFT_DATA_DIR)")
@pytest.mark.parametrize("alg", ["reward_classifier", "reward_model"])
def test_imdb_reviews_train_both_reward_models(tmp_path, monkeypatch, alg):
    monkeypatch.setenv("RFT_DATA_DIR", str(imdb_dir()))
    ov = rm_overrides(None, alg, "task=imdb", "task.n_train=40", "task.n_val=8", "task.n_test=16")
    m = train(compose_cfg(*ov), tmp_path / "run")
    key = "test/accuracy" if alg == "reward_classifier" else "test/pairwise_accuracy"
    assert 0.0 <= m[key] <= 1.0
    conf = json.loads((tmp_path / "run" / "reward_model" / "config.json").read_text())
    if alg == "reward_classifier":  # the review labels: 1 = POSITIVE, reward.label's default
        assert m["test/n"] == 16
        assert conf["label2id"]["POSITIVE"] == 1
    else:  # pairs of (positive, negative) second halves: as many as the rarer label has
        assert 1 <= m["test/n"] <= 8


# ------------------------------------------------------------------ bad input
def test_label_outside_the_classes_names_file_line_and_fix(tmp_path):
    data = write_labelled(tmp_path / "bad.jsonl", label=lambda i: "meh" if i == 6 else "POSITIVE")
    with pytest.raises(DataError, match=r"bad\.jsonl:7: label 'label'='meh' is not one of alg"):
        train(compose_cfg(*rm_overrides(data, "reward_classifier")), tmp_path / "run")
    data = write_labelled(tmp_path / "idx.jsonl", label=lambda i: 2 if i == 3 else 0)
    with pytest.raises(DataError, match=r"idx\.jsonl:4: .*=2 is not one of .*alg\.classes="):
        train(compose_cfg(*rm_overrides(data, "reward_classifier")), tmp_path / "run2")


def test_missing_label_column_names_the_key(tmp_path):
    data = write_labelled(tmp_path / "labelled.jsonl")
    with pytest.raises(DataError, match=r"labelled\.jsonl:\d+: no 'sentiment' label.*label_key"):
        train(
            compose_cfg(*rm_overrides(data, "reward_classifier", "alg.label_key=sentiment")),
            tmp_path / "run",
        )


def test_preference_file_with_a_missing_column_names_file_line_and_key(tmp_path):
    def drop(i, row):
        if i == 4:
            del row["rejected"]
        return row

    data = write_preferences(tmp_path / "pairs.jsonl", row_fn=drop)
    with pytest.raises(
        DataError, match=r"pairs\.jsonl:5: no 'rejected' field.*task\.rejected_key="
    ):
        train(compose_cfg(*rm_overrides(data, "reward_model")), tmp_path / "run")


def test_identical_chosen_and_rejected_is_refused(tmp_path):
    def same(i, row):
        return {**row, "rejected": row["chosen"]} if i == 9 else row

    data = write_preferences(tmp_path / "pairs.jsonl", row_fn=same)
    with pytest.raises(
        DataError, match=r"pairs\.jsonl:10: 'chosen' \(chosen\) and 'rejected'.*same"
    ):
        train(compose_cfg(*rm_overrides(data, "reward_model")), tmp_path / "run")


def test_reward_classifier_refuses_a_causal_lm_folder(tmp_path):
    from rft.model.load import _tiny_tokenizer, build_tiny

    tok = _tiny_tokenizer(None)
    build_tiny(compose_cfg("model=tiny").model.tiny, tok).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    cfg = compose_cfg("reward=classifier", f"reward.model={tmp_path / 'lm'}", "reward.device=cpu")
    with pytest.raises(
        ConfigError, match=r"is not a sequence classifier .*GPT2LMHeadModel.*alg=reward_classifier"
    ):
        build_reward(cfg.reward)


def test_backbone_that_cannot_load_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"alg\.backbone=.*could not be loaded"):
        build_backbone(str(tmp_path / "nothing_here"), ["NEGATIVE", "POSITIVE"])
