"""NLPO (rft/alg/nlpo.py) on the tiny models: it trains; rollouts stay inside π_ψ's mask (causal
and seq2seq); π_ψ is replaced exactly every target_update_iterations; the update's ratio and
entropy use the masked distribution while the KL reward uses the unmasked one; a killed run
resumes with π_ψ's stored weights; bad settings name their key."""

from __future__ import annotations

import math

import pytest
import torch

from rft.alg.nlpo import NLPO, special_token_ids
from rft.core.nlpo import action_mask
from rft.errors import ConfigError
from rft.train import train
from tests.conftest import (
    PPO_SMALL,
    changed,
    compose_cfg,
    history,
    initial_params,
    run_ddp_cli,
    run_killed_then_resumed,
    tiny_overrides,
)

NLPO_SMALL = (*PPO_SMALL, "alg=nlpo", "eval.before_training=false")


def overrides(prompts_file, *extra: str) -> list[str]:
    return tiny_overrides(prompts_file, *NLPO_SMALL, *extra)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def spy_rollouts(monkeypatch, check) -> list:
    """Calls ``check(module, rollout)`` right after every rollout (π_ψ is the one that masked
    it, the policy the one that sampled it, before its update); returns their results."""
    seen = []
    original = NLPO.collect_rollout

    def spy(self, examples):
        r, stats = original(self, examples)
        seen.append(check(self, r))
        return r, stats

    monkeypatch.setattr(NLPO, "collect_rollout", spy)
    return seen


def test_nlpo_trains_two_iterations_and_changes_policy(prompts_file, tmp_path):
    cfg = compose_cfg(*overrides(prompts_file))
    assert cfg.alg._target_ == "rft.alg.nlpo.NLPO"
    before = initial_params(cfg)
    metrics = train(cfg, run_dir=tmp_path / "run")
    assert changed(before, tmp_path / "run" / "policy") > 0
    assert "test/reward_mean" in metrics
    rows = [r for r in history(tmp_path / "run") if "loss/policy" in r]
    assert [r["iteration"] for r in rows] == [1, 2]
    for r in rows:
        # min_tokens_to_keep = 100 of GPT-2's 50,257 tokens at least, top-p 0.9 of a random
        # model: a large share of the vocabulary, but not all of it
        assert 100 <= r["nlpo/mask_size_mean"] < 50257
        assert r["nlpo/mask_refreshed"] == 0.0  # target_update_iterations = 5
        assert r["nlpo/outside_mask_share"] == 0.0


@pytest.mark.parametrize(
    "model,mask_type,top_mask",
    [
        ("tiny", "learned_top_k", 2),
        ("tiny", "learned_top_p", 0.001),
        ("tiny_t5", "learned_top_p", 0.001),
    ],
)
def test_every_rollout_token_lies_in_the_mask_policys_kept_set(
    prompts_file, tmp_path, monkeypatch, model, mask_type, top_mask
):
    """Checked against π_ψ's full-sequence forward pass, independently of the KV-cached one
    that masked the sampling; π_ψ is refreshed before iteration 2, so its rollouts are checked
    against the refreshed π_ψ (RL4LMs' processor would still use the first one)."""

    def check(m, r):
        mask_logits, _ = m.mask_model(r.prompt_ids, r.prompt_mask, r.ids, r.mask)
        special = torch.tensor(special_token_ids(m.policy.tokenizer))
        keep = action_mask(mask_logits, mask_type, top_mask, 1, special)  # (N, T, V)
        inside = keep.gather(-1, r.ids[..., None]).squeeze(-1)[r.mask.bool()]
        return bool(inside.all()), keep.sum(-1)[r.mask.bool()].float().mean().item()

    seen = spy_rollouts(monkeypatch, check)
    over = overrides(
        prompts_file,
        f"model={model}",
        f"alg.mask_type={mask_type}",
        f"alg.top_mask={top_mask}",
        "alg.min_tokens_to_keep=1",
        "alg.target_update_iterations=1",
    )
    train(compose_cfg(*over), run_dir=tmp_path / "run")
    assert len(seen) == 2
    for inside, size in seen:
        assert inside
        # a small kept set of a ~50k vocabulary: unmasked sampling would leave it at once
        assert size < 200
    rows = [r for r in history(tmp_path / "run") if "loss/policy" in r]
    assert [r["nlpo/outside_mask_share"] for r in rows] == [0.0, 0.0]
    assert [r["nlpo/mask_size_mean"] for r in rows] == pytest.approx([s for _, s in seen])


def test_mask_policy_is_refreshed_exactly_every_target_update_iterations(
    prompts_file, tmp_path, monkeypatch
):
    previous = {}

    def check(m, r):
        now = [p.detach().clone() for p in m.mask_model.parameters()]
        moved = "w" in previous and any(
            not torch.equal(a, b) for a, b in zip(now, previous["w"], strict=True)
        )
        previous["w"] = now
        return m.current_epoch, same_weights(m.mask_model, m.policy), moved

    seen = spy_rollouts(monkeypatch, check)
    over = overrides(
        prompts_file, "alg.n_iterations=5", "alg.update_epochs=1", "alg.target_update_iterations=2"
    )
    train(compose_cfg(*over), run_dir=tmp_path / "run")
    # π_ψ = π_θ at the start and right after each refresh (before iterations 2 and 4, 0-based);
    # the policy moves at every update (lr 1e-3), so equality means "just copied".
    assert [(it, same) for it, same, _ in seen] == [
        (0, True),
        (1, False),
        (2, True),
        (3, False),
        (4, True),
    ]
    assert [moved for *_, moved in seen] == [False, False, True, False, True]
    rows = [r for r in history(tmp_path / "run") if "loss/policy" in r]
    assert [r["nlpo/mask_refreshed"] for r in rows] == [0, 0, 1, 0, 1]
    assert [r["nlpo/iterations_since_refresh"] for r in rows] == [0, 1, 0, 1, 0]


def test_one_minibatch_gives_ratio_one_and_the_kl_reward_is_unmasked(prompts_file, tmp_path):
    """One minibatch, one epoch: the update runs at π_θ = π_old, so the masked log-probs it
    recomputes equal the masked old ones stored in the buffer: ρ = 1, approx_kl = clipfrac = 0.
    The entropy is the masked distribution's (≤ log of the kept set's size). In iteration 1
    π_θ = π_ref, so the KL reward on the UNMASKED log-probs is exactly 0, where the masked ones
    would give -log π_θ(kept set) ≈ log(50257 / 3) per token."""
    over = overrides(
        prompts_file,
        "alg.minibatch_size=4",
        "alg.update_epochs=1",
        "alg.mask_type=learned_top_k",
        "alg.top_mask=2",
        "alg.min_tokens_to_keep=1",
    )
    train(compose_cfg(*over), run_dir=tmp_path / "run")
    rows = [r for r in history(tmp_path / "run") if "loss/policy" in r]
    assert len(rows) == 2
    for r in rows:
        assert r["policy/approx_kl"] == pytest.approx(0.0, abs=1e-7)
        assert r["policy/clipfrac"] == 0.0
        assert r["loss/policy"] == pytest.approx(0.0, abs=1e-6)
        # top 2 + GPT-2's one special token (EOS = pad): at most 3 kept tokens
        assert r["nlpo/mask_size_mean"] <= 3
        assert 0.0 < r["policy/entropy"] <= math.log(3) + 1e-5
    assert rows[0]["objective/kl"] == 0.0
    assert abs(rows[1]["objective/kl"]) < 1.0  # π_θ moved a little, nowhere near log(50257/3)


def test_resume_after_kill_matches_uninterrupted_run(prompts_file, tmp_path, monkeypatch):
    """The checkpoint after iteration 3 holds π_ψ = π_θ after 2 iterations (refreshes before
    iterations 2 and 4, 0-based; 3 is not a multiple of 2): a resume that rebuilt π_ψ from the
    initial or the current policy would mask iteration 4 differently."""
    over = overrides(
        prompts_file,
        "alg.n_iterations=5",
        "alg.top_mask=0.05",
        "alg.target_update_iterations=2",
        "checkpoint.every_n_iterations=3",
    )
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")

    # killed at the start of iteration 5 (0-based 4), after the checkpoint of iteration 3
    resumed = run_killed_then_resumed(over, NLPO, 4, tmp_path / "resumed", monkeypatch)

    for k in ("test/reward_mean", "reward/mean", "objective/kl_coef", "objective/kl"):
        assert resumed[k] == pytest.approx(full[k], rel=1e-5, abs=1e-7), k
    h_full = [r for r in history(tmp_path / "full") if "loss/policy" in r]
    h_res = [r for r in history(tmp_path / "resumed") if "loss/policy" in r]
    assert [r["iteration"] for r in h_res] == [1, 2, 3, 4, 5]
    for a, b in zip(h_full, h_res, strict=True):
        for k in ("reward/mean", "nlpo/mask_size_mean", "objective/kl", "policy/entropy"):
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-7), (a["iteration"], k)
        assert a["loss/policy"] == pytest.approx(b["loss/policy"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(
    "setting,match",
    [
        ("alg.top_mask=0", r"alg\.top_mask=0.*\(0, 1\]"),
        ("alg.top_mask=-0.5", r"alg\.top_mask=-0\.5"),
        ("alg.top_mask=1.5", r"alg\.top_mask=1\.5.*learned_top_p"),
        ("alg.target_update_iterations=0", r"alg\.target_update_iterations=0.*≥ 1"),
        ("alg.min_tokens_to_keep=0", r"alg\.min_tokens_to_keep=0.*≥ 1"),
        ("alg.generation.num_beams=2", r"alg\.generation\.num_beams=2"),
    ],
)
def test_bad_settings_name_the_key(prompts_file, tmp_path, setting, match):
    with pytest.raises(ConfigError, match=match):
        train(compose_cfg(*overrides(prompts_file, setting)), run_dir=tmp_path / "run")


def test_top_k_needs_a_count(prompts_file, tmp_path):
    over = overrides(prompts_file, "alg.mask_type=learned_top_k", "alg.top_mask=0.9")
    with pytest.raises(ConfigError, match=r"alg\.top_mask=0\.9.*learned_top_k.*≥ 1"):
        train(compose_cfg(*over), run_dir=tmp_path / "run")


def test_nlpo_under_cpu_ddp_two_processes(prompts_file, tmp_path):
    """2 CPU processes (gloo) through run.py, with a π_ψ refresh in between: each rank copies
    its (all-reduced, so identical) policy into π_ψ, and both ranks end with the same metrics."""
    run = tmp_path / "run"
    args = tiny_overrides(prompts_file, *NLPO_SMALL) + [
        "alg.n_iterations=3",
        "alg.target_update_iterations=2",
        "task.n_test_prompts=8",
    ]
    run_ddp_cli(args, run)
    rows = [r for r in history(run) if "loss/policy" in r]
    assert [r["nlpo/mask_refreshed"] for r in rows] == [0, 0, 1]
