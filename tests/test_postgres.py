"""PostgreSQL as the shared store: exact across processes, migrated once, refusing what it
must, surviving a restart, and `db copy` both ways. (Every other store test also runs
on PostgreSQL: see conftest.)"""
import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from claude_keys import KeyStore, StoreError
from claude_keys import db as store
from tests.helpers import pg_server
from tests.helpers.run import cli, create, proc
from tests.helpers.store import assert_consistent, connection_of, sql

pytestmark = pytest.mark.one_backend  # each test sets up the stores it needs


@pytest.fixture
def pg(postgres, monkeypatch):
    """A new PostgreSQL database as the store (CLAUDE_API_DB), dropped afterwards."""
    name = f"pg_{os.getpid()}_{time.monotonic_ns()}"
    uri = postgres.create_database(name)
    monkeypatch.setenv("CLAUDE_API_DB", uri)
    yield uri
    postgres.drop_database(name)


def one_line(result, code=1, text=None):
    assert result.exit_code == code, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.stderr, result
    if text:
        assert text in result.stderr, result
    return lines[0]


# --- exact across processes -----------------------------------------------------------

def test_eight_processes_verifying_one_key_admit_exactly_the_limit(pg):
    key = create("--rate-limit", "23")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: proc("keys", "verify", key["key"]).exit_code, range(48)))
    assert codes.count(0) == 23 and codes.count(5) == 25
    assert sql("SELECT used FROM rate_windows") == [(23,)]


def test_a_revocation_starts_at_once_whatever_the_admins_clock(pg, monkeypatch):
    """The gate reads the server's clock; a revocation stamped by an admin's clock that
    runs ahead would only start when the server caught up."""
    key = create()
    real_time, real_time_ns = time.time, time.time_ns  # this machine's clock, an hour ahead:
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 3600 * 10**9)
    assert cli("keys", "revoke", key["id"], "--yes").exit_code == 0
    assert proc("keys", "verify", key["key"]).exit_code == 3


def _record_for(args):
    db, key_id, seconds = args
    keys, errors, end = KeyStore(db), 0, time.time() + seconds
    while time.time() < end:
        try:
            keys.record_usage(key_id, cost="0.001", at="2026-01-05T12:00:00Z")
        except StoreError:
            errors += 1
    return errors


def test_deleting_usage_while_it_is_recorded_never_deadlocks(pg):
    """usage delete takes the same roll-up rows as concurrent records, in the same order."""
    key = create()
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        busy = pool.map_async(_record_for, [(pg, key["id"], 8)] * 3)
        deletes = []
        while not busy.ready():
            deletes.append(cli("usage", "delete", "--key", key["id"], "--since", "2026-01-05",
                               "--until", "2026-01-06", "--yes"))
        assert busy.get() == [0, 0, 0]
    assert len(deletes) > 20 and [r.stderr for r in deletes if r.exit_code] == []
    assert_consistent()


def _check_and_record(args):
    db, secret, tag, n = args
    keys = KeyStore(db)
    allowed = 0
    for i in range(n):
        decision = keys.check(key=secret)
        allowed += decision.allowed
        keys.record_usage(decision.key_id, input_tokens=3, cost="0.001", request_id=f"{tag}-{i}")
    return allowed


def test_processes_share_one_window_and_lose_no_usage(pg):
    key = create("--rate-limit", "37")
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        allowed = pool.map(_check_and_record, [(pg, key["key"], f"w{i}", 25) for i in range(8)])
    assert sum(allowed) == 37
    assert sql("SELECT count(*), sum(input_tokens), sum(cost_nanos) FROM usage") == [(200, 600, 200_000_000)]
    assert_consistent()


def test_hosts_share_the_server_clock(pg, monkeypatch):
    """A host whose clock is two hours off still takes slots in the one shared window."""
    key = create("--rate-limit", "5")
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + 2 * 3600 * 10**9)
    keys = KeyStore()
    assert [keys.check(key=key["key"]).allowed for _ in range(6)] == [True] * 5 + [False]
    (slot,), = sql("SELECT max(at_ms) FROM rate_slots")
    assert abs(slot - real() // 1_000_000) < 5_000  # the server's time, not this host's


def test_a_slot_is_one_round_trip(pg, monkeypatch):
    from claude_keys.db import postgres

    key = create("--rate-limit", "100")
    keys = KeyStore()
    keys.check(key=key["key"])
    calls = []
    for name in ("execute", "rows"):
        method = getattr(postgres.Connection, name)
        monkeypatch.setattr(postgres.Connection, name,
                            lambda self, *a, method=method: calls.append(a[0]) or method(self, *a))
    assert keys.check(key=key["key"]).allowed
    assert len(calls) == 2 and "claude_take_slot" in calls[1]  # the key's row, then the slot


# --- migrations -----------------------------------------------------------------------

def test_hosts_starting_together_migrate_once(pg):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: proc("keys", "create", "--project-id", f"p{i}", "--no-keyring",
                                               "--json"), range(4)))
    assert all(r.exit_code == 0 and r.stderr == "" for r in results), results
    from claude_keys.db import migrations

    names = [name for (name,) in sql("SELECT name FROM claude_api_migrations ORDER BY id")]
    assert names == [step.__name__ for step in migrations.STEPS]
    assert sql("SELECT version FROM claude_api_schema") == [(store.SCHEMA_VERSION,)]
    assert len(cli("keys", "list", "--json").json()) == 4


def raw_dump(uri) -> list:
    """Every row of every table, read without claude-api (which would refuse the store)."""
    import psycopg

    with psycopg.connect(uri) as raw:
        tables = [t for (t,) in raw.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                            "ORDER BY 1")]
        return [(t, sorted(map(repr, raw.execute(f"SELECT * FROM {t}").fetchall()))) for t in tables]


def test_a_newer_schema_is_refused_untouched(pg):
    create()
    conn = store.connect()
    conn.execute("UPDATE claude_api_schema SET version = 99")
    conn.close()
    before = raw_dump(pg)
    one_line(cli("keys", "list"), text="newer than this claude-api")
    one_line(proc("keys", "verify", "cc_x"), text="newer than this claude-api")
    decision = KeyStore().check(key="whatever")  # the service fails closed, as unavailable
    assert decision.status == 503 and "newer than this claude-api" in decision.warnings[0]
    with pytest.raises(StoreError, match="newer than this claude-api"):
        KeyStore().record_usage("k", cost=1)
    assert raw_dump(pg) == before


def test_a_database_with_someone_elses_keys_table_is_refused(pg):
    import psycopg

    with psycopg.connect(pg, autocommit=True) as raw:
        raw.execute("CREATE TABLE keys (id int)")
    one_line(cli("keys", "list"), text="did not make")
    with psycopg.connect(pg, autocommit=True) as raw:
        assert raw.execute("SELECT to_regclass('claude_api_schema')").fetchone()[0] is None


# --- faults and secrets in URIs ---------------------------------------------------------

def test_a_password_in_the_uri_is_never_printed(postgres, tmp_path):
    secret_uri = postgres.uri("no_such_database").replace("postgresql:///", "postgresql://postgres:hunter2@/")
    shown = cli("--db", secret_uri, "db", "path")
    assert shown.exit_code == 0 and "hunter2" not in shown.stdout and "***" in shown.stdout
    for args in (["keys", "list"], ["db", "check"], ["keys", "verify", "cc_abc"]):
        line = one_line(proc("--db", secret_uri, *args))
        assert "hunter2" not in line and "no_such_database" in line
    param_uri = postgres.uri("no_such_database", password="hunter2")
    assert "hunter2" not in cli("--db", param_uri, "db", "path").stdout
    assert "hunter2" not in one_line(cli("--db", param_uri, "keys", "list"))


@pytest.mark.parametrize("uri", [
    "postgresql://bob:s3cr?tpw@localhost/db",  # libpq takes a `?` before the `@` as the password's
    "postgresql://bob:s3cr#tpw@localhost/db",
    "postgresql://bob:s3crtpw@[::1/db",  # libpq's parse error quotes the whole URI
    "postgresql://bob:s3cr%zztpw@localhost/db",
    "postgresql:///db?host=/nowhere&pass%77ord=s3crtpw",  # a parameter name percent-encoded
    "postgresql:///db?host=/nowhere&sslpassword=s3crtpw",
    "postgresql://bob:s3cr@tpw@localhost/db",  # an unencoded @: libpq's host is then `tpw@localhost`
    "postgresql://bob:s3cr/tpw@localhost/db",  # an unencoded /
    "postgresql:///db?host=/nowhere&password=s3crtpw&user=a@b",
])
def test_no_spelling_of_a_password_is_printed(uri):
    assert "s3cr" not in cli("--db", uri, "db", "path").stdout
    line = one_line(proc("--db", uri, "keys", "list"))
    assert "s3cr" not in line and "tpw" not in line, line


def test_an_unreachable_server_is_one_clear_line(tmp_path):
    uri = f"postgresql:///claude?host={tmp_path}&connect_timeout=2"
    line = one_line(proc("--db", uri, "keys", "list"), text="cannot connect to the store")
    assert str(tmp_path) in line
    assert KeyStore(uri).check(key="cc_anything").body["error"] == {
        "type": "api_error", "message": "the key store is unavailable"}


def test_without_psycopg_a_uri_says_what_to_install(tmp_path):
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('psycopg is not installed')\n")
    env = {"PYTHONPATH": f"{shadow.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    line = one_line(proc("--db", "postgresql:///claude", "keys", "list", env=env))
    assert "pip install 'claude-api[postgres]'" in line


def test_the_sqlite_path_never_imports_psycopg(tmp_path):
    db = tmp_path / "keys.db"
    assert proc("--db", db, "keys", "create", "--project-id", "p", "--no-keyring").exit_code == 0
    code = ("import sys; from claude_keys.cli import cli\n"
            "try: cli.main(sys.argv[1:])\nexcept SystemExit: pass\n"
            "print('psycopg' in sys.modules)")
    for args in (["keys", "list", "--json"], ["keys", "verify", "cc_x"], ["usage", "summary", "--json"]):
        done = subprocess.run([sys.executable, "-c", code, "--db", str(db), *args],
                              capture_output=True, text=True)
        assert done.stdout.strip().splitlines()[-1] == "False", (args, done.stderr)


RESTART_WORKER = """
import json, sys, time
from claude_keys import KeyStore, StoreError
db, secret, tag, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
keys = KeyStore(db)
acknowledged, errors, messages = [], 0, set()
end = time.time() + seconds
i = 0
while time.time() < end:
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
            if time.time() > end + 30:
                raise
            time.sleep(0.05)
    acknowledged.append(request_id)
    i += 1
print(json.dumps({"acknowledged": acknowledged, "errors": errors, "messages": sorted(messages)}))
"""


def test_a_server_restart_loses_nothing_and_counts_nothing_twice(tmp_path):
    reason = pg_server.missing_reason()
    if reason:
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    server = pg_server.Server(durable=True)  # its own server, which this test crashes
    try:
        uri = server.create_database("restart")
        done = proc("--db", uri, "keys", "create", "--project-id", "p", "--no-keyring", "--json")
        key = json.loads(done.stdout)
        workers = [subprocess.Popen([sys.executable, "-c", RESTART_WORKER, uri, key["key"], f"w{i}", "6"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for i in range(4)]
        time.sleep(2)
        server.stop("immediate")
        outage = proc("--db", uri, "keys", "list")
        time.sleep(1.5)
        server.start()
        results = []
        for w in workers:
            out, err = w.communicate(timeout=90)
            assert w.returncode == 0, err
            results.append(json.loads(out))
        one_line(outage, text="cannot connect to the store")
        acknowledged = [r for result in results for r in result["acknowledged"]]
        stored = {r for (r,) in sql("SELECT request_id FROM usage", db=uri)}
        assert stored == set(acknowledged) and len(acknowledged) == len(set(acknowledged))
        assert sum(r["errors"] for r in results) > 0  # the outage was felt...
        assert all(len(m) < 120 for r in results for m in r["messages"])
        assert_consistent(uri)  # ...and nothing was lost or counted twice
        assert len(acknowledged) > 20
    finally:
        server.close()


# --- moving between stores ------------------------------------------------------------

REPORTS = [["usage", "summary", "--period", "all", "--json"], ["usage", "by-project", "--period", "all", "--json"],
           ["usage", "by-key", "--period", "all", "--json"],
           ["usage", "summary", "--by", "day", "--period", "all", "--tz", "Asia/Kolkata", "--json"],
           ["usage", "summary", "--by", "model", "--period", "all", "--json"],
           ["usage", "export", "--format", "jsonl", "--period", "all"],
           ["keys", "list", "--json"], ["audit", "--format", "json"], ["profiles", "standard-agents", "--json"]]


def _everything(db) -> list:
    return [cli("--db", db, *args).stdout for args in REPORTS]


def _fill(db):
    run = lambda *args: cli("--db", db, *args)  # noqa: E731
    keys = [json.loads(run("keys", "create", "--project-id", p, "--json", "--no-keyring").stdout)
            for p in ("alpha", "beta", "alpha")]
    run("keys", "rotate", keys[2]["id"], "--grace", "1h")
    run("keys", "revoke", keys[1]["id"], "--force", "--reason", "moved")
    run("keys", "permissions", keys[0]["id"], "--rate-limit", "7", "--block-tool", "Bash")
    run("profiles", "standard-agents", "--add", "planner")
    for i in range(40):
        run("usage", "record", "--key", keys[i % 3]["id"], "--input-tokens", str(100 + i),
            "--output-tokens", str(i), "--model", ["claude-sonnet-4-5", "claude-haiku-4-5", "mystery"][i % 3],
            "--at", f"2026-0{1 + i % 3}-1{i % 10}T{i % 24:02d}:30:00Z")
    assert run("keys", "verify", keys[0]["key"]).exit_code == 0
    return keys


def test_db_copy_both_ways_gives_identical_reports(postgres, tmp_path):
    local = tmp_path / "local.db"
    keys = _fill(local)
    before = _everything(local)
    up = postgres.create_database("copy_up")
    r = cli("db", "copy", local, up, "--json")
    assert r.exit_code == 0, r
    copied = r.json()["tables"]
    assert copied["keys"] == 4 and copied["usage"] == 40 and copied["rate_slots"] == 1
    assert _everything(up) == before
    assert cli("--db", up, "keys", "verify", keys[0]["key"]).exit_code == 0  # the copy is live
    assert cli("--db", up, "db", "check").exit_code == 0
    back = tmp_path / "back.db"
    assert cli("db", "copy", up, back).exit_code == 0
    assert _everything(back) == _everything(up)
    assert cli("--db", back, "db", "check").exit_code == 0
    # The destination must be new or empty, and is left untouched otherwise.
    before_back = back.read_bytes()
    one_line(cli("db", "copy", local, back), text="not empty")
    one_line(cli("db", "copy", local, up), text="not empty")
    assert back.read_bytes() == before_back
    one_line(cli("db", "copy", local, local), text="same store")


def test_db_backup_of_a_postgres_store_is_a_consistent_sqlite_file(pg, tmp_path):
    key = create("--rate-limit", "1000000")
    writer = subprocess.Popen([sys.executable, "-c", RESTART_WORKER, pg, key["key"], "b", "3"],
                              stdout=subprocess.PIPE, text=True)
    copies = []
    time.sleep(0.5)
    for n in range(3):
        copy = tmp_path / f"backup-{n}.db"
        assert proc("db", "backup", copy).exit_code == 0
        copies.append(copy)
        time.sleep(0.5)
    writer.communicate(timeout=60)
    counts = [assert_consistent(c)[0] for c in copies]
    assert counts == sorted(counts) and counts[-1] > 0
    assert oct(copies[0].stat().st_mode & 0o777) == "0o600"


def test_db_check_on_postgres(pg):
    create()
    r = cli("db", "check", "--json")
    assert r.exit_code == 0, r
    report = r.json()
    assert report["backend"] == "postgresql" and report["integrity"] == "ok" and report["ok"]
    assert report["server_version"] and report["schema_version"] == store.SCHEMA_VERSION
    conn = store.connect()
    conn.execute("UPDATE usage_daily SET requests = requests + 1")  # nothing to update yet
    conn.execute("INSERT INTO rate_windows VALUES ('abc', 3)")
    conn.close()
    r = cli("db", "check", "--json")
    assert r.exit_code == 1 and "rate window" in r.json()["integrity"][0]
