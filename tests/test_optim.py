"""The optimizer (rft/optim.py) and gradient clipping (RFTModule.clip_grad_norm): fused AdamW,
the same update as the for-loop kernel, and clipping that works under bf16 mixed precision
(Lightning's clip_gradients refuses fused optimizers there)."""

from __future__ import annotations

import pytest
import torch

from rft.alg.base import RFTModule
from rft.optim import adamw
from rft.train import train
from tests.conftest import GROUP_SMALL, PPO_SMALL, SFT_SMALL, compose_cfg, tiny_overrides

THREADS = "hardware.torch_threads=1"


def test_fused_when_it_can_and_the_same_update_as_the_for_loop():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(torch.randn(3))
    groups = [{"params": [w]}, {"params": [b], "lr": 1e-2}]
    opt = adamw(groups, lr=1e-3, weight_decay=0.1)
    assert opt.defaults["fused"] is True and opt.param_groups[1]["lr"] == 1e-2
    assert not adamw([w], lr=1e-3, fused=False).defaults["fused"]
    # three steps of fused vs the for-loop kernel on the same gradients
    w2 = torch.nn.Parameter(w.detach().clone())
    loop = torch.optim.AdamW([w2], lr=1e-3, weight_decay=0.1, foreach=False)
    fused = adamw([w], lr=1e-3, weight_decay=0.1)
    for i in range(3):
        g = torch.randn(5, 3, generator=torch.Generator().manual_seed(i))
        w.grad, w2.grad = g.clone(), g.clone()
        fused.step()
        loop.step()
    torch.testing.assert_close(w, w2, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "alg",
    [
        PPO_SMALL,
        SFT_SMALL,
        ("alg=grpo", *GROUP_SMALL),
    ],
    ids=["ppo", "sft", "grpo"],
)
def test_bf16_mixed_training_clips_with_the_fused_optimizer(
    prompts_file, tmp_path, monkeypatch, alg
):
    norms = []
    original = RFTModule.clip_grad_norm

    def spy(self, opt):
        assert opt.optimizer.defaults["fused"] is True
        original(self, opt)
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    monkeypatch.setattr(RFTModule, "clip_grad_norm", spy)
    cfg = compose_cfg(
        *tiny_overrides(
            prompts_file,
            *alg,
            "hardware.precision=bf16-mixed",
            THREADS,
            "alg.max_grad_norm=0.001",  # below any real gradient norm: every step clips
            "eval.before_training=false",
        )
    )
    train(cfg, run_dir=tmp_path / "run")
    assert norms and all(n <= 0.001 * 1.0001 for n in norms)
