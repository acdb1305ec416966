"""`db check` (the consistency checks of db/transfer.py): integrity, schema version,
every roll-up row against its requests, rate windows against their slots, on both
stores; a damaged store is reported, not repaired."""
import pytest

from claude_keys import db as store
from tests.helpers.run import cli, create
from tests.helpers.store import sql


def test_db_check_reports_integrity_and_version():
    create()
    r = cli("db", "check", "--json")
    assert r.exit_code == 0, r
    report = r.json()
    assert report["ok"] and report["integrity"] == "ok"
    assert report["schema_version"] == store.SCHEMA_VERSION == len(report["migrations"])


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


@pytest.mark.postgres_only
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


@pytest.mark.sqlite_only
def test_db_check_reports_damage(isolated):
    for i in range(40):
        create("--name", f"key number {i}")
    with open(isolated, "r+b") as f:  # scribble over a page of the keys table
        f.seek(3 * 1024)
        f.write(b"\xff" * 700)
    r = cli("db", "check")
    assert r.exit_code == 1 and "damaged" in r.stdout and "db check" not in r.stdout + r.stderr, r
    r = cli("db", "check", "--json")
    assert r.exit_code == 1 and r.json()["ok"] is False, r
    assert "malformed" in " ".join(r.json()["integrity"])
