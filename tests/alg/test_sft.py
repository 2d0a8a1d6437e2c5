"""alg=sft (rft.alg.sft.SFT) end to end on the tiny model: it trains and changes the policy, and its
blocks of steps draw new batches and stop at the budget. The loss by hand:
tests/learning/test_wiring.py."""

from __future__ import annotations

from rft.alg.sft import SFT
from rft.train import train
from tests.conftest import (
    SFT_SMALL,
    changed,
    compose_cfg,
    history,
    initial_params,
    spy_batches,
    tiny_overrides,
)


def test_sft_trains_and_changes_policy(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file, *SFT_SMALL))
    before = initial_params(cfg)
    train(cfg, run_dir=tmp_path / "run")
    assert changed(before, tmp_path / "run" / "policy") > 0
    rows = [r for r in history(tmp_path / "run") if "sft/loss" in r]
    assert [r["iteration"] for r in rows] == [1, 2]


def test_sft_blocks_draw_new_batches_and_stop_at_max_steps(prompts_file, tmp_path, monkeypatch):
    from rft.alg.steps import StepBatchSampler

    def expected(m, epoch, i):
        fresh = StepBatchSampler(len(m.pairs), m.batch_size, m.cfg.seed, m.steps_per_block, 13)
        return fresh.batch_for_step(epoch * m.steps_per_block + i)

    seen = spy_batches(monkeypatch, SFT, expected)
    cfg = compose_cfg(
        *tiny_overrides(prompts_file, *SFT_SMALL, "alg.max_steps=13", "alg.batch_size=2")
    )
    train(cfg, run_dir=tmp_path / "run")
    # 13 steps in blocks of 10: a full block, then a 3-step one (not another 10).
    assert [(e, i) for e, i, *_ in seen] == [(0, i) for i in range(10)] + [(1, i) for i in range(3)]
    assert all(got == want for *_, got, want in seen)
    assert [b for _, _, b, _ in seen[10:]] != [b for _, _, b, _ in seen[:3]]  # no replay
    rows = [r["iteration"] for r in history(tmp_path / "run") if "sft/loss" in r]
    assert rows == list(range(1, 14))
