"""KL estimators and KL-coefficient (β) controllers.

Estimators follow Schulman's "Approximating KL divergence" note: k1 = log r is the per-token
penalty folded into the reward; (r - 1) - log r is the low-variance, always ≥ 0 estimator logged
as `approx_kl`.

Controllers are stepped once per rollout with the rollout's mean per-token KL:
- `AdaptiveKLControllerRL4LMs` follows the RL4LMs code (its `n_steps` argument is ignored there
  too): the update does not scale with the batch size.
- `AdaptiveKLControllerZiegler` follows Ziegler et al. (2019) as implemented in TRL.
"""

from typing import Protocol

from torch import Tensor


def kl_penalty_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k1 estimate log π_θ(y_t|s_t) - log π_ref(y_t|s_t). (B, T) -> (B, T)."""
    return logp - ref_logp


def approx_kl(logratio: Tensor) -> Tensor:
    """Per-token (r - 1) - log r with r = exp(logratio); ≥ 0, unbiased for KL. (B, T) -> (B, T)."""
    return (logratio.exp() - 1) - logratio


def _clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


class KLController(Protocol):
    """What the trainer needs from a β controller."""

    beta: float

    def step(self, current_kl: float, n_steps: int) -> None: ...

    def state_dict(self) -> dict[str, float]: ...

    def load_state_dict(self, d: dict[str, float]) -> None: ...


class _BetaState:
    """Holds β and (de)serialises it; β is the only state that changes during training."""

    def __init__(self, beta: float) -> None:
        self.beta = float(beta)

    def state_dict(self) -> dict[str, float]:
        return {"beta": self.beta}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.beta = float(d["beta"])


class FixedKLController(_BetaState):
    """β stays at its initial value."""

    def step(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLControllerRL4LMs(_BetaState):
    """RL4LMs: e = clip((KL - target) / target, -0.2, 0.2); β ← β · (1 + 0.1 · e)."""

    def __init__(self, init_beta: float, target: float) -> None:
        super().__init__(init_beta)
        self.target = target

    def step(self, current_kl: float, n_steps: int) -> None:
        e = _clip((float(current_kl) - self.target) / self.target, -0.2, 0.2)
        self.beta = self.beta * (1 + 0.1 * e)


class AdaptiveKLControllerZiegler(_BetaState):
    """Ziegler et al. / TRL: e = clip(KL / target - 1, -0.2, 0.2);
    β ← β · (1 + e · n_steps / horizon).
    """

    def __init__(self, init_beta: float, target: float, horizon: float) -> None:
        super().__init__(init_beta)
        self.target = target
        self.horizon = horizon

    def step(self, current_kl: float, n_steps: int) -> None:
        e = _clip(float(current_kl) / self.target - 1, -0.2, 0.2)
        self.beta = self.beta * (1 + e * n_steps / self.horizon)


KL_CONTROLLER_KINDS = ("fixed", "adaptive_rl4lms", "adaptive_ziegler")


def make_kl_controller(
    kind: str, init_beta: float, target: float | None = None, horizon: float | None = None
) -> KLController:
    """Build a controller by name; adaptive kinds need `target`, Ziegler also `horizon`."""
    if kind not in KL_CONTROLLER_KINDS:
        raise ValueError(
            f"unknown KL controller kind {kind!r}; allowed: {', '.join(KL_CONTROLLER_KINDS)}"
        )
    if kind == "fixed":
        return FixedKLController(init_beta)
    if target is None or target <= 0:
        raise ValueError(f"KL controller {kind!r} needs a positive target KL, got {target!r}")
    if kind == "adaptive_rl4lms":
        return AdaptiveKLControllerRL4LMs(init_beta, target)
    if horizon is None or horizon <= 0:
        raise ValueError(f"KL controller {kind!r} needs a positive horizon, got {horizon!r}")
    return AdaptiveKLControllerZiegler(init_beta, target, horizon)
