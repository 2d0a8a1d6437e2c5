"""Controlled experiment for vanishing gradients in RFT (Razin et al., ICLR 2024, §4.2).

Algorithm: a classifier π_θ(y|x) is pretrained with cross-entropy on one labelling of a real
dataset (labelling A: the digit in scikit-learn's 8x8 handwritten digits), then finetuned to a
second labelling B (a seeded derangement of the 10 classes, so every input starts out wrong)
from the same weights, with the same optimizer and learning rate, by
  (a) SFT: cross-entropy on label B;
  (b) RFT: gradient ascent on the exact expected reward V(x) = Σ_y π_θ(y|x) R(x, y), with
      R(x, y) = 1[y == B(x)]: the full sum over the 10 classes, no sampling, so any stall is
      the landscape's and not the estimator's variance ("expected REINFORCE").
For this reward STD_{y~π}[R] = sqrt(p(1 - p)) with p = π_θ(B(x)|x), and the gradient of V
wrt the logits is p·(e_B - π), whose norm is at most sqrt(2)·p(1 - p) = sqrt(2)·std²: inputs
that the pretrained model deems very unlikely to carry label B hardly move under RFT.

Deviations from the paper: a 64-128-10 MLP on digits instead of their image/text models, and
a derangement of the classes instead of their relabelling, so it runs in well under a minute on
a 2-core CPU. The default optimizer is plain SGD because the theorem is about the gradient
itself; Adam (--optimizer adam --lr 1e-3) rescales updates per parameter, yet RFT stalls with it
too (seed 0: final train reward 0.39 for RFT vs 0.81 for SFT).

Run: python -m rft.diagnostics.controlled --out DIR [--steps N] [--seed S]
Writes controlled.json, controlled_curves.png, controlled_std_vs_grad.png and
controlled_low_std.png (reward curves split by the input's reward std at the start).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rft.rng import controlled_data_seed, controlled_finetune_seed, controlled_pretrain_seed

# ---------------------------------------------------------------------------------------------
# Pure maths: expected reward, its gradient wrt the logits, reward std under the model.
# ---------------------------------------------------------------------------------------------


def expected_reward(logits: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """V(x) = Σ_y softmax(logits)_y · R(x, y), exactly (no sampling).

    Args:
        logits: (B, C) unnormalised scores.
        R: (B, C) reward of every class for every input.
    Returns:
        (B,) expected reward; differentiable wrt the logits.
    """
    return (logits.softmax(dim=-1) * R).sum(dim=-1)


def expected_reward_grad(logits: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Closed-form ∂V/∂logits = π ⊙ (R - V): the softmax Jacobian applied to R.

    Args:
        logits: (B, C); R: (B, C).
    Returns:
        (B, C) gradient of each input's expected reward wrt its own logits.
    """
    p = logits.softmax(dim=-1)
    v = (p * R).sum(dim=-1, keepdim=True)  # (B, 1)
    return p * (R - v)


def reward_std(logits: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """STD_{y~π}[R(x, y)] = sqrt(Σ_y π_y R² - (Σ_y π_y R)²), shape (B,).

    For a 0/1 reward with one correct class this is sqrt(p(1 - p)). Computed in the dtype of
    `logits`; pass float64 to resolve stds far below float32's resolution.
    """
    p = logits.softmax(dim=-1)
    m = (p * R).sum(dim=-1)
    var = (p * R * R).sum(dim=-1) - m * m
    return var.clamp_min(0).sqrt()  # rounding can make var slightly negative


def onehot_reward(labels: torch.Tensor, num_classes: int, dtype=torch.float32) -> torch.Tensor:
    """R(x, y) = 1[y == label(x)] as a (B, C) table."""
    return F.one_hot(labels, num_classes).to(dtype)


def per_example_grad_norms(model: nn.Module, x: torch.Tensor, R: torch.Tensor) -> dict:
    """Exact per-input gradient norms wrt all parameters, one input at a time (torch.func).

    Args:
        model: maps (B, D) -> (B, C) logits.
        x: (P, D) probe inputs.
        R: (P, C) reward table; for SFT it is read as the target distribution (one-hot label).
    Returns:
        {"rft": (P,) ||∇θ V(x)||, "sft": (P,) ||∇θ Σ_y R(x, y) log π_θ(y|x)||}, i.e. the SFT
        gradient is that of the label's log-likelihood; in the model's dtype.
    """
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def logits_one(p, xi):
        return functional_call(model, p, (xi.unsqueeze(0),))  # (1, C)

    def v_one(p, xi, ri):
        return expected_reward(logits_one(p, xi), ri.unsqueeze(0)).sum()

    def loglik_one(p, xi, ri):
        return (logits_one(p, xi).log_softmax(-1) * ri).sum()

    def norms(g: dict) -> torch.Tensor:
        return torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in g.values()))  # (P,)

    return {
        "rft": norms(vmap(grad(v_one), in_dims=(None, 0, 0))(params, x, R)),
        "sft": norms(vmap(grad(loglik_one), in_dims=(None, 0, 0))(params, x, R)),
    }


def derangement(num_classes: int, seed: int) -> np.ndarray:
    """A seeded permutation of range(num_classes) with no fixed point: B(x) != A(x) always."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(num_classes)
        if not np.any(perm == np.arange(num_classes)):
            return perm


# ---------------------------------------------------------------------------------------------
# Orchestration.
# ---------------------------------------------------------------------------------------------


OPTIMIZERS = ("sgd", "adam")


@dataclass
class ControlledConfig:
    """Settings of the controlled experiment; defaults run in well under a minute on 2 cores."""

    seed: int = field(
        default=0, metadata={"help": "seed for the split, init, batches, labelling B"}
    )
    hidden: int = field(default=128, metadata={"help": "width of the MLP's hidden layer"})
    test_frac: float = field(default=0.25, metadata={"help": "held-out share of the digits"})
    pretrain_steps: int = field(
        default=300, metadata={"help": "cross-entropy steps on labelling A (the digit)"}
    )
    pretrain_lr: float = field(default=1e-3, metadata={"help": "Adam lr for pretraining"})
    steps: int = field(default=400, metadata={"help": "finetuning steps, the same for SFT and RFT"})
    lr: float = field(default=0.5, metadata={"help": "finetuning lr, the same for SFT and RFT"})
    optimizer: str = field(
        default="sgd",
        metadata={"help": "finetuning optimizer (adam wants a far smaller --lr, e.g. 1e-3)"},
    )
    batch_size: int = field(default=64, metadata={"help": "minibatch size, both phases"})
    probe_size: int = field(
        default=64, metadata={"help": "inputs whose per-input grad norm is computed exactly"}
    )
    n_checkpoints: int = field(
        default=5, metadata={"help": "finetuning steps (incl. first and last) with grad probes"}
    )
    low_std_quantile: float = field(
        default=1 / 3,
        metadata={"help": "inputs in this lowest quantile of initial reward std form 'low std'"},
    )

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not 0 < self.test_frac < 1:
            raise ValueError(f"test_frac must be in (0, 1), got {self.test_frac}")
        if not 0 < self.low_std_quantile < 1:
            raise ValueError(f"low_std_quantile must be in (0, 1), got {self.low_std_quantile}")
        for name in ("steps", "pretrain_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("hidden", "batch_size", "probe_size", "n_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def load_data(cfg: ControlledConfig) -> dict[str, torch.Tensor]:
    """Digits split into train/test; labels A (digit) and B (derangement of the digit).

    Returns tensors x_train (N, 64) in [0, 1], a_train, b_train (N,), and the same for test.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)  # pixel values are 0..16
    a = torch.tensor(digits.target, dtype=torch.long)
    seed = controlled_data_seed(cfg.seed)
    b = torch.tensor(derangement(10, seed), dtype=torch.long)[a]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(cfg.test_frac * len(x)))
    test, train = order[:n_test], order[n_test:]
    return {
        "x_train": x[train], "a_train": a[train], "b_train": b[train],
        "x_test": x[test], "a_test": a[test], "b_test": b[test],
    }  # fmt: skip


def make_model(cfg: ControlledConfig, in_dim: int = 64, num_classes: int = 10) -> nn.Module:
    """MLP in_dim -> hidden -> num_classes logits."""
    return nn.Sequential(
        nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, num_classes)
    )


def _batches(n: int, batch_size: int, steps: int, gen: torch.Generator):
    """Yield `steps` index batches, reshuffling at every epoch."""
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        yield perm[pos : pos + batch_size]
        pos += batch_size


def pretrain(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: ControlledConfig) -> None:
    """Cross-entropy on labelling A (in place)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.pretrain_lr)
    gen = torch.Generator().manual_seed(controlled_pretrain_seed(cfg.seed))
    for idx in _batches(len(x), cfg.batch_size, cfg.pretrain_steps, gen):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def finetune_loss(method: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SFT: cross-entropy on `labels`. RFT: minus the exact expected 0/1 reward. Scalar."""
    if method == "sft":
        return F.cross_entropy(logits, labels)
    if method == "rft":
        return -expected_reward(logits, onehot_reward(labels, logits.shape[-1])).mean()
    raise ValueError(f"unknown method {method!r}; expected 'sft' or 'rft'")


@torch.no_grad()
def _p_correct(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """π_θ(label|x) in float64, shape (N,): float64 so tiny probabilities keep their size."""
    logits = model(x).double()
    return logits.softmax(-1).gather(1, labels[:, None]).squeeze(1)


def _probe(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> dict[str, list[float]]:
    """Reward, reward std and exact per-input grad norms (RFT and SFT) on the probe set.

    In float64, so the stds and gradients of inputs with π(B|x) ~ 1e-10 are still resolved.
    """
    m64 = copy.deepcopy(model).double()
    x64 = x.double()
    with torch.no_grad():
        logits = m64(x64)  # (P, C)
    R = onehot_reward(labels, logits.shape[-1], torch.float64)
    g = per_example_grad_norms(m64, x64, R)
    return {
        "reward": expected_reward(logits, R).tolist(),
        "std": reward_std(logits, R).tolist(),
        "grad_norm": g["rft"].tolist(),
        "sft_grad_norm": g["sft"].tolist(),
    }


def finetune(
    method: str,
    model: nn.Module,
    data: dict[str, torch.Tensor],
    cfg: ControlledConfig,
    low_mask: torch.Tensor,
    probe_idx: torch.Tensor,
    checkpoints: list[int],
) -> dict[str, Any]:
    """Finetune `model` (in place) to labelling B with `method`; returns its logged curves.

    Curves are evaluated on the whole train set at every step (cheap for 1.3k inputs):
    reward (mean π(B|x), i.e. the expected reward), accuracy, and the reward of the inputs in
    `low_mask` (N,) and of the rest.
    """
    x, b = data["x_train"], data["b_train"]
    opt_cls = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=cfg.lr)
    # same batches for both methods
    gen = torch.Generator().manual_seed(controlled_finetune_seed(cfg.seed))
    log: dict[str, Any] = {
        k: [] for k in ("step", "reward", "accuracy", "reward_low_std", "reward_rest")
    }
    probes = []

    def record(step: int) -> None:
        p = _p_correct(model, x, b)
        with torch.no_grad():
            acc = (model(x).argmax(-1) == b).double().mean()
        log["step"].append(step)
        log["reward"].append(p.mean().item())
        log["accuracy"].append(acc.item())
        log["reward_low_std"].append(p[low_mask].mean().item())
        log["reward_rest"].append(p[~low_mask].mean().item())
        if step in checkpoints:
            probes.append({"iteration": step, **_probe(model, x[probe_idx], b[probe_idx])})

    record(0)
    for step, idx in enumerate(_batches(len(x), cfg.batch_size, cfg.steps, gen), start=1):
        loss = finetune_loss(method, model(x[idx]), b[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        record(step)
    with torch.no_grad():
        log["test_accuracy"] = (
            (model(data["x_test"]).argmax(-1) == data["b_test"]).double().mean().item()
        )
    log["probes"] = probes
    return log


def run(cfg: ControlledConfig, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Pretrain, finetune by SFT and by RFT, and (if `out_dir`) write the JSON and plots.

    Returns the dict written to controlled.json: config, initial statistics, both methods'
    curves and probes, and `final` (the headline numbers).
    """
    t0 = time.perf_counter()
    torch.manual_seed(controlled_data_seed(cfg.seed))
    data = load_data(cfg)
    x, a, b = data["x_train"], data["a_train"], data["b_train"]

    model = make_model(cfg)
    pretrain(model, x, a, cfg)
    with torch.no_grad():
        pretrain_acc = (model(data["x_test"]).argmax(-1) == data["a_test"]).double().mean().item()

    # Bucket inputs by their reward std under the pretrained model; identical for both methods.
    p0 = _p_correct(model, x, b)
    std0 = (p0 * (1 - p0)).sqrt()
    cut = torch.quantile(std0, cfg.low_std_quantile).item()
    low_mask = std0 <= cut
    # Probe inputs spread evenly over the sorted initial std, so the scatter covers its range.
    order = torch.argsort(std0)
    probe_idx = order[torch.linspace(0, len(x) - 1, min(cfg.probe_size, len(x))).round().long()]
    checkpoints = sorted({int(round(s)) for s in np.linspace(0, cfg.steps, cfg.n_checkpoints)})

    results: dict[str, Any] = {
        "config": asdict(cfg),
        "pretrain_test_accuracy_A": pretrain_acc,
        "initial": {
            "reward": p0.mean().item(),
            "std_median": std0.median().item(),
            "low_std_cut": cut,
            "n_low_std": int(low_mask.sum()),
            "n_train": len(x),
        },
        "checkpoints": checkpoints,
    }
    for method in ("sft", "rft"):
        results[method] = finetune(
            method, copy.deepcopy(model), data, cfg, low_mask, probe_idx, checkpoints
        )

    results["final"] = {
        f"{m}/{k}": results[m][k][-1]
        for m in ("sft", "rft")
        for k in ("reward", "accuracy", "reward_low_std", "reward_rest")
    } | {f"{m}/test_accuracy": results[m]["test_accuracy"] for m in ("sft", "rft")}
    results["seconds"] = time.perf_counter() - t0

    if out_dir is not None:
        write_outputs(results, out_dir)
    return results


def write_outputs(results: dict[str, Any], out_dir: str | Path) -> None:
    """controlled.json plus the three figures (see `rft.diagnostics.plots`)."""
    from rft.diagnostics import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "controlled.json", "w") as f:
        json.dump(results, f, indent=1)
    plots.plot_controlled_curves(results, out_dir / "controlled_curves.png")
    plots.plot_controlled_std_vs_grad(results, out_dir / "controlled_std_vs_grad.png")
    plots.plot_controlled_low_std(results, out_dir / "controlled_low_std.png")


def build_parser() -> argparse.ArgumentParser:
    """One flag per ControlledConfig field (`low_std_quantile` -> `--low-std-quantile`)."""
    p = argparse.ArgumentParser(
        prog="python -m rft.diagnostics.controlled",
        description=(
            "Controlled vanishing-gradient experiment (Razin et al. 2024, §4.2): pretrain an MLP "
            "on the digit labels of sklearn's digits, then finetune it to a permuted labelling "
            "by SFT and by the exact expected-reward gradient (RFT), and compare. Writes "
            "controlled.json, controlled_curves.png, controlled_std_vs_grad.png and "
            "controlled_low_std.png into --out."
        ),
    )
    p.add_argument("--out", required=True, help="output folder for controlled.json and the PNGs")
    defaults = ControlledConfig()
    for f in fields(ControlledConfig):
        default = getattr(defaults, f.name)
        shown = "%(default).3g" if isinstance(default, float) else "%(default)s"
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(default),
            default=default,
            choices=OPTIMIZERS if f.name == "optimizer" else None,
            help=f"{f.metadata['help']} (default: {shown})",
        )
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = vars(build_parser().parse_args(argv))
    out = args.pop("out")
    res = run(ControlledConfig(**args), out)
    fin = res["final"]
    print(f"ran in {res['seconds']:.1f}s; wrote {out}/controlled.json and 3 PNGs")
    print(
        f"initial reward {res['initial']['reward']:.4f}, low-std cut {res['initial']['low_std_cut']:.2e}"
    )
    for m in ("sft", "rft"):
        print(
            f"{m.upper()}: final train reward {fin[m + '/reward']:.3f}, "
            f"on initially-low-std inputs {fin[m + '/reward_low_std']:.3f}, rest {fin[m + '/reward_rest']:.3f}"
        )
    return res


if __name__ == "__main__":
    main()
