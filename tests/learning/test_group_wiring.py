"""Wiring tests of the group family (rft/alg/group.py, docs/algorithms.md §9): each knob a
`conf/alg/{grpo,dr_grpo,dapo,rloo,reinforce_pp,gspo}.yaml` option sets reaches the computation.

Real train(cfg) runs on the word task (tests/learning/words.py, EOS allowed early so completion
lengths differ and the aggregations give different numbers). Spies record what the module
computed: each batch's scores, log-probs and advantages (``compute_advantages``) and every
micro-batch's inputs and loss (``micro_loss``). The test then works out the advantages and the
loss by hand from those tensors, with the knobs of the option as docs/algorithms.md §9 states
them, in plain torch (not rft.core.group, whose maths tests/core/test_group.py pins against
hand-computed numbers). A knob the module drops, swaps or hard-codes shows as a mismatch
(scripts/mutation_check.py plants such bugs and lists the test that catches each).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from rft.alg.group import GroupPG
from rft.train import train
from tests.conftest import compose_cfg
from tests.learning.words import word_overrides, write_task

GROUP_ALGS = ("grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo")

WIRE_GROUP = (
    "alg.n_iterations=2",
    "alg.rollout_prompts=4",
    "alg.samples_per_prompt=4",
    "alg.minibatch_size=8",  # two optimizer steps per batch: the second one sees ρ ≠ 1
    "alg.micro_batch_size=8",
    "alg.eval_every=0",
    "alg.lr=0.05",  # large steps: some ratios leave even GRPO's clip range
    "alg.score_batch_size=16",
    "alg.dynamic_sampling=false",  # DAPO's filter has its own tests (tests/alg/test_group.py)
    "eval.before_training=false",
    "task.min_new_tokens=1",  # EOS may end a completion early: lengths differ
    "task.n_test_prompts=4",
)


def history(run_dir) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss/policy" in r]


# ------------------------------------------------------------------------------ spies
class Spy:
    """What the module computed, recorded as it trained: ``batches`` (one per iteration, after
    compute_advantages) and ``micro`` (every micro_loss call, with the per-token entropy of the
    policy it was called with, from a forward pass of our own)."""

    def __init__(self, monkeypatch):
        self.batches: list[dict] = []
        self.micro: list[dict] = []
        self.module = None
        orig_adv, orig_micro = GroupPG.compute_advantages, GroupPG.micro_loss

        def clone(t):
            return None if t is None else t.detach().clone()

        def compute_advantages(module, b):
            self.module = module
            out = orig_adv(module, b)
            keep = ("scores", "old_logp", "ref_logp", "mask", "advantages", "ids")
            self.batches.append({k: clone(getattr(b, k)) for k in keep} | {"stats": out})
            return out

        def micro_loss(module, mb, n_seqs, n_tokens):
            loss, stats, logp = orig_micro(module, mb, n_seqs, n_tokens)
            with torch.no_grad():
                logits, _ = module.policy(mb.prompt_ids, mb.prompt_mask, mb.ids, mb.mask)
                lp = logits.float().log_softmax(-1)
                ent = -(lp.exp() * lp).sum(-1)
            self.micro.append(
                {
                    "logp": clone(logp),
                    "old": clone(mb.old_logp) if mb.old_logp is not None else clone(logp),
                    "ref": clone(mb.ref_logp),
                    "sampler": clone(mb.sampler_logp),
                    "adv": clone(mb.advantages),
                    "mask": clone(mb.mask),
                    "ent": ent,
                    "n_seqs": n_seqs,
                    "n_tokens": n_tokens,
                    "loss": float(loss.detach()),
                    "stats": {k: float(v) for k, v in stats.items()},
                }
            )
            return loss, stats, logp

        monkeypatch.setattr(GroupPG, "compute_advantages", compute_advantages)
        monkeypatch.setattr(GroupPG, "micro_loss", micro_loss)


def run(words, tmp_path, name, monkeypatch, *extra) -> tuple[Spy, list[dict], object]:
    spy = Spy(monkeypatch)
    cfg = compose_cfg(*word_overrides(words, None, *WIRE_GROUP, *extra))
    train(cfg, run_dir=tmp_path / name)
    return spy, history(tmp_path / name), cfg


# ------------------------------------------------------------------------------ by hand
def group_adv_by_hand(scores, G, estimator, std_floor, unbiased) -> torch.Tensor:
    """docs/algorithms.md §9's table, group by group with Python floats."""
    out = []
    for g in scores.view(-1, G).tolist():
        mean = sum(g) / G
        if estimator == "group_mean":
            out += [r - mean for r in g]
        elif estimator == "leave_one_out":
            out += [r - (sum(g) - r) / (G - 1) for r in g]
        else:  # group_norm
            var = sum((r - mean) ** 2 for r in g) / (G - 1 if unbiased else G)
            std = math.sqrt(var)
            out += [0.0 if std == 0 else (r - mean) / max(std, std_floor) for r in g]
    return torch.tensor(out)


def reinforce_pp_adv_by_hand(scores, old, ref, mask, beta) -> torch.Tensor:
    """Per-token rewards -β·k1, the score on the last valid token; returns-to-go; whitened over
    every valid token of the batch (Bessel-corrected variance, as masked_whiten)."""
    N, T = mask.shape
    ret = torch.zeros(N, T, dtype=torch.float64)
    for i in range(N):
        valid = [t for t in range(T) if mask[i, t]]
        r = {t: -beta * float(old[i, t] - ref[i, t]) for t in valid}
        r[valid[-1]] += float(scores[i])
        acc = 0.0
        for t in reversed(valid):
            acc += r[t]
            ret[i, t] = acc
    vals = ret[mask.bool()]
    mean, var = vals.mean(), vals.var(unbiased=True)
    return torch.where(mask.bool(), (ret - mean) / torch.sqrt(var + 1e-8), 0.0).float()


def aggregate_by_hand(per_token, mask, mode, n_seqs, n_tokens, max_len) -> torch.Tensor:
    m = mask.float()
    if mode == "seq_mean_token_mean":
        return ((per_token * m).sum(-1) / m.sum(-1)).sum() / n_seqs
    if mode == "seq_mean_token_sum":
        return (per_token * m).sum() / n_seqs
    if mode == "token_mean":
        return (per_token * m).sum() / n_tokens
    assert mode == "constant"
    return (per_token * m).sum() / (n_seqs * max_len)


def kl_by_hand(logp, ref, kind) -> torch.Tensor:
    lr = logp - ref
    return {"k1": lr, "k2": 0.5 * lr**2, "k3": torch.exp(-lr) - 1 + lr}[kind]


def loss_by_hand(m: dict, a, max_len: int) -> dict[str, float]:
    """The micro-batch's policy term, KL term and total loss from its recorded tensors."""
    logp, old, adv, mask = m["logp"], m["old"], m["adv"], m["mask"]
    lo, hi = a.clip_low, a.clip_high
    agg = dict(n_seqs=m["n_seqs"], n_tokens=m["n_tokens"], max_len=max_len)
    level = str(a.ratio.value if hasattr(a.ratio, "value") else a.ratio)
    if level == "token":
        rho, A = torch.exp(logp - old), adv
    else:
        diff = ((logp - old) * mask).sum(-1)
        log_s = diff if level == "sequence_sum" else diff / mask.sum(-1)
        rho, A = torch.exp(log_s), adv[:, 0]
    term = torch.maximum(-A * rho, -A * rho.clamp(1 - lo, 1 + hi))
    if level != "token":
        term = term[:, None].expand_as(logp)
    if a.tis_cap and m["sampler"] is not None:
        term = term * torch.exp((old - m["sampler"]).clamp(max=20.0)).clamp(max=a.tis_cap)
    mode = str(getattr(a.aggregation, "value", a.aggregation))
    pg = aggregate_by_hand(term, mask, mode, **agg)
    total, out = pg, {"loss/policy": float(pg)}
    placement = str(getattr(a.kl.placement, "value", a.kl.placement))
    if placement == "loss" and a.kl.beta > 0:
        kind = str(getattr(a.kl.estimator, "value", a.kl.estimator))
        kl = aggregate_by_hand(kl_by_hand(logp, m["ref"], kind), mask, mode, **agg)
        out["loss/kl"] = float(kl)
        total = total + a.kl.beta * kl
    if a.ent_coef:
        total = total - a.ent_coef * aggregate_by_hand(m["ent"], mask, mode, **agg)
    out["total"] = float(total)
    return out


def expected_advantages(b: dict, a, G: int) -> torch.Tensor:
    est = str(getattr(a.advantage, "value", a.advantage))
    placement = str(getattr(a.kl.placement, "value", a.kl.placement))
    beta = a.kl.beta if placement == "reward" else 0.0
    if est == "batch_whiten":
        zeros = torch.zeros_like(b["mask"], dtype=torch.float32)
        old, ref = (b["old_logp"], b["ref_logp"]) if beta else (zeros, zeros)
        return reinforce_pp_adv_by_hand(b["scores"], old, ref, b["mask"], beta)
    scores = b["scores"].double()
    if beta:
        k1 = ((b["old_logp"] - b["ref_logp"]) * b["mask"]).sum(-1).double()
        scores = scores - beta * k1  # β Σ_t k1 of the whole sequence, off the reward (RLOO)
    adv = group_adv_by_hand(scores, G, est, a.std_floor, a.std_unbiased)
    return adv[:, None].expand_as(b["ids"]).float()


# ------------------------------------------------------------------------------ the options
PUBLISHED = {
    # docs/algorithms.md §9 (Defaults) and /work/shared/docs/algorithms.md §9
    "grpo": dict(advantage="group_norm", aggregation="seq_mean_token_mean", ratio="token",
                 clip_low=0.2, clip_high=0.2, placement="loss", estimator="k3", beta=0.04,
                 dynamic_sampling=False, buffer_frac=0.0),
    "dr_grpo": dict(advantage="group_mean", aggregation="constant", ratio="token",
                    clip_low=0.2, clip_high=0.2, placement="none", beta=0.0,
                    dynamic_sampling=False, buffer_frac=0.0),
    "dapo": dict(advantage="group_norm", aggregation="token_mean", ratio="token",
                 clip_low=0.2, clip_high=0.28, placement="none", beta=0.0,
                 dynamic_sampling=True, buffer_frac=0.2, penalty=1.0),
    "rloo": dict(advantage="leave_one_out", aggregation="seq_mean_token_mean",
                 ratio="sequence_sum", clip_low=0.2, clip_high=0.2, placement="reward",
                 estimator="k1", beta=0.05, dynamic_sampling=False, buffer_frac=0.0),
    "reinforce_pp": dict(advantage="batch_whiten", aggregation="token_mean", ratio="token",
                         clip_low=0.2, clip_high=0.2, placement="reward", estimator="k1",
                         beta=0.01, dynamic_sampling=False, buffer_frac=0.0),
    "gspo": dict(advantage="group_norm", aggregation="seq_mean_token_mean",
                 ratio="sequence_mean", clip_low=3e-4, clip_high=4e-4, placement="none",
                 beta=0.0, dynamic_sampling=False, buffer_frac=0.0),
}  # fmt: skip


@pytest.mark.parametrize("alg", GROUP_ALGS)
def test_each_option_is_pinned_to_its_published_settings(alg):
    a = compose_cfg(f"alg={alg}").alg
    want = PUBLISHED[alg]
    got = {
        "advantage": a.advantage.value,
        "aggregation": a.aggregation.value,
        "ratio": a.ratio.value,
        "clip_low": a.clip_low,
        "clip_high": a.clip_high,
        "placement": a.kl.placement.value,
        "estimator": a.kl.estimator.value,
        "beta": a.kl.beta,
        "dynamic_sampling": a.dynamic_sampling,
        "buffer_frac": a.overlong.buffer_frac,
        "penalty": a.overlong.penalty,
    }
    assert {k: got[k] for k in want} == want
    assert a._target_ == "rft.alg.group.GroupPG"
    # the family shares one generation budget and update schedule (docs §9, Defaults)
    assert (a.rollout_prompts, a.samples_per_prompt, a.update_epochs) == (8, 4, 1)
    assert (a.std_floor, a.std_unbiased, a.max_grad_norm) == (0.01, True, 1.0)


@pytest.mark.parametrize("alg", GROUP_ALGS)
def test_each_options_knobs_reach_the_advantages_and_the_loss(words, tmp_path, monkeypatch, alg):
    """Every batch's advantages and every micro-batch's loss (policy term, KL term, total)
    equal the option's formulas worked out from the recorded tensors, and the logged
    loss/policy and loss/total are the per-step sums of them."""
    spy, rows, cfg = run(words, tmp_path, alg, monkeypatch, f"alg={alg}")
    a, G, L = cfg.alg, cfg.alg.samples_per_prompt, cfg.task.max_new_tokens
    assert len(spy.batches) == 2 and len(spy.micro) == 4  # 2 iterations × 2 steps × 1 micro
    for b in spy.batches:
        torch.testing.assert_close(
            b["advantages"], expected_advantages(b, a, G), atol=2e-5, rtol=1e-4
        )
    for m in spy.micro:
        want = loss_by_hand(m, a, L)
        assert m["loss"] == pytest.approx(want["total"], rel=1e-4, abs=1e-6)
        assert m["stats"]["loss/policy"] == pytest.approx(want["loss/policy"], rel=1e-4, abs=1e-6)
        if "loss/kl" in want:
            assert m["stats"]["loss/kl"] == pytest.approx(want["loss/kl"], rel=1e-4, abs=1e-7)
        else:
            assert "loss/kl" not in m["stats"]
    # the logged values are the means over an iteration's steps of those losses
    for it, r in enumerate(rows):
        steps = spy.micro[2 * it : 2 * it + 2]
        assert r["loss/total"] == pytest.approx(sum(s["loss"] for s in steps) / 2, rel=1e-5)
        assert r["policy/optimizer_steps"] == 2
    # the premises that make each knob observable here
    lengths = torch.cat([m["mask"].sum(-1) for m in spy.micro])
    assert len(set(lengths.tolist())) > 1  # the aggregations differ
    assert any(m["stats"]["clip_ratio/region_mean"] > 0 for m in spy.micro)  # the clip acts
    if a.kl.beta > 0:  # π_θ has left π_ref by the second batch: the KL term is not 0
        b = spy.batches[1]
        assert (b["old_logp"] - b["ref_logp"]).abs().max() > 1e-2


def test_std_floor_and_bessel_correction_reach_group_norm(words, tmp_path, monkeypatch):
    """std_floor = 10 floors every group of a [0, 1] reward (A = (r - mean) / 10);
    std_unbiased=false divides by the population std. Both against the recorded scores."""
    spy, _, cfg = run(
        words, tmp_path, "floor", monkeypatch, "alg=grpo", "alg.std_floor=10", "alg.n_iterations=1"
    )
    b = spy.batches[0]
    want = group_adv_by_hand(b["scores"], 4, "group_norm", 10.0, True)
    torch.testing.assert_close(b["advantages"][:, 0], want, atol=1e-6, rtol=1e-5)
    assert b["stats"]["group/std_floored_share"] > 0
    monkeypatch.undo()
    spy, _, cfg = run(
        words,
        tmp_path,
        "pop",
        monkeypatch,
        "alg=grpo",
        "alg.std_unbiased=false",
        "alg.n_iterations=1",
    )
    b = spy.batches[0]
    pop = group_adv_by_hand(b["scores"], 4, "group_norm", 0.01, False)
    bessel = group_adv_by_hand(b["scores"], 4, "group_norm", 0.01, True)
    assert (pop - bessel).abs().max() > 1e-3  # the correction changes these advantages
    torch.testing.assert_close(b["advantages"][:, 0], pop, atol=1e-6, rtol=1e-5)


def test_entropy_bonus_and_kl_estimator_reach_the_loss(words, tmp_path, monkeypatch):
    """GRPO with ent_coef = 0.1 and the k2 estimator: the loss carries -0.1 · agg(H) and
    β · agg(k2), worked out from the recorded tensors."""
    spy, _, cfg = run(
        words, tmp_path, "ent", monkeypatch, "alg=grpo", "alg.ent_coef=0.1", "alg.kl.estimator=k2"
    )
    for m in spy.micro:
        want = loss_by_hand(m, cfg.alg, cfg.task.max_new_tokens)
        assert m["loss"] == pytest.approx(want["total"], rel=1e-4, abs=1e-6)
        assert m["stats"]["loss/kl"] == pytest.approx(want["loss/kl"], rel=1e-4, abs=1e-8)
    # the premises: the bonus and the estimator change the numbers
    from omegaconf import OmegaConf

    plain = OmegaConf.merge(cfg.alg, {"ent_coef": 0.0, "kl": {"estimator": "k3"}})
    m = spy.micro[-1]
    assert abs(m["loss"] - loss_by_hand(m, plain, cfg.task.max_new_tokens)["total"]) > 1e-3


def test_log_kl_scores_the_reference_only_when_asked(words, tmp_path, monkeypatch):
    """Dr. GRPO has β = 0: with log_kl the reference is scored and k1/k2/k3 are logged; without
    it π_ref is never run."""
    spy, rows, _ = run(words, tmp_path, "on", monkeypatch, "alg=dr_grpo", "alg.log_kl=true")
    assert all("kl/k3" in r for r in rows)
    assert all(b["ref_logp"] is not None for b in spy.batches)
    monkeypatch.undo()
    spy, rows, _ = run(words, tmp_path, "off", monkeypatch, "alg=dr_grpo", "alg.log_kl=false")
    assert not any(k.startswith("kl/") for r in rows for k in r)
    assert all(b["ref_logp"] is None for b in spy.batches)


@pytest.mark.parametrize("mu, minibatch, micro", [(1, 16, 4), (2, 8, 8), (3, 16, 16)])
def test_passes_minibatches_and_micro_batches_are_the_configured_ones(
    words, tmp_path, monkeypatch, mu, minibatch, micro
):
    """μ passes × (16 episodes / minibatch) optimizer steps, each accumulated over
    minibatch / micro micro-batches of ``micro`` sequences, each micro-batch's loss normalised
    by its whole minibatch (n_seqs = minibatch)."""
    spy, rows, _ = run(
        words,
        tmp_path,
        f"{mu}-{minibatch}-{micro}",
        monkeypatch,
        "alg=grpo",
        f"alg.update_epochs={mu}",
        f"alg.minibatch_size={minibatch}",
        f"alg.micro_batch_size={micro}",
        "alg.n_iterations=1",
    )
    steps = mu * 16 // minibatch
    assert rows[0]["policy/optimizer_steps"] == steps
    assert len(spy.micro) == steps * (minibatch // micro)
    assert all(len(m["mask"]) == micro and m["n_seqs"] == minibatch for m in spy.micro)


def test_gradient_clipping_rescales_the_first_step_to_max_grad_norm(words, tmp_path, monkeypatch):
    """The first optimizer step's gradient with max_grad_norm = c is the unclipped one × c/||g||."""
    grads: dict[str, torch.Tensor] = {}

    def first_step_grad(name):
        def hook(opt, args, kwargs):
            if name not in grads:
                ps = [p.grad.flatten() for g in opt.param_groups for p in g["params"]]
                grads[name] = torch.cat([g for g in ps if g is not None]).clone()

        return hook

    for name, c in (("raw", "null"), ("clipped", "0.01")):
        handle = register_optimizer_step_pre_hook(first_step_grad(name))
        try:
            over = word_overrides(words, None, *WIRE_GROUP, "alg=grpo", "alg.n_iterations=1")
            train(compose_cfg(*over, f"alg.max_grad_norm={c}"), run_dir=tmp_path / name)
        finally:
            handle.remove()
    norm = grads["raw"].norm().item()
    assert norm > 0.01  # clipping is active
    assert grads["clipped"].norm().item() == pytest.approx(0.01, rel=1e-4)
    torch.testing.assert_close(grads["clipped"], grads["raw"] * (0.01 / norm), rtol=1e-4, atol=1e-9)


def test_overlong_shaping_uses_the_configured_buffer_and_penalty(words, tmp_path, monkeypatch):
    """A constant reward 0.5 plus DAPO's shaping with buffer_frac = 1 (the zone is the whole
    length, buffer = 8 tokens): a completion of length l scores 0.5 - penalty · l / 8. Short
    completions (EOS early) sit inside the zone, where another buffer (DAPO's 20 %: 2 tokens)
    would give them 0."""
    spy, _, _ = run(
        words,
        tmp_path,
        "overlong",
        monkeypatch,
        "alg=dapo",
        "reward._target_=tests.learning.words.constant_reward",
        "alg.overlong.buffer_frac=1.0",
        "alg.overlong.penalty=0.3",
    )
    for b in spy.batches:
        lengths = b["mask"].sum(-1).float()
        want = 0.5 - 0.3 * (lengths / 8).clamp(0, 1)
        torch.testing.assert_close(b["scores"], want)
    lengths = torch.cat([b["mask"].sum(-1) for b in spy.batches])
    assert (lengths < 6).any() and (lengths == 8).any()  # inside the zone and at its end


def test_tis_cap_weights_the_policy_term(words, tmp_path, monkeypatch):
    """Another engine's log-probs (faked here: -100 for every sampled token, so π_trainer /
    π_sampler is huge) make every token's TIS weight the cap: the policy term is cap × what it
    is without TIS, on the same rollout."""
    from rft.model.policy import PolicyLM

    orig = PolicyLM.generate

    def with_sampler_logprobs(self, *a, **k):
        comp = orig(self, *a, **k)
        comp.logprobs = torch.full(comp.ids.shape, -100.0)
        return comp

    monkeypatch.setattr(PolicyLM, "generate", with_sampler_logprobs)
    # tis_cap needs another engine (rollout.backend=vllm); the faked log-probs stand in for it,
    # so the check that refuses tis_cap without one is skipped
    monkeypatch.setattr(GroupPG, "check_tis", classmethod(lambda cls, cfg: None))
    losses = {}
    for cap in ("null", "3.0"):
        spy = Spy(monkeypatch)
        over = word_overrides(words, None, *WIRE_GROUP, "alg=grpo", "alg.n_iterations=1")
        train(compose_cfg(*over, f"alg.tis_cap={cap}"), run_dir=tmp_path / cap)
        m = spy.micro[0]
        assert m["sampler"] is not None
        losses[cap] = m["stats"]["loss/policy"]
        want = loss_by_hand(m, compose_cfg(*over, f"alg.tis_cap={cap}").alg, 8)
        assert m["stats"]["loss/policy"] == pytest.approx(want["loss/policy"], rel=1e-4, abs=1e-7)
    assert abs(losses["null"]) > 1e-4
    assert losses["3.0"] == pytest.approx(3.0 * losses["null"], rel=1e-4)


def test_std_aware_sampler_gets_the_configured_floor_prior_and_momentum(
    words, tmp_path, monkeypatch
):
    """Replaying the group stds the module fed its sampler into a StdAwareSampler built from the
    configured floor, prior and momentum gives the module's estimates and draw probabilities
    (8 train prompts, 4 per batch: prompts are seen twice, so momentum matters)."""
    from rft.rollout.std_sampler import StdAwareSampler

    data = write_task(tmp_path / "small.jsonl", n=16, seed=5)
    fed, probs = [], []
    orig_update, orig_draw = StdAwareSampler.update, GroupPG.draw_prompts

    def update(self, idx, std):
        fed.append((list(idx), list(std)))
        return orig_update(self, idx, std)

    def draw_prompts(self, it, batch):
        probs.append(self.sampler.probabilities().copy())
        return orig_draw(self, it, batch)

    monkeypatch.setattr(StdAwareSampler, "update", update)
    monkeypatch.setattr(GroupPG, "draw_prompts", draw_prompts)
    spy = Spy(monkeypatch)
    knobs = (
        "alg.std_sampler.floor=0.2",
        "alg.std_sampler.prior=0.7",
        "alg.std_sampler.momentum=0.6",
    )
    cfg = compose_cfg(
        *word_overrides(words, data, *WIRE_GROUP, "alg=grpo", "alg.prompt_sampling=std_aware"),
        *knobs,
        "alg.n_iterations=4",
        "task.n_test_prompts=2",
    )
    train(cfg, run_dir=tmp_path / "run")
    n = len(spy.module.task.train)
    assert n == 8 and len(fed) == len(probs) == 4
    replay = StdAwareSampler(n, 0.2, 0.7, 0.6)
    other = StdAwareSampler(n, 0.02, None, 0.0)  # the defaults: what an unwired knob gives
    differs = False
    for p, (idx, std) in zip(probs, fed):
        torch.testing.assert_close(torch.as_tensor(p), torch.as_tensor(replay.probabilities()))
        differs |= not torch.allclose(
            torch.as_tensor(other.probabilities()), torch.as_tensor(replay.probabilities())
        )
        orig_update(replay, idx, std)
        orig_update(other, idx, std)
    assert spy.module.sampler.state_dict() == replay.state_dict()
    # the premises: a prompt seen twice (momentum acts) and probabilities the defaults do not give
    assert any(sum(i in idx for idx, _ in fed) > 1 for i in range(n))
    assert differs and spy.module.sampler.state_dict() != other.state_dict()
