"""Every wait on the store ends: a held row lock, a held write lock, a stopped server
process. Within the bound (CLAUDE_API_TIMEOUT / KeyStore(timeout=…)) plus a second,
the CLI exits 1 with one line and `check` answers 503; nothing is admitted twice or
lost, and once the stall ends everything works again."""
import json
import os
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from claude_keys import KeyStore
from tests.helpers.run import EXE, cli, create, proc
from tests.helpers.store import assert_consistent, sql

BOUND = 2  # seconds
ENV = {"CLAUDE_API_TIMEOUT": str(BOUND)}


def one_line_within_the_bound(run, *args, code=1, unhindered=lambda: proc("keys", "list", env=ENV)):
    """`run` (a command that meets what is held) gives up within the bound, plus what a
    command that waits for nothing (`unhindered`: one that loads as much) takes beside it:
    starting a process is what a loaded machine makes slow, not the wait being bounded.
    The twin runs twice, beside `run`'s start and beside its end (as its wait runs out), and
    the slower of the two counts: a burst of load from the tests running beside this one
    slows both alike, whichever part it lands on. (Two waits one after the other would
    still overrun: the slack is one second, the bound two.)"""
    def timed(call, after=0.0):
        time.sleep(after)
        started = time.monotonic()
        return call(), time.monotonic() - started

    with ThreadPoolExecutor(2) as beside:
        at_start = beside.submit(timed, unhindered)  # (by default reads: it waits for no lock)
        at_end = beside.submit(timed, unhindered, BOUND * 0.9)
        result, took = timed(lambda: run(*args))
        twins = [at_start.result(), at_end.result()]
    assert all(twin.exit_code == 0 for twin, _ in twins), twins  # (one that failed at once times nothing)
    baseline = max(seconds for _, seconds in twins)
    assert took < BOUND + 1 + baseline, (took, baseline, result)
    assert result.exit_code == code, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result
    return result


def decided_within_the_bound(store, key):
    started = time.monotonic()
    decision = store.check(key=key)
    assert time.monotonic() - started < BOUND + 1
    return decision


@contextmanager
def holding(uri, *statements):
    """Another session, inside a transaction, holding what `statements` lock."""
    import psycopg

    with psycopg.connect(uri) as other:
        for statement in statements:
            other.execute(statement)
        yield
        other.rollback()


@pytest.mark.postgres_only
def test_a_held_rate_window_row_lock(pg):
    key = create()
    assert cli("projects", "set", "p", "--monthly-budget", "100").exit_code == 0
    assert proc("keys", "verify", key["key"]).exit_code == 0  # the project's window row exists
    store = KeyStore(timeout=BOUND)
    with holding(pg, "SELECT 1 FROM rate_windows WHERE lineage = 'project:p' FOR UPDATE"):
        result = one_line_within_the_bound(lambda: proc("keys", "verify", key["key"], "--json", env=ENV))
        assert json.loads(result.stdout)["status"] == 503 and "busy" in result.stderr
        decision = decided_within_the_bound(store, key["key"])
        assert decision.status == 503 and decision.body["error"]["type"] == "api_error"
    assert store.check(key=key["key"]).allowed and proc("keys", "verify", key["key"]).exit_code == 0
    assert sql("SELECT count(*) FROM in_flight") == [(3,)]  # the three admitted, none of the refused
    assert_consistent()


@pytest.mark.postgres_only
def test_a_held_write_lock(pg, postgres):
    from claude_keys.db.postgres import WRITE_LOCK

    key = create()
    # The same `keys create` and `keys revoke` on a store nobody holds (both load the
    # keyring, which `keys list` does not: a loaded machine made that difference a second).
    free = f"free_{os.getpid()}_{time.monotonic_ns()}"
    elsewhere = {**ENV, "CLAUDE_API_DB": postgres.set_up_database(free)}
    try:
        spares = iter([json.loads(proc("keys", "create", "--project-id", "q", "--json", env=elsewhere).stdout)["id"]
                       for _ in range(2)])  # (one for each of the revoke's twins)
        with holding(pg, f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"):
            one_line_within_the_bound(lambda: proc("keys", "create", "--project-id", "q", env=ENV),
                                      unhindered=lambda: proc("keys", "create", "--project-id", "q", env=elsewhere))
            one_line_within_the_bound(lambda: proc("keys", "revoke", key["id"], "--yes", env=ENV),
                                      unhindered=lambda: proc("keys", "revoke", next(spares), "--yes", env=elsewhere))
    finally:
        postgres.drop_database(free)
    assert sql("SELECT count(*), count(revoked_at) FROM keys") == [(1, 0)]  # nothing half-done
    assert proc("keys", "revoke", key["id"], "--yes", env=ENV).exit_code == 0


@pytest.mark.postgres_only
def test_a_killed_client_leaves_no_session_waiting_for_the_write_lock(pg):
    """A process killed while its session waits for the write lock: the server, checking
    on its clients (postgres.CLIENT_CHECK), ends that session at once, rather than let it
    take the lock once free and run what it was sent (a killed import's whole batch),
    with every later writer queued behind it."""
    from claude_keys.db.postgres import WRITE_LOCK

    def sessions_waiting_for_a_lock() -> int:
        return sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND application_name = 'claude-api' AND wait_event_type = 'Lock'")[0][0]

    create()
    with holding(pg, f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"):
        child = subprocess.Popen([EXE, "keys", "create", "--project-id", "gone"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env={**os.environ, "CLAUDE_API_TIMEOUT": "60"})
        try:
            deadline = time.monotonic() + 30
            while not sessions_waiting_for_a_lock():
                assert time.monotonic() < deadline and child.poll() is None, "it never waited for the lock"
                time.sleep(0.05)
        finally:
            child.kill()
            child.wait()
        killed = time.monotonic()
        while sessions_waiting_for_a_lock() and time.monotonic() - killed < 10:
            time.sleep(0.05)
        assert sessions_waiting_for_a_lock() == 0 and time.monotonic() - killed < 5  # (checked every second)
    assert sql("SELECT count(*) FROM keys WHERE project_id = 'gone'") == [(0,)]


@pytest.mark.one_backend
def test_a_server_that_cannot_check_on_its_clients_is_connected_to_without_it():
    """PostgreSQL 13, or a server whose system lacks the kernel event the check polls,
    refuses the setting at startup: the connection is made again without it (and
    without marking a pooler), and that server is not asked again by this process;
    PgBouncer's refusal of `options` drops them all."""
    import psycopg

    from claude_keys.db.postgres import CLIENT_CHECK, RawConnection

    ours = {"options": f"-c statement_timeout=0 -c lock_timeout=900 -c {CLIENT_CHECK}=1000", "autocommit": True}
    without = {"options": "-c statement_timeout=0 -c lock_timeout=900", "autocommit": True}
    for refusal in (f'FATAL:  unrecognized configuration parameter "{CLIENT_CHECK}"',
                    f'FATAL:  invalid value for parameter "{CLIENT_CHECK}": 1000\nDETAIL:  {CLIENT_CHECK} '
                    "must be set to 0 on this platform"):
        old_server = f"postgresql://db{len(refusal)}/x"
        assert RawConnection.asking(old_server, ours) == ours
        kwargs, pooler = RawConnection.without_options(psycopg.OperationalError(refusal), ours, old_server)
        assert kwargs == without and pooler is False
        assert RawConnection.asking(old_server, ours) == without  # (its next connection asks no more)
        RawConnection.unchecked.discard(old_server)
    refused = psycopg.OperationalError("ERROR:  unsupported startup parameter: options")
    assert RawConnection.without_options(refused, ours, "postgresql://bouncer/x") == ({"autocommit": True}, True)
    with pytest.raises(psycopg.OperationalError):  # anything else stays an error
        RawConnection.without_options(psycopg.OperationalError("FATAL:  password authentication failed"), ours, "x")


@pytest.mark.sqlite_only
def test_a_held_sqlite_write_lock(isolated):
    key = create()
    # Its twin is the same `keys create` on a store nobody holds (as for PostgreSQL's write
    # lock above): under two suites' load it took 1.5 s longer than `keys list`.
    elsewhere = {**ENV, "CLAUDE_API_DB": str(isolated.parent / "free.db")}
    assert proc("keys", "create", "--project-id", "q", env=elsewhere).exit_code == 0  # (the store made)
    other = sqlite3.connect(isolated, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        result = one_line_within_the_bound(lambda: proc("keys", "create", "--project-id", "q", env=ENV),
                                           unhindered=lambda: proc("keys", "create", "--project-id", "q",
                                                                   env=elsewhere))
        assert "busy" in result.stderr
        assert KeyStore(timeout=BOUND).check(key=key["key"], dry_run=True).allowed  # readers go on
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert proc("keys", "create", "--project-id", "q", env=ENV).exit_code == 0


def _backends(uri, application="claude-api"):
    import psycopg

    with psycopg.connect(uri, autocommit=True) as admin:
        return [pid for (pid,) in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            (application,))]


@pytest.mark.postgres_only
def test_a_stopped_server_process(pg):
    key = create("--rate-limit", "100")
    store = KeyStore(timeout=BOUND)
    assert store.check(key=key["key"]).allowed
    stopped = _backends(pg)
    assert stopped
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        decision = decided_within_the_bound(store, key["key"])
        assert decision.status == 503 and "did not answer" in decision.warnings[0]
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert store.check(key=key["key"]).allowed  # a new connection, without a restart
    assert proc("keys", "verify", key["key"]).exit_code == 0
    used = sql("SELECT used FROM rate_windows")[0][0]
    assert used <= 3  # never more slots than admissions (a refusal may hold none)
    assert_consistent()


@pytest.mark.postgres_only
def test_a_whole_stopped_server():
    """The whole server stopped (its postmaster): a new connection is not answered
    either. On a server of its own: stopped, the tests' shared server would stall every
    test running beside this one (their new connections, a parallel query's workers)."""
    from tests.helpers import pg_server

    server = pg_server.Server()
    try:
        env = {**ENV, "CLAUDE_API_DB": server.create_database("stopped")}
        made = proc("keys", "create", "--project-id", "p", "--rate-limit", "100", "--json", env=env)
        assert made.exit_code == 0, made
        secret = json.loads(made.stdout)["key"]
        postmaster = int(open(server.data / "postmaster.pid").readline())
        os.kill(postmaster, signal.SIGSTOP)
        try:
            one_line_within_the_bound(lambda: proc("keys", "verify", secret, env=env))
        finally:
            os.kill(postmaster, signal.SIGCONT)
        assert proc("keys", "verify", secret, env=env).exit_code == 0
    finally:
        server.close()


@pytest.mark.postgres_only
def test_db_check_of_a_busy_store_says_busy(pg):
    """A lock held on a roll-up is a wait past the bound, not damage."""
    create()
    with holding(pg, "LOCK TABLE usage_hourly"):
        result = one_line_within_the_bound(lambda: proc("db", "check", env=ENV))
    assert "busy" in result.stderr and "integrity" not in result.stdout + result.stderr
    assert proc("db", "check").exit_code == 0
