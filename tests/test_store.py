"""The store: where it is, its permissions, its schema, and sharing it between processes."""
import os
import sqlite3
import stat
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from claude_keys import db as store
from claude_keys.db import migrations
from tests.helpers.run import EXE, cli, create, proc
from tests.helpers.store import sql


@pytest.mark.one_backend
def test_path_precedence(tmp_path, monkeypatch):
    flag = tmp_path / "flag.db"
    assert cli("--db", flag, "db", "path").stdout.strip() == str(flag)
    assert cli("db", "path").stdout.strip() == os.environ["CLAUDE_API_DB"]
    monkeypatch.delenv("CLAUDE_API_DB")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cli("db", "path").stdout.strip() == str(tmp_path / "xdg" / "claude-api" / "keys.db")


@pytest.mark.one_backend
def test_default_store_is_created_private_under_umask_000(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_API_DB"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    done = subprocess.run(["sh", "-c", f"umask 000 && '{EXE}' keys create --project-id p -q"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "xdg" / "claude-api"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


@pytest.mark.sqlite_only
def test_wal_files_stay_private_while_open(isolated):
    create()
    os.umask(0)
    try:
        conn = store.connect()
        conn.execute("SELECT count(*) FROM keys").fetchone()
        for f in isolated.parent.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        conn.close()
    finally:
        os.umask(0o022)


@pytest.mark.sqlite_only
def test_store_uses_wal(isolated):
    create()
    assert sqlite3.connect(isolated).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.one_backend
def test_schema_version_matches_migrations():
    assert store.SCHEMA_VERSION == migrations.count()


def _one_line_error(r, code=1, text=None):
    assert r.exit_code == code, r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r
    if text:
        assert text in r.stderr, r


@pytest.mark.sqlite_only
def test_a_file_that_is_not_a_database(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    _one_line_error(cli("--db", junk, "keys", "list"), text="not a SQLite database")
    _one_line_error(proc("--db", junk, "keys", "list"), text="not a SQLite database")


@pytest.mark.sqlite_only
def test_unusable_paths(tmp_path):
    (tmp_path / "afile").write_text("x")
    _one_line_error(cli("--db", tmp_path / "afile" / "keys.db", "keys", "create", "--project-id", "p"),
                    text="cannot open")
    _one_line_error(cli("--db", tmp_path / "afile" / "keys.db", "keys", "list"), text="there is no store")
    (tmp_path / "adir").mkdir()
    _one_line_error(cli("--db", tmp_path / "adir", "keys", "list"), code=2, text="is a directory")


@pytest.mark.sqlite_only
def test_a_newer_store_is_refused_untouched(isolated):
    create()
    conn = sqlite3.connect(isolated)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    before = isolated.read_bytes()
    _one_line_error(cli("keys", "list"), text="newer than this claude-api")
    assert isolated.read_bytes() == before


@pytest.mark.sqlite_only
def test_a_foreign_database_is_refused(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (id)")
    conn.commit()
    conn.close()
    _one_line_error(cli("--db", other, "keys", "list"), text="not a claude-api store")
    conn = sqlite3.connect(other)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["customers"]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not even switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_db_check_reports_integrity_and_version():
    create()
    r = cli("db", "check", "--json")
    assert r.exit_code == 0, r
    report = r.json()
    assert report["ok"] and report["integrity"] == "ok"
    assert report["schema_version"] == store.SCHEMA_VERSION == len(report["migrations"])


def test_db_backup_is_a_usable_copy(tmp_path):
    keys = [create() for _ in range(3)]
    copy = tmp_path / "backup.db"
    assert cli("db", "backup", copy).exit_code == 0
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    listed = cli("--db", copy, "keys", "list", "--json").json()
    assert {k["id"] for k in listed} == {k["id"] for k in keys}
    _one_line_error(cli("db", "backup", copy), text="already exists")


def test_many_processes_share_a_fresh_store():
    """Eight processes at once on a store that does not exist yet: one migrates, all succeed."""
    def make(i):
        return proc("keys", "create", "--project-id", f"p{i}", "--no-keyring", "--json")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(make, range(16)))
    assert all(r.exit_code == 0 for r in results), [r for r in results if r.exit_code]
    assert all(r.stderr == "" for r in results)
    assert len(cli("keys", "list", "--json").json()) == 16


WRITER = """
import sys, time
from claude_keys import KeyStore
store = KeyStore()
end = time.time() + float(sys.argv[3])
i = 0
while time.time() < end:
    decision = store.check(key=sys.argv[1])
    store.record_usage(decision.key_id, input_tokens=i % 97, output_tokens=1, cost="0.0001",
                       request_id=f"{sys.argv[2]}-{i}")
    i += 1
"""


def test_backups_taken_while_others_write_are_consistent(isolated, tmp_path):
    import sys

    from tests.helpers.store import assert_consistent

    key = create("--rate-limit", "1000000")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, key["key"], f"w{i}", "4"], env=os.environ)
               for i in range(3)]
    copies = []
    try:
        time.sleep(0.5)
        for n in range(5):
            copy = tmp_path / f"backup-{n}.db"
            assert proc("db", "backup", copy).exit_code == 0
            copies.append(copy)
            time.sleep(0.4)
    finally:
        for w in writers:
            assert w.wait(timeout=30) == 0
    counts = [assert_consistent(c)[0] for c in copies]
    assert counts == sorted(counts) and counts[-1] > 0  # each a consistent snapshot, later ones later
    assert proc("--db", copies[-1], "db", "check").exit_code == 0
    assert assert_consistent(isolated)[0] >= counts[-1]


@pytest.mark.one_backend
def test_an_empty_db_option_is_refused_but_an_empty_variable_is_unset(monkeypatch, tmp_path):
    r = cli("--db", "", "keys", "list")
    assert r.exit_code == 2 and "store path is empty" in r.stderr
    monkeypatch.setenv("CLAUDE_API_DB", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert cli("db", "path").stdout.strip() == str(tmp_path / "xdg" / "claude-api" / "keys.db")


def test_a_backup_into_a_missing_folder_is_refused(tmp_path):
    create()
    r = cli("db", "backup", tmp_path / "no" / "such" / "backup.db")
    assert r.exit_code == 1 and "does not exist" in r.stderr and not (tmp_path / "no").exists()


def test_db_check_finds_a_roll_up_row_charged_to_the_wrong_key(isolated):
    """Totals that agree are not enough: each roll-up row must be what its requests make."""
    a, b = create(), create()
    for key, cost in ((a, "1"), (b, "2")):
        assert cli("usage", "record", "--key", key["id"], "--cost", cost, "--model", "m").exit_code == 0
    assert cli("db", "check").exit_code == 0
    for key, nanos in ((a, 2_000_000_000), (b, 1_000_000_000)):  # swapped: the sum is unchanged
        sql("UPDATE usage_daily SET cost_nanos = ? WHERE key_id = ?", (nanos, key["id"]))
    r = cli("db", "check")
    assert r.exit_code == 1 and "usage_daily" in r.stdout + r.stderr, r
