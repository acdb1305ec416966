"""Alerts (issue 17): `claude-api alerts` lists budgets past a threshold and keys about
to expire (exit 1 when any, for cron); `--notify CMD` runs CMD once per alert and
period, across processes, records it in the store and the audit, and tries a failed
CMD again on the next run."""
import json
import os
import subprocess
import time

from tests.helpers.processes import dies_with_this_process
from tests.helpers.run import EXE, cli, create, one_error_line
from tests.helpers.store import sql


def record(key_id, cost):
    r = cli("usage", "record", "--key", key_id, "--cost", cost)
    assert r.exit_code == 0, r


def alerts(*args):
    r = cli("alerts", "--json", *args)
    assert r.exit_code in (0, 1), r
    found = r.json()
    assert r.exit_code == (1 if found else 0)
    return found


def test_nothing_crossed_exits_0_and_says_so():
    create("--daily-budget", "1")
    r = cli("alerts")
    assert r.exit_code == 0 and r.stdout == "" and "no alerts" in r.stderr
    assert alerts() == []


def test_budgets_past_a_threshold_and_expiring_keys_exit_1():
    key = create("--daily-budget", "1", "--total-budget", "10", "--project-id", "web")
    record(key["id"], "0.85")
    found = alerts()
    assert len(found) == 1
    daily = found[0]
    assert {k: daily[k] for k in ("kind", "key_id", "project_id", "budget", "threshold", "percent", "spent_usd",
                                  "limit_usd")} == {
        "kind": "budget", "key_id": key["id"], "project_id": "web", "budget": "daily", "threshold": 80,
        "percent": 85.0, "spent_usd": 0.85, "limit_usd": 1.0}
    assert daily["period_end"].endswith("T00:00:00Z")
    assert cli("keys", "permissions", key["id"], "--alert-at", "90").exit_code == 0
    assert alerts() == []  # 85% is below the key's own threshold now
    assert cli("projects", "set", "web", "--weekly-budget", "1", "--alert-at", "75,85").exit_code == 0
    project = alerts()
    assert [(a["kind"], a["key_id"], a["budget"], a["threshold"]) for a in project] == [
        ("budget", None, "weekly", 85)]
    soon = create("--expires-in", "3d")
    later = create("--expires-in", "30d")
    kinds = {(a["kind"], a["key_id"]) for a in alerts()}
    assert ("expiry", soon["id"]) in kinds and ("expiry", later["id"]) not in kinds
    assert cli("db", "settings", "expiry-warning", "31d").exit_code == 0
    assert ("expiry", later["id"]) in {(a["kind"], a["key_id"]) for a in alerts()}
    r = cli("alerts", "--format", "plain")
    assert r.exit_code == 1 and "weekly" in r.stdout and "expiry" in r.stdout
    assert cli("keys", "revoke", soon["id"], "--force").exit_code == 0
    assert ("expiry", soon["id"]) not in {(a["kind"], a["key_id"]) for a in alerts()}
    one_error_line(cli("db", "settings", "expiry-warning", "soon"), 2, "not a duration")


def _notify(*args, cmd):
    return subprocess.Popen([EXE, "alerts", "--json", "--notify", cmd, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=dies_with_this_process())


def test_notify_fires_once_across_two_processes_and_again_in_the_next_period(tmp_path):
    cli("db", "settings", "budget-tz", "Pacific/Kiritimati")  # UTC+14
    key = create("--daily-budget", "1")
    record(key["id"], "0.6")
    got = tmp_path / "got.jsonl"
    cmd = f"cat >> {got}; sleep 1"
    runs = [_notify(cmd=cmd) for _ in range(2)]
    outcomes = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 1, err  # something is crossed
        outcomes += [a["notice"] for a in json.loads(out)]
    assert sorted(outcomes) == ["already sent", "sent"]
    lines = got.read_text().splitlines()
    assert len(lines) == 1
    sent = json.loads(lines[0])
    assert (sent["kind"], sent["budget"], sent["threshold"], sent["key_id"]) == ("budget", "daily", 50, key["id"])
    assert sent["period_start"].endswith("+14:00")
    assert sql("SELECT state FROM alert_notices") == [("sent",)]
    assert [e["action"] for e in cli("audit", "--format", "json").json()].count("alert sent") == 1
    run = _notify(cmd=cmd)
    run.communicate(timeout=120)
    assert len(got.read_text().splitlines()) == 1  # this period's notice was sent
    # The next period: in UTC-11 today is another calendar day (25 hours apart).
    cli("db", "settings", "budget-tz", "Pacific/Pago_Pago")
    run = _notify(cmd=cmd)
    out, _ = run.communicate(timeout=120)
    assert [a["notice"] for a in json.loads(out)] == ["sent"]
    lines = got.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["period_start"].endswith("-11:00")
    record(key["id"], "0.3")  # 90%: past the next threshold, a new alert in the same period
    run = _notify(cmd=cmd)
    out, _ = run.communicate(timeout=120)
    assert [(a["threshold"], a["notice"]) for a in json.loads(out)] == [(80, "sent")]


def test_a_failed_command_is_tried_again_on_the_next_run(tmp_path):
    key = create("--expires-in", "1d")
    r = cli("alerts", "--notify", "echo 'mail server down' >&2; exit 3")
    assert r.exit_code == 1 and "exited with 3: mail server down" in r.stderr and "tried again" in r.stderr
    assert sql("SELECT count(*) FROM alert_notices") == [(0,)]
    failed = [e for e in cli("audit", "--format", "json").json() if e["action"] == "alert failed"]
    assert len(failed) == 1 and failed[0]["key_id"] == key["id"]
    got = tmp_path / "got.json"
    r = cli("alerts", "--json", "--notify", f"cat > {got}")
    assert r.exit_code == 1 and [a["notice"] for a in r.json()] == ["sent"]
    assert json.loads(got.read_text())["kind"] == "expiry"
    r = cli("alerts", "--json", "--notify", "exit 1")  # sent already: not run again
    assert [a["notice"] for a in r.json()] == ["already sent"] and "tried again" not in r.stderr


def test_a_claim_left_by_a_dead_process_is_taken_over(tmp_path):
    create("--expires-in", "1d")
    found = alerts()
    sql_now = int(time.time() * 1000)
    cli("alerts", "--notify", "exit 0")  # sent: makes the row
    # As if a process had claimed it 20 minutes ago and died before running CMD.
    sql("UPDATE alert_notices SET state = 'claimed', sent_ms = NULL, claimed_ms = ?",
            (sql_now - 20 * 60_000,))
    got = tmp_path / "got.json"
    r = cli("alerts", "--json", "--notify", f"cat > {got}")
    assert [a["notice"] for a in r.json()] == ["sent"] and got.exists()
    assert len(found) == 1 and os.path.getsize(got) > 0


def test_listing_alerts_waits_for_no_writer():
    """Alerts read in short reads outside any write transaction: a writer holding the
    store's write lock (as an admission does) neither blocks them nor is blocked."""
    from claude_keys.db import connect

    key = create("--daily-budget", "1")
    record(key["id"], "0.6")
    writer = connect(None)
    try:
        with writer.write():
            writer.execute("UPDATE keys SET name = 'held' WHERE id = ?", (key["id"],))
            started = time.time()
            r = cli("alerts", "--json", env={"CLAUDE_API_TIMEOUT": "3"})
            assert r.exit_code == 1 and [a["budget"] for a in r.json()] == ["daily"], r
            assert time.time() - started < 3
    finally:
        writer.close()
