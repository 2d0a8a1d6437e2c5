"""Seq2seq (model=tiny_t5) runs checked like the causal ones: SFT fits its data, a
reward-weighted offline variant beats plain NLL, and the evaluation is recomputed by hand; on
task=commongen (its fixture, a T5-like tokenizer) SFT, PPO, a guided schedule and A-LoL train
and pass grouped references to the reward, and 5-beam evaluation equals transformers' own."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rft.errors import instantiate
from rft.model.load import load_model
from rft.train import train
from tests.conftest import compose_cfg
from tests.learning.commongen import CALLS, build_t5_like_tokenizer, commongen_overrides
from tests.learning.words import word_overrides


def t5(words, data=None, *extra):
    return word_overrides(
        words, data, "model=tiny_t5", f"model.tiny.tokenizer={words['tok']}", *extra
    )


def test_t5_sft_fits_the_references_and_eval_perplexity_matches(words, tmp_path):
    """SFT on mostly-good references lowers sft/loss (first vs last step, same data), and the
    test perplexity is exp(token NLL) of the written samples under the initial T5, computed
    with plain transformers (decoder fed the samples' ids after the start token)."""
    over = t5(
        words,
        words["sft_good"],
        "alg=sft",
        "alg.max_steps=12",
        "alg.batch_size=8",
        "alg.eval_every=0",
        "alg.lr=3e-3",
        "eval.before_training=false",
        "task.n_test_prompts=8",
        "eval.batch_size=8",
        "eval.n_samples_table=8",
    )
    cfg = compose_cfg(*over)
    m = train(cfg, run_dir=tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    losses = [r["sft/loss"] for r in rows if "sft/loss" in r]
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3, losses
    (path,) = sorted((tmp_path / "run" / "eval").glob("test_0*.json"))
    samples = json.loads(path.read_text())["samples"]
    ref, tok = load_model(cfg.model)
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in samples:
            x = tok(s["prompt"], add_special_tokens=False)["input_ids"]
            y = tok(s["completion"], add_special_tokens=False)["input_ids"]
            dec = [ref.config.decoder_start_token_id] + y[:-1]
            logits = ref(input_ids=torch.tensor([x]), decoder_input_ids=torch.tensor([dec])).logits
            logp = logits[0].log_softmax(-1)
            nll -= sum(logp[i, t].item() for i, t in enumerate(y))
            n += len(y)
    assert n == 8 * len(samples)
    assert m["test/perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-4)


def test_t5_reward_weighted_offline_beats_nll(words, tmp_path):
    common = (
        "alg.max_steps=24",
        "alg.batch_size=8",
        "alg.eval_every=0",
        "alg.lr=3e-3",
        "alg.n_train_pairs=-1",
        "alg.score_batch_size=32",
        "eval.before_training=false",
    )
    good = {}
    for alg in ("nll", "wbc"):
        m = train(compose_cfg(*t5(words, None, f"alg={alg}", *common)), run_dir=tmp_path / alg)
        good[alg] = m["test/reward_mean"]
    assert good["wbc"] > good["nll"] + 0.05, good


# ------------------------------------------------------------------ CommonGen on a tiny T5
@pytest.fixture(scope="module")
def t5tok(tmp_path_factory):
    return build_t5_like_tokenizer(tmp_path_factory.mktemp("t5tok"))


FAMILIES = {
    "sft": ("alg=sft", "alg.max_steps=2", "alg.batch_size=4", "alg.eval_every=0"),
    "ppo": (
        "alg=ppo",
        "alg.n_iterations=2",
        "alg.rollout_prompts=4",
        "alg.minibatch_size=4",
        "alg.eval_every=0",
        "alg.score_batch_size=4",
    ),
    # AggreVaTeD then PPO++ (τ = 1), every sample restarted: both roll-in directions on the
    # decoder, the guide critic, and the target regularization on the references
    "dlols": (
        "alg=dlols",
        "alg.n_iterations=2",
        "alg.schedule.switch_iteration=1",
        "alg.restart_prob.ppo_pp=1.0",
        "alg.restart_prob.aggrevated=1.0",
        "alg.target_coef=0.1",
        "alg.rollout_prompts=4",
        "alg.minibatch_size=4",
        "alg.eval_every=0",
        "alg.score_batch_size=4",
    ),
    # the same with a causal guide whose tokenizer differs (GPT-2's): roll-ins through text
    "dlols_gpt2_guide": (
        "alg=dlols",
        "+model@alg.guide.model=tiny",
        "alg.n_iterations=2",
        "alg.schedule.switch_iteration=1",
        "alg.restart_prob.ppo_pp=1.0",
        "alg.restart_prob.aggrevated=1.0",
        "alg.rollout_prompts=4",
        "alg.minibatch_size=4",
        "alg.eval_every=0",
        "alg.score_batch_size=4",
    ),
    "a_lol": (
        "alg=a_lol",
        "alg.max_steps=2",
        "alg.batch_size=4",
        "alg.eval_every=0",
        "alg.value.n_prompts=-1",
        "alg.value.epochs=1",
        "alg.value.max_value=0.2",  # V_ref < 0.2 < most rows' rewards: some A > 0 to learn from
        "task.pair_references=others",
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_t5_on_commongen_trains_and_rewards_see_grouped_references(
    family, t5tok, tmp_path, wordnet_reader
):
    """Each family runs 2 iterations / steps of task=commongen on the tiny T5 and changes the
    policy's weights; every reward call (rollouts, roll-ins, offline scoring, V_ref samples,
    evaluation) gets each prompt's references as rft.task.commongen groups them: all of its
    concept set's, and for A-LoL's offline rows (pair_references=others) the set's others."""
    CALLS.clear()
    cfg = compose_cfg(*commongen_overrides(t5tok, *FAMILIES[family], "alg.lr=1e-3"))
    m = train(cfg, run_dir=tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert max(r["iteration"] for r in rows) == 2 and math.isfinite(m["test/reward_mean"])
    if family.startswith("dlols"):  # AggreVaTeD, then PPO++, every sample from a roll-in
        it = [r for r in rows if "guided/scheme_aggrevated" in r]
        assert [r["guided/scheme_aggrevated"] for r in it] == [1.0, 0.0]
        assert all(r["guided/restart_share"] == 1.0 and r["guided/rollin_len"] >= 1 for r in it)
        if "alg.target_coef=0.1" in FAMILIES[family]:
            assert all(math.isfinite(r["loss/target_nll"]) for r in it)
    init, _ = load_model(cfg.model)
    trained, _ = load_model(
        compose_cfg(*commongen_overrides(t5tok), f"model.init_from={tmp_path / 'run'}").model
    )
    moved = [
        n
        for (n, a), b in zip(init.named_parameters(), trained.parameters())
        if not torch.equal(a, b)
    ]
    assert len(moved) > len(list(init.parameters())) // 2, moved

    task = instantiate(cfg.task, _convert_="none")
    refs = {e.prompt: e.references for e in task.train + task.val + task.test}
    offline = 0
    for prompts, completions, references in CALLS:
        for p, c, r in zip(prompts, completions, references):
            if family == "a_lol" and c in refs[p]:  # an offline row: scored against the others
                offline += 1
                assert r == [x for x in refs[p] if x != c]
            else:
                assert r == refs[p]
    assert offline == (5 if family == "a_lol" else 0)  # the rows of the multi-reference sets


def test_t5_beam_evaluation_matches_transformers_beam_search(t5tok, tmp_path, wordnet_reader):
    """eval.generation.do_sample=false num_beams=5 (GRUE's CommonGen decoding): the test
    samples are what transformers' 5-beam search gives the trained T5 for each prompt + </s>,
    5-20 tokens."""
    over = commongen_overrides(
        t5tok,
        *FAMILIES["sft"],
        "alg.lr=1e-3",
        "eval.generation.do_sample=false",
        "eval.generation.num_beams=5",
    )
    m = train(compose_cfg(*over), run_dir=tmp_path / "run")
    assert m["test/n_prompts"] == 2 and m["test/samples_per_prompt"] == 1
    # task.metrics of conf/task/commongen.yaml, against the grouped references and concepts
    assert all(math.isfinite(m[f"test/{k}"]) for k in ("meteor", "cider", "coverage"))
    (path,) = sorted((tmp_path / "run" / "eval").glob("test_0*.json"))
    samples = json.loads(path.read_text())["samples"]
    model, tok = load_model(compose_cfg(*over, f"model.init_from={tmp_path / 'run'}").model)
    assert len(samples) == 2
    for s in samples:
        out = model.generate(
            input_ids=torch.tensor([tok(s["prompt"])["input_ids"]]),  # the prompt + </s>
            num_beams=5,
            do_sample=False,
            max_new_tokens=20,
            min_new_tokens=5,
        )
        assert s["completion"] == tok.decode(out[0, 1:], skip_special_tokens=True)
        assert 5 <= len(tok(s["completion"], add_special_tokens=False)["input_ids"]) <= 20
