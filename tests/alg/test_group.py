"""The group-baseline module (rft.alg.group.GroupPG) end to end on the tiny model: every alg=
option trains and changes the policy, gradient accumulation does not change an update, the one-
step shortcut (old log-probs = the update's own) is exact, dynamic sampling fills the batch with
groups that have a spread, a killed run resumes exactly, and bad settings name their key."""

from __future__ import annotations

import re

import pytest
import torch

from rft.errors import ConfigError
from rft.train import train
from tests.conftest import (
    GROUP_SMALL,
    changed,
    compose_cfg,
    history,
    initial_params,
    run_ddp_cli,
    run_killed_then_resumed,
    tiny_overrides,
)

GROUP_ALGS = ["grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo"]


def half_constant_reward(prompts, completions, references=None) -> list[float]:
    """Constant 0.5 for prompts of an even review number (their groups never have a spread),
    the length reward for the others."""
    out = []
    for p, c in zip(prompts, completions):
        n = int(re.match(r"Review (\d+)", p).group(1))
        out.append(0.5 if n % 2 == 0 else max(0.0, 1 - abs(len(c.split()) - 3) / 3))
    return out


def group_cfg(prompts_file, alg: str, *extra: str):
    return compose_cfg(*tiny_overrides(prompts_file, f"alg={alg}", *GROUP_SMALL, *extra))


@pytest.mark.parametrize("alg", GROUP_ALGS)
def test_each_group_alg_trains_two_iterations_and_changes_the_policy(prompts_file, tmp_path, alg):
    cfg = group_cfg(prompts_file, alg)
    before = initial_params(cfg)
    run = tmp_path / alg
    metrics = train(cfg, run_dir=run)
    assert changed(before, run / "policy") > 0
    assert "test/reward_mean" in metrics
    rows = [r for r in history(run) if "loss/policy" in r]
    assert [r["iteration"] for r in rows] == [1, 2]
    for key in (
        "group/zero_std_share",
        "group/low_std_share",
        "clip_ratio/low_mean",
        "clip_ratio/high_mean",
        "clip_ratio/region_mean",
        "kl/k1",
        "kl/k2",
        "kl/k3",
        "policy/entropy",
        "completion/mean_length",
        "completion/clipped_ratio",
        "rollout/generated_tokens",
        "time/episodes_per_s",
    ):
        assert key in rows[0], (alg, key)
    # 8 episodes, minibatch 4: two optimizer steps per batch
    assert rows[0]["policy/optimizer_steps"] == 2
    assert rows[1]["rollout/generated_tokens_total"] == pytest.approx(
        rows[0]["rollout/generated_tokens"] + rows[1]["rollout/generated_tokens"]
    )


def test_kl_estimators_are_logged_side_by_side_and_k3_is_nonnegative(prompts_file, tmp_path):
    train(group_cfg(prompts_file, "grpo", "alg.n_iterations=3"), run_dir=tmp_path / "r")
    rows = [r for r in history(tmp_path / "r") if "loss/policy" in r]
    # GRPO's loss = policy term + β · k3 term (β = 0.04), both logged; by iteration 3 the
    # policy has moved from π_ref, so the KL term is not 0
    for r in rows:
        assert r["loss/total"] == pytest.approx(r["loss/policy"] + 0.04 * r["loss/kl"], abs=1e-7)
    assert rows[-1]["loss/kl"] > 1e-6
    for r in (r for r in history(tmp_path / "r") if "kl/k3" in r):
        assert r["kl/k3"] >= 0 and r["kl/k2"] >= 0
    # the first batch is sampled by π_θ = π_ref: every estimator is exactly 0
    first = next(r for r in history(tmp_path / "r") if "kl/k1" in r)
    assert first["kl/k1"] == pytest.approx(0, abs=1e-6)
    assert first["kl/k3"] == pytest.approx(0, abs=1e-6)


def test_gradient_accumulation_does_not_change_the_update(prompts_file, tmp_path):
    """One optimizer step over 8 episodes: micro-batches of 8, 4 or 2 give the same loss and
    the same weights (the loss is normalised over the minibatch, not the micro-batch)."""
    runs = {}
    for micro in (8, 2):
        cfg = group_cfg(
            prompts_file,
            "dapo",  # token-mean over the whole minibatch: the normaliser that matters most
            "alg.n_iterations=1",
            "alg.minibatch_size=8",
            f"alg.micro_batch_size={micro}",
            "alg.dynamic_sampling=false",
            "alg.kl.placement=loss",
            "alg.kl.beta=0.1",
            "hardware.precision=32-true",
        )
        run = tmp_path / f"m{micro}"
        train(cfg, run_dir=run)
        row = next(r for r in history(run) if "loss/policy" in r)
        from transformers import AutoModelForCausalLM

        runs[micro] = (row, AutoModelForCausalLM.from_pretrained(str(run / "policy")).state_dict())
    (r8, w8), (r2, w2) = runs[8], runs[2]
    assert r2["loss/policy"] == pytest.approx(r8["loss/policy"], abs=1e-6)
    assert r2["loss/kl"] == pytest.approx(r8["loss/kl"], abs=1e-7)
    for k in w8:
        torch.testing.assert_close(w2[k], w8[k], atol=1e-5, rtol=1e-4)


def test_one_step_per_batch_skips_the_old_logprob_pass_exactly(prompts_file, tmp_path, monkeypatch):
    """With one optimizer step per batch the update's first forward IS the sampling policy:
    the module does not score old log-probs (one forward pass saved), the ratio is exactly 1
    (approx_kl 0, nothing clipped), and with several steps it does score them."""
    from rft.alg.group import GroupPG

    flags = []
    orig = GroupPG.score

    def spy(self, b):
        out = orig(self, b)
        flags.append(b.old_logp is not None)
        return out

    monkeypatch.setattr(GroupPG, "score", spy)
    train(group_cfg(prompts_file, "grpo", "alg.minibatch_size=8"), run_dir=tmp_path / "one")
    assert flags == [False, False]
    for r in (r for r in history(tmp_path / "one") if "loss/policy" in r):
        assert r["policy/approx_kl"] == pytest.approx(0, abs=1e-7)
        assert r["clip_ratio/region_mean"] == 0
        assert r["policy/optimizer_steps"] == 1
    flags.clear()
    train(group_cfg(prompts_file, "grpo", "alg.minibatch_size=4"), run_dir=tmp_path / "two")
    assert flags == [True, True]
    # RLOO's KL sits in the reward: the sampling log-probs are needed before the update
    flags.clear()
    train(group_cfg(prompts_file, "rloo", "alg.minibatch_size=8"), run_dir=tmp_path / "rloo")
    assert flags == [True, True]


@pytest.mark.parametrize("max_rounds", [8, 1])
def test_dynamic_sampling_keeps_exactly_the_groups_that_have_a_spread(
    prompts_file, tmp_path, monkeypatch, max_rounds
):
    """Every generation round's groups are recorded as they come out of the generator. The
    batch the advantages are computed on must be, in order, the groups with a non-zero reward
    std of round 1, 2, ..., then (when the rounds ran out first) the dropped ones, cut at
    rollout_prompts groups; the rounds stop at the first round that fills the batch, or at
    max_sampling_rounds. Half the prompts score a constant, so the filter has groups to drop
    (checked: without it they would be in the batch)."""
    from rft.alg.group import GroupPG

    rounds: dict[int, list[torch.Tensor]] = {}
    batches: list[torch.Tensor] = []
    orig_gen, orig_adv = GroupPG.generate_groups, GroupPG.compute_advantages

    def generate_groups(self, indices):
        b, dt = orig_gen(self, indices)
        rounds.setdefault(self.current_epoch, []).append(b.scores.view(-1, self.G).clone())
        return b, dt

    def compute_advantages(self, b):
        batches.append(b.scores.view(-1, self.G).clone())
        return orig_adv(self, b)

    monkeypatch.setattr(GroupPG, "generate_groups", generate_groups)
    monkeypatch.setattr(GroupPG, "compute_advantages", compute_advantages)
    cfg = group_cfg(
        prompts_file,
        "dapo",
        "reward._target_=tests.alg.test_group.half_constant_reward",
        "~reward.target_words",
        f"alg.max_sampling_rounds={max_rounds}",
        "alg.samples_per_prompt=4",
        "alg.minibatch_size=16",
        "alg.overlong.buffer_frac=0",  # the scores the filter sees are the reward's own
    )
    train(cfg, run_dir=tmp_path / "r")
    rows = [r for r in history(tmp_path / "r") if "loss/policy" in r]
    assert len(batches) == len(rows) == 2
    for it, (batch, row) in enumerate(zip(batches, rows)):
        kept, dropped, n_rounds = [], [], 0
        for scores in rounds[it]:
            n_rounds += 1
            spread = scores.std(dim=1, unbiased=False) > 0
            kept += list(scores[spread])
            dropped += list(scores[~spread])
            if len(kept) >= 4 or n_rounds == max_rounds:
                break
        assert len(rounds[it]) == n_rounds == row["rollout/sampling_rounds"]
        torch.testing.assert_close(batch, torch.stack((kept + dropped)[:4]), rtol=0, atol=0)
        drawn = sum(len(s) for s in rounds[it])
        assert row["group/kept_share"] == pytest.approx(len(kept) / drawn)
        # the premise: the first round drew groups without a spread, which the filter dropped
        assert (rounds[it][0].std(dim=1) == 0).any()
    if max_rounds == 8:
        assert all((b.std(dim=1, unbiased=False) > 0).all() for b in batches)
    else:  # one round: the batch is that round's groups, those with a spread first
        assert any((b.std(dim=1) == 0).any() for b in batches)


def spread_reward(prompts, completions, references=None) -> list[float]:
    """A score of the completion's characters: two different completions (almost) never tie."""
    return [sum(map(ord, c)) % 997 / 997 for c in completions]


def test_dynamic_sampling_without_zero_std_groups_is_uniform_sampling(prompts_file, tmp_path):
    """Where no group has a zero spread (IMDB's VADER score, docs/results.md) the filter drops
    nothing and the run is exactly the uniform run: same draws, same updates."""
    over = ("reward._target_=tests.alg.test_group.spread_reward", "~reward.target_words")
    train(group_cfg(prompts_file, "grpo", *over), run_dir=tmp_path / "uniform")
    init = initial_params(group_cfg(prompts_file, "grpo", *over))
    train(
        group_cfg(prompts_file, "grpo", *over, "alg.dynamic_sampling=true"),
        run_dir=tmp_path / "dynamic",
    )
    uni = [r for r in history(tmp_path / "uniform") if "loss/policy" in r]
    dyn = [r for r in history(tmp_path / "dynamic") if "loss/policy" in r]
    assert all(r["group/zero_std_share"] == 0 for r in uni)  # the premise
    assert all(r["rollout/sampling_rounds"] == 1 and r["group/kept_share"] == 1 for r in dyn)
    for u, d in zip(uni, dyn, strict=True):
        for k in ("reward/mean", "loss/policy", "rollout/generated_tokens"):
            assert u[k] == d[k], k
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "uniform" / "policy" / "model.safetensors"))
    b = load_file(str(tmp_path / "dynamic" / "policy" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert changed(init, tmp_path / "dynamic" / "policy")


def test_dynamic_sampling_bounded_rounds_still_fill_the_batch(prompts_file, tmp_path):
    """A reward that is always constant: no group ever has a spread; after max_sampling_rounds
    the batch is filled with dropped groups (same size on every rank), zero advantage."""
    cfg = group_cfg(
        prompts_file,
        "dapo",
        "reward._target_=tests.learning.words.constant_reward",
        "~reward.target_words",
        "alg.max_sampling_rounds=3",
    )
    train(cfg, run_dir=tmp_path / "r")
    rows = [r for r in history(tmp_path / "r") if "loss/policy" in r]
    assert [r["rollout/sampling_rounds"] for r in rows] == [3, 3]
    assert all(r["group/zero_std_share"] == 1.0 for r in rows)
    assert all(r["loss/policy"] == 0 for r in rows)


@pytest.mark.parametrize(
    "alg, extra",
    [
        ("dapo", ()),
        ("rloo", ("alg.update_epochs=2",)),
        # the sampler's std estimates live in the checkpoint: the resumed draws must match
        ("grpo", ("alg.prompt_sampling=std_aware", "alg.std_sampler.momentum=0.5")),
    ],
)
def test_resume_after_kill_matches_uninterrupted_run(
    prompts_file, tmp_path, monkeypatch, alg, extra
):
    from rft.alg.group import GroupPG

    over = [
        *tiny_overrides(prompts_file, f"alg={alg}", *GROUP_SMALL, *extra),
        "alg.n_iterations=4",
        "checkpoint.every_n_iterations=2",
    ]
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")
    resumed = run_killed_then_resumed(over, GroupPG, 3, tmp_path / "resumed", monkeypatch)
    assert resumed["test/reward_mean"] == pytest.approx(full["test/reward_mean"], rel=1e-5)
    h_full = [r for r in history(tmp_path / "full") if "loss/policy" in r]
    h_res = [r for r in history(tmp_path / "resumed") if "loss/policy" in r]
    assert [r["iteration"] for r in h_res] == [1, 2, 3, 4]
    for a, b in zip(h_full, h_res):
        for k in ("reward/mean", "loss/policy", "rollout/generated_tokens_total", "kl/k3"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
        for k in (k for k in a if k.startswith("sampler/")):
            assert a[k] == pytest.approx(b[k], rel=1e-6), k


@pytest.mark.parametrize(
    "override, key",
    [
        ("alg.samples_per_prompt=1", "alg.samples_per_prompt"),
        ("alg.minibatch_size=3", "alg.minibatch_size"),
        ("alg.update_epochs=0", "alg.update_epochs"),
        ("alg.clip_low=1.5", "alg.clip_low"),
        ("alg.std_floor=-1", "alg.std_floor"),
        ("alg.kl.placement=reward", "alg.kl.estimator"),
        ("alg.max_sampling_rounds=0", "alg.max_sampling_rounds"),
        ("alg.overlong.buffer_frac=2", "alg.overlong.buffer_frac"),
    ],
)
def test_bad_settings_name_the_key(prompts_file, tmp_path, override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        train(group_cfg(prompts_file, "grpo", override), run_dir=tmp_path / "r")


def test_std_aware_sampling_prefers_prompts_with_a_spread(prompts_file, tmp_path, monkeypatch):
    """With half the prompts constant (std 0) and a small floor, once every prompt has been
    seen the std-aware sampler draws mostly the informative ones; the uniform draw does not."""
    from rft.alg.group import GroupPG

    drawn: dict[str, list[str]] = {"uniform": [], "std_aware": []}
    orig = GroupPG.draw_prompts

    def spy(self, it, batch):
        out = orig(self, it, batch)
        if it >= 6:  # after 6 × 8 draws of 40 train prompts most have an estimate
            drawn[choice(self.a.prompt_sampling)] += [self.task.train[i].prompt for i in out]
        return out

    from rft.config import choice

    monkeypatch.setattr(GroupPG, "draw_prompts", spy)
    for mode in ("uniform", "std_aware"):
        cfg = group_cfg(
            prompts_file,
            "grpo",
            "reward._target_=tests.alg.test_group.half_constant_reward",
            "~reward.target_words",
            f"alg.prompt_sampling={mode}",
            "alg.std_sampler.floor=0.01",
            "alg.n_iterations=10",
            "alg.rollout_prompts=8",
            "alg.samples_per_prompt=4",
            "alg.minibatch_size=32",
            "alg.micro_batch_size=32",
            "alg.lr=1e-5",
        )
        train(cfg, run_dir=tmp_path / mode)
    odd = {
        m: sum(int(re.match(r"Review (\d+)", p).group(1)) % 2 for p in v) / len(v)
        for m, v in drawn.items()
    }
    assert odd["std_aware"] > 0.8, odd
    assert odd["uniform"] < 0.7, odd
    zero = {}
    for mode in drawn:
        rows = [r for r in history(tmp_path / mode) if "loss/policy" in r]
        zero[mode] = sum(r["group/zero_std_share"] for r in rows[6:]) / len(rows[6:])
    assert "sampler/seen_share" in rows[-1]
    # fewer wasted groups (the odd prompts' length reward can still tie within a group)
    assert zero["std_aware"] < zero["uniform"] - 0.15, zero


def test_group_under_cpu_ddp_with_dynamic_and_std_aware_sampling(prompts_file, tmp_path):
    """2 CPU processes (gloo) through run.py: the ranks may run different numbers of dynamic-
    sampling rounds, gather every group's std into one sampler (identical on both ranks, so
    their next draws stay disjoint slices of one draw), and end with the same test metrics."""
    run = tmp_path / "run"
    args = tiny_overrides(prompts_file, "alg=dapo", *GROUP_SMALL) + [
        "reward._target_=tests.alg.test_group.half_constant_reward",
        "~reward.target_words",
        "alg.prompt_sampling=std_aware",
        "alg.n_iterations=3",
        "task.n_test_prompts=8",
    ]
    run_ddp_cli(args, run)
    rows = [r for r in history(run) if "loss/policy" in r]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert rows[-1]["sampler/seen_share"] > 0


def test_std_sampler_starts_from_an_extraction(prompts_file, tmp_path):
    """alg.std_sampler.init_from=<mode=extract run>: the prompts the extraction sampled start
    with their measured std, so the first batch is already drawn from estimates."""
    ext = tmp_path / "extract"
    over = tiny_overrides(
        prompts_file,
        "mode=extract",
        "diag.n_prompts=10",
        "diag.k_samples=3",
        "diag.split=train",
        "reward=custom",
        "reward._target_=rft.reward.basic.length_reward",
        "+reward.target_words=3",
    )
    train(compose_cfg(*over), run_dir=ext)
    cfg = group_cfg(
        prompts_file,
        "grpo",
        "alg.prompt_sampling=std_aware",
        f"alg.std_sampler.init_from={ext}",
        "alg.n_iterations=1",
    )
    train(cfg, run_dir=tmp_path / "r")
    row = next(r for r in history(tmp_path / "r") if "loss/policy" in r)
    n_train = 40 - round(40 * 0.1) - round(40 * 0.1)  # tiny_overrides' val/test cuts
    # 10 seeded by the extraction, + up to 4 observed in the first batch
    assert 10 / n_train <= row["sampler/seen_share"] <= 14 / n_train + 1e-9


def test_learnability_sampling_weighs_prompts_by_their_pass_rate_variance(
    prompts_file, tmp_path, monkeypatch
):
    """alg.prompt_sampling=learnability builds the sampler on p(1-p): each group it observes
    enters as its reward std squared (p̂(1-p̂) for 0/1 rewards), and the run logs its estimate."""
    from rft.rollout.std_sampler import StdAwareSampler

    fed, orig_update = [], StdAwareSampler.update

    def spy(self, idx, stds, *args, **kwargs):
        fed.append((self.statistic, list(stds)))
        return orig_update(self, idx, stds, *args, **kwargs)

    monkeypatch.setattr(StdAwareSampler, "update", spy)
    cfg = group_cfg(
        prompts_file, "grpo", "alg.prompt_sampling=learnability", "alg.std_sampler.floor=0.01"
    )
    train(cfg, run_dir=tmp_path / "run")
    assert fed and all(stat == "learnability" for stat, _ in fed)
    rows = [r for r in history(tmp_path / "run") if "sampler/seen_share" in r]
    assert rows and all("sampler/learnability_estimate_mean" in r for r in rows)
    assert "sampler/std_estimate_mean" not in rows[0]
