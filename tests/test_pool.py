"""The Python API on PostgreSQL: one bounded pool of connections per process, checked
before use, that outlives a server restart without restarting the service."""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from claude_keys import InvalidInput, KeyStore
from tests.helpers import pg_server
from tests.helpers.ci import IN_CI
from tests.helpers.run import create, proc
from tests.helpers.store import sql

pytestmark = pytest.mark.one_backend


@pytest.fixture
def pg(postgres, monkeypatch):
    name = f"pool_{os.getpid()}_{time.monotonic_ns()}"
    uri = postgres.create_database(name)
    monkeypatch.setenv("CLAUDE_API_DB", uri)
    yield uri
    postgres.drop_database(name)


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
