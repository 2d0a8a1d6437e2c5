"""The sandbox (rft/sandbox.py) against hostile programs: each is contained (the test process,
its files and its network are untouched, no process of the run survives it) and reported (the
run's status says how it ended). The code reward scores them 0 (tests/reward/test_code.py).

Tests that need an isolation layer the machine does not give skip with the reason
(``isolation().describe()`` lists what is there): a missing layer must never turn a test into a
real attack on the machine that runs it."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from rft import sandbox
from rft.errors import ConfigError

FAST = sandbox.Limits(cpu_s=1, wall_s=4.0)
ISO = sandbox.isolation()


def need(flag: bool, what: str):
    if not flag:
        pytest.skip(f"{what} is not available here ({ISO.describe()})")


def marked_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds ``marker``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            out.append(int(d.name))
    return out


def test_isolation_is_described_for_the_run_log():
    text = ISO.describe()
    assert text.startswith("sandbox: process group + rlimits")
    for layer in ("no network", "own pid namespace", "read-only filesystem", "python"):
        assert layer in text
    assert ISO.python_version[0] == 3


def test_a_plain_program_runs_and_its_output_comes_back():
    r = sandbox.run("import sys\nprint('hi', sys.stdin.read())", FAST, stdin=b"there")
    assert (r.status, r.returncode, r.stdout) == ("ok", 0, "hi there\n")


@pytest.mark.parametrize(
    "program,status",
    [
        ("raise ValueError('no')", "error"),
        ("import sys\nsys.exit(3)", "error"),
        ("def f(:\n    pass", "syntax_error"),
        ("x = bytearray(8 << 30)", "memory"),  # a memory bomb: 8 GiB against 1 GiB of address space
    ],
)
def test_failures_are_reported_by_kind(program, status):
    r = sandbox.run(program, FAST)
    assert r.status == status, (r.status, r.stderr[-300:])


def test_an_infinite_loop_is_stopped_by_the_cpu_limit():
    # a generous wall clock: the CPU limit must end it first even on a busy machine
    limits = sandbox.Limits(cpu_s=1, wall_s=15.0)
    r = sandbox.run("while True:\n    pass", limits)
    assert r.status == "cpu_limit", (r.status, r.stderr[-300:])


def test_a_sleeping_program_is_stopped_by_the_wall_clock():
    t0 = time.monotonic()
    r = sandbox.run("import time\ntime.sleep(60)", sandbox.Limits(cpu_s=5, wall_s=1.0))
    assert r.status == "timeout"
    assert time.monotonic() - t0 < 5


def test_a_fork_bomb_is_bounded_and_leaves_no_process_behind():
    marker = f"rft-forkbomb-{os.getpid()}-{time.monotonic_ns()}"
    # every child sleeps for a minute: only the group / namespace kill can end them in time
    program = (
        f"MARKER = {marker!r}\n"
        "import os, sys, time\n"
        "n = 0\n"
        "for _ in range(5000):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', MARKER])\n"
        "        n += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "print('forked', n, flush=True)\n"
        "time.sleep(60)\n"
    )
    r = sandbox.run(program, sandbox.Limits(cpu_s=2, wall_s=3.0, processes=16))
    assert r.status == "timeout"
    forked = int(r.stdout.split()[1])
    assert forked < 16, forked  # RLIMIT_NPROC held
    time.sleep(0.2)
    assert marked_processes(marker) == []


def test_a_write_outside_its_folder_fails_and_leaves_nothing(tmp_path):
    need(ISO.readonly_fs or ISO.uid is not None, "a read-only filesystem or a dropped uid")
    targets = [tmp_path / "escaped.txt", Path("/tmp") / f"rft-escaped-{os.getpid()}.txt"]
    if not ISO.readonly_fs:
        targets = targets[:1]  # a dropped uid can still write world-writable /tmp
    program = "\n".join(
        [
            "ok = 0",
            *(
                f"try:\n    open({str(t)!r}, 'w').write('x'); ok += 1\nexcept OSError:\n    pass"
                for t in targets
            ),
            "open('inside.txt', 'w').write('fine')",
            "print(ok, open('inside.txt').read())",
        ]
    )
    r = sandbox.run(program, FAST)
    assert (r.status, r.stdout.split()) == ("ok", ["0", "fine"]), r.stderr[-300:]
    assert not any(t.exists() for t in targets)


def test_a_socket_connect_reaches_nothing():
    need(ISO.network, "a network namespace")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3.0)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    program = (
        "import socket\n"
        "for host in ('127.0.0.1', '1.1.1.1'):\n"
        "    try:\n"
        f"        socket.create_connection((host, {port}), timeout=1)\n"
        "        print('connected', host)\n"
        "    except OSError as e:\n"
        "        print('refused', host)\n"
    )
    r = sandbox.run(program, FAST)
    t.join()
    server.close()
    assert r.stdout.split() == ["refused", "127.0.0.1", "refused", "1.1.1.1"], r.stdout
    assert accepted == []


def test_a_kill_of_its_parent_and_of_this_process_misses():
    need(ISO.pid_namespace or ISO.uid is not None, "a PID namespace or a dropped uid")
    me = os.getpid()
    program = (
        "import os, signal\n"
        "for pid in (os.getppid(), " + str(me) + "):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
        "print('still here', flush=True)\n"
        "os.killpg(0, signal.SIGKILL)  # its own group: the sandbox, never the trainer\n"
    )
    r = sandbox.run(program, FAST)
    assert r.status == "killed" and "still here" in r.stdout, (r.status, r.stdout, r.stderr[-200:])
    assert os.getpid() == me  # this process is unharmed (it is running this line)


def test_runs_in_parallel_keep_their_order_and_bound():
    progs = [f"import time\ntime.sleep(0.3)\nprint({i})" for i in range(4)]
    t0 = time.monotonic()
    out = sandbox.run_many(progs, FAST, max_parallel=2)
    took = time.monotonic() - t0
    assert [r.stdout.strip() for r in out] == ["0", "1", "2", "3"]
    assert took >= 0.6  # two at a time: at least two rounds of 0.3 s


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("cpu_s", 0, "sandbox.cpu_s=0: must be ≥ 1"),
        ("wall_s", 0.0, "sandbox.wall_s=0.0: must be > 0"),
        ("memory_mb", 32, "sandbox.memory_mb=32: Python does not start"),
        ("open_files", 4, "sandbox.open_files=4: Python itself needs a few"),
    ],
)
def test_bad_limits_name_the_key(field, value, message):
    with pytest.raises(ConfigError, match=message):
        sandbox.Limits(**{field: value}).check("sandbox")
