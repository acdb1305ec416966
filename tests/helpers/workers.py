"""Processes that several tests start: pool workers (picklable by name, for the `spawn`
start method) and scripts for `python -c`."""
import multiprocessing
import os

from tests.helpers.processes import die_with_parent


# What a pool's fork server loads before it forks any worker (psycopg where installed).
PRELOAD = ["claude_keys", "claude_keys.gate", "claude_keys.usage", "claude_keys.db.sqlite",
           "claude_keys.db.postgres", "tests.helpers.workers"]


def spawn_pool(n):
    """A pool of `n` processes forked from a fork server that has loaded claude_keys (and
    psycopg) and done nothing else: nothing of this process is inherited (no connection,
    no thread), and a worker starts in milliseconds instead of a quarter of a second of
    imports (16 workers: 0.3 s against 2.0 s). Each takes this process's environment and
    folder as they are now (the server's are those of its start), and dies with it: the
    server ends when this process does, and its workers die with the server (else a
    killed test run leaves them waiting for work forever)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # (read when the server starts: once per test process)
    return context.Pool(n, initializer=_pool_worker, initargs=(fork_server_pid(), dict(os.environ), os.getcwd()))


def fork_server_pid() -> int:
    """This process's fork server (started if need be), whose children the pools are."""
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return forkserver._forkserver._forkserver_pid  # (no public name for it)


def _pool_worker(server: int, environ: dict, folder: str) -> None:
    die_with_parent(server)
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(folder)


def spawn_manager():
    """A started multiprocessing manager (shared values and locks) that dies with this process."""
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=multiprocessing.get_context("spawn"))
    manager.start(initializer=die_with_parent, initargs=(os.getpid(),))
    return manager


def record_many(args):
    """Record `n` requests through the Python API (a pool worker)."""
    from claude_keys import KeyStore

    db, key_id, tag, n = args
    store = KeyStore(db)
    for i in range(n):
        store.record_usage(key_id, input_tokens=3, output_tokens=1, cost="0.001", request_id=f"{tag}-{i}",
                           at=f"2026-02-0{1 + i % 3}T12:00:00Z")
    return n


# Checks and records for `seconds` from its first acknowledged request, when it says
# "ready" on stderr (argv: db, secret, tag, seconds), retrying each request id until the
# store acknowledges it; prints what was acknowledged and the errors it met.
RESTART_WORKER = """
import json, sys, time
from claude_keys import KeyStore, StoreError
db, secret, tag, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
keys = KeyStore(db, timeout=1)  # waits shorter than the outage: each worker feels it
acknowledged, errors, messages = [], 0, set()
end = None  # the window opens at the first acknowledgement: a slow start never misses it
i = 0
while end is None or time.time() < end:
    request_id = f"{tag}-{i}"
    while True:  # retry the same request id until the store acknowledges it
        try:
            decision = keys.check(key=secret)
            if decision.status == 503:  # the store is unavailable: the service fails closed
                raise StoreError(decision.warnings[0])
            keys.record_usage(decision.key_id, input_tokens=1, cost="0.001", request_id=request_id)
            break
        except StoreError as e:
            errors += 1
            messages.add(str(e).split(":")[0])
            if end is not None and time.time() > end + 30:
                raise
            time.sleep(0.05)
    acknowledged.append(request_id)
    if end is None:
        print("ready", file=sys.stderr, flush=True)
        end = time.time() + seconds
    i += 1
print(json.dumps({"acknowledged": acknowledged, "errors": errors, "messages": sorted(messages)}))
"""
