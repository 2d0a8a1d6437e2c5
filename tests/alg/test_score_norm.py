"""alg.score_norm and objective/score_to_kl in the PPO family (rft/alg/ppo.py,
rft/core/normalize.py): the score that reaches the per-token reward is raw / running std, the
running moments survive kill-and-resume, the guided family normalises too, and the KL-dominance
ratio is logged and warned about."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import rft.alg.ppo as ppo_mod
from rft.alg.guided import GuidedPPO
from rft.alg.ppo import PPO, SCORE_TO_KL_CAP
from rft.core.normalize import STD_FLOOR
from rft.model.build import frozen_copy, load_policy
from rft.train import train
from tests.conftest import PPO_SMALL, compose_cfg, run_cli, tiny_overrides


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread avoids contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# 8 tokens of a random tiny model: the word count, hence the length reward, varies per sample
LENGTH_REWARD = (
    "reward=custom",
    "reward._target_=rft.reward.basic.length_reward",
    "+reward.target_words=3",
    "eval.before_training=false",
)


def overrides(prompts_file, *extra: str) -> list[str]:
    return tiny_overrides(prompts_file, *PPO_SMALL, *LENGTH_REWARD, *extra)


def history(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss/policy" in r]


def spy(monkeypatch, cls) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(raw rollout scores, scores handed to per_token_rewards), one tensor per iteration."""
    raw, fed = [], []
    collect = cls.collect_rollout

    def collect_spy(self, examples):
        r, stats = collect(self, examples)
        raw.append(r.scores.detach().clone())
        return r, stats

    ptr = ppo_mod.per_token_rewards

    def ptr_spy(score, *args, **kwargs):
        fed.append(score.detach().clone())
        return ptr(score, *args, **kwargs)

    monkeypatch.setattr(cls, "collect_rollout", collect_spy)
    monkeypatch.setattr(ppo_mod, "per_token_rewards", ptr_spy)
    return raw, fed


def check_normalised(raw, fed, rows, kind: str) -> None:
    """Iteration i's score = (raw - shift) / std over every raw score of iterations 1..i (the
    current rollout merged before normalising); the logged moments are those numbers."""
    assert len(raw) == len(fed) == len(rows) >= 2
    seen: list[float] = []
    for x, y, row in zip(raw, fed, rows):
        seen += x.double().tolist()
        mean, std = np.mean(seen), np.std(seen, ddof=1)
        assert std > STD_FLOOR  # the real spread, not the floor, is what is tested here
        shift = mean if kind == "standardize" else 0.0
        torch.testing.assert_close(y.double(), (x.double() - shift) / std, rtol=1e-6, atol=1e-7)
        assert row["reward/score_norm_mean"] == pytest.approx(mean, rel=1e-9)
        assert row["reward/score_norm_std"] == pytest.approx(std, rel=1e-9)
        assert row["reward/mean"] == pytest.approx(x.mean().item(), rel=1e-6)  # raw


def check_score_to_kl(rows, kind: str) -> None:
    """objective/score_to_kl = std(score as it enters the reward) / (β · KL per sequence), from
    the logged numbers; the cap where β · KL ≤ 0 (iteration 1: π_θ = π_ref, KL exactly 0)."""
    assert rows[0]["objective/kl_seq"] == pytest.approx(0.0, abs=1e-7)
    assert rows[0]["objective/score_to_kl"] == SCORE_TO_KL_CAP
    n_formula = 0
    for row in rows:
        spread = row["reward/std"]  # population std of the raw scores
        if kind != "none":
            spread /= row["reward/score_norm_std"]  # scale: exact division by one number
        penalty = row["objective/kl_coef"] * row["objective/kl_seq"]
        if penalty > 1e-7:
            want = min(spread / penalty, SCORE_TO_KL_CAP)
            assert row["objective/score_to_kl"] == pytest.approx(want, rel=1e-4)
            n_formula += 1
        elif penalty <= 0:
            assert row["objective/score_to_kl"] == SCORE_TO_KL_CAP
    assert n_formula >= 1  # the policy moved: some iteration has a real ratio


@pytest.mark.parametrize("kind", ["scale", "standardize"])
def test_score_fed_to_the_reward_is_normalised_by_the_running_moments(
    kind, prompts_file, tmp_path, monkeypatch
):
    raw, fed = spy(monkeypatch, PPO)
    cfg = compose_cfg(*overrides(prompts_file, "alg.n_iterations=3", f"alg.score_norm={kind}"))
    train(cfg, run_dir=tmp_path / "run")
    rows = history(tmp_path / "run")
    check_normalised(raw, fed, rows, kind)
    if kind == "scale":
        check_score_to_kl(rows, kind)


def test_default_none_feeds_the_raw_score(prompts_file, tmp_path, monkeypatch):
    raw, fed = spy(monkeypatch, PPO)
    cfg = compose_cfg(*overrides(prompts_file, "alg.n_iterations=3"))
    assert cfg.alg.score_norm.value == "none"
    train(cfg, run_dir=tmp_path / "run")
    rows = history(tmp_path / "run")
    for x, y in zip(raw, fed, strict=True):
        assert torch.equal(x, y)
    assert all("reward/score_norm_std" not in r for r in rows)
    check_score_to_kl(rows, "none")


class Killed(RuntimeError):
    pass


def test_moments_survive_kill_and_resume(prompts_file, tmp_path, monkeypatch):
    over = overrides(
        prompts_file,
        "alg.score_norm=scale",
        "alg.n_iterations=4",
        "checkpoint.every_n_iterations=2",
    )
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")

    original = PPO.training_step

    def dies_in_iteration_3(self, batch, batch_idx):
        if self.current_epoch == 2:
            raise Killed("simulated kill")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(PPO, "training_step", dies_in_iteration_3)
    with pytest.raises(Killed):
        train(compose_cfg(*over), run_dir=tmp_path / "resumed")
    ckpt = torch.load(
        tmp_path / "resumed" / "checkpoints" / "state.ckpt", map_location="cpu", weights_only=False
    )
    assert ckpt["score_moments"]["count"] == 2 * 4  # two rollouts of 4 episodes
    monkeypatch.setattr(PPO, "training_step", original)
    resumed = train(compose_cfg(*over), run_dir=tmp_path / "resumed")

    h_full, h_res = history(tmp_path / "full"), history(tmp_path / "resumed")
    assert [r["iteration"] for r in h_res] == [1, 2, 3, 4]
    for a, b in zip(h_full, h_res, strict=True):
        for k in ("reward/score_norm_mean", "reward/score_norm_std"):
            assert a[k] == pytest.approx(b[k], rel=1e-12), (a["iteration"], k)
        for k in ("reward/mean", "objective/score_to_kl"):
            assert a[k] == pytest.approx(b[k], rel=1e-5), (a["iteration"], k)
        assert a["loss/policy"] == pytest.approx(b["loss/policy"], rel=1e-4, abs=1e-6)
        assert a["loss/value"] == pytest.approx(b["loss/value"], rel=1e-4, abs=1e-6)
    for k in ("test/reward_mean", "objective/kl_coef", "reward/score_norm_std"):
        assert resumed[k] == pytest.approx(full[k], rel=1e-5, abs=1e-7), k


def test_guided_family_normalises_too(prompts_file, tmp_path, monkeypatch):
    raw, fed = spy(monkeypatch, GuidedPPO)
    cfg = compose_cfg(
        *tiny_overrides(
            prompts_file,
            "alg=ppo_pp",
            "alg.n_iterations=2",
            "alg.rollout_prompts=4",
            "alg.minibatch_size=2",
            "alg.update_epochs=1",
            "alg.eval_every=0",
            "alg.lr=1e-3",
            "alg.score_batch_size=4",
            "alg.restart_prob.ppo_pp=0.5",
            "alg.score_norm=scale",
            "task.n_eval_prompts=2",
            "task.n_test_prompts=2",
            "eval.batch_size=2",
            *LENGTH_REWARD,
        )
    )
    train(cfg, run_dir=tmp_path / "run")
    rows = history(tmp_path / "run")
    check_normalised(raw, fed, rows, "scale")
    assert all("objective/score_to_kl" in r for r in rows)


def kl_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "rft.alg.ppo" and "KL penalty outweighs" in r.getMessage()
    ]


@pytest.mark.parametrize("beta,n_warn", [(100.0, 1), (1e-4, 0)])
def test_warning_when_the_kl_penalty_dominates(beta, n_warn, prompts_file, tmp_path, caplog):
    """β = 100 (fixed): β · KL dwarfs the length reward's spread from iteration 2 on, and the
    warning fires once over 3 iterations (rate limit); β = 1e-4: it does not fire."""
    cfg = compose_cfg(
        *overrides(prompts_file, "alg.n_iterations=3", "alg.kl.kind=fixed", f"alg.kl.beta={beta}")
    )
    with caplog.at_level(logging.WARNING, logger="rft.alg.ppo"):
        train(cfg, run_dir=tmp_path / "run")
    rows = history(tmp_path / "run")
    got = kl_warnings(caplog)
    assert len(got) == n_warn, got
    below = [r["objective/score_to_kl"] < cfg.alg.kl_dominance_warn for r in rows]
    assert any(below) == bool(n_warn)
    if n_warn:
        assert "alg.score_norm=scale" in got[0] and "alg.kl.beta" in got[0]


def test_warning_rate_limit_and_off_switch(prompts_file, tmp_path, caplog):
    """The first time, then at most once per 10 iterations; never with kl_dominance_warn=0 or
    when the ratio is at or above the threshold."""
    for limit, ratio, want in ((1.0, 0.2, [0, 10, 20]), (1.0, 1.0, []), (0.0, 0.2, [])):
        cfg = compose_cfg(*overrides(prompts_file, f"alg.kl_dominance_warn={limit}"))
        policy = load_policy(cfg.model)
        module = PPO(cfg, None, policy, frozen_copy(policy), None, tmp_path)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rft.alg.ppo"):
            for it in range(25):
                module.warn_if_kl_dominates(ratio, it)
        got = kl_warnings(caplog)
        assert [int(m.split(":")[0].split()[1]) - 1 for m in got] == want, (limit, ratio)


def test_ddp_ranks_merge_every_ranks_scores(prompts_file, tmp_path):
    """Two CPU processes (gloo): the moments count the episodes of BOTH ranks (gathered), so
    every rank normalises with the same numbers."""
    run = tmp_path / "run"
    r = run_cli(
        *overrides(prompts_file, "alg.score_norm=scale"),
        "hardware.devices=2",
        "hardware.strategy=ddp",
        "hardware.torch_threads=1",
        f"hydra.run.dir={run}",
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    ckpt = torch.load(run / "checkpoints" / "state.ckpt", map_location="cpu", weights_only=False)
    # 2 iterations × 2 ranks × 4 prompts (alg.rollout_prompts is per rank)
    assert ckpt["score_moments"]["count"] == 2 * 2 * 4
    rows = history(run)
    assert rows[-1]["reward/score_norm_std"] == pytest.approx(
        np.sqrt(ckpt["score_moments"]["m2"] / (16 - 1)), rel=1e-12
    )
