"""Evaluation: metrics from per-example records, and sharding across DDP ranks (real gloo
process group, 2 processes on the CPU)."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from rft.eval.evaluate import (
    EvalRecords,
    aggregate,
    evaluate_policy,
    evaluate_shard,
    shard_bounds,
)
from rft.model.build import frozen_copy, load_policy
from rft.task.base import Example
from tests.conftest import WORDS, compose_cfg

BATCH = 4


def word_reward(prompts, texts, refs):
    """Share of words from a small positive list: cheap, deterministic, in [0, 1]."""
    good = {"good", "great", "lovely", "fun", "happy"}
    return torch.tensor([sum(w in good for w in t.split()) / max(len(t.split()), 1) for t in texts])


def examples(n: int = 10) -> list[Example]:
    return [
        Example(prompt=f"Review {i}: the {WORDS[i % len(WORDS)]} film", reference="x")
        for i in range(n)
    ]


def eval_kwargs(cfg, seed: int = 11) -> dict:
    return dict(
        prompt_max_tokens=16,
        max_new_tokens=6,
        min_new_tokens=6,
        generation=cfg.eval.generation,
        batch_size=BATCH,
        seed=seed,
    )


def models():
    cfg = compose_cfg("model=tiny")
    policy = load_policy(cfg.model)
    return cfg, policy, frozen_copy(policy)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 10, 17, 64])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_cover_every_example_once_in_whole_batches(n, world):
    bounds = [shard_bounds(n, BATCH, r, world) for r in range(world)]
    covered = [i for lo, hi in bounds for i in range(lo, hi)]
    assert covered == list(range(n))
    for lo, hi in bounds:
        assert lo % BATCH == 0 and (hi - lo) % BATCH == 0 or hi == n
    batches = [math.ceil((hi - lo) / BATCH) for lo, hi in bounds]
    assert max(batches) - min(batches) <= 1


def test_aggregate_matches_hand_computed_metrics():
    rec = EvalRecords(texts=["a b a", "b c"], rewards=[0.2, 0.6], lengths=[3, 1], nll=[3.0, 1.0])
    m = aggregate(rec)
    assert m["reward_mean"] == pytest.approx(0.4)
    assert m["reward_std"] == pytest.approx(0.2)  # population std
    assert m["perplexity"] == pytest.approx(math.exp(4.0 / 4))  # corpus NLL / corpus tokens
    assert m["distinct_1"] == pytest.approx(3 / 5)  # a b c of a b a b c
    assert m["distinct_2"] == pytest.approx(3 / 3)  # (a b) (b a) (b c)
    assert m["completion_tokens"] == pytest.approx(2.0)
    assert m["n_prompts"] == 2 and m["samples_per_prompt"] == 1
    # two prompts, one sample each: SE = std(ddof=1) / sqrt(2) = 0.2828 / 1.414 = 0.2
    assert m["reward_mean_se"] == pytest.approx(0.2)
    assert "perplexity" not in aggregate(EvalRecords(texts=["a"], rewards=[1.0], lengths=[1]))
    assert m["empty_share"] == 0.0
    blank = EvalRecords(texts=["a", " ", "", "b"], rewards=[1.0, 0.0, 0.0, 1.0], lengths=[1] * 4)
    assert aggregate(blank)["empty_share"] == 0.5


def test_single_process_evaluation_is_one_shard_and_keeps_example_order():
    cfg, policy, ref = models()
    ex = examples(10)
    res = evaluate_policy(policy, ref, word_reward, ex, n_samples=7, **eval_kwargs(cfg))
    metrics, samples = res.metrics, res.samples
    rec = evaluate_shard(policy, ref, word_reward, ex, **eval_kwargs(cfg))
    assert metrics == aggregate(rec)
    assert [s["prompt"] for s in samples] == [e.prompt for e in ex[:7]]
    assert [s["completion"] for s in samples] == rec.texts[:7]
    assert [s["reward"] for s in samples] == pytest.approx(
        word_reward(None, rec.texts[:7], None).tolist()
    )
    assert 1 < metrics["perplexity"] < float(policy.model.config.vocab_size) * 10


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        cfg, policy, ref = models()
        res = evaluate_policy(
            policy, ref, word_reward, examples(10), n_samples=10, **eval_kwargs(cfg)
        )
        metrics, samples = res.metrics, res.samples
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"metrics": metrics, "samples": samples}, f)
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_evaluate_their_shards_and_agree_on_whole_split_metrics(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # every rank logs the same metrics and samples

    # The same shards computed here: rank 0 takes batch 0 (examples 0-3) with the seed, rank 1
    # batches 1-2 (examples 4-9) with seed + 1.
    cfg, policy, ref = models()
    ex = examples(10)
    assert shard_bounds(10, BATCH, 0, 2) == (0, 4) and shard_bounds(10, BATCH, 1, 2) == (4, 10)
    want = evaluate_shard(policy, ref, word_reward, ex[:4], **eval_kwargs(cfg))
    want.extend(evaluate_shard(policy, ref, word_reward, ex[4:], **eval_kwargs(cfg, seed=12)))
    assert [s["completion"] for s in r0["samples"]] == want.texts
    for k, v in aggregate(want).items():
        assert r0["metrics"][k] == pytest.approx(v, rel=1e-6), k


# --------------------------------------------------------------- K samples and standard errors
# A fixed [3 prompts × 2 samples] reward matrix, prompt-major.
R = [[0.1, 0.3], [0.5, 0.9], [0.2, 0.2]]


def test_standard_error_is_over_prompts_with_k_samples_averaged_first():
    flat = [r for row in R for r in row]
    rec = EvalRecords(
        texts=["a b", "a c", "b b", "d e", "f", "f"],
        rewards=flat,
        lengths=[2, 2, 2, 2, 1, 1],
        nll=[1.0, 3.0, 2.0, 2.0, 0.5, 1.5],
        k=2,
    )
    m = aggregate(rec)
    # per-prompt means 0.2, 0.7, 0.2 -> mean 0.3667; deviations -1/6, 1/3, -1/6:
    # var(ddof=1) = (1/36 + 1/9 + 1/36) / 2 = 1/12, SE = sqrt(1/12 / 3) = 1/6
    assert m["reward_mean"] == pytest.approx(0.3666666666666667, abs=1e-12)
    assert m["reward_mean_se"] == pytest.approx(1 / 6, abs=1e-12)
    assert m["n_prompts"] == 3 and m["samples_per_prompt"] == 2
    # the naive SE over 6 samples treats them as independent and is smaller: not what we report
    naive = torch.tensor(flat, dtype=torch.float64).std().item() / math.sqrt(6)
    assert naive < m["reward_mean_se"] - 0.03
    # within-prompt std (ddof=1): 0.1414, 0.2828, 0 -> mean 0.1414
    assert m["reward_within_prompt_std"] == pytest.approx(math.sqrt(0.02), abs=1e-9)
    # perplexity: per-prompt NLL sums 4, 4, 2 over tokens 4, 4, 2 -> r = 10 / 10 = 1, and every
    # prompt has NLL = r · tokens, so the delta-method SE is exactly 0
    assert m["perplexity"] == pytest.approx(math.e)
    assert m["perplexity_se"] == pytest.approx(0.0, abs=1e-12)
    # distinct-1 over a b a c b b d e f f: 6 unique of 10; leave-one-prompt-out:
    # without p0 (b b d e f f) 4/6, without p1 (a b a c f f) 4/6, without p2 (a b a c b b d e) 5/8
    loo = [4 / 6, 4 / 6, 5 / 8]
    mean = sum(loo) / 3
    jack = math.sqrt(2 / 3 * sum((x - mean) ** 2 for x in loo))
    assert m["distinct_1"] == pytest.approx(0.6)
    assert m["distinct_1_se"] == pytest.approx(jack, abs=1e-12)
    # completion tokens: per-prompt means 2, 2, 1 -> SE = std([2, 2, 1], ddof=1) / sqrt(3)
    assert m["completion_tokens_se"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3), abs=1e-12)


def test_perplexity_se_matches_a_hand_delta_method():
    from rft.eval.stats import perplexity_se

    # 3 prompts × 1 sample: NLL 2, 6, 1 over 2, 3, 1 tokens; r = 9 / 6 = 1.5
    ppl, se = perplexity_se([2.0, 6.0, 1.0], [2, 3, 1], 1)
    resid = [2 - 1.5 * 2, 6 - 1.5 * 3, 1 - 1.5 * 1]  # -1, 1.5, -0.5
    want_se_r = math.sqrt(3 / 2 * sum(x * x for x in resid)) / 6
    assert ppl == pytest.approx(math.exp(1.5))
    assert se == pytest.approx(math.exp(1.5) * want_se_r, rel=1e-12)


def test_paired_difference_matches_hand_computation():
    from rft.eval.stats import paired_difference

    a, b = [0.9, 0.4, 0.6, 0.7], [0.5, 0.5, 0.2, 0.6]
    d = [0.4, -0.1, 0.4, 0.1]  # mean 0.2; deviations .2 -.3 .2 -.1; var = .18 / 3 = .06
    mean, se = paired_difference(a, b)
    assert mean == pytest.approx(sum(d) / 4)
    assert se == pytest.approx(math.sqrt(0.06 / 4), rel=1e-12)


def test_k_samples_per_prompt_layout_and_batches():
    cfg, policy, ref = models()
    ex = examples(5)
    res = evaluate_policy(
        policy, ref, word_reward, ex, n_samples=100, samples_per_prompt=3, **eval_kwargs(cfg)
    )
    assert res.metrics["n_prompts"] == 5 and res.metrics["samples_per_prompt"] == 3
    # prompt-major samples: each prompt's 3 completions in a row
    assert [s["prompt"] for s in res.samples] == [e.prompt for e in ex for _ in range(3)]
    assert len(res.per_prompt["reward"]) == 5 and all(len(r) == 3 for r in res.per_prompt["reward"])
    flat = [r for row in res.per_prompt["reward"] for r in row]
    assert flat == pytest.approx([s["reward"] for s in res.samples])
    assert res.metrics["reward_mean"] == pytest.approx(sum(flat) / 15)
    # a batch of BATCH=4 sequences holds one prompt's 3 samples: the same records in one shard
    rec = evaluate_shard(policy, ref, word_reward, ex, samples_per_prompt=3, **eval_kwargs(cfg))
    assert rec.rewards == pytest.approx(flat) and rec.k == 3
    # samples of one prompt differ (they are sampled, not copied)
    texts = [s["completion"] for s in res.samples]
    assert len(set(texts[:3])) > 1


def test_the_same_seed_gives_the_same_evaluation_and_leaves_the_global_rng_alone():
    cfg, policy, ref = models()
    ex = examples(6)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = evaluate_policy(policy, ref, word_reward, ex, samples_per_prompt=2, **eval_kwargs(cfg))
    after = torch.rand(3)
    b = evaluate_policy(policy, ref, word_reward, ex, samples_per_prompt=2, **eval_kwargs(cfg))
    assert torch.equal(before, after)  # evaluation never draws from the training stream
    assert a.metrics == b.metrics and a.per_prompt == b.per_prompt
    c = evaluate_policy(
        policy, ref, word_reward, ex, samples_per_prompt=2, **eval_kwargs(cfg, seed=99)
    )
    assert c.per_prompt["prompt_id"] == a.per_prompt["prompt_id"]
    assert [s["completion"] for s in c.samples] != [s["completion"] for s in a.samples]


# ------------------------------------------------- the fixed evaluation through train(cfg)
def _eval_record(run_dir, prefix: str) -> dict:
    files = sorted((run_dir / "eval").glob(f"{prefix}_[0-9]*.json"))
    return json.loads(files[-1].read_text())


def test_one_policy_evaluates_identically_under_every_training_seed(tmp_path):
    """The initial policy (a saved tiny model, so every run starts from the same weights) gets
    bit-identical test_init records under training seeds 0, 1 and 2: eval.seed, not the
    training seed, drives the evaluation's sampling."""
    from rft.train import train
    from tests.conftest import SFT_SMALL, tiny_overrides, write_prompts

    data = write_prompts(tmp_path / "prompts.jsonl")
    cfg, policy, _ = models()
    init = tmp_path / "init"
    policy.model.save_pretrained(init)
    policy.tokenizer.save_pretrained(init)
    over = tiny_overrides(data, *SFT_SMALL, f"model.init_from={init}", "eval.samples_per_prompt=3")
    records, metrics = [], []
    for seed in (0, 1, 2):
        run = tmp_path / f"s{seed}"
        metrics.append(train(compose_cfg(*over, f"seed={seed}"), run_dir=run))
        records.append(_eval_record(run, "test_init"))
    init_m = [{k: v for k, v in m.items() if k.startswith("test_init/")} for m in metrics]
    assert init_m[0] == init_m[1] == init_m[2]
    assert init_m[0]["test_init/samples_per_prompt"] == 3 and init_m[0]["test_init/n_prompts"] == 4
    assert records[0]["per_prompt"] == records[1]["per_prompt"] == records[2]["per_prompt"]
    assert records[0]["eval"] == {"split": "test", "seed": 7919, "samples_per_prompt": 3}
    assert [s["completion"] for s in records[0]["samples"]] == [
        s["completion"] for s in records[2]["samples"]
    ]
    # the trained policies differ between seeds, and are evaluated on the same prompts
    finals = [_eval_record(tmp_path / f"s{s}", "test")["per_prompt"] for s in (0, 1, 2)]
    assert finals[0]["prompt_id"] == records[0]["per_prompt"]["prompt_id"]
    assert finals[0]["reward"] != finals[1]["reward"] or finals[1]["reward"] != finals[2]["reward"]
    # another eval.seed samples other completions of the same policy
    other = train(compose_cfg(*over, "seed=0", "eval.seed=1"), run_dir=tmp_path / "e1")
    assert _eval_record(tmp_path / "e1", "test_init")["per_prompt"] != records[0]["per_prompt"]
    assert other["test_init/n_prompts"] == 4


def test_a_resumed_run_evaluates_its_final_policy_as_an_uninterrupted_one(tmp_path, monkeypatch):
    from rft.alg.sft import SFT
    from rft.train import train
    from tests.conftest import tiny_overrides, write_prompts

    data = write_prompts(tmp_path / "prompts.jsonl")
    over = tiny_overrides(
        data,
        "alg=sft",
        "alg.max_steps=20",
        "alg.batch_size=4",
        "alg.eval_every=0",
        "alg.lr=1e-3",
        "eval.samples_per_prompt=2",
    )
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")
    original = SFT.training_step

    class Killed(RuntimeError):
        pass

    def dies_in_block_2(self, batch, batch_idx):
        if self.current_epoch == 1:
            raise Killed("simulated kill")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SFT, "training_step", dies_in_block_2)
    with pytest.raises(Killed):
        train(compose_cfg(*over), run_dir=tmp_path / "resumed")
    monkeypatch.setattr(SFT, "training_step", original)
    resumed = train(compose_cfg(*over), run_dir=tmp_path / "resumed")
    a, b = _eval_record(tmp_path / "full", "test"), _eval_record(tmp_path / "resumed", "test")
    assert a["per_prompt"] == b["per_prompt"]
    assert [s["completion"] for s in a["samples"]] == [s["completion"] for s in b["samples"]]
    for k in ("test/reward_mean", "test/reward_mean_se", "test/perplexity", "test/distinct_2"):
        assert resumed[k] == full[k], k


def test_mode_evaluate_equals_a_training_runs_initial_evaluation(tmp_path):
    """``mode=evaluate`` runs the same evaluation as a run's ``test_init`` (default bf16
    precision included): same numbers, same per-prompt records, no training."""
    from rft.train import train
    from tests.conftest import SFT_SMALL, tiny_overrides, write_prompts

    data = write_prompts(tmp_path / "prompts.jsonl")
    over = [
        o
        for o in tiny_overrides(data, *SFT_SMALL, "eval.samples_per_prompt=2")
        if o != "hardware=cpu_fp32"
    ]
    trained = train(compose_cfg(*over), run_dir=tmp_path / "train")
    # recomputed (store.reuse=false): the store would otherwise serve the training run's
    only = train(
        compose_cfg(*over, "mode=evaluate", "store.reuse=false"), run_dir=tmp_path / "eval_only"
    )
    want = {
        k.replace("test_init/", "test/"): v
        for k, v in trained.items()
        if k.startswith("test_init/")
    }
    assert only == want
    a = _eval_record(tmp_path / "train", "test_init")
    b = _eval_record(tmp_path / "eval_only", "test")
    assert a["per_prompt"] == b["per_prompt"] and a["eval"] == b["eval"]
    assert not (tmp_path / "eval_only" / "checkpoints").exists()
    assert json.loads((tmp_path / "eval_only" / "metrics.json").read_text()) == only
    # with reuse on, it is the training run's test_init, read from the store
    again = train(compose_cfg(*over, "mode=evaluate"), run_dir=tmp_path / "again")
    assert again == want
    saved = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert str(tmp_path / "train") in saved["reused/test"]


@pytest.mark.parametrize("side", ["left", "right"])
def test_evaluation_cuts_prompts_on_the_tasks_side(side, monkeypatch):
    """evaluate_split feeds the policy each prompt's first (right) or last (left)
    prompt_max_tokens tokens, as task.prompt_truncation says (CommonGen: right)."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from rft.eval.evaluate import evaluate_split
    from rft.model.policy import PolicyLM

    cfg, policy, ref = models()
    tok = policy.tokenizer
    ex = [Example(prompt="one two three four five six", reference="x")]
    task = SimpleNamespace(
        cfg=OmegaConf.create({"metrics": []}),
        prompt_max_tokens=3,
        max_new_tokens=2,
        min_new_tokens=2,
        prompt_truncation=side,
        eval_examples=lambda split: ex,
    )
    seen = []
    gen = PolicyLM.generate

    def recording(self, ids, mask, *a, **k):
        seen.extend(tok.decode(r[m.bool()]) for r, m in zip(ids, mask))
        return gen(self, ids, mask, *a, **k)

    monkeypatch.setattr(PolicyLM, "generate", recording)
    evaluate_split(cfg, task, policy, ref, word_reward, "test")
    ids = tok(ex[0].prompt, add_special_tokens=False)["input_ids"]
    want = tok.decode(ids[:3] if side == "right" else ids[-3:])
    assert seen and all(s == want for s in seen)
