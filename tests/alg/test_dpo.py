"""The DPO module (alg=dpo / ipo / hinge / dpo_ref_free): every variant through train(cfg) with
its logged loss equal to the formula on the batch, π_ref's log-probs computed once and cached,
sampled pairs ranked by the reward, kill-and-resume, and clear errors for bad preference data.
The loss numbers themselves are pinned in tests/core/test_dpo.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from safetensors.torch import load_file

import rft.alg.steps
from rft.alg.dpo import DPO, sequence_logps
from rft.core.dpo import preference_loss, preference_rewards
from rft.errors import ConfigError, DataError
from rft.model.build import frozen_copy, load_policy
from rft.model.load import load_model
from rft.reward import build_reward
from rft.store.cached import open_store
from rft.train import train, validate
from tests.conftest import (
    LENGTH_REWARD,
    PREFERENCE_SMALL,
    WORDS,
    compose_cfg,
    run_killed_then_resumed,
    tiny_overrides,
)

VARIANTS = {"dpo": "sigmoid", "ipo": "ipo", "hinge": "hinge", "dpo_ref_free": "sigmoid"}


def write_preferences(path: Path, n: int = 24, seed: int = 0, keys=("chosen", "rejected")) -> Path:
    """n rows of prompt + two different completions of different lengths."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            row = {
                "prompt": f"Review {i}: " + " ".join(rng.choice(WORDS) for _ in range(4)),
                keys[0]: " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))),
                keys[1]: "the end " + " ".join(rng.choice(WORDS) for _ in range(3)),
            }
            f.write(json.dumps(row) + "\n")
    return path


def dpo_overrides(data: Path | None, alg: str, *extra: str) -> list[str]:
    """A tiny preference run: 2 optimizer steps on a preference JSONL, 1 eval prompt, a length
    reward."""
    keys = ("task.chosen_key=chosen", "task.rejected_key=rejected") if data else ()
    return tiny_overrides(
        data,
        *keys,
        "task.max_new_tokens=6",
        "task.min_new_tokens=2",
        "task.val_fraction=0.2",
        "task.test_fraction=0.1",
        "task.n_eval_prompts=1",
        "task.n_test_prompts=1",
        "hardware.torch_threads=1",
        "eval.batch_size=2",
        "eval.n_samples_table=1",
        "eval.before_training=false",
        *LENGTH_REWARD,
        f"alg={alg}",
        *PREFERENCE_SMALL,
        *extra,
    )


class Counting:
    """Wraps a callable and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def build_module(cfg, run_dir, reward_fn=None):
    """DPO built the way train() builds it, with its reward and π_ref's forward counted."""
    try:
        task = instantiate(cfg.task, _convert_="none")
    except InstantiationException as e:  # train() reports the task's own error: so does this
        raise e.__cause__ from None
    reward_fn = reward_fn or Counting(build_reward(cfg.reward))
    policy = load_policy(cfg.model)
    ref = frozen_copy(policy)
    ref.model.forward = Counting(ref.model.forward)
    module = DPO(cfg, task, policy, ref, reward_fn, run_dir)
    module.store = open_store(cfg, run_dir)  # the test's own result store (tests/conftest.py)
    module.prepare()
    return module, reward_fn, ref.model.forward


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------ every variant
@pytest.mark.parametrize("alg", list(VARIANTS))
def test_variant_trains_two_steps_and_changes_the_policy(alg, tmp_path, monkeypatch):
    # Each step's logged loss and rewards/* equal THIS variant's formula, recomputed from the
    # policy's log-probs just before the step (one row at a time, not the module's concatenated
    # batch) and π_ref's from a separate copy of the initial policy. At step 1 π_θ = π_ref, so
    # Δ = 0: sigmoid logs log 2, hinge 1, ipo (1/(2β))² = 25, and rewards/* are 0 except for
    # reference-free, whose rewards are β log π_θ.
    data = write_preferences(tmp_path / "prefs.jsonl")
    cfg = compose_cfg(*dpo_overrides(data, alg))
    a, seen, original = cfg.alg, [], DPO.training_step
    initial = load_policy(cfg.model)  # π_ref's weights: the model loads the same every time

    def one_by_one(lm, pairs, which):
        out = [
            sequence_logps(lm, [p.prompt], [getattr(p, which)], cfg.task, torch.device("cpu"))
            for p in pairs
        ]
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    def spy(self, batch, batch_idx):
        pairs = [self.pairs[i] for i in batch]
        with torch.no_grad():
            pc, lc = one_by_one(self.policy, pairs, "chosen")
            pr, lr = one_by_one(self.policy, pairs, "rejected")
            rc, _ = one_by_one(initial, pairs, "chosen")
            rr, _ = one_by_one(initial, pairs, "rejected")
        kw = {"beta": a.kl.beta, "reference_free": a.reference_free}
        hand = preference_loss(
            pc, pr, rc, rr, loss=VARIANTS[alg], chosen_len=lc, rejected_len=lr, **kw
        )
        seen.append((hand.mean().item(), preference_rewards(pc, pr, rc, rr, **kw)))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(DPO, "training_step", spy)
    before = {k: v.clone() for k, v in load_model(cfg.model)[0].state_dict().items()}
    metrics = train(cfg, run_dir=tmp_path / "run")
    assert {"test/reward_mean", "test/perplexity"} <= set(metrics)
    rows = history(tmp_path / "run")
    assert rows[0]["pairs/n"] == 17 and rows[0]["iteration"] == 0  # 24 rows - 5 val - 2 test
    steps = [r for r in rows if "loss/policy" in r]
    assert [r["iteration"] for r in steps] == [1, 2] and len(seen) == 2
    for row, (hand, rewards) in zip(steps, seen):
        assert row["loss/policy"] == pytest.approx(hand, rel=1e-4, abs=1e-5)
        for k, v in rewards.items():
            assert row[k] == pytest.approx(v.mean().item(), rel=1e-4, abs=1e-5), k
    first = steps[0]
    if alg == "dpo_ref_free":
        assert first["rewards/chosen"] == pytest.approx(0.1 * first["policy/logp_chosen"])
    else:  # π_θ = π_ref at step 1
        step1 = {"dpo": 0.6931472, "hinge": 1.0, "ipo": 25.0}[alg]
        assert first["loss/policy"] == pytest.approx(step1, rel=1e-4)
        assert abs(first["rewards/margins"]) < 1e-5 and first["rewards/accuracies"] == 0
    # the step moves the margin the right way: the second batch's margin grows from 0
    after = load_file(str(tmp_path / "run" / "policy" / "model.safetensors"))
    assert sum(not torch.equal(before[k], after[k]) for k in after if k in before) > 0


# ------------------------------------------------------------------------------ caching
def test_reference_logps_are_computed_once_and_reused(tmp_path):
    data = write_preferences(tmp_path / "prefs.jsonl")
    cfg = compose_cfg(*dpo_overrides(data, "dpo"))
    first, _, ref_fwd1 = build_module(cfg, tmp_path / "run")
    # one π_ref forward per batch of score_batch_size / 2 = 4 pairs: ceil(17 / 4) = 5
    assert ref_fwd1.calls == 5 and first.ref_logps.shape == (17, 2)
    assert [e.kind for e in first.store.entries()] == ["dpo/ref_logps"]
    # the cached numbers are π_ref's own, pair by pair
    p = first.pairs[3]
    with torch.no_grad():
        want, _ = sequence_logps(
            first.ref, [p.prompt] * 2, [p.chosen, p.rejected], first.task, torch.device("cpu")
        )
    torch.testing.assert_close(first.ref_logps[3], want, rtol=1e-5, atol=1e-5)
    second, _, ref_fwd2 = build_module(cfg, tmp_path / "run2")  # a rerun, another job
    assert ref_fwd2.calls == 0 and torch.equal(first.ref_logps, second.ref_logps)
    assert [r.what for r in second.store.reused] == ["ref_logps"]
    # what π_ref's log-probs depend on changes the key: computed again
    cfg2 = compose_cfg(*dpo_overrides(data, "dpo", "task.max_new_tokens=3"))
    _, _, ref_fwd3 = build_module(cfg2, tmp_path / "run")
    assert ref_fwd3.calls == 5
    # reference-free never runs π_ref
    _, _, ref_fwd4 = build_module(compose_cfg(*dpo_overrides(data, "dpo_ref_free")), tmp_path / "f")
    assert ref_fwd4.calls == 0


def test_sampled_pairs_are_ranked_by_the_reward_and_cached(tmp_path):
    data = write_preferences(tmp_path / "prefs.jsonl")
    over = (
        "alg.pairs.source=sampled",
        "alg.pairs.n_prompts=6",
        "alg.pairs.samples_per_prompt=3",
        "task.chosen_key=null",
        "task.rejected_key=null",
    )
    cfg = compose_cfg(*dpo_overrides(data, "dpo", *over))
    scored = []

    def reward(prompts, completions, references):
        out = [float(len(c.split())) for c in completions]  # more words = better; ties happen
        scored.extend(zip(prompts, completions, out))
        return out

    module, _, _ = build_module(cfg, tmp_path / "run", reward_fn=reward)
    s = module.stats
    assert s["pairs/n_prompts"] == 6 and len(scored) == 18
    assert s["pairs/n"] + s["pairs/ties_dropped"] + s["pairs/empty_dropped"] == 6
    by_prompt: dict[str, list] = {}
    for p, c, r in scored:
        by_prompt.setdefault(p, []).append((r, c))
    gaps = []
    for pair in module.pairs:  # best vs worst of the prompt's own samples
        rs = by_prompt[pair.prompt]
        assert len(rs) == 3
        best, worst = max(r for r, _ in rs), min(r for r, _ in rs)
        assert (best, worst) == (len(pair.chosen.split()), len(pair.rejected.split()))
        gaps.append(best - worst)
    ties = sum(max(r for r, _ in v) == min(r for r, _ in v) for v in by_prompt.values())
    assert s["pairs/ties_dropped"] == ties
    assert s["pairs/reward_gap_mean"] == pytest.approx(sum(gaps) / len(gaps))
    assert s["pairs/reward_gap_min"] == min(gaps) > 0
    # the pairs, with their rewards, go to preference_pairs.jsonl for other algorithms
    lines = (tmp_path / "run" / "preference_pairs.jsonl").read_text().splitlines()
    written = [json.loads(x) for x in lines]
    assert [(w["prompt"], w["chosen"], w["rejected"]) for w in written] == [
        (p.prompt, p.chosen, p.rejected) for p in module.pairs
    ]
    assert [w["reward_chosen"] - w["reward_rejected"] for w in written] == gaps
    assert all(w["reward_chosen"] == len(w["chosen"].split()) for w in written)
    # a rerun reads the pairs back: no sampling, no scoring
    scored.clear()
    again, _, _ = build_module(cfg, tmp_path / "run", reward_fn=reward)
    assert scored == [] and [p.chosen for p in again.pairs] == [p.chosen for p in module.pairs]
    assert sorted(e.kind for e in again.store.entries()) == ["dpo/pairs", "dpo/ref_logps"]
    # another seed samples other completions: a new key
    build_module(
        compose_cfg(*dpo_overrides(data, "dpo", *over, "seed=1")),
        tmp_path / "run",
        reward_fn=reward,
    )
    assert len(scored) == 18


def test_sampled_pairs_from_a_run_folder(tmp_path):
    # pairs.policy names a saved policy: its samples, not the initial policy's, are ranked
    data = write_preferences(tmp_path / "prefs.jsonl")
    over = ["alg.pairs.source=sampled", "alg.pairs.n_prompts=4", "alg.pairs.samples_per_prompt=2"]
    run = tmp_path / "first"
    train(compose_cfg(*dpo_overrides(data, "dpo")), run_dir=run)
    init, _, _ = build_module(compose_cfg(*dpo_overrides(data, "dpo", *over)), tmp_path / "a")
    named, _, _ = build_module(
        compose_cfg(*dpo_overrides(data, "dpo", *over, f"alg.pairs.policy={run}")), tmp_path / "b"
    )
    assert [p.chosen for p in init.pairs] != [p.chosen for p in named.pairs]


# ------------------------------------------------------------------------------ resume
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    data = write_preferences(tmp_path / "prefs.jsonl")
    over = dpo_overrides(data, "dpo", "alg.max_steps=4", "checkpoint.every_n_iterations=1")
    monkeypatch.setattr(rft.alg.steps, "STEPS_PER_BLOCK", 2)  # 4 steps in 2 checkpointed blocks
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")
    resumed = run_killed_then_resumed(over, DPO, 1, tmp_path / "resumed", monkeypatch)
    assert resumed["test/reward_mean"] == pytest.approx(full["test/reward_mean"])
    h_full, h_res = history(tmp_path / "full"), history(tmp_path / "resumed")
    assert sum("pairs/n" in r for r in h_res) == 1  # the step-0 row is not logged again
    steps_full = [r for r in h_full if "loss/policy" in r]
    steps_res = [r for r in h_res if "loss/policy" in r]
    assert (
        [r["iteration"] for r in steps_res] == [r["iteration"] for r in steps_full] == [1, 2, 3, 4]
    )
    keys = ("loss/policy", "rewards/chosen", "rewards/rejected", "rewards/margins")
    for a, b in zip(steps_full, steps_res):
        for k in keys:
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-7), (a["iteration"], k)
    assert len({r["loss/policy"] for r in steps_full}) == 4
    w_full = load_file(str(tmp_path / "full" / "policy" / "model.safetensors"))
    w_res = load_file(str(tmp_path / "resumed" / "policy" / "model.safetensors"))
    for k in w_full:
        torch.testing.assert_close(w_res[k], w_full[k], rtol=1e-6, atol=1e-7, msg=k)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "row,match",
    [
        (
            {"prompt": "p", "chosen": "same text", "rejected": "same text"},
            r"prefs\.jsonl:3: 'chosen' \(chosen\) and 'rejected' \(rejected\) are the same text.*"
            r"Drop the row",
        ),
        (
            {"prompt": "p", "chosen": "  ", "rejected": "b"},
            r"prefs\.jsonl:3: 'chosen' \(chosen\) is empty.*Fill it or drop the row",
        ),
        (
            {"prompt": "p", "chosen": "a", "rejected": ""},
            r"prefs\.jsonl:3: 'rejected' \(rejected\) is empty",
        ),
        (
            {"prompt": "p", "chosen": "a"},
            r"prefs\.jsonl:3: no 'rejected' field \(task\.rejected_key.*task\.rejected_key=<field>",
        ),
    ],
)
def test_bad_preference_rows_name_the_file_and_line(tmp_path, row, match):
    data = write_preferences(tmp_path / "prefs.jsonl", n=12)
    lines = data.read_text().splitlines()
    lines[2] = json.dumps(row)
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=match):
        train(compose_cfg(*dpo_overrides(data, "dpo")), run_dir=tmp_path / "run")


def test_csv_preferences_and_a_missing_column(tmp_path):
    data = tmp_path / "prefs.csv"
    data.write_text("prompt,good,bad\n" + "".join(f"p {i},yes {i},no {i}\n" for i in range(10)))
    over = ("task.chosen_key=good", "task.rejected_key=bad")
    module, _, _ = build_module(compose_cfg(*dpo_overrides(data, "dpo", *over)), tmp_path / "r")
    assert {(p.chosen.split()[1], p.rejected.split()[1]) for p in module.pairs} == {
        (p.prompt.split()[1],) * 2 for p in module.pairs
    }
    with pytest.raises(DataError, match=r"prefs\.csv:2: no 'worse' field \(task\.rejected_key"):
        build_module(
            compose_cfg(*dpo_overrides(data, "dpo", *over, "task.rejected_key=worse")),
            tmp_path / "r",
        )


@pytest.mark.parametrize(
    "extra,error,match",
    [
        (
            ("task.rejected_key=null",),
            ConfigError,
            r"task\.chosen_key='chosen' without task\.rejected_key.*Set task\.rejected_key=<field>",
        ),
        (
            ("task.chosen_key=null", "task.rejected_key=null"),
            DataError,
            r"no preference pairs.*task\.chosen_key=<field>.*alg\.pairs\.source=sampled",
        ),
        (("alg.kl.beta=0",), ConfigError, r"alg\.kl\.beta=0"),
        (("alg.loss=hinge", "alg.label_smoothing=0.1"), ConfigError, "alg.label_smoothing=0"),
        (
            ("alg.pairs.source=sampled", "alg.pairs.samples_per_prompt=1"),
            ConfigError,
            r"alg\.pairs\.samples_per_prompt=1: ranking needs ≥ 2",
        ),
    ],
)
def test_bad_settings_name_the_key_and_the_fix(tmp_path, extra, error, match):
    data = write_preferences(tmp_path / "prefs.jsonl", n=12)
    cfg = compose_cfg(*dpo_overrides(data, "dpo", *extra))
    with pytest.raises(error, match=match):
        validate(cfg)  # config errors: before anything loads
        build_module(cfg, tmp_path / "r")  # data errors: while the pairs load
