"""Lightning callbacks: atomic state checkpoints and a progress bar over iterations."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from tqdm.auto import tqdm

from rft.alg.base import RFTModule
from rft.errors import DiskFullError  # noqa: F401 - raised here by rft.io; tests import it here
from rft.io import (
    atomic_path,
    disk_full_as_error,
    disk_full_error,
    format_bytes,
    is_disk_full,
    temp_sibling,
    write_text_atomic,
)

log = logging.getLogger(__name__)


def _tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (tied weights, e.g. GPT-2's embedding
    and LM head, are saved once)."""
    seen: dict[tuple, int] = {}
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            continue
        try:
            key = (t.device.type, t.untyped_storage().data_ptr())
            size = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):  # storage-less tensors (meta, sparse)
            key, size = (id(t),), t.numel() * t.element_size()
        seen[key] = max(seen.get(key, 0), size)
    return sum(seen.values())


def state_bytes(module: RFTModule) -> int:
    """The module's tensors that state.ckpt holds: its state dict less what
    ``RFTModule.on_save_checkpoint`` leaves out (π_ref, a LoRA model's frozen base weights)."""
    from rft.model.lora import base_weight_keys

    sd = module.state_dict()
    drop = {k for k in sd if k.startswith("ref.")} | set(base_weight_keys(module, list(sd)))
    return _tensor_bytes(v for k, v in sd.items() if k not in drop)


def optimizer_bytes(optimizers) -> int:
    """The optimizers' state in state.ckpt. Adam's state (two moments per parameter, in its
    dtype) is created at the first step, so before it a parameter without state counts as Adam
    would keep it; after it (a resume) the real tensors are counted."""
    total = 0
    for opt in optimizers:
        for group in opt.param_groups:
            adam = "betas" in group
            for p in group["params"]:
                st = opt.state.get(p)
                if st:
                    total += _tensor_bytes(st.values())
                elif adam and p.requires_grad:
                    total += 2 * p.numel() * p.element_size()
    return total


def export_bytes(module: RFTModule) -> int:
    """The policy/ export: every weight of the policy (a reward-model module,
    rft.alg.reward_model, exports its own model instead)."""
    exported = module.policy if module.policy is not None else module
    return _tensor_bytes(exported.state_dict().values())


def checkpoint_bytes(module: RFTModule, optimizers=(), save_policy: bool = True) -> int:
    """What one save writes next to the previous one (both are on disk until the rename):
    state.ckpt (the module's saved tensors and the optimizer state) and, unless off, policy/."""
    need = state_bytes(module) + optimizer_bytes(optimizers)
    return need + (export_bytes(module) if save_policy else 0)


class DirectCheckpointIO(TorchCheckpointIO):
    """torch.save straight into the file. Lightning's default first serialises the whole
    checkpoint into an in-memory buffer: a transient second copy of the model and optimizer
    state (+1.6 GB for SmolLM2-135M with AdamW), which set the run's peak memory. Atomicity
    comes from StateCheckpoint, which writes a temporary file and renames it."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # a file object, not the path: on a full disk torch then fails with the OSError
        # (ENOSPC) in its exception's context (rft.io.is_disk_full), not only "unexpected pos"
        with open(path, "wb") as f:
            torch.save(checkpoint, f)


def progress_step(module: RFTModule) -> int:
    """How far training is once the current epoch ends, in the module's progress unit
    (iterations or optimizer steps, ``RFTModule.progress_after``)."""
    return module.progress_after(module.current_epoch + 1)


class StateCheckpoint(L.Callback):
    """Every ``every_n`` epochs (RL iterations / SFT step blocks) and at the end: the full
    training state to ``checkpoints/state.ckpt`` and the policy to ``policy/``.

    Each file is written under a temporary name and renamed into place, so a kill or a full
    disk during a save leaves the previous checkpoint intact. ``checkpoints/state.json``
    (renamed into place with state.ckpt) says which step the checkpoint holds and whether
    policy/ holds it too. A full disk is one DiskFullError (rft.io) naming the folder.
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
        with disk_full_as_error(self.path):
            self.dir.mkdir(parents=True, exist_ok=True)
        need = self.need(trainer, module)
        free = shutil.disk_usage(self.dir).free
        log.info(
            "one checkpoint save writes about %s (%s free)", format_bytes(need), format_bytes(free)
        )
        if free < need:
            log.warning(
                "only %s free under %s, but one checkpoint save needs about %s (state.ckpt "
                "with the optimizer state%s, written next to the previous one): saves will "
                "fail. Free space, or set hydra.run.dir / checkpoint.every_n_iterations.",
                format_bytes(free),
                self.dir,
                format_bytes(need),
                " plus the policy/ export" if self.save_policy else "",
            )

    def need(self, trainer: L.Trainer, module) -> int:
        return checkpoint_bytes(module, trainer.optimizers, self.save_policy)

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        done = trainer.current_epoch + 1
        if done % self.every_n == 0 or done >= trainer.max_epochs:
            self.save(trainer, module)

    def save(self, trainer: L.Trainer, module) -> None:
        meta_path = self.dir / "state.json"
        writing = self.path
        try:
            # every rank takes part in the save (a collective for sharded strategies); rank 0
            # writes the file. A failed save leaves no half-written temporary file. state.json
            # is written before state.ckpt is renamed into place and renamed right after it,
            # so a full disk never leaves a new state.ckpt beside an old state.json.
            with atomic_path(self.path, commit=trainer.is_global_zero) as tmp:
                trainer.save_checkpoint(tmp)
                if trainer.is_global_zero:
                    meta = {"epoch": trainer.current_epoch, "step": progress_step(module)}
                    if self.save_policy:
                        meta["policy_exported"] = False  # until policy/ holds this step
                    meta_tmp = temp_sibling(meta_path)
                    try:
                        meta_tmp.write_text(json.dumps(meta))
                    except BaseException:
                        meta_tmp.unlink(missing_ok=True)
                        raise
            if trainer.is_global_zero:
                meta_tmp.replace(meta_path)
                if self.save_policy:
                    writing = module.run_dir / "policy"
                    module.export_policy()
                    write_text_atomic(meta_path, json.dumps({**meta, "policy_exported": True}))
        except Exception as e:
            if not (isinstance(e, DiskFullError) or is_disk_full(e, writing.parent)):
                raise
            # the message of rft.io, with what this save needs
            what = "state.ckpt" if writing == self.path else "the policy/ export"
            raise disk_full_error(writing, what, self.need(trainer, module)) from None

    def on_fit_end(self, trainer: L.Trainer, module) -> None:
        """A save whose policy export failed (a full disk) left policy/ one step behind
        state.ckpt; a rerun that resumes with nothing left to train exports it here (Lightning
        calls on_fit_end also when the fit loop had nothing to do)."""
        meta_path = self.dir / "state.json"
        if not (self.save_policy and trainer.is_global_zero and meta_path.is_file()):
            return
        meta = json.loads(meta_path.read_text())
        if meta.get("policy_exported", True):
            return
        log.info("policy/ is older than %s: exporting it now", self.path)
        with disk_full_as_error(module.run_dir / "policy", "the policy/ export"):
            module.export_policy()
        write_text_atomic(meta_path, json.dumps({**meta, "policy_exported": True}))


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
