"""alg=trpo (rft.alg.trpo.TRPO): the accepted step lies inside the trust region (D ≤ δ, checked
against an independent KL of the policies before and after); a chunked actor step equals the
unchunked one; a step that does not improve the surrogate is refused and θ_old kept exactly
while the critic still learns; it trains end to end (causal and seq2seq policies); a killed
run resumes exactly; bad settings name their key. The maths: tests/core/test_trpo.py;
learning: tests/learning/test_learning.py."""

from __future__ import annotations

import copy

import pytest
import torch

from rft.alg.trpo import TRPO
from rft.core.masked import masked_mean
from rft.core.trpo import categorical_kl
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

TRPO_SMALL = (
    "alg=trpo",
    "alg.n_iterations=2",
    "alg.rollout_prompts=4",
    "alg.minibatch_size=2",
    "alg.micro_batch_size=3",
    "alg.update_epochs=2",
    "alg.cg_max_steps=5",
    "alg.eval_every=0",
    "alg.score_batch_size=4",
)


def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_accepted_step_lies_inside_the_trust_region(tmp_path):
    m = actor_critic_module(TRPO, "trpo", tmp_path, "alg.max_kl=0.01")
    r = fixed_rollout(m)
    before = copy.deepcopy(m.policy)
    stats = m.actor_step(r)
    assert stats["trpo/line_search_success"] == 1.0
    assert 0 < stats["trpo/step_fraction"] <= 1 and stats["trpo/surrogate_gain"] > 0
    # D(θ) recomputed from scratch: mean over valid tokens of KL(π_after ‖ π_before)
    with torch.no_grad():
        new = m.policy(r.prompt_ids, r.prompt_mask, r.ids, r.mask)[0]
        old = before(r.prompt_ids, r.prompt_mask, r.ids, r.mask)[0]
    kl = masked_mean(categorical_kl(new, old), r.mask).item()
    assert 0 < kl < 0.01
    assert kl == pytest.approx(stats["trpo/kl_after"], rel=1e-4)
    assert not torch.equal(flat(m.policy), flat(before))


def test_chunked_actor_step_equals_the_unchunked_one(tmp_path):
    steps = []
    for micro in (6, 2, 1):
        m = actor_critic_module(TRPO, "trpo", tmp_path, f"alg.micro_batch_size={micro}")
        stats = m.actor_step(fixed_rollout(m))
        steps.append((flat(m.policy), stats))
    (whole, s_whole), *chunked = steps
    for params, s in chunked:
        torch.testing.assert_close(params, whole, rtol=1e-4, atol=1e-6)
        for k in ("trpo/grad_norm", "trpo/kl_after", "trpo/surrogate_gain"):
            assert s[k] == pytest.approx(s_whole[k], rel=1e-3), k


def test_a_step_that_does_not_improve_is_refused_and_the_critic_still_learns(tmp_path):
    m = actor_critic_module(TRPO, "trpo", tmp_path, "alg.update_epochs=3")
    r = fixed_rollout(m)
    r.advantages = torch.zeros_like(r.advantages)  # L(θ) = 0 for every θ: never > L(θ_old)
    before = flat(m.policy)
    head = m.value_head.linear.weight.detach().clone()
    stats = m.update(r)
    assert stats["trpo/line_search_success"] == 0.0
    assert stats["trpo/line_search_tries"] == 10  # every step size tried, then θ_old back
    assert stats["trpo/step_fraction"] == 0.0 and stats["trpo/kl_after"] == 0.0
    assert torch.equal(flat(m.policy), before)  # θ_old exactly, critic epochs included
    assert not torch.equal(m.value_head.linear.weight, head)
    assert stats["loss/value"] > 0


def test_the_optimizer_holds_the_critic_only(tmp_path):
    m = actor_critic_module(TRPO, "trpo", tmp_path)
    groups = m.configure_optimizers().param_groups
    held = {id(p) for g in groups for p in g["params"]}
    assert held == {id(p) for p in m.value_head.parameters()}
    assert [g["lr"] for g in groups] == [1e-5, 5e-4]
    sep = actor_critic_module(TRPO, "trpo", tmp_path, "alg.value_model=separate")
    held = {id(p) for g in sep.configure_optimizers().param_groups for p in g["params"]}
    assert held == {id(p) for p in [*sep.value_head.parameters(), *sep.value_model.parameters()]}
    assert not held & {id(p) for p in sep.policy.parameters()}


@pytest.mark.parametrize("model", ["tiny", "tiny_t5", "tiny_bart"])
def test_trpo_trains_causal_and_seq2seq_policies(prompts_file, tmp_path, model):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *TRPO_SMALL, f"model={model}"))
    before = initial_params(cfg)
    metrics = train(cfg, run_dir=tmp_path / "run")
    assert "test/reward_mean" in metrics
    rows = [r for r in history(tmp_path / "run") if "trpo/line_search_success" in r]
    assert [r["iteration"] for r in rows] == [1, 2]
    for key in (
        "policy/approx_kl",
        "trpo/step_fraction",
        "trpo/kl_after",
        "trpo/surrogate_gain",
        "trpo/cg_residual",
        "loss/value",
        "objective/kl",
        "objective/kl_coef",
        "value/explained_variance",
    ):
        assert key in rows[0], key
    assert all(r["trpo/kl_after"] < 0.01 for r in rows)
    if any(r["trpo/line_search_success"] for r in rows):
        assert changed(before, tmp_path / "run" / "policy", seq2seq=model != "tiny") > 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "state.ckpt", weights_only=False)
    assert not any(k.startswith("old_policy.") for k in ckpt["state_dict"])  # rebuilt


def test_resume_after_kill_matches_uninterrupted_run(prompts_file, tmp_path, monkeypatch):
    over = tiny_overrides(prompts_file, *TRPO_SMALL, "alg.n_iterations=3")
    full = train(compose_cfg(*over), run_dir=tmp_path / "full")
    resumed = run_killed_then_resumed(over, TRPO, 2, tmp_path / "resumed", monkeypatch)
    for k in ("test/reward_mean", "test/perplexity", "objective/kl_coef", "reward/mean"):
        assert resumed[k] == pytest.approx(full[k], rel=1e-5, abs=1e-7), k
    h_full = [r for r in history(tmp_path / "full") if "loss/value" in r]
    h_res = [r for r in history(tmp_path / "resumed") if "loss/value" in r]
    assert [r["iteration"] for r in h_res] == [1, 2, 3]
    for a, b in zip(h_full, h_res):
        for k in ("reward/mean", "loss/value", "trpo/kl_after", "trpo/cg_residual"):
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-9), k


@pytest.mark.parametrize(
    "extra, match",
    [
        ("alg.max_kl=0", r"alg\.max_kl=0\.0: the trust region δ must be > 0"),
        ("alg.cg_max_steps=0", r"alg\.cg_max_steps=0: must be ≥ 1"),
        ("alg.cg_damping=-0.1", r"alg\.cg_damping=-0\.1: must be ≥ 0"),
        ("alg.line_search_shrink=1.0", r"alg\.line_search_shrink=1\.0: must be in \(0, 1\)"),
        ("alg.line_search_max_tries=0", r"alg\.line_search_max_tries=0: must be ≥ 1"),
        ("alg.micro_batch_size=0", r"alg\.micro_batch_size=0: must be ≥ 1"),
        ("hardware.attention=flash_attention_2", r"hardware\.attention=flash_attention_2: TRPO"),
        ("alg.gamma=2", r"alg\.gamma=2\.0: a discount"),
    ],
)
def test_bad_settings_name_the_key(prompts_file, extra, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_cfg(*tiny_overrides(prompts_file, *TRPO_SMALL, extra)))
