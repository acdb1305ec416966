"""Budget periods (issue 17): daily and weekly budgets beside monthly and total, all
calendar periods in the store's budget time zone (`db settings budget-tz`), each
period's spend read exactly from the roll-ups (whole days, whole hours, and the usage
rows of a sub-hour edge), reservations counted against every period, and a refusal
that names its budget and says when it resets (Retry-After).

There is no clock to set: boundaries are tested as pure functions (periods.py), and
end to end with usage written at chosen times around the zone's real midnight."""
import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest

from claude_keys import limits, periods
from tests.helpers.processes import dies_with_this_process
from tests.helpers.run import EXE, cli, create, error, one_error_line, verify
from tests.helpers.store import LIVE, NANOS, sql


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def iso(ms_: int) -> str:
    return dt.datetime.fromtimestamp(ms_ / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def record(key_id, cost, at_ms=None, rid=None):
    args = ["usage", "record", "--key", key_id, "--cost", cost]
    args += ["--at", iso(at_ms)] if at_ms is not None else []
    args += ["--request-id", rid] if rid else []
    r = cli(*args)
    assert r.exit_code == 0, r


def set_zone(name):
    r = cli("db", "settings", "budget-tz", name)
    assert r.exit_code == 0, r


def today_starts(tz: str) -> int:
    """When today began in `tz` (the real clock: the store's, within a second)."""
    return periods.periods(int(time.time() * 1000), tz)["day"].start_ms


# -- the boundaries, as pure functions -------------------------------------------------

@pytest.mark.one_backend
def test_period_boundaries_follow_the_zone_and_its_dst():
    tokyo = periods.periods(ms("2026-12-03T15:30:00+00:00"), "Asia/Tokyo")  # 00:30 on the 4th in Tokyo
    assert tokyo["day"].start_ms == ms("2026-12-04T00:00:00+09:00")
    assert tokyo["day"].resets == "2026-12-05T00:00:00+09:00"
    assert tokyo["week"].start_ms == ms("2026-11-30T00:00:00+09:00")  # the Monday
    assert tokyo["month"].resets == "2027-01-01T00:00:00+09:00"
    utc = periods.periods(ms("2026-12-03T15:30:00+00:00"))
    assert utc["day"].resets == "2026-12-04T00:00:00Z" and utc["week"].resets == "2026-12-07T00:00:00Z"
    spring = periods.periods(ms("2026-03-29T12:00:00+00:00"), "Europe/Berlin")  # clocks go forward at 02:00
    assert spring["day"].end_ms - spring["day"].start_ms == 23 * 3_600_000
    assert spring["day"].resets == "2026-03-30T00:00:00+02:00"
    autumn = periods.periods(ms("2026-10-25T12:00:00+00:00"), "Europe/Berlin")
    assert autumn["day"].end_ms - autumn["day"].start_ms == 25 * 3_600_000
    skipped = periods.periods(ms("2022-09-11T12:00:00+00:00"), "America/Santiago")  # no midnight that day
    assert skipped["day"].start_ms == ms("2022-09-11T04:00:00+00:00")  # when the clock jumped to 01:00
    assert periods.check_zone(" utc ") == "UTC"


@pytest.mark.one_backend
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "Asia/Tokyo", "Asia/Kolkata", "Asia/Kathmandu",
                                "America/St_Johns", "Pacific/Chatham"])
def test_a_span_is_whole_days_plus_and_minus_hours_and_sub_hour_edges(tz):
    """Whatever the zone, the pieces cover each period exactly once, and few hours are read."""
    H = 3_600_000
    for day in range(0, 400, 7):  # a year and more of dates, DST changes among them
        now = ms("2026-01-01T12:00:00+00:00") + day * 86_400_000
        for period in periods.periods(now, tz).values():
            days, plus, minus, rows = limits.pieces(period.start_ms, period.end_ms)
            covered = {h: 0 for h in range(period.start_ms // H - 48, period.end_ms // H + 48)}
            for h in range(days[0] * 24, days[1] * 24) if days else ():
                covered[h] += H
            for h in plus:
                covered[h] += H
            for h in minus:
                covered[h] -= H
            for a, b in rows:
                covered[a // H] += b - a
            assert sum(covered.values()) == period.end_ms - period.start_ms
            whole = set(range(days[0] * 24, days[1] * 24)) if days else set()
            assert all(v >= 0 for v in covered.values()) and set(minus) <= whole
            assert len(plus) + len(minus) <= 25 and len(rows) <= 2
    berlin = periods.periods(ms("2026-12-10T00:00:00+00:00"), "Europe/Berlin")["day"]
    assert [len(x) for x in limits.pieces(berlin.start_ms, berlin.end_ms)[1:]] == [1, 1, 0]  # 3 reads, not 24


# -- the setting -------------------------------------------------------------------------

def test_the_budget_zone_setting_lists_sets_refuses_and_is_copied(isolated, tmp_path):
    create()
    listed = cli("db", "settings", "--json").json()
    assert {"name": "budget-tz", "value": "UTC", "default": True} .items() <= listed[0].items()
    assert cli("db", "settings", "budget-tz").stdout.strip() == "UTC"
    r = cli("db", "settings", "budget-tz", "Mars/Olympus_Mons")
    one_error_line(r, 2, "unknown time zone 'Mars/Olympus_Mons'")
    one_error_line(cli("db", "settings", "budget-zone", "UTC"), 2, "unknown setting", "budget-tz")
    set_zone("Europe/Berlin")
    shown = cli("db", "settings", "budget-tz", "--json").json()
    assert shown["value"] == "Europe/Berlin" and shown["default"] is False
    assert cli("db", "settings", "--format", "csv").stdout.splitlines()[1].startswith("budget-tz,Europe/Berlin,")
    changes = [e for e in cli("audit", "--format", "json").json() if e["action"] == "setting"]
    assert len(changes) == 1
    copy = tmp_path / "copy.db"
    assert cli("db", "copy", str(isolated), str(copy)).exit_code == 0
    assert cli("--db", str(copy), "db", "settings", "budget-tz").stdout.strip() == "Europe/Berlin"


# -- daily budgets in a zone -----------------------------------------------------------------

def test_a_daily_budget_in_tokyo_resets_at_tokyo_midnight():
    set_zone("Asia/Tokyo")
    key = create("--daily-budget", "1")
    midnight = today_starts("Asia/Tokyo")
    record(key["id"], "1.00", midnight - 1)  # yesterday in Tokyo: not today's
    assert verify(key["key"], "--cost", "0.10", "--dry-run", code=0)["allowed"]
    record(key["id"], "0.95", midnight)  # today's first millisecond in Tokyo
    answer = verify(key["key"], "--cost", "0.10", code=5)
    kind, message = error(answer)
    tomorrow = periods.periods(int(time.time() * 1000), "Asia/Tokyo")["day"]
    assert kind == "rate_limit_error" and message.startswith("Daily budget exceeded: $0.95 of $1.00 spent today")
    assert "this request would cost $0.10" in message
    assert f"Resets at {tomorrow.resets}." in message and tomorrow.resets.endswith("+09:00")
    assert abs(int(answer["headers"]["Retry-After"]) - (tomorrow.end_ms / 1000 - time.time())) < 5
    shown = cli("keys", "show", key["id"], "--json").json()["current"]
    daily = shown["budgets"][0]
    assert shown["budget_tz"] == "Asia/Tokyo" and daily["budget"] == "daily"
    assert daily["period_start"] == periods.iso_in_zone(midnight, "Asia/Tokyo")
    assert daily["resets_at"] == tomorrow.resets and daily["spent_usd"] == 0.95 and daily["left_usd"] == 0.05
    set_zone("UTC")  # the same spend, counted by UTC days: the zone decides, nothing is re-keyed
    utc_day = periods.periods(int(time.time() * 1000))["day"]
    expected = sum(cents for at, cents in ((midnight - 1, 100), (midnight, 95)) if utc_day.start_ms <= at)
    spent = cli("keys", "show", key["id"], "--json").json()["current"]["budgets"][0]["spent_usd"]
    assert round(spent * 100) == expected


def test_sub_hour_edges_are_counted_exactly_in_a_half_hour_zone():
    set_zone("Asia/Kolkata")  # midnight is hh:30 UTC: the edge is read from the usage rows
    key = create("--daily-budget", "10", "--project-id", "india")
    cli("projects", "set", "india", "--daily-budget", "10")
    midnight = today_starts("Asia/Kolkata")
    for at, cost in ((midnight - 1, "4"), (midnight, "0.000000001"), (midnight + 29 * 60_000, "0.25"),
                     (midnight - 31 * 60_000, "3")):
        record(key["id"], cost, at)
    current = cli("keys", "show", key["id"], "--json").json()["current"]
    assert current["day_cost_usd"] == 0.250000001
    project = cli("projects", "show", "india", "--json").json()
    assert project["budgets"][0]["spent_usd"] == 0.250000001 and project["budget_tz"] == "Asia/Kolkata"


def test_a_weekly_budget_starts_on_monday_in_the_zone():
    set_zone("Europe/Berlin")
    key = create("--weekly-budget", "2")
    week = periods.periods(int(time.time() * 1000), "Europe/Berlin")["week"]
    record(key["id"], "5", week.start_ms - 1)  # Sunday 23:59:59.999 last week
    record(key["id"], "1.5", week.start_ms)
    _, message = error(verify(key["key"], "--cost", "0.6", code=5))
    assert message.startswith("Weekly budget exceeded: $1.50 of $2.00 spent this week") and week.resets in message
    assert verify(key["key"], "--cost", "0.5", code=0)["allowed"]
    perms = cli("keys", "permissions", key["id"], "--json").json()
    assert perms["weekly_budget"] == 2.0 and perms["daily_budget"] is None and perms["alert_at"] == [50, 80, 95]


def test_the_budget_that_lasts_longest_refuses_and_a_project_names_itself():
    key = create("--daily-budget", "1", "--monthly-budget", "1", "--project-id", "shared")
    record(key["id"], "1")
    answer = verify(key["key"], code=5)
    assert error(answer)[1].startswith("Monthly budget exceeded")  # waiting for tomorrow would not help
    month = periods.periods(int(time.time() * 1000))["month"]
    assert abs(int(answer["headers"]["Retry-After"]) - (month.end_ms / 1000 - time.time())) < 5
    other = create("--project-id", "team")
    assert cli("projects", "set", "team", "--daily-budget", "0.5", "--weekly-budget", "unlimited").exit_code == 0
    record(other["id"], "0.5")
    _, message = error(verify(other["key"], code=5))
    assert message.startswith("Project daily budget exceeded: $0.50 of $0.50 spent today")
    shown = cli("projects", "show", "team", "--json").json()
    assert shown["daily_budget"] == 0.5 and shown["weekly_budget"] is None
    assert [b["budget"] for b in shown["budgets"]] == ["daily"]
    text = cli("projects", "show", "team", "--format", "plain").stdout
    assert "daily budget status" in text and "$0.50 spent of $0.50 (100%), $0.00 left; resets" in text


def test_keys_show_lists_each_budget_with_spent_reserved_left_and_reset():
    key = create("--daily-budget", "1", "--weekly-budget", "3", "--total-budget", "10")
    record(key["id"], "0.25")
    assert verify(key["key"], "--cost", "0.5", code=0)["request_id"]
    budgets = cli("keys", "show", key["id"], "--json").json()["current"]["budgets"]
    assert [b["budget"] for b in budgets] == ["daily", "weekly", "total"]
    for b in budgets:  # a reservation holds against every period it touches
        assert (b["spent_usd"], b["reserved_usd"]) == (0.25, 0.5)
    assert budgets[0]["left_usd"] == 0.25 and budgets[0]["percent"] == 75.0
    assert budgets[0]["resets_at"].endswith("T00:00:00Z") and budgets[2]["resets_at"] is None
    text = cli("keys", "show", key["id"], "--format", "plain").stdout
    assert "$0.25 spent + $0.50 reserved of $1.00 (75%), $0.25 left; resets " in text and "never resets" in text
    one_error_line(cli("keys", "create", "--project-id", "p", "--daily-budget", "-1"), 2)
    one_error_line(cli("keys", "permissions", key["id"], "--alert-at", "75,abc"), 2, "whole percentages")


# -- 32 real processes against a $1 daily budget ---------------------------------------------

_CHECK_AND_RECORD = """
import json, subprocess, sys, time
exe, secret, key_id, start_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
time.sleep(max(0, start_at - time.time()))
done = subprocess.run([exe, "keys", "verify", secret, "--cost", "0.10", "--json"], capture_output=True, text=True)
answer = json.loads(done.stdout)
if answer["allowed"]:
    rec = subprocess.run([exe, "usage", "record", "--key", key_id, "--cost", "0.10", "--request-id",
                          answer["request_id"]], capture_output=True, text=True)
    answer["recorded"] = rec.returncode
print(json.dumps({"code": done.returncode, **answer}))
"""


def test_16_processes_against_a_one_dollar_daily_budget_admit_exactly_ten():
    set_zone("Asia/Tokyo")
    key = create("--daily-budget", "1.00")
    start_at = time.time() + 4  # time for 16 processes to start
    children = [subprocess.Popen([sys.executable, "-c", _CHECK_AND_RECORD, EXE, key["key"], key["id"], str(start_at)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "CLAUDE_API_TIMEOUT": "60"}, preexec_fn=dies_with_this_process())
                for _ in range(16)]
    answers = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        answers.append(json.loads(out))
    admitted = [a for a in answers if a["allowed"]]
    assert len(admitted) == 10 and all(a["recorded"] == 0 for a in admitted)
    refused = [a for a in answers if not a["allowed"]]
    assert {a["code"] for a in refused} == {5}
    assert all(a["error"]["message"].startswith("Daily budget exceeded") and "Retry-After" in a["headers"]
               for a in refused)
    assert sql("SELECT count(*), sum(cost_nanos) FROM usage") == [(10, NANOS)]  # never past the budget
    assert sql(LIVE) == [(0,)]
    assert error(verify(key["key"], "--cost", "0.01", code=5))[1].startswith("Daily budget exceeded: $1.00 of $1.00")
