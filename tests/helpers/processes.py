"""Processes that die with the process that started them, and looking processes up by id
(from /proc: Linux only, like the parent-death signal itself).

A test run killed with SIGKILL cannot clean up after itself: what it started must end
by itself. Children started here get Linux's parent-death signal (SIGKILL): the kernel
kills them when their parent dies, however it dies.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

PR_SET_PDEATHSIG = 1


def dies_with_this_process(user: str | None = None):
    """A `preexec_fn` for a child that must not outlive this process (this thread, to be
    exact: start it from one that lives as long): it becomes `user` (when given; as
    root), then asks for SIGKILL when its parent dies.

    The order matters: changing user clears the parent-death signal. Everything the
    child needs is looked up here, in the parent: after setuid, root's files (this
    Python's libraries among them) may be out of reach."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    ids = None
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        ids = entry.pw_uid, entry.pw_gid, os.getgrouplist(user, entry.pw_gid)

    def in_the_child():
        if ids is not None:
            uid, gid, groups = ids
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was asked for
            os._exit(1)

    return in_the_child


def die_with_parent(parent: int) -> None:
    """A multiprocessing initializer (Pool(initializer=die_with_parent,
    initargs=(os.getpid(),))): the worker dies with the process that started it. A
    pool's workers otherwise wait for work forever once that process is gone."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting to be reaped has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, now (its children, theirs, ...)."""
    found, todo = [], children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def finished_before(sig: int, returncode: int, err: str) -> bool:
    """Whether an import sent `sig` had finished first: it exited 0, or it had printed its
    summary ("Read …") and then the signal landed, either as the command cleaned up
    (it says so: "…; what it had done by then is stored") or as Python shut down, after
    Python had put the default handlers back (killed by the signal, without a word).
    None is an interrupted import; a shell shows the last two as 130/143 like any
    signalled program."""
    if returncode == 0:
        return True
    if not err.lstrip().startswith("Read "):
        return False
    return returncode == -sig or (returncode == 128 + sig and err.rstrip().endswith("what it had done by then is stored"))


def started_before(sig: int, returncode: int, err: str) -> bool:
    """Whether `sig` landed while Python itself was still starting, before any of the
    program's code ran (on a loaded machine a fraction of a second is not enough): killed
    by it without a word (SIGTERM, or SIGINT before Python handles it), or, a Ctrl-C
    while Python imported its `site` module, Python's own fatal error (exit 1). From the
    moment the CLI's modules load, a Ctrl-C is the CLI's (test_cli_conventions)."""
    if returncode == -sig and not err:
        return True
    return (sig == signal.SIGINT and returncode == 1 and err.startswith("Fatal Python error: init_import_site")
            and "KeyboardInterrupt" in err)
