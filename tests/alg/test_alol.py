"""The A-LoL family module: V_ref training, cached advantages, good_priority sampling, the step
budget, every variant through train(cfg), and clear errors for bad data. The loss numbers
themselves are pinned in tests/core/test_alol.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

import rft.alg.steps
from rft.alg.alol import ALoL
from rft.alg.steps import StepBatchSampler
from rft.alg.value_ref import PromptValueHead, fit_value_head, n_heads_for, prompt_hidden_states
from rft.core import good_priority_weights, logprobs_from_logits
from rft.errors import ConfigError, DataError
from rft.model.build import frozen_copy, load_policy
from rft.model.load import load_model
from rft.reward import build_reward
from rft.rollout.prompts import encode_continuations, encode_prompts
from rft.store.cached import open_store
from rft.train import train, validate
from tests.alg.conftest import alol_overrides, write_pairs
from tests.conftest import compose_cfg

VARIANTS = ["nll", "wbc", "r_gold", "r_lol", "a_lol", "a_lol_ref_free", "a_lol_seq", "a_lol_kl"]


class Counting:
    """Wraps a callable and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def build_module(cfg, run_dir, reward_fn=None):
    """ALoL built the way train() builds it, with its reward and π_ref forward counted."""
    task = instantiate(cfg.task, _convert_="none")
    reward_fn = reward_fn or Counting(build_reward(cfg.reward))
    policy = load_policy(cfg.model)
    ref = frozen_copy(policy)
    ref.model.forward = Counting(ref.model.forward)
    module = ALoL(cfg, task, policy, ref, reward_fn, run_dir)
    module.store = open_store(cfg, run_dir)  # the test's own result store (tests/conftest.py)
    module.prepare()
    return module, reward_fn, ref.model.forward


# ------------------------------------------------------------------------------ V_ref
def test_value_head_learns_a_prompt_dependent_reward():
    g = torch.Generator().manual_seed(0)
    n, p, h = 64, 5, 16
    feats = torch.randn(n, p, h, generator=g)
    mask = torch.ones(n, p, dtype=torch.long)
    mask[::3, :2] = 0  # left padding ...
    feats[mask == 0] = 5 * torch.randn(
        int((mask == 0).sum()), h, generator=g
    )  # ... holding garbage
    good = torch.rand(n, generator=g) > 0.5  # the reward depends on the prompt only
    feats[..., 0] += torch.where(good, 1.5, -1.5)[:, None] * mask
    prompt_idx = torch.arange(n).repeat_interleave(2)  # 2 samples per prompt
    targets = torch.where(good, 0.8, 0.2)[prompt_idx] + 0.05 * torch.randn(2 * n, generator=g)
    torch.manual_seed(0)
    head = PromptValueHead(h, max_value=1.0, n_heads=8, dropout=0.0)
    fit = fit_value_head(
        head,
        feats,
        mask,
        targets,
        prompt_idx,
        epochs=8,
        lr=3e-3,
        batch_size=16,
        holdout_frac=0.25,
        seed=0,
    )
    curve = [r["val_mse"] for r in fit["history"]]
    assert curve[0] < fit["val_mse_init"] and min(curve) < 0.5 * fit["val_mse_init"]
    assert fit["val_mse"] == min(curve) and fit["best_epoch"] == 1 + curve.index(min(curve))
    assert fit["val_mse"] < 0.5 * fit["val_mse_const"]  # better than predicting the mean
    assert fit["n_holdout"] == 2 * 16 and fit["n_train"] == 2 * 48  # split by prompt, both samples
    with torch.no_grad():  # the head holds the best epoch's weights
        err = (head(feats[prompt_idx], mask[prompt_idx]) - targets).pow(2)
    assert err.mean().item() == pytest.approx(
        (fit["val_mse"] * 32 + fit["train_mse"] * 96) / 128, rel=1e-4
    )


def test_n_heads_divides_hidden_size():
    assert [n_heads_for(h) for h in (64, 576, 60, 7, 1)] == [8, 8, 6, 7, 1]


def test_prompt_states_do_not_depend_on_left_padding():
    policy = load_policy(compose_cfg("model=tiny").model)
    tok = policy.tokenizer
    alone = prompt_hidden_states(policy, *encode_prompts(tok, ["a short one"], 16))
    ids, mask = encode_prompts(
        tok, ["a short one", "a much longer prompt than the other one is"], 16
    )
    batched = prompt_hidden_states(policy, ids, mask)
    n = alone.shape[1]
    assert torch.allclose(batched[0, -n:], alone[0], atol=1e-5)


# ------------------------------------------------------------------------------ sampling
def test_good_priority_frequencies_follow_positive_advantages():
    adv = torch.tensor([0.5, -0.2, 0.0, 1.5, 0.25, -1.0, 0.75])
    probs = good_priority_weights(adv, "advantage").double().numpy()
    sampler = StepBatchSampler(
        len(adv), 16, seed=3, steps_per_block=10, total_steps=2000, probs=probs
    )
    draws = np.concatenate([sampler.batch_for_step(s) for s in range(2000)])
    freq = np.bincount(draws, minlength=len(adv)) / len(draws)
    expected = adv.clamp(min=0).numpy() / adv.clamp(min=0).sum().item()
    assert np.all(freq[expected == 0] == 0)  # A ≤ 0: the leftover lunch is never drawn
    assert np.abs(freq - expected).max() < 0.01
    # a pure function of (seed, step): a fresh sampler and the block iterator agree
    again = StepBatchSampler(
        len(adv), 16, seed=3, steps_per_block=10, total_steps=2000, probs=probs
    )
    again.set_epoch(4)
    assert list(again) == [sampler.batch_for_step(s) for s in range(40, 50)]


# ------------------------------------------------------------------------------ caching, budget
def test_advantages_are_cached_and_reused(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    cfg = compose_cfg(*alol_overrides(data, "a_lol"))
    first, reward1, ref_fwd1 = build_module(cfg, tmp_path / "run")
    assert reward1.calls > 0 and ref_fwd1.calls > 0
    kinds = sorted(e.kind for e in first.store.entries())
    assert kinds == ["alol/advantages", "alol/value_ref", "offline_rewards"]
    second, reward2, ref_fwd2 = build_module(cfg, tmp_path / "run2")  # a rerun, another job
    assert reward2.calls == 0 and ref_fwd2.calls == 0
    assert torch.equal(first.advantages, second.advantages) and first.stats == {
        **second.stats,
        "time/offline_prep_s": first.stats["time/offline_prep_s"],
    }
    # a setting V_ref depends on changes its key: V_ref is refitted, the scores are reused
    cfg2 = compose_cfg(*alol_overrides(data, "a_lol", "alg.value.epochs=1"))
    _, reward3, ref_fwd3 = build_module(cfg2, tmp_path / "run")
    assert ref_fwd3.calls > 0 and reward3.calls == 1  # one batch: π_ref's val samples only
    # with reuse off, everything is computed again
    cfg3 = compose_cfg(*alol_overrides(data, "a_lol", "store.reuse=false"))
    _, reward4, ref_fwd4 = build_module(cfg3, tmp_path / "run")
    assert reward4.calls > 1 and ref_fwd4.calls > 0


def test_budget_scales_with_the_positive_share(tmp_path):
    # R = 1 for even rows, 0 for odd ones; V_ref ∈ (0, 1), so exactly the R = 1 pairs have A > 0
    data = write_pairs(tmp_path / "pairs.jsonl", n=40, rewards=lambda i: float(i % 2 == 0))
    common = (
        "task.reward_key=reward",
        "alg.n_train_pairs=-1",
        "alg.max_steps=20",
        "alg.eval_every=10",
    )
    alol, _, _ = build_module(compose_cfg(*alol_overrides(data, "a_lol", *common)), tmp_path / "a")
    share = alol.stats["advantage/positive_share"]
    assert share == pytest.approx(np.mean([e.reward == 1.0 for e in alol.pairs]))
    assert (
        0 < share < 1 and alol.max_steps == int(20 * share) and alol.eval_every == int(10 * share)
    )
    assert alol.fit_epochs == -(-alol.max_steps // alol.steps_per_block)
    assert set(np.nonzero(alol.sampling_probs)[0]) == {
        i for i, e in enumerate(alol.pairs) if e.reward == 1.0
    }
    uniform, _, _ = build_module(
        compose_cfg(*alol_overrides(data, "a_lol", *common, "alg.sampling=uniform")), tmp_path / "u"
    )
    wbc, _, _ = build_module(compose_cfg(*alol_overrides(data, "wbc", *common)), tmp_path / "w")
    assert uniform.max_steps == wbc.max_steps == 20 and uniform.sampling_probs is None
    assert np.allclose(
        wbc.sampling_probs, [e.reward for e in wbc.pairs] / np.sum([e.reward for e in wbc.pairs])
    )


# ------------------------------------------------------------------------------ every variant
def data_reward(i: int) -> float:
    """Different rewards, all > 1 > V_ref (V_ref = sigmoid · max_value with max_value = 1): every
    pair has A > 0, so every A-LoL variant keeps its full 2-step budget, and R differs from 1 and
    from pair to pair, so R · NLL (wbc) and A+ · NLL differ from NLL and from each other."""
    return [1.1, 1.4, 1.7, 2.3][i % 4]


def hand_loss(name: str, logp, ref_logp, mask, reward, adv, clip_eps, beta_kl, min_prob):
    """The per-example loss of the rft/core/alol.py docstring, written out again in float64
    (not calling rft.core): logp / ref_logp (B, T) per-token log-probs, reward / adv (B,)."""
    m = mask.double()
    tok_nll = -logp.double() * m  # (B, T)
    nll = tok_nll.sum(-1)
    tok_logratio = (logp.double() - ref_logp.double()) * m
    rho, rho_t = tok_logratio.sum(-1).exp(), tok_logratio.exp()

    def clip(x):
        return x if clip_eps is None else x.clamp(1 - clip_eps, 1 + clip_eps)

    R = reward.double()
    a_plus = None if adv is None else adv.double().clamp(min=0)
    return {
        "nll": lambda: nll,
        "wbc": lambda: R * nll,
        "r_gold": lambda: R * (logp.double().exp().clamp(min=min_prob) * tok_nll).sum(-1),
        "r_lol": lambda: R * clip(rho) * nll,
        "a_lol": lambda: a_plus * clip(rho) * nll,
        "a_lol_ref_free": lambda: a_plus * nll,
        "a_lol_seq": lambda: a_plus * (clip(rho_t) * tok_nll).sum(-1),
        "a_lol_kl": lambda: a_plus * nll + beta_kl * tok_logratio.sum(-1),
    }[name]()


@pytest.fixture(scope="module")
def variant_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    data = write_pairs(root / "pairs.jsonl", rewards=data_reward)
    reward_of = {json.loads(r)["prompt"]: json.loads(r)["reward"] for r in data.open()}
    before, _ = load_model(compose_cfg("model=tiny").model)
    return data, root / "cache", {k: v.clone() for k, v in before.state_dict().items()}, reward_of


@pytest.mark.parametrize("alg", VARIANTS)
def test_variant_trains_two_steps_and_changes_the_policy(alg, variant_setup, tmp_path, monkeypatch):
    # Each step's logged loss/policy equals THIS variant's formula, recomputed by hand on the
    # same batch from the policy's and π_ref's log-probs just before the step, with R read from
    # the data file and A from the module; and it differs from every other variant's formula on
    # that batch (at step 1 π_θ = π_ref, so ρ = 1; step 2 separates the ratio variants). Catches
    # a variant mapped to another loss (every variant -> nll: wbc's loss is then mean NLL, not
    # mean R · NLL), a dropped weight, R or A misaligned with the batch, a wrong clip or β_kl.
    data, cache, before, reward_of = variant_setup  # one store: V_ref is fitted once
    # ε = 0.02: after one step ρ is outside [0.98, 1.02] for these pairs, so clipping is active
    clip = [] if alg == "a_lol_kl" else ["alg.clip_eps=0.02"]  # a_lol_kl: no clipping
    cfg = compose_cfg(
        *alol_overrides(data, alg, "task.reward_key=reward", f"store.path={cache}", *clip)
    )
    a, seen, original_step = cfg.alg, [], ALoL.training_step

    def spy(self, batch, batch_idx):
        tok, examples = self.policy.tokenizer, [self.pairs[i] for i in batch]
        p = encode_prompts(tok, [e.prompt for e in examples], self.task.prompt_max_tokens)
        c_ids, c_mask = encode_continuations(
            tok, [e.reference for e in examples], self.task.max_new_tokens
        )
        with torch.no_grad():
            logp = logprobs_from_logits(self.policy(*p, c_ids, c_mask)[0], c_ids)
            ref_logp = logprobs_from_logits(self.ref(*p, c_ids, c_mask)[0], c_ids)
        reward = torch.tensor([reward_of[e.prompt] for e in examples])
        adv = None if self.advantages is None else self.advantages[torch.tensor(batch)]
        args = (logp, ref_logp, c_mask, reward, adv, a.clip_eps, a.kl.beta, a.min_prob)
        names = VARIANTS if adv is not None else [v for v in VARIANTS if not v.startswith("a_lol")]
        logratio = torch.where(c_mask.bool(), logp - ref_logp, 0.0)
        clipped = ((logratio.exp() - 1).abs() > (a.clip_eps or 0)).float()  # per token
        if alg == "a_lol_seq":
            clipfrac = (clipped * c_mask).sum() / c_mask.sum()
        else:  # the sequence ratio
            clipfrac = ((logratio.sum(-1).exp() - 1).abs() > (a.clip_eps or 0)).float().mean()
        hand = {v: hand_loss(v, *args).mean().item() for v in names}
        seen.append((hand, reward, adv, clipfrac.item()))
        return original_step(self, batch, batch_idx)

    monkeypatch.setattr(ALoL, "training_step", spy)
    metrics = train(cfg, run_dir=tmp_path)
    assert {"test/reward_mean", "test/perplexity", "test/distinct_2", "reward/data_mean"} <= set(
        metrics
    )
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss/policy" in r]
    assert [r["iteration"] for r in steps] == [1, 2] and len(seen) == 2
    assert ("advantage/positive_share" in rows[0]) == alg.startswith("a_lol")
    for row, (hand, reward, adv, clipfrac) in zip(steps, seen):
        assert row["loss/policy"] == pytest.approx(hand[alg], rel=1e-5)
        if alg in ("r_lol", "a_lol", "a_lol_seq"):
            assert row["policy/clipfrac"] == pytest.approx(clipfrac)
        if adv is not None:  # A = R - V_ref with V_ref ∈ (0, 1): 0 < R - A < 1
            assert torch.all((reward - adv > 0) & (reward - adv < 1))
        weight = adv.clamp(min=0) if adv is not None else reward
        if alg != "nll":
            assert row["policy/weight_mean"] == pytest.approx(weight.mean().item(), rel=1e-6)
    for other in seen[0][0]:
        if other != alg:  # the other formulas give another loss on at least one of the 2 steps
            gap = max(abs(h[other] - h[alg]) / abs(h[alg]) for h, *_ in seen)
            assert gap > 1e-3, f"{alg} and {other} give the same loss on this data"
    if alg in ("r_lol", "a_lol", "a_lol_seq"):  # ρ = 1 at step 1; clipped after one update
        assert [r["policy/clipfrac"] for r in steps][0] == 0 and steps[1]["policy/clipfrac"] > 0
    after = load_file(str(tmp_path / "policy" / "model.safetensors"))
    assert sum(not torch.equal(before[k], after[k]) for k in after if k in before) > 0


class Killed(RuntimeError):
    pass


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    data = write_pairs(tmp_path / "pairs.jsonl")
    over = alol_overrides(data, "a_lol", "alg.max_steps=4", "checkpoint.every_n_iterations=1")
    original_step = ALoL.training_step
    # blocks of 2 steps, so that 4 steps make 2 checkpointed blocks
    monkeypatch.setattr(rft.alg.steps, "STEPS_PER_BLOCK", 2)

    def dies_in_block_2(self, batch, batch_idx):
        if self.current_epoch == 1:
            raise Killed("simulated kill")
        return original_step(self, batch, batch_idx)

    full = train(compose_cfg(*over), run_dir=tmp_path / "full")
    monkeypatch.setattr(ALoL, "training_step", dies_in_block_2)
    with pytest.raises(Killed):
        train(compose_cfg(*over), run_dir=tmp_path / "resumed")
    assert (
        json.loads((tmp_path / "resumed" / "checkpoints" / "state.json").read_text())["step"] == 2
    )
    monkeypatch.setattr(ALoL, "training_step", original_step)
    resumed = train(compose_cfg(*over), run_dir=tmp_path / "resumed")  # resumes by itself
    assert resumed["test/reward_mean"] == pytest.approx(full["test/reward_mean"])

    def rows(run):
        return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]

    h_full, h_res = rows(tmp_path / "full"), rows(tmp_path / "resumed")
    assert (
        sum("advantage/positive_share" in r for r in h_res) == 1
    )  # logged once, not again on resume
    # Every per-step number of the resumed run equals the uninterrupted run's, and so do the
    # final weights (bit for bit here, on one CPU thread; the tolerance is float32 rounding).
    # Checked by planting bugs in a scratch copy of rft/: AdamW moments dropped on resume, other
    # batches drawn on resume (another seed, or uniform instead of good_priority), and the
    # resumed run's lr 0.1% off (the step-4 loss moves by 1e-4 relative: the old rel=1e-4 check
    # passed it) all fail here; a resumed run whose LAST update alone differs (lr 1% off) has the
    # same 4 logged losses (each is computed before its update) and fails only on the weights.
    steps_full = [r for r in h_full if "loss/policy" in r]
    steps_res = [r for r in h_res if "loss/policy" in r]
    assert (
        [r["iteration"] for r in steps_full] == [r["iteration"] for r in steps_res] == [1, 2, 3, 4]
    )
    keys = ("loss/policy", "policy/nll", "policy/weight_mean", "policy/logratio_seq")
    for a, b in zip(steps_full, steps_res):
        for k in keys:
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-7), (a["iteration"], k)
        assert b["policy/clipfrac"] == a["policy/clipfrac"]
    assert len({r["loss/policy"] for r in steps_full}) == 4  # the 4 steps are not one number
    w_full = load_file(str(tmp_path / "full" / "policy" / "model.safetensors"))
    w_res = load_file(str(tmp_path / "resumed" / "policy" / "model.safetensors"))
    assert w_full.keys() == w_res.keys()
    for k in w_full:
        torch.testing.assert_close(w_res[k], w_full[k], rtol=1e-6, atol=1e-7, msg=k)


# ------------------------------------------------------------------------------ bad input
def test_no_positive_advantage_is_a_clear_error(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", rewards=0.0)  # R = 0 < V_ref everywhere
    with pytest.raises(DataError, match="positive advantage"):
        build_module(
            compose_cfg(*alol_overrides(data, "a_lol", "task.reward_key=reward")), tmp_path / "r"
        )


def test_all_zero_rewards_are_a_clear_error_for_reward_weighting(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", rewards=0.0)
    with pytest.raises(DataError, match="rewards is > 0.*alg.sampling=uniform"):
        build_module(
            compose_cfg(*alol_overrides(data, "wbc", "task.reward_key=reward")), tmp_path / "w"
        )
    with pytest.raises(DataError, match="all .* rewards are 0"):
        build_module(
            compose_cfg(
                *alol_overrides(data, "wbc", "task.reward_key=reward", "alg.sampling=uniform")
            ),
            tmp_path / "u",
        )


@pytest.mark.parametrize(
    "rows,key,match",
    [
        (
            '{"prompt": "a", "reference": "b", "reward": NaN}\n',
            "reward",
            r"pairs\.jsonl:1: 'reward' is nan",
        ),
        (
            '{"prompt": "a", "reference": "b"}\n',
            "score",
            r"pairs\.jsonl:1: no 'score' value \(task.reward_key\)",
        ),
        ("", "reward", r"pairs\.jsonl: no prompts in the file \(it is empty\)"),
    ],
)
def test_bad_reward_files_name_the_file_and_the_key(tmp_path, rows, key, match):
    data = tmp_path / "pairs.jsonl"
    data.write_text(rows * 12)
    with pytest.raises(DataError, match=match):
        train(
            compose_cfg(*alol_overrides(data, "a_lol", f"task.reward_key={key}")),
            run_dir=tmp_path / "run",
        )


def test_missing_completions_name_the_reference_key(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    with pytest.raises(DataError, match="task.reference_key"):
        build_module(
            compose_cfg(*alol_overrides(data, "nll", "task.reference_key=completion")),
            tmp_path / "r",
        )


@pytest.mark.parametrize(
    "alg,extra,match",
    [
        ("nll", "alg.sampling=good_priority", "alg.sampling=uniform"),
        ("r_lol", "alg.clip_eps=0", "alg.clip_eps=0"),
        ("a_lol", "alg.value.holdout_frac=1.0", "alg.value.holdout_frac"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, alg, extra, match):
    data = write_pairs(tmp_path / "pairs.jsonl")
    with pytest.raises(ConfigError, match=match):
        validate(compose_cfg(*alol_overrides(data, alg, extra)))  # before anything loads


# ------------------------------------------------------------------------------ sweep report
def test_report_compares_the_family_with_bars_and_a_table(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from rft.report import build_report

    figs, save = {}, Figure.savefig  # each saved Figure by file name, read back below

    def capture(fig, path, *args, **kwargs):
        figs[Path(path).name] = fig
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)

    for i, (alg, seed, reward) in enumerate([("nll", 0, 0.5), ("nll", 1, 0.7), ("a_lol", 0, 0.9)]):
        job = tmp_path / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- alg={alg}\n- seed={seed}\n")
        (job / "metrics.json").write_text(
            json.dumps(
                {"test/reward_mean": reward, "test/perplexity": 30.0 + i, "test/distinct_2": 0.8}
            )
        )
    res = build_report(tmp_path)
    assert (tmp_path / "final_bars.png").stat().st_size > 0
    # What the bars show: one panel per final metric, one bar per setting at its seed mean, each
    # seed of a multi-seed setting as a dot. Catches bars of the wrong metric or setting order,
    # a seed's value instead of the mean, and missing seed dots.
    axes = figs["final_bars.png"].axes
    assert [ax.get_title() for ax in axes] == [
        "final test/reward_mean",
        "final test/perplexity",
        "final test/distinct_2",
    ]
    means = {"test/reward_mean": [0.6, 0.9], "test/perplexity": [30.5, 32.0]}
    means["test/distinct_2"] = [0.8, 0.8]
    for ax, want in zip(axes, means.values()):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["nll", "a_lol"]
        assert [b.get_height() for b in ax.patches] == pytest.approx(want)
    dots = [ln for ln in axes[0].get_lines() if ln.get_marker() == "o"]
    assert len(dots) == 1 and list(dots[0].get_ydata()) == pytest.approx([0.5, 0.7])
    assert list(dots[0].get_xdata()) == [0, 0]  # on the nll bar
    assert res["comparison"].splitlines()[2:] == [
        "| nll | 2 | 0.6 ± 0.1 | 30.5 ± 0.5 | 0.8 ± 0 |",
        "| a_lol | 1 | 0.9 | 32 | 0.8 |",
    ]
    assert "## Final metrics by setting" in res["markdown"]


def test_offline_blocks_draw_new_batches_and_stop_at_max_steps(tmp_path, monkeypatch):
    # Lightning never calls set_epoch on a batch sampler: block 1 must not replay block 0.
    data = write_pairs(tmp_path / "pairs.jsonl", rewards=1.0)
    seen, orig = [], ALoL.training_step

    def spy(self, batch, batch_idx):
        sampler = StepBatchSampler(
            len(self.pairs),
            self.a.batch_size,
            self.cfg.seed,
            self.steps_per_block,
            13,
            probs=self.sampling_probs,
        )
        step = self.current_epoch * self.steps_per_block + batch_idx
        seen.append((step, list(batch), sampler.batch_for_step(step)))
        return orig(self, batch, batch_idx)

    monkeypatch.setattr(ALoL, "training_step", spy)
    over = ["task.reward_key=reward", "alg.max_steps=13", "alg.batch_size=2"]
    train(compose_cfg(*alol_overrides(data, "wbc", *over)), run_dir=tmp_path / "run")
    assert [s for s, *_ in seen] == list(range(13))
    assert all(got == want for _, got, want in seen)
    assert [b for _, b, _ in seen[10:]] != [b for _, b, _ in seen[:3]]


def test_data_path_learns_from_a_preference_files_chosen_completions(tmp_path):
    # alg.data_path replaces the task's train rows; the task still gives val/test prompts
    task_rows = write_pairs(tmp_path / "task.jsonl")
    prefs = tmp_path / "preference_pairs.jsonl"
    rows = [
        {"prompt": f"Prompt {i}:", "chosen": f" good words {i}", "rejected": f" bad {i}"}
        for i in range(6)
    ]
    rows[2]["chosen"] = "  "  # an empty completion gives no row
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    over = [f"alg.data_path={prefs}", "alg.data_completion_keys=[chosen]"]
    module, _, _ = build_module(
        compose_cfg(*alol_overrides(task_rows, "a_lol", *over)), tmp_path / "r"
    )
    assert [(p.prompt, p.reference) for p in module.pairs] == [
        (r["prompt"], r["chosen"]) for i, r in enumerate(rows) if i != 2
    ]  # used as they are: no space added, file order
    assert module.stats["data/n_pairs"] == 5
    both = [f"alg.data_path={prefs}", "alg.data_completion_keys=[chosen,rejected]"]
    module2, _, _ = build_module(
        compose_cfg(*alol_overrides(task_rows, "nll", *both)), tmp_path / "s"
    )
    assert [p.reference for p in module2.pairs][:3] == [" good words 0", " bad 0", " good words 1"]
    # a missing column names the file, the line and the key that fixes it
    bad = [f"alg.data_path={prefs}", "alg.data_completion_keys=[completion]"]
    with pytest.raises(
        DataError,
        match=r"preference_pairs.jsonl:1: no 'completion' field.*alg.data_completion_keys",
    ):
        build_module(compose_cfg(*alol_overrides(task_rows, "nll", *bad)), tmp_path / "t")
    with pytest.raises(DataError, match=r"alg.data_path=.*nope.jsonl'?: file not found"):
        build_module(
            compose_cfg(*alol_overrides(task_rows, "nll", f"alg.data_path={tmp_path}/nope.jsonl")),
            tmp_path / "u",
        )
