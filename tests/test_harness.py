"""The test harness itself: a test run killed with SIGKILL leaves no PostgreSQL server,
PgBouncer, backend or pool worker behind (they die with the run: Linux's parent-death
signal, and a fork server that ends with its parent); a test's PostgreSQL database,
recycled for a later test, is as new (or as just set up, when claude-api had set it
up); what Hypothesis keeps goes to the run's temporary root, not the checkout; and the
file keyring that the tests' processes share loses nothing to writers at the same moment."""
import json
import os
import select
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import CHECKOUT
from tests.helpers import pg_server
from tests.helpers.ci import IN_CI, missing
from tests.helpers.processes import alive, dies_with_this_process

pytestmark = pytest.mark.one_backend  # the test starts its own server

# A stand-in for a test run: starts a server (and PgBouncer in front of it), opens a
# connection through each, says which processes that made, and waits to be killed.
RUN = textwrap.dedent("""
    import json, os, sys, time
    import psycopg
    from tests.helpers import pg_server
    from tests.helpers.processes import descendants
    from tests.test_pgbouncer import PGBOUNCER, Bouncer

    server = pg_server.Server(parent=sys.argv[1] or None)
    direct = psycopg.connect(server.uri(), autocommit=True)
    direct.execute("SELECT 1")
    started = {"pids": {"postgres": [server.pid]}, "folders": [str(server.folder)]}
    if os.path.exists(PGBOUNCER):
        bouncer = Bouncer(server)
        started["folders"].append(str(bouncer.folder))
        through = psycopg.connect(bouncer.uri("postgres"), autocommit=True)
        through.execute("SELECT 1")  # PgBouncer opens a connection to the server
        started["pids"]["pgbouncer"] = [bouncer.process.pid]
    started["pids"]["postgres"] += descendants(server.pid)  # its backends and helpers
    from tests.helpers.workers import fork_server_pid, spawn_pool
    pool = spawn_pool(2)  # the race tests' workers, and the fork server they come from
    pool.map(abs, [1, 2])
    started["pids"]["pool"] = [fork_server_pid()] + [p.pid for p in pool._pool]
    print(json.dumps(started), flush=True)
    time.sleep(600)
""")


def _read_line(stream, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


def test_a_killed_run_leaves_no_server_behind(request):
    reason = pg_server.missing_reason()
    if reason:
        missing(reason)
    root = getattr(request.config, "claude_api_root", None)
    run = subprocess.Popen([sys.executable, "-c", RUN, str(root) if root else ""], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, preexec_fn=dies_with_this_process())
    started = {"pids": {}, "folders": []}
    try:
        line = _read_line(run.stdout, 60)
        assert line, run.stderr.read() if run.poll() is not None else "nothing started within 60 s"
        started = json.loads(line)
        pids = [pid for group in started["pids"].values() for pid in group]
        assert len(started["pids"]["postgres"]) >= 4, started  # the postmaster, its helpers, a backend
        assert len(started["pids"]["pool"]) == 3, started
        assert all(alive(pid) for pid in pids), started
        if IN_CI:
            assert "pgbouncer" in started["pids"], "CI needs pgbouncer: apt-get install pgbouncer"
        run.kill()
        run.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in pids if alive(pid)] == [], started
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in [p for group in started["pids"].values() for p in group]:
            if alive(pid):  # (only if the test failed: what it started, nothing else)
                os.kill(pid, 9)
        for folder in started["folders"]:
            shutil.rmtree(folder, ignore_errors=True)


def test_a_recycled_database_is_as_new(postgres):
    import psycopg

    from claude_keys import AuthManager
    from claude_keys.errors import StoreMissing
    from claude_keys import db as store

    def looks(uri):
        with psycopg.connect(uri) as conn:
            return conn.execute(pg_server.FINGERPRINT).fetchone()

    uri = postgres.fresh_database("harness_new")
    new = looks(uri)
    AuthManager(uri).generate_key("p", use_keyring=False)  # a claude-api store, with a key
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE scratch (x int)")
        conn.execute("CREATE TABLE public.mine (x int)")
    postgres.recycle_database("harness_new")
    uri = postgres.fresh_database("harness_again")
    assert uri.startswith("postgresql:///harness_again?") and looks(uri) == new
    with pytest.raises(StoreMissing):  # not set up, as a new database
        store.connect(uri, create=False)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA elsewhere")  # more than the public schema knows
    postgres.recycle_database("harness_again")  # so it is dropped, not recycled
    with postgres.admin() as admin:
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = 'harness_again'").fetchone() == (0,)
    uri = postgres.fresh_database("harness_third")
    assert looks(uri) == new
    postgres.drop_database("harness_third")


def test_a_recycled_set_up_database_is_as_just_set_up(postgres, tmp_path):
    """A test's store is set up already; one recycled must be as a first command left it:
    no keys, usage, audit or changed settings, sequences restarted, the same schema."""
    import psycopg

    from claude_keys import AuthManager, KeyStore

    def looks(uri):
        with psycopg.connect(uri) as conn:
            tables = [t for (t,) in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND "
                                                 "relnamespace = 'public'::regnamespace ORDER BY relname")]
            return (conn.execute(pg_server.FINGERPRINT).fetchone(), conn.execute(pg_server.SET_UP).fetchone(),
                    {t: conn.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables if t != "claude_api_migrations"})

    uri = postgres.set_up_database("harness_set_up")
    just = looks(uri)
    secret = AuthManager(uri).generate_key("p", use_keyring=False)
    store = KeyStore(uri)
    store.record_usage(store.check(key=secret).key_id, input_tokens=10, cost="0.5", request_id="r1")
    store.close()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("UPDATE settings SET value = '[]'")
    assert looks(uri) != just
    postgres.recycle_database("harness_set_up")
    uri = postgres.set_up_database("harness_set_up_again")  # the one just recycled, renamed
    assert looks(uri) == just
    AuthManager(uri).generate_key("p", use_keyring=False)
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT min(id) FROM audit").fetchone() == (1,)  # the sequence restarted
        conn.execute("ALTER TABLE keys ADD COLUMN extra int")  # a schema claude-api did not set up
        conn.commit()
    postgres.recycle_database("harness_set_up_again")
    assert "harness_set_up_again" not in postgres._set_up_spares  # emptied back to new, or dropped
    uri = postgres.set_up_database("harness_set_up_third")
    assert looks(uri) == just
    postgres.drop_database("harness_set_up_third")


def test_hypothesis_keeps_its_caches_in_the_runs_root(request):
    """Hypothesis writes caches (constants, unicode data) even with no example database;
    by default into .hypothesis below the working directory, the checkout."""
    from hypothesis.configuration import storage_directory

    where = storage_directory("constants", intent_to_write=False).path.resolve()
    assert where.is_relative_to(request.config.claude_api_root.resolve()), where


def test_the_file_keyring_loses_nothing_to_processes_writing_at_once(tmp_path):
    """The keyring the tests' `claude-api` processes share (a held-lock test runs two
    `keys create` at once): every secret that many processes store at the same moment is
    there afterwards, and the file is never left half-written."""
    env = {**os.environ, "CLAUDE_API_TEST_KEYRING": str(tmp_path / "keyring.json"),
           "PYTHONPATH": os.pathsep.join([str(CHECKOUT), os.environ.get("PYTHONPATH", "")])}
    writer = ("import sys\nfrom tests.helpers.keyring_backends import FileKeyring\n"
              "ring = FileKeyring()\n"
              "for n in range(25):\n"
              "    ring.set_password('claude-api', f'{sys.argv[1]}-{n}', 'secret')\n"
              "    ring.get_password('claude-api', 'any')  # (a reader meets whole files only)\n")
    writers = [subprocess.Popen([sys.executable, "-c", writer, str(w)], env=env) for w in range(6)]
    assert [w.wait(timeout=60) for w in writers] == [0] * 6
    stored = json.loads((tmp_path / "keyring.json").read_text())
    assert len(stored) == 6 * 25
