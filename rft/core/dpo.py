"""Preference-optimisation losses on summed sequence log-probs (docs/algorithms.md §11).

Inputs are per-pair sequence log-probs, each (B,): ``policy_chosen`` = log π_θ(y_w|x),
``policy_rejected`` = log π_θ(y_l|x), ``ref_chosen`` / ``ref_rejected`` the same under the
frozen π_ref (``rft.core.sequence_logprob`` of the continuation tokens). With
``reference_free`` every π_ref term is 0. The implicit reward of a completion is
r(y) = β (log π_θ(y|x) - log π_ref(y|x)) and

    Δ = [log π_θ(y_w) - log π_ref(y_w)] - [log π_θ(y_l) - log π_ref(y_l)]

    sigmoid  (DPO, Rafailov et al. 2023)   -(1-ε) log σ(βΔ) - ε log σ(-βΔ)     (ε: label smoothing,
                                            cDPO; ε = 0 is plain DPO)
    ipo      (Azar et al. 2023)            (Δ_avg - 1/(2β))², Δ_avg built from per-token AVERAGED
                                            log-ratios (each log-prob divided by its token count,
                                            as TRL does)
    hinge    (SLiC, Zhao et al. 2023)      max(0, 1 - βΔ)

Every loss is returned per pair, (B,); the module takes the mean. No config objects, no I/O.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PREFERENCE_LOSSES = ("sigmoid", "ipo", "hinge")


def _ref_or_zero(ref: Tensor | None, like: Tensor, reference_free: bool) -> Tensor:
    """π_ref's log-prob, or 0 when reference-free (π_ref then never needs to be computed)."""
    if reference_free or ref is None:
        return torch.zeros_like(like)
    return ref


def preference_logits(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor | None,
    ref_rejected: Tensor | None,
    *,
    reference_free: bool = False,
) -> Tensor:
    """Δ, (B,): the chosen log-ratio minus the rejected one (all inputs (B,))."""
    rc = _ref_or_zero(ref_chosen, policy_chosen, reference_free)
    rr = _ref_or_zero(ref_rejected, policy_rejected, reference_free)
    return (policy_chosen - rc) - (policy_rejected - rr)


def preference_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor | None,
    ref_rejected: Tensor | None,
    *,
    loss: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    reference_free: bool = False,
    chosen_len: Tensor | None = None,
    rejected_len: Tensor | None = None,
) -> Tensor:
    """The per-pair loss (B,) of the module docstring. ``chosen_len`` / ``rejected_len`` (B,):
    the token counts of y_w / y_l, needed by ``ipo`` only (it averages each log-prob over them)."""
    if loss not in PREFERENCE_LOSSES:
        raise ValueError(f"unknown preference loss {loss!r}; one of {PREFERENCE_LOSSES}")
    if loss == "ipo":
        if chosen_len is None or rejected_len is None:
            raise ValueError("the ipo loss needs chosen_len and rejected_len (token counts)")
        rc = _ref_or_zero(ref_chosen, policy_chosen, reference_free)
        rr = _ref_or_zero(ref_rejected, policy_rejected, reference_free)
        # per-token averages: IPO's target margin 1/(2β) is then independent of the length
        delta = (policy_chosen - rc) / chosen_len.clamp(min=1) - (policy_rejected - rr) / (
            rejected_len.clamp(min=1)
        )
        return (delta - 1.0 / (2.0 * beta)) ** 2
    delta = preference_logits(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected, reference_free=reference_free
    )
    if loss == "sigmoid":
        return -(1.0 - label_smoothing) * F.logsigmoid(beta * delta) - label_smoothing * (
            F.logsigmoid(-beta * delta)
        )
    return torch.relu(1.0 - beta * delta)  # hinge


def preference_rewards(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor | None,
    ref_rejected: Tensor | None,
    *,
    beta: float,
    reference_free: bool = False,
) -> dict[str, Tensor]:
    """The logged implicit rewards, each (B,) (the module logs their means):
    ``rewards/chosen`` = β(log π_θ(y_w) - log π_ref(y_w)), ``rewards/rejected`` likewise for y_l,
    ``rewards/accuracies`` = 1[chosen > rejected], ``rewards/margins`` = chosen - rejected.
    Computed on detached inputs: they are statistics, not part of the loss."""
    pc, pr = policy_chosen.detach(), policy_rejected.detach()
    rc = _ref_or_zero(ref_chosen, pc, reference_free)
    rr = _ref_or_zero(ref_rejected, pr, reference_free)
    chosen, rejected = beta * (pc - rc), beta * (pr - rr)
    return {
        "rewards/chosen": chosen,
        "rewards/rejected": rejected,
        "rewards/accuracies": (chosen > rejected).float(),
        "rewards/margins": chosen - rejected,
    }
