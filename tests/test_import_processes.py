"""An interrupted `usage import` leaves no process behind (issue 20): killed with
SIGKILL at random points, its worker processes and multiprocessing's resource tracker
die with it; SIGTERM and Ctrl-C (SIGINT) end it with one line and the shell's exit
code, and nothing of it stays either. Checked by pid, on both backends."""
import os
import random
import signal
import subprocess
import time

import pytest

from tests.helpers.processes import (alive, command_line, descendants, dies_with_this_process, finished_before,
                                     started_before)
from tests.helpers.run import EXE, create, proc
from tests.test_crash import write_records


@pytest.fixture
def big_file(isolated, tmp_path):
    """~15 MB of records: read by worker processes (from 8 MB on)."""
    key = create()
    path = tmp_path / "usage.jsonl"
    write_records(path, key["id"], 100_000)
    return path


def interrupted(path, sig, delay, after_workers=False):
    """Start an import, send `sig` `delay` seconds after it started (or, `after_workers`,
    after its worker processes were seen: a loaded machine starts them late) if it is
    still running, and return (whether it was signalled, exit code, stderr, {pid:
    command line} of every process it started)."""
    child = subprocess.Popen([EXE, "usage", "import", str(path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, preexec_fn=dies_with_this_process())
    seen = {}
    try:
        deadline = time.monotonic() + (60 if after_workers else delay)
        while child.poll() is None and time.monotonic() < deadline:
            seen.update((pid, command_line(pid) or seen.get(pid, "")) for pid in descendants(child.pid))
            if after_workers and any("spawn_main" in line for line in seen.values()):
                deadline = min(deadline, time.monotonic() + delay)
                after_workers = False
            time.sleep(0.01)
        signalled = child.poll() is None
        if signalled:
            seen.update((pid, command_line(pid) or seen.get(pid, "")) for pid in descendants(child.pid))
            child.send_signal(sig)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return signalled, child.returncode, err, seen


def left_behind(seen: dict, within: float = 10) -> dict:
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {pid: line for pid, line in seen.items() if alive(pid)}


def test_kill_9_at_random_points_leaves_no_process(big_file):
    rng = random.Random(20)
    signalled, workers_seen = 0, 0
    for n in range(4):  # once at a random moment of its start, then while its workers work
        hit, _, _, seen = interrupted(big_file, signal.SIGKILL, rng.uniform(0.0, 0.8), after_workers=n > 0)
        signalled += hit
        workers_seen += any("spawn_main" in line for line in seen.values())
        assert left_behind(seen) == {}, seen
    assert signalled >= 3 and workers_seen >= 3, "the import finished before the kills: make the file bigger"
    assert proc("db", "check").exit_code == 0


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_ctrl_c_end_an_import_in_one_line(big_file, sig, code, word):
    rng = random.Random(sig)
    for delay, after_workers in ((rng.uniform(0.3, 0.8), False), (rng.uniform(0.0, 0.6), True)):
        hit, returncode, err, seen = interrupted(big_file, sig, delay, after_workers)
        assert left_behind(seen) == {}, seen
        if not hit or finished_before(sig, returncode, err):
            continue
        lines = [line for line in err.splitlines() if line.strip()]
        if not after_workers and started_before(sig, returncode, err):
            continue  # signalled while Python was still starting, before the import began: nothing to say
        assert returncode == code, err
        assert len(lines) == 1 and lines[0].startswith(f"Error: {word}"), err
        if after_workers:
            assert "run the same import again" in lines[0], err
    # (That a rerun then finishes exactly: test_records_import's Ctrl-C test.)
    assert proc("db", "check").exit_code == 0


@pytest.mark.one_backend
def test_a_worker_ends_when_its_parent_is_gone_without_a_death_signal(tmp_path):
    """The fallback where Linux's parent-death signal is not there: the parent-pid watch."""
    # A grandchild whose parent exits at once: it watches the parent's id only (no prctl).
    code = (
        "import os, sys, time\n"
        "parent = os.getpid()\n"
        "pid = os.fork()\n"
        "if pid:\n"
        "    print(pid, flush=True); time.sleep(0.3); os._exit(0)\n"
        "os.dup2(os.open(os.devnull, os.O_WRONLY), 1); os.dup2(1, 2)\n"  # the test reads no one's output
        "from claude_keys.importers.units import _watch_parent\n"
        "import threading\n"
        "threading.Thread(target=_watch_parent, args=(parent, 0.1), daemon=True).start()\n"
        "time.sleep(30)\n"
    )
    import sys

    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    orphan = int(child.stdout.split()[0])
    assert left_behind({orphan: "orphan"}, within=20) == {}


@pytest.mark.one_backend
def test_sigterm_before_the_import_takes_over_is_still_a_termination(capsys):
    """SIGTERM that lands while `usage import` still opens its store (a slow server), before
    the import's own handling: a terminated process's word and code (143), not Ctrl-C's."""
    import click

    from claude_keys.cli import run_reporting_errors
    from claude_keys.errors import Terminated

    def terminated():
        raise Terminated()

    def aborted_by_it():  # what click makes of it inside a command
        try:
            terminated()
        except KeyboardInterrupt as e:
            raise click.Abort() from e

    def ctrl_c():
        raise KeyboardInterrupt()

    assert [run_reporting_errors(call) for call in (terminated, aborted_by_it, ctrl_c)] == [143, 143, 130]
    assert capsys.readouterr().err.splitlines() == [
        "Error: terminated", "Error: terminated; nothing was changed", "Error: interrupted"]


@pytest.mark.one_backend
def test_stopping_the_workers_waits_for_the_pools_manager_thread():
    """The manager thread closes the pool's wake-up pipe as it ends: left running, it did
    so while Python's exit wrote to it, a traceback after an interrupted import's line."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from claude_keys.importers import _stop_workers

    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(time.sleep, 30)
    manager = pool._executor_manager_thread
    _stop_workers(pool)
    assert not manager.is_alive()
