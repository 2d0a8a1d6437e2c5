"""Lightning callbacks: atomic state checkpoints and a progress bar over iterations."""

from __future__ import annotations

import errno
import json
import logging
import shutil
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from tqdm.auto import tqdm

from rft.alg.base import RFTModule
from rft.errors import RFTError
from rft.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

GB = 1024**3


class DiskFullError(RFTError):
    """The disk filled up while a checkpoint was written."""


def checkpoint_bytes(module: RFTModule) -> int:
    """What one save writes, roughly: the trained parameters and their two AdamW moments in
    state.ckpt (frozen models, π_ref and a guide, are left out of it), and the policy's
    safetensors export. For the free-space warning and message: an estimate is enough."""
    trained = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    # a reward-model module (rft.alg.reward_model) has no policy: it exports its own model
    exported = module.policy if module.policy is not None else module
    export = sum(p.numel() * p.element_size() for p in exported.parameters())
    return 3 * trained + export


class DirectCheckpointIO(TorchCheckpointIO):
    """torch.save straight into the file. Lightning's default first serialises the whole
    checkpoint into an in-memory buffer: a transient second copy of the model and optimizer
    state (+1.6 GB for SmolLM2-135M with AdamW), which set the run's peak memory. Atomicity
    comes from StateCheckpoint, which writes a temporary file and renames it."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, path)


def progress_step(module: RFTModule) -> int:
    """How far training is once the current epoch ends, in the module's progress unit
    (iterations or optimizer steps, ``RFTModule.progress_after``)."""
    return module.progress_after(module.current_epoch + 1)


class StateCheckpoint(L.Callback):
    """Every ``every_n`` epochs (RL iterations / SFT step blocks) and at the end: the full
    training state to ``checkpoints/state.ckpt`` and the policy to ``policy/``.

    Each file is written under a temporary name and renamed into place, so a kill during a save
    leaves the previous checkpoint intact. ``checkpoints/state.json`` (written last) says which
    step the checkpoint holds.
    """

    def __init__(self, run_dir: str | Path, every_n: int, save_policy: bool = True):
        self.dir = Path(run_dir) / "checkpoints"
        self.every_n = max(1, int(every_n))
        self.save_policy = save_policy

    @property
    def path(self) -> Path:
        return self.dir / "state.ckpt"

    def on_train_start(self, trainer: L.Trainer, module) -> None:
        # A full disk otherwise shows up only at the first save, minutes or hours in.
        if not trainer.is_global_zero:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        need = checkpoint_bytes(module)
        free = shutil.disk_usage(self.dir).free
        if free < need:
            log.warning(
                "only %.1f GB free under %s, but one checkpoint needs about %.1f GB (state.ckpt "
                "plus the policy export): saves will fail. Free space or set "
                "hydra.run.dir / checkpoint.every_n_iterations.",
                free / GB,
                self.dir,
                need / GB,
            )

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        done = trainer.current_epoch + 1
        if done % self.every_n == 0 or done >= trainer.max_epochs:
            self.save(trainer, module)

    def save(self, trainer: L.Trainer, module) -> None:
        try:
            # every rank takes part in the save (a collective for sharded strategies); rank 0
            # writes the file. A failed save leaves no half-written temporary file.
            with atomic_path(self.path, commit=trainer.is_global_zero) as tmp:
                trainer.save_checkpoint(tmp)
            if trainer.is_global_zero:
                meta = {"epoch": trainer.current_epoch, "step": progress_step(module)}
                write_text_atomic(self.dir / "state.json", json.dumps(meta))
                if self.save_policy:
                    module.export_policy()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            raise DiskFullError(self._disk_full_message(module)) from None

    def _disk_full_message(self, module) -> str:
        meta = self.dir / "state.json"
        kept = (
            f"the previous checkpoint (step {json.loads(meta.read_text())['step']}) is intact"
            if meta.exists()
            else "no earlier checkpoint exists"
        )
        return (
            f"no space left on the device while saving the checkpoint in {self.dir} "
            f"(one save needs about {checkpoint_bytes(module) / GB:.1f} GB); {kept}. "
            "Free some space (old multirun/ folders hold a state.ckpt each) and rerun the same "
            "command: it resumes from the last complete checkpoint."
        )


class IterationProgress(L.Callback):
    """One bar over the whole run (iterations or SFT steps) with the latest key metrics."""

    KEYS = ("reward/mean", "objective/kl", "sft/loss", "val/reward_mean", "time/episodes_per_s")

    def __init__(self, desc: str = "train"):
        self.desc = desc
        self.bar = None

    def on_train_start(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        total = module.progress_total
        self.bar = tqdm(
            total=total,
            initial=min(module.progress_after(trainer.current_epoch), total),
            desc=self.desc,
            unit=module.progress_unit,
            dynamic_ncols=True,
        )

    def on_train_epoch_end(self, trainer, module) -> None:
        if self.bar is None:
            return
        self.bar.n = min(progress_step(module), self.bar.total)
        post = {
            k.split("/")[-1]: f"{module.latest[k]:.3g}" for k in self.KEYS if k in module.latest
        }
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def on_train_end(self, trainer, module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
