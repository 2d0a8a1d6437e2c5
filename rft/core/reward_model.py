"""Losses and held-out metrics of the reward models rft trains (rft/alg/reward_model.py,
docs/algorithms.md §11 "Reward models trained in rft").

- ``classifier_loss``: cross-entropy of a sequence classifier (alg=reward_classifier);
- ``bradley_terry_loss``: −log σ(s(x, y_w) − s(x, y_l) − m) of a scalar scorer on preference
  pairs (alg=reward_model);
- ``expected_calibration_error`` / ``brier_score``: how well a classifier's probabilities are
  calibrated; ``pairwise_accuracy``: how often a scorer ranks a pair as labelled.

Pure functions of tensors: no model, no config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classifier_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy −log softmax(logits)[label].

    logits: (B, C) float; labels: (B,) long in [0, C). Returns a scalar."""
    return F.cross_entropy(logits.float(), labels)


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """Mean Bradley–Terry negative log-likelihood −log σ(s_w − s_l − margin).

    chosen, rejected: (B,) scores s(x, y_w), s(x, y_l) of the same B pairs; margin: a float or
    (B,), how far s_w must exceed s_l before the loss flattens (Llama 2's margin loss; 0 = plain
    BT). Returns a scalar. ``softplus(−z)`` is −log σ(z) without overflow for large |z|."""
    return F.softplus(-(chosen.float() - rejected.float() - margin)).mean()


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs the scorer ranks as labelled: s_w > s_l counts 1, a tie 1/2 (a scorer that
    gives every text the same score is at chance, not at 0 or 1).

    chosen, rejected: (N,) scores."""
    diff = chosen.float() - rejected.float()
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10
) -> float:
    """ECE of the top-class confidence over ``n_bins`` equal-width bins of [0, 1]:
    Σ_b |B_b|/N · |accuracy(B_b) − mean confidence(B_b)| (Guo et al., 2017).

    probs: (N, C) rows summing to 1; labels: (N,) long. Bin b holds confidences in
    (b/n_bins, (b+1)/n_bins]; a confidence of exactly 0 (impossible with C ≥ 1 rows that sum to
    1, kept for safety) goes to the first bin. Empty bins contribute 0."""
    conf, pred = probs.float().max(-1)
    correct = (pred == labels).float()
    # ceil(conf · n_bins) − 1 is the bin whose upper edge is ≥ conf (right-closed bins)
    bins = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    n = conf.numel()
    ece = torch.zeros(())
    for b in range(n_bins):
        in_b = bins == b
        if in_b.any():
            ece += in_b.sum() / n * (correct[in_b].mean() - conf[in_b].mean()).abs()
    return float(ece)


def brier_score(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Multi-class Brier score: mean over rows of Σ_c (p_c − 1[c = label])², in [0, 2]. For two
    classes this is twice the binary Brier score (p − y)² of the positive class.

    probs: (N, C); labels: (N,) long."""
    onehot = F.one_hot(labels, probs.shape[-1]).float()
    return float(((probs.float() - onehot) ** 2).sum(-1).mean())
