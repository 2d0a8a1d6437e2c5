"""Guide-policy RL (rft/alg/guided.py): the schedule, which tokens each loss covers, forced
prefixes inside a real rollout, and 2-iteration training runs of every algorithm (one with a
guide that has its own tokenizer)."""

from __future__ import annotations

import json
from unittest.mock import PropertyMock, patch

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from rft.alg.guided import GuidedPPO, Schedule, schedule_rng
from rft.model.build import frozen_copy, load_policy
from rft.model.load import load_model
from rft.reward import build_reward
from rft.train import train
from tests.conftest import compose_cfg, tiny_overrides
from tests.rollout.byte_tokenizer import build_byte_tokenizer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread avoids contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# 2 iterations of 4 episodes, 1 PPO epoch, evaluation on 2 prompts: seconds per run.
GUIDED_SMALL = (
    "alg.n_iterations=2",
    "alg.rollout_prompts=4",
    "alg.minibatch_size=2",
    "alg.update_epochs=1",
    "alg.eval_every=0",
    "alg.lr=1e-3",
    "alg.score_batch_size=4",
    "eval.before_training=false",
    "task.n_eval_prompts=2",
    "task.n_test_prompts=2",
    "eval.batch_size=2",
)
ALGS = ("ppo_pp", "aggrevated", "lols", "dlols")


# ------------------------------------------------------------------------------- config / schedule
def test_published_defaults():
    c = {alg: compose_cfg(f"alg={alg}").alg for alg in ALGS}
    assert all(a._target_ == "rft.alg.guided.GuidedPPO" for a in c.values())
    assert c["ppo_pp"].restart_prob.ppo_pp == 0.6 and c["aggrevated"].restart_prob.aggrevated == 0.8
    for alg in ("lols", "dlols"):
        assert (c[alg].restart_prob.ppo_pp, c[alg].restart_prob.aggrevated) == (0.8, 0.8)
        assert c[alg].schedule.guide_critic
    assert c["lols"].schedule.ppo_pp_prob == 0.8 and not c["aggrevated"].schedule.guide_critic
    dlols = compose_cfg("alg=dlols", "alg.n_iterations=50").alg
    assert Schedule.from_config(dlols).switch_iteration == 20  # RLGF IMDB: τ = 20 of 50
    g = c["ppo_pp"].guide
    assert g.model is None and (g.generation.top_k, g.generation.top_p) == (50, 0.92)


def schemes(alg: str, n: int, seed: int = 0, *overrides: str) -> list[tuple[str, str]]:
    sched = Schedule.from_config(compose_cfg(f"alg={alg}", *overrides).alg)
    return [(s.name, s.critic) for s in (sched(i, schedule_rng(seed, i)) for i in range(n))]


def test_lols_schedule_fixed_seed():
    got = [name for name, _ in schemes("lols", 12)]
    # pinned for seed 0: PPO++ where U < 0.8 in the (seed, iteration) stream
    want = [
        "ppo_pp" if np.random.default_rng([0, i, 4]).random() < 0.8 else "aggrevated"
        for i in range(12)
    ]
    assert got == want
    assert got == ["aggrevated"] + ["ppo_pp"] * 9 + ["aggrevated", "ppo_pp"]
    many = schemes("lols", 3000, 1)
    share = sum(name == "ppo_pp" for name, _ in many) / len(many)
    assert abs(share - 0.8) < 0.03
    # AggreVaTeD iterations train the guide critic, PPO++ ones the policy critic
    assert {critic for name, critic in many if name == "aggrevated"} == {"guide"}
    assert {critic for name, critic in many if name == "ppo_pp"} == {"policy"}
    assert schemes("lols", 12) == schemes("lols", 12)  # a pure function of (seed, iteration)


def test_dlols_schedule_switches_at_tau():
    got = schemes("dlols", 6, 0, "alg.schedule.switch_iteration=3")
    assert got == [("aggrevated", "guide")] * 3 + [("ppo_pp", "policy")] * 3
    assert [n for n, _ in schemes("dlols", 10, 0, "alg.n_iterations=10")] == ["aggrevated"] * 4 + [
        "ppo_pp"
    ] * 6


def test_constant_schedules():
    assert set(schemes("ppo_pp", 5)) == {("ppo_pp", "policy")}
    assert set(schemes("aggrevated", 5)) == {("aggrevated", "policy")}  # one critic
    s = Schedule.from_config(compose_cfg("alg=aggrevated").alg)(0, schedule_rng(0, 0))
    assert (s.rollin, s.rollout, s.restart_prob) == ("policy", "guide", 0.8)
    s = Schedule.from_config(compose_cfg("alg=ppo_pp").alg)(0, schedule_rng(0, 0))
    assert (s.rollin, s.rollout, s.restart_prob) == ("guide", "policy", 0.6)


# ------------------------------------------------------------------------------- one rollout
def build_module(cfg, run_dir) -> GuidedPPO:
    task = instantiate(cfg.task, _convert_="none")
    policy = load_policy(cfg.model)
    return GuidedPPO(cfg, task, policy, frozen_copy(policy), build_reward(cfg.reward), run_dir)


def rollout_with_rollins(module: GuidedPPO):
    """One collect_rollout, recording the complete roll-ins it generated."""
    seen = {}
    roll_in = module.roll_in

    def recording(*args):
        seen["ids"], seen["mask"], seen["texts"] = out = roll_in(*args)
        return out

    module.roll_in = recording
    examples = [module.task.train[i] for i in range(6)]
    r, stats = module.collect_rollout(examples)
    return r, stats, seen


@pytest.mark.parametrize("alg", ["ppo_pp", "aggrevated"])
def test_rollout_copies_the_rollin_prefix_and_masks_the_right_tokens(alg, prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, f"alg={alg}", *GUIDED_SMALL, f"alg.restart_prob.{alg}=1.0")
    )
    module = build_module(cfg, tmp_path)
    r, stats, seen = rollout_with_rollins(module)
    k, T = r.rollin_len, r.ids.shape[1]
    assert (k >= 1).all() and (k <= seen["mask"].sum(-1) - 1).all()  # β = 1, k ∈ {1..L-1}
    t = torch.arange(T)[None, :]
    prefix = t < k[:, None]
    assert torch.equal(torch.where(prefix, r.ids, 0), torch.where(prefix, seen["ids"], 0))  # copied
    own = r.mask.bool()
    if alg == "ppo_pp":  # policy and critic on the policy's suffix
        assert torch.equal(r.policy_mask.bool(), own & ~prefix) and torch.equal(
            r.value_mask, r.policy_mask
        )
        assert "guided/reward_guide_only" in stats and stats["guided/scheme_aggrevated"] == 0
    else:  # policy loss on its prefix, critic on the guide's tokens
        assert torch.equal(r.policy_mask.bool(), own & prefix)
        assert torch.equal(r.value_mask.bool(), own & ~prefix)
        assert "guided/reward_policy_only" in stats and stats["guided/scheme_aggrevated"] == 1
    assert stats["guided/restart_share"] == 1.0
    assert stats["guided/rollin_len"] == pytest.approx(k.float().mean().item())


def test_beta_zero_is_plain_ppo(prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, "alg=ppo_pp", *GUIDED_SMALL, "alg.restart_prob.ppo_pp=0")
    )
    r, stats, seen = rollout_with_rollins(build_module(cfg, tmp_path))
    assert not seen and (r.rollin_len == 0).all()  # no roll-in generated at all
    assert torch.equal(r.policy_mask, r.mask) and torch.equal(r.value_mask, r.mask)
    assert stats["guided/restart_share"] == 0 and "guided/reward_policy_only" in stats


# ------------------------------------------------------------------------------- training runs
def initial_params(cfg) -> dict[str, torch.Tensor]:
    model, _ = load_model(cfg.model)
    return {k: v.clone() for k, v in model.state_dict().items()}


def n_changed(before: dict, folder) -> int:
    from transformers import AutoModelForCausalLM

    after = AutoModelForCausalLM.from_pretrained(str(folder)).state_dict()
    return sum(not torch.equal(before[k], after[k]) for k in before if k in after)


def train_rows(run_dir) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss/policy" in r]


@pytest.mark.parametrize(
    "alg,extra",
    [
        ("ppo_pp", ("alg.target_coef=0.1",)),
        ("aggrevated", ()),
        ("lols", ("alg.value_model=separate", "alg.schedule.ppo_pp_prob=0.5")),
        ("dlols", ("alg.schedule.switch_iteration=1",)),
    ],
)
def test_each_algorithm_trains_two_iterations(alg, extra, prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, f"alg={alg}", *GUIDED_SMALL, *extra))
    before = initial_params(cfg)
    run = tmp_path / "run"
    metrics = train(cfg, run_dir=run)
    assert n_changed(before, run / "policy") > 0
    assert "test/reward_mean" in metrics
    rows = train_rows(run)
    assert [r["iteration"] for r in rows] == [1, 2]
    sched = Schedule.from_config(cfg.alg)
    for row in rows:  # the logged scheme is the schedule's
        s = sched(row["iteration"] - 1, schedule_rng(cfg.seed, row["iteration"] - 1))
        assert row["guided/scheme_aggrevated"] == float(s.name == "aggrevated")
        for key in (
            "guided/restart_share",
            "guided/rollin_len",
            "guided/policy_token_share",
            "reward/mean",
            "policy/approx_kl",
            "value/explained_variance",
        ):
            assert key in row, key
    if alg == "dlols":
        assert [r["guided/scheme_aggrevated"] for r in rows] == [1.0, 0.0]
    if alg == "ppo_pp":
        assert all(r["loss/target_nll"] > 0 for r in rows)


def test_guide_with_another_tokenizer(prompts_file, tmp_path):
    tok_dir = build_byte_tokenizer(tmp_path / "byte_tok")
    cfg = compose_cfg(
        *tiny_overrides(
            prompts_file,
            "alg=dlols",
            *GUIDED_SMALL,
            "alg.schedule.switch_iteration=1",
            "alg.restart_prob.ppo_pp=1.0",
            "alg.restart_prob.aggrevated=1.0",
            "+model@alg.guide.model=tiny",
            "alg.guide.model.tiny.arch=llama",
            f"alg.guide.model.tiny.tokenizer={tok_dir}",
        )
    )
    # one rollout of each scheme: the mixed sequences are in policy tokens, prefix copied exactly
    module = build_module(cfg, tmp_path / "m")
    assert not module.same_tokenizer and len(module.guide.tokenizer) == 300
    for it, scheme in ((0, "aggrevated"), (1, "ppo_pp")):
        with patch.object(GuidedPPO, "current_epoch", new_callable=PropertyMock, return_value=it):
            r, stats, seen = rollout_with_rollins(module)
        assert stats["guided/scheme_aggrevated"] == float(scheme == "aggrevated")
        prefix = torch.arange(r.ids.shape[1])[None, :] < r.rollin_len[:, None]
        assert torch.equal(torch.where(prefix, r.ids, 0), torch.where(prefix, seen["ids"], 0))
        assert r.ids.max() < len(module.policy.tokenizer) and (r.mask.sum(-1) > 0).all()
    # and a 2-iteration run (AggreVaTeD, then PPO++)
    before = initial_params(cfg)
    run = tmp_path / "run"
    train(cfg, run_dir=run)
    assert n_changed(before, run / "policy") > 0
    assert [r["guided/scheme_aggrevated"] for r in train_rows(run)] == [1.0, 0.0]
    state = torch.load(run / "checkpoints" / "state.ckpt", weights_only=False)["state_dict"]
    assert not any(k.startswith(("guide.", "ref.")) for k in state)  # the frozen guide is not saved
    assert any(k.startswith("guide_value_head.") for k in state)


# ------------------------------------------------------------------------------- the experiment
def test_imdb_guided_family_composes_for_every_step():
    from omegaconf import OmegaConf

    from tests.conftest import CONF

    exp = OmegaConf.load(CONF / "experiment" / "imdb_guided_family.yaml")
    params = dict(exp.hydra.sweeper.params)
    algs = params.pop("alg").split(",")
    assert algs == ["ppo", *ALGS]
    bc = compose_cfg("experiment=imdb_guided_family", "alg=sft")  # step 1
    assert bc.alg.name == "sft" and bc.model.init_from is None and bc.task.name == "imdb"
    for alg in algs:  # step 2: every sweep job composes with every sweeper param
        cfg = compose_cfg(
            "experiment=imdb_guided_family", f"alg={alg}", *(f"{k}={v}" for k, v in params.items())
        )
        assert (
            cfg.model.init_from == "multirun/imdb_guided_family_bc" and cfg.alg.n_iterations == 50
        )
        assert (cfg.alg.rollout_prompts, cfg.alg.minibatch_size, cfg.alg.kl.beta) == (
            112,
            28,
            0.001,
        )
        if alg != "ppo":
            assert cfg.alg.guide.model is None  # the guide is the BC model (the frozen reference)
    dlols = compose_cfg("experiment=imdb_guided_family", "alg=dlols", "alg.n_iterations=50")
    assert Schedule.from_config(dlols.alg).switch_iteration == 20
