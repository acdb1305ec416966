"""The Python API on PostgreSQL: one bounded pool of connections per process, checked
before use, that outlives a server restart without restarting the service."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from claude_keys import InvalidInput, KeyStore
from tests.helpers import pg_server
from tests.helpers.ci import IN_CI
from tests.helpers.run import create, proc
from tests.helpers.store import sql

pytestmark = pytest.mark.postgres_only


def _connections(uri) -> int:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND application_name = 'claude-api'").fetchone()[0]


def test_twenty_threads_share_a_pool_of_three(pg):
    key = create("--rate-limit", "1000")
    store = KeyStore(pool_size=3)
    seen = []

    def work(_):
        decisions = [store.check(key=key["key"]).status for _ in range(10)]
        seen.append(_connections(pg))
        return decisions

    with ThreadPoolExecutor(20) as threads:
        statuses = [s for batch in threads.map(work, range(20)) for s in batch]
    assert statuses == [200] * 200
    assert max(seen) <= 3 and sql("SELECT used FROM rate_windows") == [(200,)]
    store.close()  # the last user of the pool: its connections close
    deadline = time.monotonic() + 5
    while _connections(pg) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _connections(pg) == 0


def test_the_pool_size_is_a_setting(pg, monkeypatch):
    monkeypatch.setenv("CLAUDE_API_POOL_SIZE", "2")
    assert KeyStore()._connections.size == 2
    assert KeyStore(pool_size=5)._connections.size == 5
    for bad in (0, -1, "many", 1.5):
        with pytest.raises(InvalidInput):
            KeyStore(pool_size=bad)


def test_a_live_keystore_survives_a_server_restart():
    reason = pg_server.missing_reason()
    if reason:
        pytest.fail(reason) if IN_CI else pytest.skip(reason)
    server = pg_server.Server(durable=True)  # its own server, which this test restarts
    try:
        uri = server.create_database("restart")
        key = proc("--db", uri, "keys", "create", "--project-id", "p", "--no-keyring", "--json").json()
        store = KeyStore(uri, timeout=2)
        assert store.check(key=key["key"]).allowed
        server.stop("immediate")
        started = time.monotonic()
        assert store.check(key=key["key"]).status == 503  # while it is down: unavailable, at once
        assert store.check(key=key["key"]).status == 503
        assert time.monotonic() - started < 2 * 2 + 1
        server.start()
        assert store.check(key=key["key"]).allowed  # the very next call, without a restart
        assert store.record_usage(key["id"], cost="0.01").recorded
        store.close()
    finally:
        server.close()


def test_a_failed_connection_attempt_does_not_shut_out_the_pool(pg):
    """Opening a new connection failed once (the server's connection limit, a blip):
    the pool's own connections still serve every call."""
    from claude_keys.db.postgres import RawConnection

    key = create("--rate-limit", "1000")
    store = KeyStore(timeout=2)
    assert store.check(key=key["key"]).allowed
    RawConnection.failing[store._connections.where] = time.monotonic()
    try:
        assert [store.check(key=key["key"]).status for _ in range(30)] == [200] * 30
    finally:
        RawConnection.failing.pop(store._connections.where, None)


def test_a_process_with_many_open_files(pg, tmp_path):
    """A connection's socket numbered past 1024 (select() cannot watch it) is checked too."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if min(soft, hard) < 1300:
        pytest.skip(f"this process may open only {soft} files")
    key = create()
    files = [open(tmp_path / "f", "a") for _ in range(1100)]
    try:
        store = KeyStore(timeout=2)
        assert [store.check(key=key["key"]).status for _ in range(5)] == [200] * 5
    finally:
        for f in files:
            f.close()


def test_the_pools_log_never_holds_a_password(caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    store = KeyStore("postgresql://claude:hunter22@secret@127.0.0.1:9/claude", timeout=1)
    assert store.check(key="cc_x").status == 503
    time.sleep(0.5)  # (the pool's workers log their attempts)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "hunter22" not in logged and "secret" not in logged
    store.close()


def test_a_statements_row_names_are_read_once_and_again_when_its_columns_change(pg, monkeypatch):
    """rows() names a result's columns from the result (row["name"]); a statement's row
    class is made from its first result and kept, and made again when a migration
    changed what its `SELECT *` returns."""
    from claude_keys import db
    from claude_keys.db import postgres

    read = []
    names_of = postgres._named_rows
    monkeypatch.setattr(postgres, "_named_rows", lambda cursor: read.append(1) or names_of(cursor))
    conn = db.connect(pg)
    try:
        conn.execute("CREATE TABLE named_probe (a INTEGER)")
        conn.execute("INSERT INTO named_probe VALUES (1)")
        sql = "SELECT * FROM named_probe"
        first, again = conn.row(sql), conn.row(sql)
        assert first["a"] == again["a"] == 1 and len(read) == 1  # the names read once
        conn.execute("ALTER TABLE named_probe ADD COLUMN b TEXT DEFAULT 'x'")
        changed = conn.row(sql)
        assert (changed["a"], changed["b"]) == (1, "x") and changed.keys() == ["a", "b"] and len(read) == 2
    finally:
        conn.execute("DROP TABLE IF EXISTS named_probe")
        conn.close()
