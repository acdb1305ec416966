"""`usage delete`: a mistaken import or record can be taken back, after a question,
audited, with every roll-up (and so every report and budget) exact afterwards."""
import json
import time

import pytest

from claude_keys import KeyStore, StoreError
from tests.helpers.cc_lines import line, write
from tests.helpers.run import cli, create, proc
from tests.helpers.store import assert_consistent, sql
from tests.helpers.workers import spawn_pool


def record(key, at, cost, rid, model="claude-haiku-4-5"):
    r = cli("usage", "record", "--key", key, "--at", at, "--cost", cost, "--request-id", rid,
            "--model", model, "--input-tokens", "10")
    assert r.exit_code == 0, r


def spend(*args):
    r = cli("usage", "summary", "--period", "all", *args, "--json")
    assert r.exit_code == 0, r
    return r.json()["requests"], r.json()["cost_usd"]


@pytest.fixture
def usage():
    a, b = create("--project-id", "alpha", "--monthly-budget", "5"), create("--project-id", "beta")
    for i in range(6):
        record(a["id"], f"2026-02-0{1 + i}T10:00:00Z", "1", f"a{i}")
        record(b["id"], f"2026-02-0{1 + i}T10:30:00Z", "0.5", f"b{i}")
    return a, b


def test_delete_by_request_id_asks_first(usage):
    a, _ = usage
    r = proc("usage", "delete", "a0", "a1", input="")  # no answer: nothing happens
    assert r.exit_code == 1 and "Delete 2 requests (20 tokens, $2.00)?" in r.stderr
    assert spend() == (12, 9.0)
    r = proc("usage", "delete", "a0", "a1", input="y\n")
    assert r.exit_code == 0 and "Deleted 2 requests" in r.stderr
    assert spend() == (10, 7.0) and spend("--key", a["id"]) == (4, 4.0)
    assert_consistent()
    r = cli("usage", "delete", "a0", "--yes")
    assert r.exit_code == 1 and "none of the given request ids is stored" in r.stderr
    r = cli("usage", "delete", "a2", "nope", "-y", "--json")
    assert r.exit_code == 0 and r.json()["deleted"] == 1 and r.json()["missing_request_ids"] == ["nope"]


def test_delete_a_range_of_a_key_or_project(usage):
    a, b = usage
    r = cli("usage", "delete", "--key", a["id"], "--since", "2026-02-02", "--until", "2026-02-03", "--force",
            "--json")
    assert r.exit_code == 0, r
    assert r.json()["deleted"] == 2 and r.json()["cost_usd"] == 2.0
    assert spend("--key", a["id"]) == (4, 4.0) and spend("--key", b["id"]) == (6, 3.0)
    r = cli("usage", "delete", "--project-id", "beta", "--since", "2026-02-06T10:00:00Z",
            "--until", "2026-02-07", "-y")
    assert r.exit_code == 0 and "Deleted 1 request " in r.stderr
    assert spend("--project-id", "beta") == (5, 2.5)
    days = {d["period"]: d["requests"] for d in cli("usage", "summary", "--by", "day", "--period", "all",
                                                    "--json").json()}
    assert days == {"2026-02-01": 2, "2026-02-02": 1, "2026-02-03": 1, "2026-02-04": 2,
                    "2026-02-05": 2, "2026-02-06": 1}
    # Emptied roll-up rows are pruned, not left at zero.
    assert sql("SELECT count(*) FROM usage_daily WHERE requests = 0") == [(0,)]
    assert sql("SELECT count(*) FROM usage_hourly WHERE requests = 0") == [(0,)]
    assert_consistent()
    r = cli("usage", "delete", "--key", a["id"], "--since", "2020-01-01", "--until", "2020-01-02", "-y")
    assert r.exit_code == 0 and "nothing was deleted" in r.stderr


@pytest.mark.parametrize("args", [[], ["--key", "x"], ["--since", "2026-01-01", "--until", "2026-02-01"],
                                  ["--project-id", "alpha", "--since", "2026-01-01"],
                                  ["a1", "--project-id", "alpha"]])
def test_what_to_delete_must_be_said(usage, args):
    r = cli("usage", "delete", *args, "-y")
    assert r.exit_code in (1, 2) and len(r.stderr.splitlines()) == 1, r
    assert spend() == (12, 9.0)


def test_a_deletion_is_audited(usage):
    a, _ = usage
    cli("usage", "delete", "--key", a["id"], "--since", "2026-02-01", "--until", "2026-02-28", "-y")
    entry = cli("audit", "--json").json()[-1]
    assert entry["action"] == "usage delete" and entry["key_id"] == a["id"]
    assert entry["changes"]["requests"] == [6, 0] and entry["changes"]["cost_usd"] == [6.0, 0]
    assert entry["changes"]["deleted"][1] == {"key_id": a["id"], "since": "2026-02-01T00:00:00Z",
                                              "until": "2026-03-01T00:00:00Z"}


def test_budgets_follow_a_deletion(isolated):
    key = create("--monthly-budget", "1")
    r = cli("usage", "record", "--key", key["id"], "--cost", "5", "--request-id", "oops", "--json")
    assert r.exit_code == 0
    assert proc("keys", "verify", key["key"]).exit_code == 5  # the month's budget is spent
    assert cli("usage", "delete", "oops", "--yes").exit_code == 0
    assert proc("keys", "verify", key["key"]).exit_code == 0


def test_a_deleted_settlement_does_not_bring_its_reservation_back(isolated):
    key = create("--monthly-budget", "1")
    admitted = json.loads(proc("keys", "verify", key["key"], "--cost", "0.75", "--json").stdout)
    r = cli("usage", "record", "--key", key["id"], "--cost", "0.75", "--request-id", admitted["request_id"])
    assert r.exit_code == 0
    assert cli("usage", "delete", admitted["request_id"], "--yes").exit_code == 0
    # Neither the usage nor its reservation: the whole dollar is there again.
    assert proc("keys", "verify", key["key"], "--cost", "1.00").exit_code == 0
    assert sql("SELECT count(*) FROM in_flight WHERE request_id = ?", (admitted["request_id"],))[0][0] == 0


def test_a_deleted_import_comes_back_with_full(tmp_path):
    write(tmp_path / "projects" / "p" / "s.jsonl", line("m1", "r1", out=5), line("m2", "r2", out=6))
    assert cli("usage", "import", tmp_path).exit_code == 0
    assert cli("usage", "delete", "--project-id", "p", "--since", "2026-01-01", "--until", "2026-12-31",
               "-y").exit_code == 0
    assert json.loads(cli("usage", "import", tmp_path, "--json").stdout)["lines"] == 0
    assert json.loads(cli("usage", "import", tmp_path, "--full", "--json").stdout)["imported"] == 2
    assert spend()[0] == 2
    assert_consistent()


def _record_for(args):
    db, key_id, seconds = args
    keys, errors, end = KeyStore(db), 0, time.time() + seconds
    while time.time() < end:
        try:
            keys.record_usage(key_id, cost="0.001", at="2026-01-05T12:00:00Z")
        except StoreError:
            errors += 1
    return errors


@pytest.mark.postgres_only
def test_deleting_usage_while_it_is_recorded_never_deadlocks(pg):
    """usage delete takes the same roll-up rows as concurrent records, in the same order."""
    key = create()
    with spawn_pool(3) as pool:
        busy = pool.map_async(_record_for, [(pg, key["id"], 5)] * 3)
        deletes = []
        while not busy.ready():
            deletes.append(cli("usage", "delete", "--key", key["id"], "--since", "2026-01-05",
                               "--until", "2026-01-06", "--yes"))
        assert busy.get() == [0, 0, 0]
    assert len(deletes) > 20 and [r.stderr for r in deletes if r.exit_code] == []
    assert_consistent()


def test_the_question_and_the_audit_read_in_cents_and_name_only_what_was_deleted(usage):
    """Issue 20: `Delete 1 request (…, $2.7955665)?`, audit lines `cost_usd: 2.7955665 -> 0`
    and `{'request_ids': ['svc-00002', 'nosuch-id']}`."""
    a, _ = usage
    record(a["id"], "2026-02-08T10:00:00Z", "2.7955665", "svc-00002")
    r = proc("usage", "delete", "svc-00002", "nosuch-id", input="")
    assert "Delete 1 request (10 tokens, $2.80)?" in r.stderr, r
    r = cli("usage", "delete", "svc-00002", "nosuch-id", "-y")
    assert r.exit_code == 0 and "Deleted 1 request (10 tokens, $2.80)." in r.stderr, r
    entry = cli("audit", "--json").json()[-1]
    assert entry["action"] == "usage delete"
    assert entry["changes"]["deleted"][1] == {"request_ids": ["svc-00002"]}  # not nosuch-id
    assert entry["changes"]["cost_usd"] == [2.7955665, 0]  # exact in JSON
    human = cli("audit", "--format", "plain").stdout
    assert "cost_usd: $2.80 -> $0.00" in human and "request ids: svc-00002" in human, human
    assert "{" not in human and "'" not in human and "nosuch-id" not in human, human
    csv = cli("audit", "--format", "csv").stdout
    assert "cost_usd: $2.7955665 -> $0.00" in csv  # exact in CSV
