"""The reward models' maths (rft/core/reward_model.py) against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rft.core.reward_model import (
    bradley_terry_loss,
    brier_score,
    classifier_loss,
    expected_calibration_error,
    pairwise_accuracy,
)


def test_bradley_terry_loss_by_hand():
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    # s_w - s_l = [1, -2]: -log σ(1) = log(1 + e^-1) = 0.3132617, -log σ(-2) = log(1 + e^2)
    # = 2.1269280; their mean
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(1.2200948, abs=1e-6)
    # margin 0.5: [0.5, -2.5] -> log(1 + e^-0.5) = 0.4740770, log(1 + e^2.5) = 2.5788897
    assert bradley_terry_loss(chosen, rejected, 0.5).item() == pytest.approx(1.5264834, abs=1e-6)


def test_bradley_terry_loss_pushes_chosen_up_and_does_not_overflow():
    chosen = torch.tensor([0.3], requires_grad=True)
    rejected = torch.tensor([0.1], requires_grad=True)
    bradley_terry_loss(chosen, rejected).backward()
    # d/ds_w -log σ(s_w - s_l) = -(1 - σ(0.2)) = -0.4501660; the rejected score gets the opposite
    assert chosen.grad.item() == pytest.approx(-0.4501660, abs=1e-6)
    assert rejected.grad.item() == pytest.approx(0.4501660, abs=1e-6)
    big = torch.tensor([1000.0]), torch.tensor([-1000.0])
    assert bradley_terry_loss(*big).item() == pytest.approx(0.0, abs=1e-12)
    assert bradley_terry_loss(big[1], big[0]).item() == pytest.approx(2000.0)


def test_classifier_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    # row 1: -log(e^2 / (e^2 + 1)) = log(1 + e^-2) = 0.1269280; row 2: log 2 = 0.6931472
    loss = classifier_loss(logits, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx((0.1269280 + math.log(2)) / 2, abs=1e-6)


# confidences 0.92 (right), 0.95 (wrong) share bin (0.9, 1]; 0.65 (right) and 0.55 (wrong) are
# alone in theirs. No confidence sits on a bin edge, where float32 rounding decides the bin.
PROBS = torch.tensor([[0.92, 0.08], [0.05, 0.95], [0.35, 0.65], [0.55, 0.45]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_expected_calibration_error_by_hand():
    # bin (0.9,1]: 2/4·|0.5 − 0.935| = 0.2175; (0.6,0.7]: 1/4·|1 − 0.65| = 0.0875;
    # (0.5,0.6]: 1/4·|0 − 0.55| = 0.1375; total 0.4425
    assert expected_calibration_error(PROBS, LABELS, n_bins=10) == pytest.approx(0.4425, abs=1e-6)
    # one bin: |accuracy 0.5 − mean confidence 0.7675|
    assert expected_calibration_error(PROBS, LABELS, n_bins=1) == pytest.approx(0.2675, abs=1e-6)
    # a perfectly confident, always right classifier is perfectly calibrated
    sure = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(sure, torch.tensor([0, 1])) == 0.0


def test_brier_score_by_hand():
    # rows: 0.08² + 0.08² = 0.0128; 0.95² + 0.95² = 1.805; 0.35² + 0.35² = 0.245;
    # 0.55² + 0.55² = 0.605; mean 0.66695
    assert brier_score(PROBS, LABELS) == pytest.approx(0.66695, abs=1e-6)


def test_pairwise_accuracy_counts_ties_half():
    chosen, rejected = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 2.0, 4.0])
    assert pairwise_accuracy(chosen, rejected) == pytest.approx(0.5)
