"""Usage reports (reports.py): days, weeks and months in any time zone, --since/--until as
dates, times or relative times, exact money, one or two levels of grouping, edge
dates; every report equal to a brute-force sum of the requests it covers, and every
roll-up equal to the raw rows."""
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_keys import KeyStore
from tests.helpers.run import cli, create, record_at, report
from tests.helpers.store import USAGE_TABLES, sql


def test_ten_requests_at_ten_cents_are_exactly_one_dollar():
    key = create()
    for i in range(10):
        record_at(key["id"], f"2026-02-01T10:00:0{i}Z", cost="0.10")
    total = report("summary", "--period", "all")
    assert total["cost_usd"] == 1.0 and total["requests"] == 10
    assert cli("usage", "summary", "--period", "all").stdout.count("$1.00") == 1


def test_summary_shape_and_default_period():
    key = create()
    record_at(key["id"], datetime.now(timezone.utc).isoformat(), cost="1")
    record_at(key["id"], "2020-01-01T00:00:00Z", cost="5")
    total = report("summary")
    assert set(total) == {"since", "until", "requests", "input_tokens", "output_tokens",
                          "cache_read_tokens", "cache_write_tokens", "total_tokens", "cost_usd",
                          "unpriced_requests"}
    assert total["cost_usd"] == 1.0 and total["since"].endswith("-01T00:00:00Z") and total["until"] is None
    assert report("summary", "--period", "all")["cost_usd"] == 6.0
    assert report("summary", "--period", "day")["cost_usd"] == 1.0
    assert report("summary", "--period", "week")["cost_usd"] == 1.0


BOUNDARY_TIMES = ["2026-01-31T23:30:00Z", "2026-02-01T00:30:00Z", "2026-02-01T05:29:59.999Z",
                  "2026-02-01T05:30:00Z", "2026-02-01T23:59:59.999Z", "2026-02-02T00:00:00Z",
                  "2026-02-08T23:59:00Z", "2026-02-09T00:00:00Z", "2026-03-01T00:00:00Z"]


def test_days_weeks_months_in_utc_and_other_zones():
    key = create()
    for i, at in enumerate(BOUNDARY_TIMES):
        record_at(key["id"], at, cost=str(10 ** i / 1000))  # each time its own digit of the total

    def series(by, tz="UTC"):
        return {r["period"]: r["requests"] for r in report("summary", "--by", by, "--period", "all", "--tz", tz)}

    assert series("day") == {"2026-01-31": 1, "2026-02-01": 4, "2026-02-02": 1, "2026-02-08": 1,
                             "2026-02-09": 1, **{f"2026-02-{d:02d}": 0 for d in range(3, 8)},
                             **{f"2026-02-{d:02d}": 0 for d in range(10, 29)}, "2026-03-01": 1}
    # Weeks start on Monday: Jan 31 and Feb 1 (a Sunday) are in the week of Jan 26.
    assert series("week") == {"2026-01-26": 5, "2026-02-02": 2, "2026-02-09": 1, "2026-02-16": 0,
                              "2026-02-23": 1}
    assert series("month") == {"2026-01": 1, "2026-02": 7, "2026-03": 1}
    # New York is UTC-5: the first two records fall on Jan 31, 2026-02-02T00:00Z on Feb 1,
    # and 2026-03-01T00:00Z on Feb 28.
    ny = series("day", "America/New_York")
    assert ny["2026-01-31"] == 2 and ny["2026-02-01"] == 4 and ny["2026-02-28"] == 1
    # Kolkata is UTC+05:30: 05:29:59.999Z is Feb 1 10:59, and 23:30Z on Jan 31 is Feb 1 05:00.
    ist = series("day", "Asia/Kolkata")
    assert ist["2026-02-01"] == 4 and ist["2026-02-02"] == 2


def test_since_until_dates_and_times():
    key = create()
    for at in BOUNDARY_TIMES:
        record_at(key["id"], at, cost="1")
    assert report("summary", "--since", "2026-02-01", "--until", "2026-02-01")["requests"] == 4
    assert report("summary", "--since", "2026-02-01T00:30:00Z", "--until", "2026-02-01T05:30:00Z")["requests"] == 2
    assert report("summary", "--since", "2026-02-01", "--until", "2026-02-01", "--tz", "Asia/Kolkata")["requests"] == 4
    assert report("summary", "--until", "2026-01-31")["requests"] == 1
    assert report("summary", "--since", "2026-02-02", "--until", "2026-02-01")["requests"] == 0  # empty
    assert cli("usage", "summary", "--since", "2026-02-03", "--until", "2026-02-01").exit_code == 2
    assert cli("usage", "summary", "--tz", "Mars/Olympus").exit_code == 2
    assert cli("usage", "summary", "--since", "yesterday").exit_code == 2


def test_relative_times():
    key = create()
    now = datetime.now(timezone.utc)
    for minutes, cost in ((30, "1"), (5 * 60, "2"), (3 * 24 * 60, "4"), (10 * 24 * 60, "8")):
        r = cli("usage", "record", "--key", key["id"], "--cost", cost, "--at", f"{minutes}m")
        assert r.exit_code == 0, r
    assert report("summary", "--since", "1h")["cost_usd"] == 1
    assert report("summary", "--since", "12h")["cost_usd"] == 3
    assert report("summary", "--since", "7d")["cost_usd"] == 7
    assert report("summary", "--since", "2w", "--until", "1d")["cost_usd"] == 12
    since = report("summary", "--since", "7d")["since"]
    assert abs(datetime.fromisoformat(since.replace("Z", "+00:00")) - (now - timedelta(days=7))) < timedelta(minutes=1)
    assert cli("usage", "summary", "--since", "7x").exit_code == 2


def test_grouping_by_project_key_and_model_sorted_by_cost():
    a = create("--project-id", "alpha", "--name", "a-key")
    b = create("--project-id", "beta")
    record_at(a["id"], "2026-02-01T10:00:00Z", cost="1.5")
    record_at(b["id"], "2026-02-01T10:00:00Z", cost="4", model="claude-opus-4-5")
    record_at(b["id"], "2026-02-01T11:00:00Z", model="unknown-model-x", inp=5)
    projects = report("by-project", "--period", "all")
    assert [(r["project_id"], r["cost_usd"], r["requests"]) for r in projects] == [("beta", 4.0, 2), ("alpha", 1.5, 1)]
    by_key = report("by-key", "--period", "all")
    assert [r["key_id"] for r in by_key] == [b["id"], a["id"]]
    assert by_key[1]["name"] == "a-key" and by_key[1]["project_id"] == "alpha"
    models = {r["model"]: r for r in report("summary", "--by", "model", "--period", "all")}
    assert models["unknown-model-x"]["unpriced_requests"] == 1 and models["unknown-model-x"]["cost_usd"] == 0
    r = cli("usage", "summary", "--by", "model", "--period", "all")
    assert "1 request used a model with no price and counts as $0" in r.stderr and "unpriced" in r.stdout
    assert report("summary", "--period", "all", "--project-id", "alpha")["cost_usd"] == 1.5
    assert report("summary", "--period", "all", "--key", b["id"])["requests"] == 2


def test_two_levels():
    a, b = create("--project-id", "alpha"), create("--project-id", "beta")
    for i, (key, model, cost) in enumerate([(a, "claude-haiku-4-5", "1"), (a, "claude-opus-4-5", "3"),
                                            (b, "claude-haiku-4-5", "5"), (a, "claude-haiku-4-5", "2")]):
        r = cli("usage", "record", "--key", key["id"], "--model", model, "--cost", cost,
                "--at", f"2026-02-0{1 + i // 2}T10:00:00Z")
        assert r.exit_code == 0, r
    rows = report("summary", "--by", "day,model", "--period", "all")
    assert [(r["period"], r["model"], r["cost_usd"]) for r in rows] == [
        ("2026-02-01", "claude-opus-4-5", 3.0), ("2026-02-01", "claude-haiku-4-5", 1.0),
        ("2026-02-02", "claude-haiku-4-5", 7.0)]
    rows = report("summary", "--by", "project,model", "--period", "all")
    assert [(r["project_id"], r["model"], r["cost_usd"]) for r in rows] == [
        ("alpha", "claude-haiku-4-5", 3.0), ("alpha", "claude-opus-4-5", 3.0), ("beta", "claude-haiku-4-5", 5.0)]
    rows = report("summary", "--by", "project,day", "--period", "all")
    assert [(r["project_id"], r["period"]) for r in rows] == [
        ("alpha", "2026-02-01"), ("alpha", "2026-02-02"), ("beta", "2026-02-02")]
    rows = report("summary", "--by", "key,model", "--period", "all")
    assert {(r["key_id"], r["model"]) for r in rows} == {(a["id"], "claude-opus-4-5"), (a["id"], "claude-haiku-4-5"),
                                                         (b["id"], "claude-haiku-4-5")}
    table = cli("usage", "summary", "--by", "week,project", "--period", "all").stdout.splitlines()
    assert table[3].startswith("2026-02-02  beta") and table[4].split()[0] == "alpha"  # grouped visually
    for bad in ("day,week", "model,model", "day,model,key", "hour", ""):
        r = cli("usage", "summary", "--by", bad)
        assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1


def test_edge_dates():
    key = create()
    record_at(key["id"], "2026-02-01T00:00:00Z", cost="1")
    for args in (["--since", "0001-01-01", "--tz", "Europe/Berlin"], ["--until", "9999-12-31"],
                 ["--since", "1970-01-01", "--until", "9999-12-31", "--tz", "Pacific/Kiritimati"]):
        assert report("summary", *args)["requests"] == 1
        assert sum(r["requests"] for r in report("summary", "--by", "month", *args)) == 1


# -- every report equals the brute-force sum of what was recorded -----------------------

BASE = datetime(2026, 3, 25, tzinfo=timezone.utc)  # spans the EU DST change of 2026-03-29


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def recorded(tmp_path_factory, request):
    db = tmp_path_factory.mktemp("reports") / "keys.db"
    if request.param == "postgres":
        db = request.getfixturevalue("postgres").create_database("reports")
    rng = random.Random(7)
    store = KeyStore(db)
    from claude_keys import AuthManager

    auth = AuthManager(db)
    keys = []
    for project in ("alpha", "beta", "gamma"):
        secret = auth.generate_key(project, use_keyring=False)
        keys.append((store.check(key=secret, dry_run=True).key_id, project))
    records = []
    for i in range(600):
        key_id, project = rng.choice(keys)
        at = BASE + timedelta(minutes=rng.randint(0, 10 * 24 * 60), milliseconds=rng.randint(0, 59999))
        cost = rng.randint(0, 5_000_000)
        store.record_usage(key_id, model=rng.choice(["claude-sonnet-4-5", "claude-haiku-4-5"]),
                           input_tokens=rng.randint(0, 999), output_tokens=rng.randint(0, 99),
                           cost=cost / 1e9, at=at, request_id=f"r{i}")
        records.append((at, project, key_id, cost))
    return db, records


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Eucla"]


@pytest.mark.one_backend  # `recorded` is on each backend in turn
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(since=st.one_of(st.none(), st.integers(-2 * 24 * 60, 12 * 24 * 60)),
       length=st.one_of(st.none(), st.integers(1, 6 * 24 * 60)),
       tz=st.sampled_from(ZONES), by=st.sampled_from([None, "day", "week", "month", "project", "key"]),
       whole_hours=st.booleans(), key=st.sampled_from([None, 0, 2]))
def test_reports_equal_brute_force_sums(recorded, monkeypatch, since, length, tz, by, whole_hours, key):
    """Every report, over any window in any zone, filtered by key or not, equals the sum
    of the records it covers (roll-ups, hourly edges and raw edges all agree)."""
    db, records = recorded
    monkeypatch.setenv("CLAUDE_API_DB", str(db))
    args = ["--tz", tz]
    if key is not None:
        key = sorted({r[2] for r in records})[key]
        args += ["--key", key]
        records = [r for r in records if r[2] == key]
    lo = hi = None
    if since is not None:
        lo = BASE + timedelta(minutes=since - (since % 60 if whole_hours else 0))
        args += ["--since", lo.isoformat()]
    if length is not None:
        hi = (lo or BASE) + timedelta(minutes=length)
        args += ["--until", hi.isoformat()]
    if lo is None and hi is None:
        args += ["--period", "all"]
    chosen = [r for r in records if (lo is None or r[0] >= lo) and (hi is None or r[0] < hi)]
    zone = ZoneInfo(tz)

    def label(at):
        local = at.astimezone(zone).date()
        if by == "week":
            local -= timedelta(days=local.weekday())
        return local.isoformat()[:7] if by == "month" else local.isoformat()

    if by is None:
        got = report("summary", *args)
        assert (got["requests"], round(got["cost_usd"] * 1e9)) == (len(chosen), sum(r[3] for r in chosen))
    elif by in ("project", "key"):
        column = f"{by}_id"
        got = {r[column]: (r["requests"], round(r["cost_usd"] * 1e9)) for r in report(f"by-{by}", *args)}
        want = {}
        for at, project, key_id, cost in chosen:
            group = project if by == "project" else key_id
            n, c = want.get(group, (0, 0))
            want[group] = (n + 1, c + cost)
        assert got == want
    else:
        got = {r["period"]: (r["requests"], round(r["cost_usd"] * 1e9))
               for r in report("summary", "--by", by, *args) if r["requests"]}
        want = {}
        for at, _, _, cost in chosen:
            n, c = want.get(label(at), (0, 0))
            want[label(at)] = (n + 1, c + cost)
        assert got == want


@pytest.mark.one_backend
def test_rollups_always_equal_the_raw_rows(recorded):
    db, _ = recorded
    sums = "count(*), sum(input_tokens), sum(output_tokens), sum(cost_nanos)"
    raw = sql(f"SELECT {sums} FROM usage", db=db)
    for table in USAGE_TABLES[1:]:
        assert sql(f"SELECT sum(requests), sum(input_tokens), sum(output_tokens), "
                   f"sum(cost_nanos) FROM {table}", db=db) == raw
