"""Machinery for the tests that submit real SLURM jobs (``pytest -m slurm tests/slurm``).

They need a SLURM cluster whose default partition can run 1-CPU jobs: on one machine,
``sudo bash scripts/local_slurm/start.sh`` (CI does that first; ``stop.sh`` stops it). Without
``sbatch`` on PATH, a responding controller and a working ``sacct``, every test here skips and
says why and how to start one.

Each sweep is a real ``python run.py hardware=slurm_cpu ...`` process (the submitting side)
whose jobs go through sbatch. To keep the wall time low, the module fixture starts the sweeps
of all selected tests at once and each test then waits for its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Resources of every test job: small enough for a 1-core CI machine (the local cluster offers
# at least 8 "CPUs"; there are no cgroups). timeout_min bounds a job that goes wrong.
LAUNCHER = (
    "hardware=slurm_cpu",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=5",
)


def pytest_configure(config):
    config.addinivalue_line("markers", "sweeps(*names): the test sweeps a module fixture starts")


def cluster_problem() -> str | None:
    """Why SLURM tests cannot run here, or None."""
    hint = "start a one-node cluster with `sudo bash scripts/local_slurm/start.sh` (Debian, root)"
    if shutil.which("sbatch") is None:
        return f"sbatch is not on PATH (no SLURM client): {hint}"
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo failed ({e}): the SLURM controller is not up; {hint}"
    states = {s.rstrip("*~#!%$@^-") for s in p.stdout.split()}
    if p.returncode != 0 or not states & {"idle", "mixed", "allocated", "completing"}:
        why = p.stderr.strip() or f"node states {sorted(states)}"
        return f"the SLURM cluster is not up ({why}); {hint}"
    q = subprocess.run(
        ["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", "1"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    if q.returncode != 0:
        return (
            "sacct does not answer (no accounting database): submitit would wait forever on a "
            f"job that died; start.sh installs a stand-in. sacct said: {q.stderr.strip()[:200]}"
        )
    return None


@dataclass
class Sweep:
    """One ``python run.py`` submitting process and its sweep folder."""

    name: str
    base: Path
    job_name: str
    cmd: list[str]
    timestamped: bool = False  # hydra.sweep.dir=<base>/${now:...}, Hydra's default form
    proc: subprocess.Popen | None = None
    out_path: Path | None = None
    t0: float = 0.0
    wall_s: float | None = None
    notes: dict = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        """The sweep folder (for a timestamped one: the folder Hydra created under ``base``)."""
        if not self.timestamped:
            return self.base
        found = sorted(p for p in self.base.glob("*") if p.is_dir())
        return found[0] if found else self.base / "not-created-yet"

    def start(self) -> Sweep:
        self.out_path = self.base.parent / f"{self.name}.out"
        self.t0 = time.monotonic()
        with open(self.out_path, "w") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        threading.Thread(target=self._time_it, daemon=True).start()
        return self

    def _time_it(self) -> None:
        self.proc.wait()
        self.wall_s = time.monotonic() - self.t0

    def wait(self, timeout: float) -> tuple[int, str]:
        """(exit code, everything the submitting process printed); fails the test on a hang."""
        left = max(1.0, timeout - (time.monotonic() - self.t0))
        try:
            rc = self.proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"sweep {self.name} still running after {timeout:.0f} s:\n{self.output()[-3000:]}"
            )
        return rc, self.output()

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path else ""

    def job_ids(self) -> list[str]:
        p = subprocess.run(
            ["squeue", "-h", "-n", self.job_name, "-o", "%i"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return p.stdout.split()

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        # Jobs a failed sweep left behind; the name is unique to this test session.
        subprocess.run(["scancel", "--name", self.job_name], capture_output=True, timeout=20)


def make_sweep(root: Path, name: str, overrides: list[str], timestamped: bool = False) -> Sweep:
    base = root / name
    sweep_dir = f"{base}/${{now:%H-%M-%S}}" if timestamped else str(base)
    job_name = f"rft-test-{os.getpid()}-{name}"
    flags = [o for o in overrides if o.startswith("--")]  # argparse wants them before overrides
    cmd = [
        sys.executable,
        "run.py",
        *flags,
        *LAUNCHER,
        *[o for o in overrides if o not in flags],
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.launcher.name={job_name}",
    ]
    return Sweep(name=name, base=base, job_name=job_name, cmd=cmd, timestamped=timestamped)


def train_iterations(history: Path) -> list[int]:
    import json

    if not history.is_file():
        return []
    rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    return [r["iteration"] for r in rows if "loss/policy" in r]


class Preempter(threading.Thread):
    """Sends ``scancel --signal=<sig>`` to a sweep's (single) job once its run has finished
    ``after`` iterations; records what it did in ``sweep.notes``."""

    def __init__(self, sweep: Sweep, after: int, sig: str = "USR1", timeout: float = 150):
        super().__init__(daemon=True)
        self.sweep, self.after, self.sig, self.timeout = sweep, after, sig, timeout

    def run(self) -> None:
        notes = self.sweep.notes
        end = time.monotonic() + self.timeout
        while time.monotonic() < end and self.sweep.proc.poll() is None:
            done = train_iterations(self.sweep.dir / "0" / "history.jsonl")
            if done and done[-1] >= self.after:
                ids = self.sweep.job_ids()
                if not ids:
                    notes["error"] = "the job is not in squeue"
                    return
                p = subprocess.run(
                    ["scancel", f"--signal={self.sig}", ids[0]],
                    capture_output=True,
                    text=True,
                    timeout=20,
                )
                notes.update(
                    job_id=ids[0],
                    signalled_after=done[-1],
                    scancel_rc=p.returncode,
                    scancel_err=p.stderr.strip(),
                )
                return
            time.sleep(0.05)
        notes["error"] = f"the run never reached iteration {self.after}"


def log_path_in(text: str) -> Path | None:
    """The job log path a failed job reports (``... log /x/.submitit/12/12_0_log.err ...``)."""
    m = re.search(r"log:? (\S+_log\.err)", text)
    return Path(m.group(1)) if m else None
