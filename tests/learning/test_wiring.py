"""Wiring tests: real train(cfg) runs on the word task (tests/learning/words.py) whose logged
numbers must equal what the formulas give, to float precision. Each pins one piece of the PPO /
SFT plumbing that a learning test would only notice statistically, or not at all."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from rft.model.load import load_model
from rft.train import train
from tests.conftest import compose_cfg
from tests.learning.words import word_overrides

WIRE_PPO = (
    "alg=ppo",
    "alg.n_iterations=3",
    "alg.rollout_prompts=8",
    "alg.minibatch_size=8",  # one minibatch ...
    "alg.update_epochs=1",  # ... and one epoch: the logged stats are the first (only) step's
    "alg.eval_every=0",
    "alg.lr=3e-3",
    "alg.score_batch_size=8",
    "eval.before_training=false",
)


def history(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss/policy" in r or "sft/loss" in r]


def test_first_minibatch_sees_ratio_one_and_whitened_advantages(words, tmp_path):
    """With one minibatch and one epoch, every update runs at π_θ = π_old, so ρ = 1 exactly:
    approx_kl = clipfrac = 0 (old log-probs scored from the policy, not from π_ref, which differs
    from iteration 2 on), and the policy loss is -mean(whitened A) = 0."""
    over = word_overrides(words, None, *WIRE_PPO, "alg.vf_coef=0.3", "alg.ent_coef=0.05")
    train(compose_cfg(*over), run_dir=tmp_path / "run")
    rows = history(tmp_path / "run")
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["policy/approx_kl"] == pytest.approx(0.0, abs=1e-7)
        assert r["policy/clipfrac"] == 0.0
        assert r["loss/policy"] == pytest.approx(0.0, abs=1e-6)
        # the total loss is pg + vf_coef · vf - ent_coef · H, with the configured coefficients
        total = r["loss/policy"] + 0.3 * r["loss/value"] - 0.05 * r["policy/entropy"]
        assert r["loss/total"] == pytest.approx(total, rel=1e-5, abs=1e-7)
        assert r["loss/value"] > 0 and r["policy/entropy"] > 1.0  # both terms are really there
    # π_θ moves away from π_ref after the first update: the logged KL is no longer 0
    assert rows[0]["objective/kl"] == pytest.approx(0.0, abs=1e-7)
    assert abs(rows[2]["objective/kl"]) > 1e-4


def test_gradient_clipping_rescales_the_gradient_to_max_grad_norm(words, tmp_path):
    """The first optimizer step's gradient with max_grad_norm = c is the unclipped gradient
    times c / ||g|| (same seed: the same rollout and the same first gradient)."""
    grads: dict[str, torch.Tensor] = {}

    def first_step_grad(name):
        def hook(opt, args, kwargs):
            if name not in grads:
                ps = [p.grad.flatten() for g in opt.param_groups for p in g["params"]]
                grads[name] = torch.cat([g for g in ps if g is not None]).clone()

        return hook

    for name, c in (("raw", "null"), ("clipped", "0.05")):
        handle = register_optimizer_step_pre_hook(first_step_grad(name))
        try:
            over = word_overrides(words, None, *WIRE_PPO, "alg.n_iterations=1")
            train(compose_cfg(*over, f"alg.max_grad_norm={c}"), run_dir=tmp_path / name)
        finally:
            handle.remove()
    norm = grads["raw"].norm().item()
    assert norm > 0.05  # clipping is active
    assert grads["clipped"].norm().item() == pytest.approx(0.05, rel=1e-4)
    torch.testing.assert_close(grads["clipped"], grads["raw"] * (0.05 / norm), rtol=1e-4, atol=1e-8)


def rl4lms_step(beta, kl, target, n_steps, horizon):
    e = min(max((kl - target) / target, -0.2), 0.2)
    return beta * (1 + 0.1 * e)


def ziegler_step(beta, kl, target, n_steps, horizon):
    e = min(max(kl / target - 1, -0.2), 0.2)
    return beta * (1 + e * n_steps / horizon)


@pytest.mark.parametrize(
    "kind,formula", [("adaptive_rl4lms", rl4lms_step), ("adaptive_ziegler", ziegler_step)]
)
def test_kl_coefficient_follows_its_formula_on_the_logged_kl(words, tmp_path, kind, formula):
    """β_{i+1} = controller(β_i, KL_i), with KL_i the rollout's logged mean per-token KL and
    n_steps the episodes per rollout (8)."""
    over = word_overrides(
        words,
        None,
        *WIRE_PPO,
        "alg.n_iterations=4",
        f"alg.kl.kind={kind}",
        "alg.kl.beta=0.2",
        "alg.kl.target=0.01",
        "alg.kl.horizon=40",
    )
    train(compose_cfg(*over), run_dir=tmp_path / "run")
    rows = history(tmp_path / "run")
    betas = [r["objective/kl_coef"] for r in rows]
    assert betas[0] == 0.2
    for prev, nxt in zip(rows, rows[1:]):
        want = formula(prev["objective/kl_coef"], prev["objective/kl"], 0.01, 8, 40)
        assert nxt["objective/kl_coef"] == pytest.approx(want, rel=1e-9)
    assert len(set(betas)) == len(betas)  # it really moves


def test_kl_penalty_keeps_the_policy_near_the_reference(words, tmp_path):
    """The same PPO run with a fixed β of 0 and of 1: the penalised policy's KL to π_ref stays
    far smaller (seed 0: see the numbers below)."""
    kls = {}
    for beta in ("0.0", "1.0"):
        over = word_overrides(
            words,
            None,
            "alg=ppo",
            "alg.n_iterations=6",
            "alg.rollout_prompts=16",
            "alg.minibatch_size=8",
            "alg.eval_every=0",
            "alg.lr=3e-3",
            "alg.score_batch_size=16",
            "eval.before_training=false",
            "alg.kl.kind=fixed",
            f"alg.kl.beta={beta}",
        )
        train(compose_cfg(*over), run_dir=tmp_path / beta)
        kls[beta] = history(tmp_path / beta)[-1]["objective/kl_seq"]
    assert kls["0.0"] > 0.3, kls
    assert kls["1.0"] < 0.5 * kls["0.0"], kls


def test_sft_loss_is_the_token_mean_nll_of_the_reference_given_the_prompt(words, tmp_path):
    """Every train pair is the same, so the first step's batch is known: sft/loss equals the
    NLL of the reference tokens + EOS (prompt tokens masked out), averaged over tokens, under
    the initial model, computed here with plain transformers."""
    prompt, reference = "good dull fun", "happy sad nice nice"
    data = tmp_path / "same.jsonl"
    data.write_text((json.dumps({"prompt": prompt, "reference": reference}) + "\n") * 30)
    over = word_overrides(
        words,
        data,
        "alg=sft",
        "alg.max_steps=1",
        "alg.batch_size=4",
        "alg.eval_every=0",
        "eval.before_training=false",
    )
    cfg = compose_cfg(*over)
    model, tok = load_model(cfg.model)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    y = tok(reference, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logp = model(torch.tensor([p + y])).logits[0].log_softmax(-1)
    want = -sum(logp[len(p) - 1 + i, t].item() for i, t in enumerate(y)) / len(y)
    whole = -sum(logp[i, t].item() for i, t in enumerate((p + y)[1:])) / (len(p) + len(y) - 1)
    assert abs(want - whole) > 1e-3  # masking the prompt matters for this pair
    train(cfg, run_dir=tmp_path / "run")
    (row,) = history(tmp_path / "run")
    assert row["sft/loss"] == pytest.approx(want, rel=1e-5)
    assert math.isfinite(want) and want > 1.0


def test_ddp_ranks_draw_disjoint_prompts():
    """Under DDP each rank builds the sampler with its own rank; within one iteration the ranks'
    prompt batches must not overlap (else the effective batch holds duplicates)."""
    from rft.rng import prompt_batch_rng
    from rft.rollout.prompts import IterationSampler

    for epoch in range(5):
        batches = []
        for rank in (0, 1):
            s = IterationSampler(40, 8, seed=0, rank=rank, world_size=2)
            s.set_epoch(epoch)
            batches.append(set(next(iter(s))))
        assert len(batches[0]) == len(batches[1]) == 8
        assert not batches[0] & batches[1], (epoch, batches)
        # one process draws what rank 0 of one process always drew: the rank-0 stream
        single = IterationSampler(40, 8, seed=0)
        single.set_epoch(epoch)
        want = prompt_batch_rng(0, epoch, 0).choice(40, 8, replace=False).tolist()
        assert next(iter(single)) == want
