"""What every rft LightningModule shares: the policy and its frozen reference, evaluation,
metric records (history.jsonl + the Lightning loggers), policy export, and checkpoint hooks.

An "iteration" is one Lightning epoch for RL algorithms (one rollout + its updates), so
``current_epoch`` is the iteration counter and epoch-end checkpoints resume cleanly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import lightning as L

from rft.eval.evaluate import evaluate_policy
from rft.model.policy import PolicyLM

log = logging.getLogger(__name__)


def save_policy_atomic(policy: PolicyLM, folder: Path) -> None:
    """save_pretrained into a temporary folder, then swap it in: a kill at any moment leaves
    either the old or the new complete folder (``<folder>.old`` during the swap)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        policy.model.save_pretrained(tmp, safe_serialization=True)
        policy.tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written copy behind
        raise
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


class RFTModule(L.LightningModule):
    """Base module. Subclasses implement ``training_step`` and ``configure_optimizers``."""

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
        self.strict_loading = False  # the frozen reference is rebuilt, never checkpointed
        self.latest: dict[str, float] = {}  # last recorded metrics (progress bar, final summary)
        self._t0 = time.perf_counter()

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
        with open(self.run_dir / "history.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

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
        c = self.cfg
        examples = self.task.eval_examples(split)
        # TEMP(H0): .get until the eval.* keys land in rft/config.py
        k = c.eval.get("samples_per_prompt", 1) if split == "test" else c.eval.get("val_samples_per_prompt", 1)
        eval_seed = c.eval.get("seed", 7919)
        res = evaluate_policy(
            self.policy,
            self.ref if c.eval.perplexity else None,
            self.reward_fn,
            examples,
            prompt_max_tokens=self.task.prompt_max_tokens,
            max_new_tokens=self.task.max_new_tokens,
            min_new_tokens=self.task.min_new_tokens,
            generation=c.eval.generation,
            batch_size=c.eval.batch_size,
            seed=eval_seed,
            samples_per_prompt=k,
            n_samples=c.eval.n_samples_table,
            progress=True,
        )
        metrics = {f"{prefix}/{name}": v for name, v in res.metrics.items()}
        samples = res.samples
        step = self.current_epoch if step is None else step
        self.record(metrics, step=step)
        if self.global_rank == 0:
            ev = self.run_dir / "eval"
            ev.mkdir(exist_ok=True)
            setup = {"split": split, "seed": eval_seed, "samples_per_prompt": k}
            record = {"metrics": metrics, "eval": setup, "per_prompt": res.per_prompt}
            (ev / f"{prefix}_{step:05d}.json").write_text(
                json.dumps({**record, "samples": samples}, indent=1)
            )
            with open(self.run_dir / "samples.jsonl", "a") as f:
                for s in samples:
                    f.write(json.dumps({"split": prefix, "iteration": step, **s}) + "\n")
            self._log_samples_table(prefix, samples)
        return metrics

    def _log_samples_table(self, prefix: str, samples: list[dict]) -> None:
        for lg in self.loggers:
            if hasattr(lg, "log_text"):  # WandbLogger
                try:
                    lg.log_text(
                        key=f"{prefix}/samples",
                        columns=["prompt", "completion", "reward"],
                        data=[[s["prompt"][-300:], s["completion"], s["reward"]] for s in samples],
                    )
                except Exception as e:  # noqa: BLE001 - a table must never stop training
                    log.warning("could not log the samples table: %s", e)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        sd = checkpoint["state_dict"]
        for k in [k for k in sd if k.startswith("ref.")]:
            del sd[k]
        checkpoint["rft"] = {"latest": self.latest}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.latest = dict(checkpoint.get("rft", {}).get("latest", {}))

    def export_policy(self, folder: Path | None = None) -> Path:
        folder = Path(folder or self.run_dir / "policy")
        if self.global_rank == 0:
            save_policy_atomic(self.policy, folder)
        return folder
