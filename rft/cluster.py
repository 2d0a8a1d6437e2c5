"""Running on SLURM: stop-at-a-checkpoint-and-requeue, and job errors that name their log.

How a job survives preemption and time limits (docs/slurm.md has the user's view):

1. ``hardware=slurm_*`` submits every run through Hydra's submitit launcher. submitit asks sbatch
   for ``--signal=USR2@<signal_delay_s>``: SLURM sends SIGUSR2 that long before the time limit.
   ``scancel --signal=USR1 <job>`` (or USR2) asks for the same by hand.
2. ``RequeueOnSignal`` (a Lightning callback that ``make_trainer`` adds to every trainer) catches
   SIGUSR1/SIGUSR2 during ``fit``, lets the iteration in progress finish, writes the usual
   ``checkpoints/state.ckpt`` through ``StateCheckpoint.save`` (atomic), runs
   ``scontrol requeue <job>`` and exits. It checkpoints at an iteration boundary on purpose: a
   mid-iteration state (half a PPO update, no rollout buffer) could not reproduce the
   uninterrupted run.
3. The requeued job runs the same submitit pickle: the same Hydra job (same job number, same
   ``hydra.sweep.dir``, its ``${now:}`` values are cached in the pickle), so the same run
   folder. ``train()`` finds ``checkpoints/state.ckpt`` there (``find_resume_checkpoint``) and
   resumes; prompts and RNG are seeded per iteration, so it ends where the uninterrupted run ends.
4. SIGTERM (SLURM preemption with ``PreemptMode=REQUEUE``, ``scancel``, node shutdown): Lightning
   stops after the iteration and this callback writes the checkpoint first, but does not
   requeue: SLURM requeues a preempted job itself and a cancelled job should stay cancelled.
   Lightning's own SLURM auto-requeue is switched off (``slurm_plugins``): its handler saves a
   mid-step ``hpc_ckpt_*.ckpt`` and keeps training while the job is being killed.

Outside ``fit`` (model loading, final evaluation) submitit's own SIGUSR2 handler (``SlurmJobInfo``
maps SIGUSR1 to it too) requeues the job at once; the requeued job resumes from the last
``state.ckpt`` (or, after fit, only re-evaluates).

``SlurmJobInfo`` is a Hydra callback the ``slurm_*`` hardware options install: each job prints
where its log is, and a job that raises sends back an error naming its log and run folder.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("rft")

REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


# ---------------------------------------------------------------------------------- SLURM env
def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array>_<task>`` for an array task, else the job id."""
    arr, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if arr and task:
        return f"{arr}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def slurm_plugins() -> list:
    """Trainer plugins: under SLURM, Lightning's SLURM environment without its auto-requeue
    (``RequeueOnSignal`` does that at an iteration boundary instead)."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def requeue_job(job_id: str) -> bool:
    try:
        r = subprocess.run(
            ["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        log.error("scontrol requeue %s failed: %s", job_id, e)
        return False
    if r.returncode != 0:
        log.error(
            "scontrol requeue %s failed (exit %d): %s", job_id, r.returncode, r.stderr.strip()
        )
        return False
    return True


# ---------------------------------------------------------------------------------- callback
def _define_requeue_on_signal() -> type:
    # Defined on first use (module __getattr__ below): the submitting side of a sweep imports
    # this module for SlurmJobInfo and must not pay for importing Lightning and torch.
    import lightning as L

    class RequeueOnSignal(L.Callback):
        """SIGUSR1/SIGUSR2/SIGTERM during fit: finish the iteration, save ``state.ckpt``, then
        (SIGUSR*, under SLURM) requeue the job; exit with 128 + the signal number.

        Needs the run's ``StateCheckpoint`` among the trainer's callbacks, before this one."""

        def __init__(self) -> None:
            self.pending: int | None = None

        def _on_signal(self, signum: int, _frame) -> None:
            if self.pending is None:
                log.warning(
                    "Received %s: checkpointing at the end of this iteration, then %s.",
                    signal.Signals(signum).name,
                    "requeueing the job" if slurm_job_id() else "exiting",
                )
            self.pending = signum

        def on_train_start(self, trainer: L.Trainer, module) -> None:
            # After Lightning installed its own handlers (Trainer._run); its teardown puts back
            # the handlers that were there before fit (submitit's, or the defaults).
            self.pending = None
            for sig in REQUEUE_SIGNALS:
                signal.signal(sig, self._on_signal)

        def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
            signum = self.pending or (signal.SIGTERM if trainer.received_sigterm else None)
            # Every rank must agree (the checkpoint is a collective under DDP/FSDP).
            if not trainer.strategy.reduce_boolean_decision(signum is not None, all=False):
                return
            signum = signum or signal.SIGUSR1
            from rft.callbacks import StateCheckpoint

            ckpt = next(cb for cb in trainer.callbacks if isinstance(cb, StateCheckpoint))
            done = trainer.current_epoch + 1
            ckpt.save(trainer, module)  # (again, if this was one of its periodic saves: harmless)
            job = slurm_job_id()
            requeue = signum in REQUEUE_SIGNALS and job is not None
            if trainer.is_global_zero:
                log.warning("Checkpoint for iteration %d written to %s", done, ckpt.path)
                if requeue and requeue_job(job):
                    log.warning("Requeued SLURM job %s; it resumes from that checkpoint.", job)
            trainer.strategy.barrier("rft-requeue")
            raise SystemExit(128 + int(signum))

    RequeueOnSignal.__module__, RequeueOnSignal.__qualname__ = __name__, "RequeueOnSignal"
    return RequeueOnSignal


def __getattr__(name: str):  # PEP 562: `from rft.cluster import RequeueOnSignal` defines it
    if name == "RequeueOnSignal":
        cls = globals()[name] = _define_requeue_on_signal()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------- hydra side
class JobFailed(RuntimeError):
    """A sweep job raised; the message says what, and where its log and run folder are."""


def submitit_job_info() -> dict[str, str] | None:
    """Job id and log files of the submitit job this process runs in (None outside one)."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    try:
        import submitit

        env = submitit.JobEnvironment()
        paths = env.paths
        return {
            "job_id": str(env.job_id),
            "stdout": str(paths.stdout),
            "stderr": str(paths.stderr),
            "host": socket.gethostname(),
            "restarts": os.environ.get("SLURM_RESTART_COUNT", "0"),
        }
    except Exception:  # noqa: BLE001 - information only
        return None


class SlurmJobInfo(Callback):
    """Hydra callback for submitit jobs (installed by ``hardware=slurm_*``).

    - At job start, one line to stderr and the run log: job id, host, restarts, log file, run
      folder. A job that dies without a Python exception (a config error exits 2, an OOM kill,
      the time limit) has that line in the error stream submitit reports to the sweep.
    - When the task raises, the traceback goes to the job's log and the error sent back to the
      submitting process becomes ``JobFailed`` naming the log file and the run folder.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        info = submitit_job_info()
        if info is None:
            return
        # Outside fit, SIGUSR1 does what submitit does on its SIGUSR2 (requeue the same job)
        # instead of killing the process; during fit RequeueOnSignal handles both.
        usr2 = signal.getsignal(signal.SIGUSR2)
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and callable(usr2):
            signal.signal(signal.SIGUSR1, usr2)
        out = _output_dir()
        msg = (
            f"rft: job {info['job_id']} on {info['host']} (restarts: {info['restarts']}), "
            f"log {info['stderr']}, run folder {out}"
        )
        print(msg, file=sys.stderr, flush=True)
        log.info(msg)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        if job_return.status != JobStatus.FAILED:
            return
        err = job_return._return_value
        if isinstance(err, JobFailed):
            return
        info = submitit_job_info() or {}
        # The traceback stays here (the job's stderr, run.log); it does not survive pickling.
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
        log.error("The job failed:", exc_info=(type(err), err, err.__traceback__))
        where = [f"  log: {info['stderr']} (job {info['job_id']})"] if info else []
        where.append(f"  run folder: {_output_dir()}")
        job_return.return_value = JobFailed("\n".join([f"{type(err).__name__}: {err}", *where]))


def _output_dir() -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(Path(HydraConfig.get().runtime.output_dir))
    except Exception:  # noqa: BLE001
        return "?"


# ---------------------------------------------------------------------------------- W&B
def sweep_group_and_tags() -> tuple[str | None, list[str]]:
    """In a Hydra multirun: a W&B group shared by the sweep's runs (from its sweep folder) and
    tags from this job's command-line overrides (``alg.lr=1e-5``: the swept values among them).
    Outside one: (None, [])."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except Exception:  # noqa: BLE001 - not under @hydra.main
        return None, []
    if hc.mode != RunMode.MULTIRUN:
        return None, []
    group = sweep_group_name(hc.sweep.dir)
    tags = [group]
    for o in hc.overrides.task:
        if o.lstrip("+~").startswith(("hydra.", "hydra/", "logger")):  # not the run's own settings
            continue
        tags.append(o[:64])  # W&B's limit for a tag
    return group, tags


def sweep_group_name(sweep_dir: str) -> str:
    """``multirun/2025-01-31/12-00-00`` -> ``2025-01-31_12-00-00``; ``sweeps/lr`` -> ``lr``."""
    p = Path(sweep_dir)
    name = p.name
    if len(name) == 8 and name[2] == name[5] == "-" and name.replace("-", "").isdigit():
        name = f"{p.parent.name}_{name}"  # Hydra's default ${now:%Y-%m-%d}/${now:%H-%M-%S}
    return name
