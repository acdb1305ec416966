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
