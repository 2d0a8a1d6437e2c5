"""rft.core.dpo against numbers worked out by hand on a 2-pair batch.

Pair 0: log π_θ(y_w) = -3, log π_θ(y_l) = -5, log π_ref(y_w) = -4, log π_ref(y_l) = -4
        → chosen log-ratio +1, rejected -1, Δ = 2.
Pair 1: π_θ = π_ref on both (-2, -6) → Δ = 0 exactly.
β = 0.5 (so βΔ = 1 and 0); lengths: y_w 2 and 4 tokens, y_l 4 and 3 tokens.
"""

from __future__ import annotations

import math

import pytest
import torch

from rft.core.dpo import preference_logits, preference_loss, preference_rewards

PC = torch.tensor([-3.0, -2.0])
PR = torch.tensor([-5.0, -6.0])
RC = torch.tensor([-4.0, -2.0])
RR = torch.tensor([-4.0, -6.0])
LC = torch.tensor([2.0, 4.0])
LR = torch.tensor([4.0, 3.0])
BETA = 0.5
LOG2 = math.log(2.0)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def loss(**kw):
    kw.setdefault("beta", BETA)
    return preference_loss(PC, PR, RC, RR, chosen_len=LC, rejected_len=LR, **kw).tolist()


def test_delta():
    assert preference_logits(PC, PR, RC, RR).tolist() == [2.0, 0.0]
    # reference-free: Δ = log π_θ(y_w) - log π_θ(y_l) = 2 and 4
    assert preference_logits(PC, PR, RC, RR, reference_free=True).tolist() == [2.0, 4.0]


def test_sigmoid_loss():
    # pair 0: -log σ(1) = log(1 + e^-1) = 0.31326; pair 1 (Δ = 0): -log σ(0) = log 2
    assert loss(loss="sigmoid") == pytest.approx([math.log1p(math.exp(-1.0)), LOG2], rel=1e-6)
    assert loss(loss="sigmoid")[0] == pytest.approx(0.3132617, rel=1e-6)


def test_sigmoid_label_smoothing():
    # ε = 0.1: 0.9·(-log σ(1)) + 0.1·(-log σ(-1)) = 0.9·0.31326 + 0.1·1.31326 = 0.41326;
    # at Δ = 0 both terms are log 2, so the loss stays log 2
    got = loss(loss="sigmoid", label_smoothing=0.1)
    assert got == pytest.approx([0.9 * 0.3132617 + 0.1 * 1.3132617, LOG2], rel=1e-6)
    assert got[0] == pytest.approx(0.4132617, rel=1e-6)


def test_ipo_loss_uses_per_token_averages():
    # pair 0: Δ_avg = 1/2 - (-1)/4 = 0.75; 1/(2β) = 1 → (0.75 - 1)² = 0.0625
    # pair 1: Δ_avg = 0 → (0 - 1)² = 1
    assert loss(loss="ipo") == pytest.approx([0.0625, 1.0], rel=1e-6)
    # summed log-ratios would give (2 - 1)² = 1 for pair 0: the averaging matters here
    with pytest.raises(ValueError, match="chosen_len"):
        preference_loss(PC, PR, RC, RR, loss="ipo", beta=BETA)


def test_hinge_loss():
    # pair 0: max(0, 1 - 1) = 0; pair 1: max(0, 1 - 0) = 1; β = 1 → pair 0: max(0, 1 - 2) = 0
    assert loss(loss="hinge") == [0.0, 1.0]
    assert loss(loss="hinge", beta=0.25) == pytest.approx([0.5, 1.0])


def test_reference_free():
    # Δ = 2 and 4, βΔ = 1 and 2: sigmoid log(1 + e^-1), log(1 + e^-2); hinge 0, 0;
    # ipo: Δ_avg = -3/2 - (-5)/4 = -0.25 and -2/4 - (-6)/3 = 1.5 → (-1.25)², 0.5²
    rf = {"reference_free": True}
    assert loss(loss="sigmoid", **rf) == pytest.approx(
        [math.log1p(math.exp(-1.0)), math.log1p(math.exp(-2.0))], rel=1e-6
    )
    assert loss(loss="hinge", **rf) == [0.0, 0.0]
    assert loss(loss="ipo", **rf) == pytest.approx([1.5625, 0.25], rel=1e-6)
    # π_ref may then be absent altogether
    got = preference_loss(PC, PR, None, None, loss="sigmoid", beta=BETA, reference_free=True)
    assert got.tolist() == pytest.approx(loss(loss="sigmoid", **rf))


def test_sigmoid_gradient_raises_chosen_and_lowers_rejected():
    pc, pr = PC.clone().requires_grad_(), PR.clone().requires_grad_()
    preference_loss(pc, pr, RC, RR, loss="sigmoid", beta=BETA).sum().backward()
    # d/dpc -log σ(βΔ) = -β σ(-βΔ): pair 0 -0.5·σ(-1) = -0.13447, pair 1 -0.5·0.5 = -0.25
    assert pc.grad.tolist() == pytest.approx([-0.5 / (1 + math.e), -0.25], rel=1e-5)
    assert pr.grad.tolist() == pytest.approx([0.5 / (1 + math.e), 0.25], rel=1e-5)


def test_logged_rewards():
    r = preference_rewards(PC, PR, RC, RR, beta=BETA)
    # chosen β(-3 + 4) = 0.5, β(-2 + 2) = 0; rejected β(-5 + 4) = -0.5, 0
    assert r["rewards/chosen"].tolist() == [0.5, 0.0]
    assert r["rewards/rejected"].tolist() == [-0.5, 0.0]
    assert r["rewards/margins"].tolist() == [1.0, 0.0]
    assert r["rewards/accuracies"].tolist() == [1.0, 0.0]  # a tie is not an accurate pair
    rf = preference_rewards(PC, PR, RC, RR, beta=BETA, reference_free=True)
    assert rf["rewards/chosen"].tolist() == [-1.5, -1.0]
    assert rf["rewards/rejected"].tolist() == [-2.5, -3.0]
    assert rf["rewards/margins"].tolist() == [1.0, 2.0]


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown preference loss"):
        preference_loss(PC, PR, RC, RR, loss="kto")
