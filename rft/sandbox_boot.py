"""The sandbox's first code: it runs INSIDE the sandbox, before the untrusted program.

``rft.sandbox`` copies this file into the run's private folder and starts it as
``python -I -S _boot.py '<json settings>'`` (standard library only: the program may not even
have ``site``). In order:

1. When it is PID 1 of a fresh PID namespace it forks: PID 1 stays a reaper that waits for the
   program and exits with its status (128 + signal when a signal ended it). The kernel never
   delivers a signal to a namespace's init that has no handler for it, so the program must not
   be PID 1, or RLIMIT_CPU's SIGXCPU and the program's own ``kill`` would not end it. When PID 1
   exits, the kernel kills every process left in the namespace (a fork bomb's children too).
2. ``readonly_fs``: every mount read-only (mount_setattr with AT_RECURSIVE, Linux ≥ 5.12) and a
   small tmpfs over the working folder, which becomes the program's cwd: the program can write
   there only, at most ``tmpfs_mb``, and the files vanish with the mount namespace.
3. The resource limits (hard limits the program cannot raise again; in a user namespace not
   even its "root" can).
4. The program ``main.py`` is compiled (a syntax error exits with ``SYNTAX_EXIT``) and run as
   ``__main__``. Its exceptions end it as Python's own do (exit status 1, traceback on stderr).

A setup failure exits with ``SETUP_EXIT`` and says what failed on stderr, so the parent can
tell the sandbox's own problems from the program's.
"""

import json
import os
import sys

SETUP_EXIT = 86
SYNTAX_EXIT = 87

MS_NOSUID, MS_NODEV, MS_BIND = 2, 4, 4096
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and arm64 (the unified syscall table)


def fail(msg):
    os.write(2, ("rft-sandbox setup: " + msg + "\n").encode())
    os._exit(SETUP_EXIT)


def reap_until(child):
    """PID 1: reap every process (orphans are re-parented here) until ``child`` ends; exit
    with its status."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(SETUP_EXIT)
        if pid == child:
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status))


def readonly_root(tmpfs_mb):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    class MountAttr(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")
        ]

    def check(ret, what):
        if ret != 0:
            fail(f"{what}: {os.strerror(ctypes.get_errno())}")

    cwd = os.getcwd()
    ro = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    check(
        libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(ro), 32),
        "mount_setattr(/, read-only)",
    )
    opts = f"size={int(tmpfs_mb)}m,mode=0700".encode()
    check(libc.mount(b"tmpfs", cwd.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts), "tmpfs")
    os.chdir(cwd)  # enter the tmpfs now mounted on the path


def main():
    settings = json.loads(sys.argv[1])
    # read the program before the folder is hidden under the tmpfs
    with open(settings["program"], encoding="utf-8", errors="replace") as f:
        source = f.read()
    if os.getpid() == 1:
        child = os.fork()
        if child:
            reap_until(child)
    if settings["readonly_fs"]:
        readonly_root(settings["tmpfs_mb"])
    import resource

    for name, (soft, hard) in settings["rlimits"].items():
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError) as e:
            fail(f"setrlimit({name}, {soft}, {hard}): {e}")
    sys.path[:] = [os.getcwd(), *settings["sys_path"], *sys.path[1:]]
    sys.argv = ["main.py"]
    try:
        code = compile(source, "main.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as e:
        os.write(2, f"rft-sandbox syntax: {type(e).__name__}: {e}\n".encode(errors="replace"))
        os._exit(SYNTAX_EXIT)
    del source, settings
    exec(code, {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__})


if __name__ == "__main__":
    main()
