"""`db copy`: from SQLite to PostgreSQL and back, every report identical and the copy
live; only into a new or empty store, never onto itself."""
import json

import pytest

from tests.helpers.run import cli, one_error_line

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


@pytest.mark.one_backend
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
    one_error_line(cli("db", "copy", local, back), 1, "not empty")
    one_error_line(cli("db", "copy", local, up), 1, "not empty")
    assert back.read_bytes() == before_back
    one_error_line(cli("db", "copy", local, local), 1, "same store")


# -- clear failures: a foreign or racing destination -------------------------------------

def _tables(db) -> set:
    """The tables of a store's place, read without claude-api."""
    from claude_keys.db.location import is_server, locate

    if is_server(str(db)):
        import psycopg

        with psycopg.connect(locate(str(db))[1], autocommit=True) as conn:
            return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def _foreign_table(db) -> None:
    from claude_keys.db.location import is_server, locate

    if is_server(str(db)):
        import psycopg

        with psycopg.connect(locate(str(db))[1], autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id int)")
        return
    import sqlite3

    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id int)")
    conn.commit()
    conn.close()


def _source(tmp_path):
    src = tmp_path / "source.db"
    key = json.loads(cli("--db", src, "keys", "create", "--project-id", "alpha", "--json", "--no-keyring").stdout)
    for i in range(5):
        assert cli("--db", src, "usage", "record", "--key", key["id"], "--input-tokens", 10 + i,
                   "--model", "claude-haiku-4-5").exit_code == 0
    return src


@pytest.mark.new_store
def test_a_copy_into_another_programs_database_is_refused_and_writes_nothing(isolated, tmp_path):
    src = _source(tmp_path)
    _foreign_table(isolated)
    from claude_keys.db import display

    one_error_line(cli("db", "copy", src, isolated), 1, display(str(isolated)), "another program",
                   "customers", "nothing was written")
    assert _tables(isolated) == {"customers"}  # not one table of ours was made


def test_copies_racing_into_one_destination_one_wins_the_others_say_so(isolated, tmp_path):
    import subprocess

    from tests.helpers.run import EXE
    from tests.helpers.store import assert_consistent

    src = _source(tmp_path)
    racers = [subprocess.Popen([EXE, "db", "copy", str(src), str(isolated)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(4)]
    done = [(p.wait(timeout=120), p.stderr.read()) for p in racers]
    for p in racers:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in done) == [0, 1, 1, 1], done
    for code, err in done:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        if code:
            assert lines[0].startswith("Error: the destination ") and "refused the change" not in err, err
            assert "not empty" in err or "meanwhile" in err, err
    # The destination holds the source once, whole.
    assert cli("--db", isolated, "usage", "summary", "--period", "all", "--json").json()["requests"] == 5
    assert len(cli("--db", isolated, "keys", "list", "--json").json()) == 1
    assert_consistent(isolated)
    if not str(isolated).startswith("postgresql"):
        assert sorted(p.name for p in isolated.parent.iterdir()) == ["keys.db"]  # no scratch file left
