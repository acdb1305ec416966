"""Schema migrations (db/migrations.py): stores made by earlier versions migrate forward
with nothing lost; processes and hosts starting together on a new store migrate it
once; a store from a newer claude-api, or a database that is not a claude-api store,
is refused untouched."""
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest

from claude_keys import KeyStore, StoreError
from claude_keys import db as store
from claude_keys import secret as fmt
from claude_keys.db import migrations, rollups
from claude_keys.db import sqlite as sqlite_backend
from tests.helpers.run import cli, create, one_error_line, proc
from tests.helpers.store import sql


@pytest.mark.one_backend
def test_schema_version_matches_migrations():
    assert store.SCHEMA_VERSION == migrations.count()


def old_store(path, stop_before: str, version: int) -> sqlite3.Connection:
    """A store as an earlier claude-api left it: the steps before `stop_before` only."""
    conn = sqlite3.connect(path, isolation_level=None, factory=sqlite_backend.Connection)
    conn.execute(f"PRAGMA page_size={sqlite_backend.PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    steps, db = migrations.sqlite_migrations(conn)
    steps.apply(db, stop_before=stop_before)
    if version >= 3:  # since v3 the roll-up trigger is installed after the steps
        present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        with mock.patch.dict(rollups.ROLLUPS, clear=True,  # only the roll-ups that version had
                             values={t: k for t, k in rollups.ROLLUPS.items() if t in present}):
            migrations._install_sqlite(conn)
    conn.execute(f"PRAGMA user_version={version}")
    return conn


def add_key(conn, key_id, secret, project, profile="pro", **columns):
    values = {"id": key_id, "digest": fmt.digest(secret), "hint": fmt.hint(secret), "project_id": project,
              "profile": profile, "created_at": 1767225600, "lineage": key_id, **columns}
    conn.execute(f"INSERT INTO keys ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                 tuple(values.values()))


@pytest.mark.sqlite_only
def test_a_first_version_store_migrates_with_nothing_lost(tmp_path):
    db = tmp_path / "v1.db"
    conn = old_store(db, "m002_usage_and_rate_limits", 1)
    secrets = [fmt.new_secret() for _ in range(3)]
    add_key(conn, "aaaaaaaaaaa1", secrets[0], "web", name="web key", rate_limit=7,
            allowed_tools='["Read", "Bash"]')
    add_key(conn, "aaaaaaaaaaa2", secrets[1], "web", revoked_at=1767225700, revoked_reason="left")
    add_key(conn, "aaaaaaaaaaa3", secrets[2], "api", profile="enterprise", expires_at=4102444800)
    conn.execute("UPDATE settings SET value = '[\"only-this-one\"]' WHERE name = 'standard_agents'")
    conn.execute("INSERT INTO audit (at_ms, actor, action, key_id, before, after) "
                 "VALUES (1767225600000, 'alice', 'create', 'aaaaaaaaaaa1', NULL, '{}')")
    conn.close()

    listed = cli("--db", db, "keys", "list", "--status", "all", "--json")  # (live keys by default: issue 20)
    assert listed.exit_code == 0, listed
    assert [(k["id"], k["status"], k["name"]) for k in listed.json()] == [
        ("aaaaaaaaaaa1", "active", "web key"), ("aaaaaaaaaaa2", "revoked", None),
        ("aaaaaaaaaaa3", "active", None)]
    perms = cli("--db", db, "keys", "permissions", "aaaaaaaaaaa1", "--json").json()
    assert perms["rate_limit"] == 7 and perms["allowed_tools"] == ["Read", "Bash"]
    assert perms["allowed_agents"] == ["only-this-one"]
    assert proc("--db", db, "keys", "verify", secrets[0], "--tool", "Bash").exit_code == 0
    assert proc("--db", db, "keys", "verify", secrets[1]).exit_code == 3
    assert cli("--db", db, "audit", "--json").json()[0]["actor"] == "alice"
    # The upgraded store works fully: usage is recorded and reported.
    assert cli("--db", db, "usage", "record", "--key", "aaaaaaaaaaa3", "--cost", "2").exit_code == 0
    assert cli("--db", db, "usage", "by-project", "--period", "all", "--json").json()[0]["cost_usd"] == 2
    check = json.loads(proc("--db", db, "db", "check", "--json").stdout)
    assert check["ok"] and check["schema_version"] == store.SCHEMA_VERSION == len(check["migrations"])


@pytest.mark.sqlite_only
def test_a_second_version_store_gets_its_project_rollup(tmp_path):
    db = tmp_path / "v2.db"
    conn = old_store(db, "m003_project_rollup_and_bulk_imports", 2)
    add_key(conn, "bbbbbbbbbbb1", fmt.new_secret(), "web")
    rows = [(f"r{i}", "bbbbbbbbbbb1", "web" if i % 3 else "api", 1767225600000 + i * 3_600_000,
             "claude-sonnet-4-5", i, 1, 0, 0, 0, 1000 * i, 1) for i in range(200)]
    conn.executemany("INSERT INTO usage (request_id, key_id, project_id, at_ms, model, input_tokens, "
                     "output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
                     "cost_nanos, priced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()

    projects = cli("--db", db, "usage", "by-project", "--period", "all", "--json")
    assert projects.exit_code == 0, projects
    got = {p["project_id"]: (p["requests"], p["input_tokens"], p["cost_usd"]) for p in projects.json()}
    want = {}
    for _, _, project, _, _, inp, _, _, _, _, cost, _ in rows:
        n, tokens, usd = want.get(project, (0, 0, 0))
        want[project] = (n + 1, tokens + inp, usd + cost)
    assert got == {p: (n, t, c / 1e9) for p, (n, t, c) in want.items()}
    days = cli("--db", db, "usage", "summary", "--by", "day", "--period", "all", "--json").json()
    assert sum(d["requests"] for d in days) == 200
    assert proc("--db", db, "db", "check").exit_code == 0


@pytest.mark.sqlite_only
def test_a_fourth_version_store_gets_spend_control_with_nothing_lost(tmp_path):
    """v4 -> v5: an old secret in its grace period had kept its own permissions; now it
    takes the current key's, and the roll-ups (rebuilt to refuse inexact sums) keep
    every request."""
    db = tmp_path / "v4.db"
    conn = old_store(db, "m005_spend_control", 4)
    old_secret, new_secret = fmt.new_secret(), fmt.new_secret()
    add_key(conn, "ccccccccccc1", old_secret, "web", seq=1, rate_limit=50, blocked_tools="[]",
            revoked_at=4102444800, revoked_reason="rotated to ccccccccccc2")
    add_key(conn, "ccccccccccc2", new_secret, "web", seq=2, lineage="ccccccccccc1", rotated_from="ccccccccccc1",
            rate_limit=2, blocked_tools='["Bash"]')
    conn.execute("INSERT INTO usage (request_id, key_id, project_id, at_ms, model, input_tokens, output_tokens, "
                 "cost_nanos) VALUES ('u1', 'ccccccccccc1', 'web', 1767225600000, 'm', 10, 1, 7000)")
    conn.close()

    perms = cli("--db", db, "keys", "permissions", "ccccccccccc1", "--json").json()
    assert perms["rate_limit"] == 2 and perms["blocked_tools"] == ["Bash"]  # the lineage's current ones
    assert proc("--db", db, "keys", "verify", old_secret, "--tool", "Bash").exit_code == 4
    statuses = {k["id"]: k["status"] for k in cli("--db", db, "keys", "list", "--json").json()}
    assert statuses == {"ccccccccccc1": "retiring", "ccccccccccc2": "active"}
    total = cli("--db", db, "usage", "summary", "--period", "all", "--json").json()
    assert (total["requests"], total["input_tokens"], total["cost_usd"]) == (1, 10, 0.000007)
    raw = sqlite3.connect(db)
    assert "fits_exactly" in raw.execute("SELECT sql FROM sqlite_master WHERE name = 'usage_daily'").fetchone()[0]
    raw.close()
    assert proc("--db", db, "db", "check").exit_code == 0


@pytest.mark.new_store
def test_many_processes_share_a_fresh_store():
    """Eight processes at once on a store that does not exist yet: one migrates, all succeed."""
    def make(i):
        return proc("keys", "create", "--project-id", f"p{i}", "--no-keyring", "--json")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(make, range(16)))
    assert all(r.exit_code == 0 for r in results), [r for r in results if r.exit_code]
    assert all(r.stderr == "" for r in results)
    assert len(cli("keys", "list", "--json").json()) == 16


@pytest.mark.new_store
@pytest.mark.postgres_only
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


@pytest.mark.sqlite_only
def test_a_newer_store_is_refused_untouched(isolated):
    create()
    conn = sqlite3.connect(isolated)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    before = isolated.read_bytes()
    one_error_line(cli("keys", "list"), 1, "newer than this claude-api")
    assert isolated.read_bytes() == before


@pytest.mark.new_store
@pytest.mark.sqlite_only
def test_a_foreign_database_is_refused(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (id)")
    conn.commit()
    conn.close()
    one_error_line(cli("--db", other, "keys", "list"), 1, "not a claude-api store")
    conn = sqlite3.connect(other)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["customers"]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not even switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def raw_dump(uri) -> list:
    """Every row of every table, read without claude-api (which would refuse the store)."""
    import psycopg

    with psycopg.connect(uri) as raw:
        tables = [t for (t,) in raw.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                            "ORDER BY 1")]
        return [(t, sorted(map(repr, raw.execute(f"SELECT * FROM {t}").fetchall()))) for t in tables]


@pytest.mark.postgres_only
def test_a_newer_schema_is_refused_untouched(pg):
    create()
    conn = store.connect()
    conn.execute("UPDATE claude_api_schema SET version = 99")
    conn.close()
    before = raw_dump(pg)
    one_error_line(cli("keys", "list"), 1, "newer than this claude-api")
    one_error_line(proc("keys", "verify", "cc_x"), 1, "newer than this claude-api")
    decision = KeyStore().check(key="whatever")  # the service fails closed, as unavailable
    assert decision.status == 503 and "newer than this claude-api" in decision.warnings[0]
    with pytest.raises(StoreError, match="newer than this claude-api"):
        KeyStore().record_usage("k", cost=1)
    assert raw_dump(pg) == before


@pytest.mark.new_store
@pytest.mark.postgres_only
def test_a_database_with_someone_elses_keys_table_is_refused(pg):
    import psycopg

    with psycopg.connect(pg, autocommit=True) as raw:
        raw.execute("CREATE TABLE keys (id int)")
    one_error_line(cli("keys", "list"), 1, "did not make")
    with psycopg.connect(pg, autocommit=True) as raw:
        assert raw.execute("SELECT to_regclass('claude_api_schema')").fetchone()[0] is None
