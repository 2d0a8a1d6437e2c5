"""What every rft LightningModule shares: the policy and its frozen reference, evaluation,
metric records (history.jsonl + the Lightning loggers), policy export, checkpoint hooks, and
the contract the trainer (rft/train.py) and callbacks (rft/callbacks.py) rely on.

An "iteration" is one Lightning epoch for RL algorithms (one rollout + its updates), so
``current_epoch`` is the iteration counter and epoch-end checkpoints resume cleanly. Step-based
algorithms (SFT, offline RL) make one epoch a block of ``steps_per_block`` optimizer steps.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from rft.errors import ConfigError
from rft.eval.evaluate import evaluate_split, save_evaluation
from rft.io import append_jsonl, atomic_dir
from rft.model.lora import (
    base_weight_keys,
    check_resume_identity,
    checkpoint_identity,
    has_adapters,
    lora_enabled,
    save_merged,
)
from rft.model.policy import PolicyLM
from rft.optim import adamw
from rft.store.cached import cached_evaluation
from rft.store.keys import evaluation_key

log = logging.getLogger(__name__)


def save_policy_atomic(policy: PolicyLM, folder: Path) -> None:
    """save_pretrained into a temporary folder, then swap it in (rft.io.atomic_dir): a kill at
    any moment leaves either the old or the new complete folder. A LoRA policy is saved with
    its adapters merged in (plain transformers loads it; rft.model.lora)."""
    with atomic_dir(folder) as tmp:
        if has_adapters(policy.model):
            save_merged(policy.model, tmp)
        else:
            policy.model.save_pretrained(tmp, safe_serialization=True)
        policy.tokenizer.save_pretrained(tmp)


class RFTModule(L.LightningModule):
    """Base module of every rft algorithm. Families build on rft.alg.online.OnlineRL (sample,
    score, update each iteration) or rft.alg.steps.StepModule (a budget of optimizer steps over
    fixed data); docs/adding-a-family.md walks through adding one.

    Declared on the class, read before anything loads (rft.train):
      - ``check_config(cfg)``: the checks a schema cannot express (several fields at once,
        ranges), each a ConfigError naming the key and the fix;
      - ``uses_policy``: whether train() loads a policy LM and π_ref for it (reward models
        train a model of their own);
      - ``supports_tis`` (online families): whether the update applies alg.tis_cap.

    A subclass MUST provide:
      - ``__init__(cfg, task, policy, ref, reward_fn, run_dir)`` (the signature train() and
        Hydra's ``_target_`` call), calling ``super().__init__`` first;
      - ``train_dataloader()``: one epoch's batches (RL: one batch of prompt indices per
        iteration; step-based: ``steps_per_block`` batches; the two bases provide it);
      - ``configure_optimizers()`` and ``training_step(batch, batch_idx)``, which records its
        metrics with ``record(metrics, step)``, a step in the progress unit below.

    It MAY set or override (the defaults suit an RL algorithm whose epoch is one iteration):
      - ``steps_per_block`` and ``max_steps``: set both to count progress in optimizer steps,
        one epoch being a block of ``steps_per_block`` steps (SFT, offline RL); left None,
        progress counts iterations and ``alg.n_iterations`` epochs are fitted;
      - ``max_grad_norm``: the clip ``optimizer_step_clipped`` applies (None / 0 = no clip);
      - ``has_unused_parameters``: True when an iteration may leave some trained parameters
        without a gradient (DDP then searches for unused parameters);
      - ``prepare()``: one-time work before fit that the budget depends on (A-LoL scores its
        data and fits V_ref there); train() calls it before building the trainer;
      - ``on_save_checkpoint`` / ``on_load_checkpoint`` (call super) for extra state.
    With ``automatic_optimization = False`` (every rft module), an update is
    ``optimizer_step_clipped(loss)``.
    """

    # ------------------------------------------------------------------ contract
    uses_policy: bool = True
    """train() loads the policy LM (and π_ref) for this module; False: it trains a model of
    its own (rft.alg.reward_model)."""
    steps_per_block: int | None = None
    """Optimizer steps per Lightning epoch for step-based modules; None: an epoch is an
    iteration and progress counts iterations."""
    max_steps: int | None = None
    """The optimizer-step budget of a step-based module (with steps_per_block)."""
    max_grad_norm: float | None = None
    """Gradient-norm clip of ``optimizer_step_clipped``; None or 0: no clipping."""
    store = None
    """The run's result store (rft.store; set by rft.train): test evaluations of a policy it
    has seen with the same settings are read from it instead of computed."""
    has_unused_parameters: bool = False
    """Whether an iteration may train only part of the parameters (DDP's unused-parameter
    search, see rft.train.resolve_strategy)."""

    def __init__(
        self, cfg, task, policy: PolicyLM, ref: PolicyLM | None, reward_fn, run_dir: str | Path
    ):
        super().__init__()
        self.cfg = cfg
        self.task = task
        self.policy = policy
        self.ref = ref
        if ref is not None:
            ref.requires_grad_(False)
            ref.eval()
        self.reward_fn = reward_fn
        self.run_dir = Path(run_dir)
        # the frozen reference (and a LoRA policy's base weights) are rebuilt, never checkpointed
        self.strict_loading = False
        self._lora_identity: dict | None = None  # checkpoint_identity(policy), computed once
        self.latest: dict[str, float] = {}  # last recorded metrics (progress bar, final summary)
        self._t0 = time.perf_counter()

    @classmethod
    def check_config(cls, cfg) -> None:
        """Cross-field checks of ``cfg`` (the whole composed config) that a schema cannot
        express; rft.train calls them through the class ``alg._target_`` names, before any
        task, model or data is loaded. Subclasses extend them (call super)."""
        a = cfg.alg
        if a.lr <= 0:
            raise ConfigError(f"alg.lr={a.lr}: must be > 0.")
        if lora_enabled(cfg.model.lora) and not cls.uses_policy:
            raise ConfigError(
                f"model.lora.r={cfg.model.lora.r}: LoRA adapts the policy LM, and "
                f"alg={a.name} trains a model of its own (alg.backbone) instead. Drop "
                "model.lora.r (or set it to 0)."
            )

    def prepare(self) -> None:
        """One-time work before fit (see the class docstring); nothing by default."""

    # ------------------------------------------------------------------ data / optim
    @staticmethod
    def index_loader(n_items: int, batch_sampler) -> DataLoader:
        """A loader whose batches are the lists of item indices ``batch_sampler`` yields (the
        module looks the items up itself)."""
        return DataLoader(range(n_items), batch_sampler=batch_sampler, collate_fn=list)

    def configure_optimizers(self):
        """AdamW over the policy's trained parameters (all of them, or a LoRA policy's
        adapters) at alg.lr / alg.weight_decay; modules with more parameter groups (PPO's value
        heads) or another model override it."""
        a = self.cfg.alg
        params = [p for p in self.policy.parameters() if p.requires_grad]
        return adamw(params, lr=a.lr, weight_decay=a.weight_decay, fused=not self.lightning_clips)

    @property
    def counts_steps(self) -> bool:
        """True when progress is counted in optimizer steps, False in iterations."""
        return self.steps_per_block is not None

    @property
    def progress_unit(self) -> str:
        return "step" if self.counts_steps else "it"

    @property
    def fit_epochs(self) -> int:
        """The Lightning epochs fit runs: blocks of steps, or alg.n_iterations iterations."""
        if self.counts_steps:
            return math.ceil(self.max_steps / self.steps_per_block)
        return int(self.cfg.alg.n_iterations)

    @property
    def progress_total(self) -> int:
        """The whole run in the progress unit: max_steps, or the iterations to fit."""
        return self.max_steps if self.counts_steps else self.fit_epochs

    def progress_after(self, epochs_done: int) -> int:
        """Iterations / optimizer steps done after ``epochs_done`` epochs. Records in
        history.jsonl use the same count: a row at k describes the state after k of them."""
        if self.counts_steps:
            return min(epochs_done * self.steps_per_block, self.max_steps)
        return epochs_done

    def optimizer_step_clipped(self, loss: torch.Tensor) -> None:
        """One update of the (single) optimizer: zero the gradients, backward, clip the global
        gradient norm to ``max_grad_norm`` when set, step."""
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        self.clip_grad_norm(opt)
        opt.step()

    @property
    def lightning_clips(self) -> bool:
        """Lightning must clip the gradients (and the optimizer is not fused): fp16 mixed
        precision scales them by a GradScaler, and FSDP shards them across ranks."""
        hw = self.cfg.hardware
        return str(hw.precision).startswith("16") or "fsdp" in str(hw.get("strategy", ""))

    def clip_grad_norm(self, opt) -> None:
        """Clip the global gradient norm of ``opt``'s parameters to ``max_grad_norm`` (if set).
        fp32 and bf16-mixed gradients are unscaled, so torch's clip is exact, and it works with
        the fused AdamW (rft/optim.py), which Lightning's clip_gradients refuses under mixed
        precision. Under fp16's loss scaling (Lightning unscales first) and FSDP (sharded
        gradients) Lightning clips, and the optimizer is not fused (``lightning_clips``)."""
        if not self.max_grad_norm:
            return
        if self.lightning_clips:
            self.clip_gradients(
                opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm"
            )
            return
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)

    def on_fit_start(self) -> None:
        # Lightning keeps each submodule's train/eval mode, and every model loads in eval mode
        # (rft/model/load.py). The trained parts need train mode: Hugging Face runs gradient
        # checkpointing only in train mode (model.gradient_checkpointing=true was a no-op
        # without this), and so is dropout with model.disable_dropout=false. Frozen models
        # (π_ref, a guide) stay in eval mode.
        for child in self.children():
            child.train(any(p.requires_grad for p in child.parameters()))

    # ------------------------------------------------------------------ records
    def record(self, metrics: dict[str, float], step: int) -> None:
        """Send metrics to every Lightning logger and append them to history.jsonl."""
        metrics = {k: float(v) for k, v in metrics.items()}
        self.latest.update(metrics)
        if self.global_rank != 0:
            return
        for lg in self.loggers:
            lg.log_metrics(metrics, step=step)
        row = {"iteration": step, "time/elapsed_s": time.perf_counter() - self._t0, **metrics}
        append_jsonl(self.run_dir / "history.jsonl", row)

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, split: str, prefix: str | None = None, step: int | None = None
    ) -> dict[str, float]:
        """Evaluate the current policy on the task's val/test prompts; record and save it.

        Every evaluation samples with ``eval.seed``, whatever the training seed, so two
        policies (two runs, or before/after training) are compared on the same prompts with the
        same random numbers. Test evaluations draw ``eval.samples_per_prompt`` completions per
        prompt, periodic val evaluations ``eval.val_samples_per_prompt``.
        ``eval/<prefix>_<step>.json`` keeps the per-prompt rewards that paired comparisons
        (``rft report``) read."""
        prefix = prefix or split

        def compute():
            return evaluate_split(self.cfg, self.task, self.policy, self.ref, self.reward_fn, split)

        if self.store is not None and split == "test":  # the same policy, prompts, seed: reuse
            key = evaluation_key(self.cfg, self.task, self.policy, self.ref, split)
            (res, setup), _ = cached_evaluation(self.store, key, compute, what=prefix)
        else:
            res, setup = compute()
        metrics = {f"{prefix}/{name}": v for name, v in res.metrics.items()}
        step = self.current_epoch if step is None else step
        self.record(metrics, step=step)
        if self.global_rank == 0:
            save_evaluation(self.run_dir, prefix, step, metrics, setup, res)
            self._log_samples_table(prefix, res.samples)
        return metrics

    def _log_samples_table(self, prefix: str, samples: list[dict]) -> None:
        for lg in self.loggers:
            if hasattr(lg, "log_text"):  # WandbLogger
                # the text metrics' per-sample scores (rft.eval.text) as extra columns
                extra = [
                    k
                    for k, v in (samples[0] if samples else {}).items()
                    if k not in ("prompt", "completion", "reward") and isinstance(v, float)
                ]
                try:
                    lg.log_text(
                        key=f"{prefix}/samples",
                        columns=["prompt", "completion", "reward", *extra],
                        data=[
                            [
                                s["prompt"][-300:],
                                s["completion"],
                                s["reward"],
                                *(s[k] for k in extra),
                            ]
                            for s in samples
                        ],
                    )
                except Exception as e:  # noqa: BLE001 - a table must never stop training
                    log.warning("could not log the samples table: %s", e)

    # ------------------------------------------------------------------ checkpoints
    @property
    def lora_identity(self) -> dict | None:
        """What a LoRA checkpoint must match (rft.model.lora.checkpoint_identity); None
        without LoRA. The base weights never change, so it is computed once."""
        if self._lora_identity is None and self.policy is not None:
            self._lora_identity = checkpoint_identity(self.policy)
        return self._lora_identity

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        sd = checkpoint["state_dict"]
        # π_ref's weights, and a LoRA model's frozen base weights, are rebuilt from the config
        for k in [k for k in sd if k.startswith("ref.")] + base_weight_keys(self, list(sd)):
            del sd[k]
        checkpoint["rft"] = {"latest": self.latest, "lora": self.lora_identity}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # before any weight is loaded: adapters only fit the base weights they were trained on
        check_resume_identity(checkpoint.get("rft", {}).get("lora"), self.lora_identity)
        self.latest = dict(checkpoint.get("rft", {}).get("latest", {}))

    def export_policy(self, folder: Path | None = None) -> Path:
        folder = Path(folder or self.run_dir / "policy")
        if self.global_rank == 0:
            save_policy_atomic(self.policy, folder)
        return folder
