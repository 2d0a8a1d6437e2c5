"""alg=a2c (rft.alg.a2c.A2C): the one update per rollout equals a naive one-batch step written
token by token (loss, clip, RMSprop), chunked or not; it trains end to end with one optimizer
step per iteration and PPO's KL reward; a killed run resumes exactly; bad settings name their
key. The loss maths: tests/core/test_a2c.py; learning: tests/learning/test_learning.py."""

from __future__ import annotations

import copy

import pytest
import torch

from rft.alg.a2c import A2C
from rft.errors import ConfigError
from rft.train import train, validate
from tests.alg.conftest import actor_critic_module, fixed_rollout
from tests.conftest import (
    changed,
    compose_cfg,
    history,
    initial_params,
    run_killed_then_resumed,
    tiny_overrides,
)

A2C_SMALL = (
    "alg=a2c",
    "alg.n_iterations=2",
    "alg.rollout_prompts=4",
    "alg.minibatch_size=3",
    "alg.eval_every=0",
    "alg.lr=1e-3",
    "alg.score_batch_size=4",
)


def naive_step(policy, head, r, lr, head_lr, vf_coef, ent_coef, clip=0.5):
    """SB3's A2C step on the rollout as one batch, one sequence and one token at a time:
    loss = mean over tokens of -A log π + vf_coef (G - V)² - ent_coef H, then the global norm
    clip and RMSprop(alpha 0.99, eps 1e-5) with the body at lr and the head at head_lr."""
    loss, n = 0.0, 0
    for b in range(len(r)):
        row = slice(b, b + 1)
        logits, hidden = policy(
            r.prompt_ids[row], r.prompt_mask[row], r.ids[row], r.mask[row], return_hidden=True
        )
        values = head(hidden).float()[0]
        for t in range(r.ids.shape[1]):
            if not r.mask[b, t]:
                continue
            logp = torch.log_softmax(logits[0, t].float(), -1)
            entropy = -(logp.exp() * logp).sum()
            loss = loss - r.advantages[b, t] * logp[r.ids[b, t]]
            loss = loss + vf_coef * (r.returns[b, t] - values[t]) ** 2 - ent_coef * entropy
            n += 1
    opt = torch.optim.RMSprop(
        [{"params": policy.parameters(), "lr": lr}, {"params": head.parameters(), "lr": head_lr}],
        lr=lr,
        alpha=0.99,
        eps=1e-5,
    )
    opt.zero_grad()
    (loss / n).backward()
    torch.nn.utils.clip_grad_norm_([*policy.parameters(), *head.parameters()], clip)
    opt.step()


@pytest.mark.parametrize("micro", [1, 4, 6])
def test_one_update_equals_a_naive_token_by_token_step(tmp_path, micro):
    extra = ("alg.lr=1e-3", "alg.value_head_lr=0.01", "alg.ent_coef=0.01")
    m = actor_critic_module(A2C, "a2c", tmp_path, *extra, f"alg.minibatch_size={micro}")
    torch.nn.init.normal_(m.value_head.linear.weight, std=0.1)  # a value path that matters
    r = fixed_rollout(m)
    policy, head = copy.deepcopy(m.policy), copy.deepcopy(m.value_head)
    stats = m.update(r)
    naive_step(policy, head, r, 1e-3, 0.01, vf_coef=0.5, ent_coef=0.01)
    for (name, got), want in zip(m.policy.named_parameters(), policy.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(m.value_head.linear.weight, head.linear.weight)
    assert stats["policy/approx_kl"] == pytest.approx(0.0, abs=1e-6)  # the rollout's policy
    parts = stats["loss/policy"] + 0.5 * stats["loss/value"] - 0.01 * stats["policy/entropy"]
    assert stats["loss/total"] == pytest.approx(parts, rel=1e-6)


def test_rmsprop_by_default_and_adamw_as_an_option(tmp_path):
    m = actor_critic_module(A2C, "a2c", tmp_path)
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.RMSprop)
    assert (opt.defaults["alpha"], opt.defaults["eps"]) == (0.99, 1e-5)
    assert [g["lr"] for g in opt.param_groups] == [2e-5, 5e-4]  # body, value head
    adamw = actor_critic_module(A2C, "a2c", tmp_path, "alg.optimizer=adamw")
    assert isinstance(adamw.configure_optimizers(), torch.optim.AdamW)


def test_a2c_trains_with_one_step_per_iteration(prompts_file, tmp_path, monkeypatch):
    steps = []
    original = torch.optim.RMSprop.step

    def counted(self, *args, **kwargs):
        steps.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.RMSprop, "step", counted)
    cfg = compose_cfg(*tiny_overrides(prompts_file, *A2C_SMALL, "alg.samples_per_prompt=2"))
    before = initial_params(cfg)
    metrics = train(cfg, run_dir=tmp_path / "run")
    assert changed(before, tmp_path / "run" / "policy") > 0
    assert len(steps) == 2  # one optimizer step per iteration, whatever the chunking
    rows = [r for r in history(tmp_path / "run") if "loss/policy" in r]
    assert [r["iteration"] for r in rows] == [1, 2]
    for key in (
        "loss/value",
        "policy/entropy",
        "policy/approx_kl",
        "objective/kl",
        "objective/kl_coef",
        "value/explained_variance",
        "reward/std_per_prompt",
    ):
        assert key in rows[0], key
    assert "test/reward_mean" in metrics
    # PPO's adaptive β (adaptive_rl4lms): β₂ = β₁ (1 + 0.1 clip((KL - target) / target, ±0.2))
    e = min(max((rows[0]["objective/kl"] - 0.1) / 0.1, -0.2), 0.2)
    assert rows[1]["objective/kl_coef"] == pytest.approx(0.1 * (1 + 0.1 * e), rel=1e-9)


def test_resume_after_kill_matches_uninterrupted_run(prompts_file, tmp_path, monkeypatch):
    over = tiny_overrides(prompts_file, *A2C_SMALL, "alg.n_iterations=3")
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")
    resumed = run_killed_then_resumed(over, A2C, 2, tmp_path / "resumed", monkeypatch)
    for k in ("test/reward_mean", "test/perplexity", "objective/kl_coef", "reward/mean"):
        assert resumed[k] == pytest.approx(full[k], rel=1e-5, abs=1e-7), k
    h_full = [r for r in history(tmp_path / "full") if "loss/policy" in r]
    h_res = [r for r in history(tmp_path / "resumed") if "loss/policy" in r]
    assert [r["iteration"] for r in h_res] == [1, 2, 3]
    for a, b in zip(h_full, h_res):
        for k in ("reward/mean", "loss/policy", "loss/value", "objective/kl"):
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-7), k


@pytest.mark.parametrize(
    "extra, match",
    [
        ("alg.update_epochs=2", r"alg\.update_epochs=2: A2C takes exactly one gradient step"),
        ("alg.minibatch_size=0", r"alg\.minibatch_size=0: must be ≥ 1"),
        ("alg.rms_alpha=1.0", r"alg\.rms_alpha=1\.0: RMSprop's decay"),
        ("alg.rms_eps=0", r"alg\.rms_eps=0\.0: must be > 0"),
        ("alg.lam=1.5", r"alg\.lam=1\.5: GAE's λ"),
        ("alg.vf_coef=-1", r"alg\.vf_coef=-1\.0: must be ≥ 0"),
        ("alg.kl.target=0", r"alg\.kl\.target=0\.0 with alg\.kl\.kind=adaptive_rl4lms"),
    ],
)
def test_bad_settings_name_the_key(prompts_file, extra, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_cfg(*tiny_overrides(prompts_file, *A2C_SMALL, extra)))
