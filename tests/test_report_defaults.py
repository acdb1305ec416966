"""Reports that read right the first time: the system's time zone by default (TZ, else
the local zone; --tz and CLAUDE_API_TZ override it), an empty period that says what
exists and how to see it, --last N, --order, --session, --week-start, and blocks
--active / --recent."""
from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers.cc_lines import line, write
from tests.helpers.run import cli, create, imported, proc, record_at, report

HOUR = timedelta(hours=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> datetime:
    return datetime.now(timezone.utc)


# -- the time zone ---------------------------------------------------------------------

def test_the_default_zone_is_the_systems(monkeypatch):
    """Two requests an hour apart around 15:00Z: in Tokyo (UTC+9) the second one is on
    the next day. Under TZ=Asia/Tokyo the day starts at 15:00Z, not 00:00Z."""
    key = create()
    record_at(key["id"], "2026-02-01T14:30:00Z", cost="1")
    record_at(key["id"], "2026-02-01T15:30:00Z", cost="2")

    def days(*args, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return {r["period"]: r["cost_usd"] for r in report("summary", "--by", "day", "--period", "all", *args)}

    assert days() == {"2026-02-01": 3.0}  # the suite's system zone is UTC
    assert days(TZ="Asia/Tokyo") == {"2026-02-01": 1.0, "2026-02-02": 2.0}
    assert days(TZ=":Asia/Tokyo") == {"2026-02-01": 1.0, "2026-02-02": 2.0}  # the C library's spelling
    assert days("--tz", "UTC") == {"2026-02-01": 3.0}  # --tz overrides the system's
    assert days("--tz", "local") == {"2026-02-01": 1.0, "2026-02-02": 2.0}
    monkeypatch.setenv("CLAUDE_API_TZ", "UTC")  # the environment's choice beats the system's
    assert days() == {"2026-02-01": 3.0}
    assert days("--tz", "Asia/Tokyo") == {"2026-02-01": 1.0, "2026-02-02": 2.0}  # and --tz beats it
    monkeypatch.delenv("CLAUDE_API_TZ")
    # A date as --since is that day in the zone; the JSON times stay UTC.
    assert report("summary", "--since", "2026-02-02")["since"] == "2026-02-01T15:00:00Z"
    monkeypatch.setenv("TZ", "Not/AZone")  # a TZ that names nothing: UTC, as the C library does
    assert days() == {"2026-02-01": 3.0}


def test_period_day_starts_at_local_midnight_in_a_real_process():
    """`TZ=Asia/Tokyo claude-api usage summary --period day`: since is Tokyo's midnight."""
    key = create()
    record_at(key["id"], iso(now() - timedelta(minutes=1)), cost="1")
    r = proc("usage", "summary", "--period", "day", "--json", env={"TZ": "Asia/Tokyo"})
    assert r.exit_code == 0, r
    tokyo = now().astimezone(timezone(timedelta(hours=9)))
    midnight = tokyo.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)
    assert r.json()["since"] == midnight.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert r.json()["requests"] == (1 if now() - timedelta(minutes=1) >= midnight else 0)


def test_blocks_show_their_start_in_the_systems_zone(monkeypatch):
    key = create()
    record_at(key["id"], "2026-02-01T14:30:00Z", cost="1")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    r = cli("usage", "blocks", "--period", "all")
    assert "2026-02-01 23:00 +0900" in r.stdout, r
    assert report("blocks", "--period", "all")[0]["start"] == "2026-02-01T14:00:00Z"  # JSON: UTC


def test_budgets_keep_their_own_zone(monkeypatch):
    """The report zone never moves a budget's month (budgets are UTC unless set)."""
    key = create("--monthly-budget", "1")
    start = now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    record_at(key["id"], iso(start + timedelta(minutes=30)), cost="0.9")
    monkeypatch.setenv("TZ", "America/Los_Angeles")  # there, that request is last month
    r = cli("keys", "verify", key["key"], "--cost", "0.2", "--dry-run", "--json")
    assert r.exit_code == 5 and r.json()["status"] == 429, r  # still this month's $0.90 of $1


# -- an empty period -------------------------------------------------------------------

@pytest.fixture
def september(tmp_path):
    """30 requests, one a day in September 2026, from Claude Code logs."""
    folder = tmp_path / "projects" / "-home-me-app"
    write(folder / "s1.jsonl", *(line(f"m{d}", f"r{d}", ts=f"2026-09-{d:02d}T12:00:00.000Z")
                                 for d in range(1, 31)))
    assert imported(tmp_path)["imported"] == 30
    return tmp_path


HINT = "no usage this month; 30 requests from 2026-09-01 to 2026-09-30 — try `--period all`"


@pytest.mark.parametrize("args", [["summary"], ["by-project"], ["blocks"], ["summary", "--by", "day"],
                                  ["summary", "--by", "model"], ["by-key"]])
def test_an_empty_month_says_what_exists(september, args):
    r = cli("usage", *args, "--period", "month")
    assert r.exit_code == 0 and HINT in r.stderr, r
    r = cli("usage", *args, "--json")  # data stays data; the hint goes to stderr
    assert r.exit_code == 0 and HINT in r.stderr, r
    answer = r.json()
    assert answer == [] or answer["requests"] == 0


def test_the_hint_counts_within_the_filters_and_names_the_range(september):
    r = cli("usage", "summary", "--project-id", "-home-me-app", "--since", "2026-10-05")
    assert "no usage in this range; 30 requests from 2026-09-01 to 2026-09-30" in r.stderr, r
    r = cli("usage", "summary", "--project-id", "elsewhere")
    assert "no usage this month, and none stored for these filters" in r.stderr, r
    r = cli("usage", "summary", "--last", "3")
    assert "no usage in the last 3 days; 30 requests" in r.stderr, r
    # Not empty: no hint.
    r = cli("usage", "summary", "--period", "all")
    assert r.stderr == "" and "30" in r.stdout, r


def test_the_hint_uses_the_report_zone(september, monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: 12:00Z on the 30th is Oct 1 there
    r = cli("usage", "summary")
    assert "30 requests from 2026-09-02 to 2026-10-01" in r.stderr, r


def test_an_empty_store_says_how_to_fill_it():
    create()
    r = cli("usage", "summary", "--period", "all")
    assert "no usage stored — `claude-api usage import` reads Claude Code's logs" in r.stderr, r


# -- --last, --order, --session, --week-start --------------------------------------------

def test_last_n_days_weeks_and_months():
    key = create()
    moment = now()
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    today = midnight + (moment - midnight) / 2  # today's and past, at any hour (noon was tomorrow before 12:00)
    for days in (0, 1, 2, 9, 40, 400):
        record_at(key["id"], iso(today - timedelta(days=days)), cost="1")
    assert report("summary", "--last", "1")["requests"] == 1  # today
    assert report("summary", "--last", "3")["requests"] == 3
    assert report("summary", "--last", "3", "--by", "day")[0]["period"] == (today - timedelta(days=2)).date().isoformat()
    assert len(report("summary", "--last", "3", "--by", "day")) == 3
    monday = (today - timedelta(days=today.weekday())).date()
    weeks = report("summary", "--last", "2", "--by", "week")
    assert weeks[0]["period"] == (monday - timedelta(days=7)).isoformat()
    assert sum(w["requests"] for w in weeks) == sum(1 for d in (0, 1, 2, 9, 40, 400)
                                                    if (today - timedelta(days=d)).date() >= monday - timedelta(days=7))
    months = report("summary", "--last", "2", "--by", "month")
    assert [m["period"] for m in months][-1] == today.strftime("%Y-%m")
    # --period gives the unit when there is no --by.
    assert report("summary", "--last", "2", "--period", "week")["since"] == f"{monday - timedelta(days=7)}T00:00:00Z"
    assert report("summary", "--last", "1", "--period", "month")["since"] == today.strftime("%Y-%m-01T00:00:00Z")
    assert cli("usage", "summary", "--last", "2", "--period", "all").exit_code == 2  # a range twice
    assert cli("usage", "summary", "--last", "2", "--since", "7d").exit_code == 2
    assert cli("usage", "summary", "--last", "0").exit_code == 2


def test_order_asc_and_desc():
    key = create()
    for day, cost in (("2026-02-01", "3"), ("2026-02-02", "1"), ("2026-02-04", "2")):
        record_at(key["id"], f"{day}T10:00:00Z", cost=cost)
    other = create("--project-id", "q")
    record_at(other["id"], "2026-02-01T10:00:00Z", cost="10")
    periods = [r["period"] for r in report("summary", "--by", "day", "--period", "all")]
    assert periods == ["2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04"]
    desc = [r["period"] for r in report("summary", "--by", "day", "--period", "all", "--order", "desc")]
    assert desc == periods[::-1]
    assert [r["project_id"] for r in report("by-project", "--period", "all")] == ["q", "p"]  # most first
    assert [r["project_id"] for r in report("by-project", "--period", "all", "--order", "asc")] == ["p", "q"]
    # Two levels: the first level follows --order, the second keeps its order inside.
    pairs = [(r["period"], r["project_id"]) for r in report("summary", "--by", "day,project", "--period",
                                                            "all", "--order", "desc")]
    assert pairs == [("2026-02-04", "p"), ("2026-02-02", "p"), ("2026-02-01", "q"), ("2026-02-01", "p")]
    starts = [b["start"] for b in report("blocks", "--period", "all", "--order", "desc")]
    assert starts == sorted(starts, reverse=True) and len(starts) == 3  # two requests share a block


def test_session_filter(tmp_path):
    folder = tmp_path / "projects" / "-home-me-app"
    write(folder / "s1.jsonl", line("m1", "r1", out=10, session="s1"),
          line("m2", "r2", out=20, session="s1", ts="2026-02-01T10:17:00.000Z"))
    write(folder / "s2.jsonl", line("m3", "r3", out=5, session="s2"))
    imported(tmp_path)
    key = create()
    record_at(key["id"], "2026-02-01T10:00:00Z", cost="1")  # the service's usage: no session
    assert report("summary", "--period", "all", "--session", "s1")["output_tokens"] == 30
    assert report("summary", "--period", "all", "--session", "s2")["output_tokens"] == 5
    # An edge inside an hour reads the raw rows there: still only the session's.
    assert report("summary", "--since", "2026-02-01T10:10:00Z", "--session", "s1")["output_tokens"] == 20
    assert [r["output_tokens"] for r in report("summary", "--by", "day", "--period", "all",
                                                "--session", "s1")] == [30]
    assert [(r["model"], r["requests"]) for r in report("summary", "--by", "model", "--period", "all",
                                                         "--session", "s1")] == [("claude-haiku-4-5", 2)]
    blocks = report("blocks", "--period", "all", "--session", "s1")
    assert [(b["start"], b["requests"]) for b in blocks] == [("2026-02-01T10:00:00Z", 2)]
    r = cli("usage", "export", "--format", "jsonl", "--period", "all", "--session", "s2")
    assert r.exit_code == 0 and r.stdout.count("\n") == 1 and '"session_id":"s2"' in r.stdout.replace(" ", ""), r
    assert report("summary", "--period", "all", "--session", "nope")["requests"] == 0


@pytest.mark.parametrize("start, label", [("monday", "2026-01-26"), ("sunday", "2026-02-01"),
                                          ("wed", "2026-01-28"), ("Saturday", "2026-01-31")])
def test_week_start_any_day(start, label):
    key = create()
    record_at(key["id"], "2026-02-01T10:00:00Z", cost="1")  # a Sunday
    record_at(key["id"], "2026-02-02T10:00:00Z", cost="2")  # a Monday
    weeks = report("summary", "--by", "week", "--period", "all", "--week-start", start)
    assert weeks[0]["period"] == label
    expect = {"monday": [1, 2], "sunday": [3], "wed": [3], "Saturday": [3]}[start]
    assert [w["cost_usd"] for w in weeks] == expect
    assert cli("usage", "summary", "--week-start", "someday").exit_code == 2


def test_period_week_follows_week_start():
    key = create()
    today = now()
    record_at(key["id"], iso(today - timedelta(minutes=1)), cost="1")
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"):
        since = report("summary", "--period", "week", "--week-start", day)["since"]
        start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        assert start.strftime("%A").lower() == day and timedelta(0) <= today - start < timedelta(days=7)


# -- blocks --active and --recent --------------------------------------------------------

def test_blocks_active_and_recent():
    key = create()
    t = now()
    record_at(key["id"], iso(t - timedelta(days=2)), cost="1")  # a block two days ago
    record_at(key["id"], iso(t - timedelta(days=10)), cost="4")  # and one ten days ago
    r = cli("usage", "blocks", "--active")
    assert r.exit_code == 0 and "no active block" in r.stderr, r
    assert report("blocks", "--active") == []
    assert [b["cost_usd"] for b in report("blocks", "--recent")] == [1.0]
    record_at(key["id"], iso(t - timedelta(minutes=30)), cost="2")
    record_at(key["id"], iso(t - timedelta(minutes=10)), cost="3")
    active = report("blocks", "--active")
    assert len(active) == 1 and active[0]["active"] and active[0]["cost_usd"] == 5.0
    assert active[0]["cost_usd_per_hour"] is not None
    assert [b["cost_usd"] for b in report("blocks", "--recent")] == [1.0, 5.0]
    assert [b["cost_usd"] for b in report("blocks", "--recent", "--order", "desc")] == [5.0, 1.0]
    assert cli("usage", "blocks", "--active", "--recent").exit_code == 2
    assert cli("usage", "blocks", "--active", "--period", "all").exit_code == 2
