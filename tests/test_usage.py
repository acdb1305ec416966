"""Usage reports: periods and time zones, exact money, grouping, export/import round trips."""
import json
import multiprocessing
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_keys import KeyStore
from tests.helpers.run import cli, create
from tests.helpers.store import sql


def record(key, at, cost=None, model="claude-sonnet-4-5", inp=100, out=10, read=0, write=0, rid=None):
    args = ["usage", "record", "--key", key, "--at", at, "--model", model, "--input-tokens", inp,
            "--output-tokens", out, "--cache-read-tokens", read, "--cache-write-tokens", write]
    if cost is not None:
        args += ["--cost", cost]
    if rid:
        args += ["--request-id", rid]
    r = cli(*args)
    assert r.exit_code == 0, r


def report(*args):
    r = cli("usage", *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


def test_ten_requests_at_ten_cents_are_exactly_one_dollar():
    key = create()
    for i in range(10):
        record(key["id"], f"2026-02-01T10:00:0{i}Z", cost="0.10")
    total = report("summary", "--period", "all")
    assert total["cost_usd"] == 1.0 and total["requests"] == 10
    assert cli("usage", "summary", "--period", "all").stdout.count("$1.00") == 1


def test_summary_shape_and_default_period():
    key = create()
    record(key["id"], datetime.now(timezone.utc).isoformat(), cost="1")
    record(key["id"], "2020-01-01T00:00:00Z", cost="5")
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
        record(key["id"], at, cost=str(10 ** i / 1000))  # each time its own digit of the total

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
        record(key["id"], at, cost="1")
    assert report("summary", "--since", "2026-02-01", "--until", "2026-02-01")["requests"] == 4
    assert report("summary", "--since", "2026-02-01T00:30:00Z", "--until", "2026-02-01T05:30:00Z")["requests"] == 2
    assert report("summary", "--since", "2026-02-01", "--until", "2026-02-01", "--tz", "Asia/Kolkata")["requests"] == 4
    assert report("summary", "--until", "2026-01-31")["requests"] == 1
    assert report("summary", "--since", "2026-02-02", "--until", "2026-02-01")["requests"] == 0  # empty
    assert cli("usage", "summary", "--since", "2026-02-03", "--until", "2026-02-01").exit_code == 2
    assert cli("usage", "summary", "--tz", "Mars/Olympus").exit_code == 2
    assert cli("usage", "summary", "--since", "yesterday").exit_code == 2


def test_grouping_by_project_key_and_model_sorted_by_cost():
    a = create("--project-id", "alpha", "--name", "a-key")
    b = create("--project-id", "beta")
    record(a["id"], "2026-02-01T10:00:00Z", cost="1.5")
    record(b["id"], "2026-02-01T10:00:00Z", cost="4", model="claude-opus-4-5")
    record(b["id"], "2026-02-01T11:00:00Z", model="unknown-model-x", inp=5)
    projects = report("by-project", "--period", "all")
    assert [(r["project_id"], r["cost_usd"], r["requests"]) for r in projects] == [("beta", 4.0, 2), ("alpha", 1.5, 1)]
    by_key = report("by-key", "--period", "all")
    assert [r["key_id"] for r in by_key] == [b["id"], a["id"]]
    assert by_key[1]["name"] == "a-key" and by_key[1]["project_id"] == "alpha"
    models = {r["model"]: r for r in report("summary", "--by", "model", "--period", "all")}
    assert models["unknown-model-x"]["unpriced_requests"] == 1 and models["unknown-model-x"]["cost_usd"] == 0
    r = cli("usage", "summary", "--by", "model", "--period", "all")
    assert "1 request(s) used a model with no price" in r.stderr and "unpriced" in r.stdout
    assert report("summary", "--period", "all", "--project-id", "alpha")["cost_usd"] == 1.5
    assert report("summary", "--period", "all", "--key", b["id"])["requests"] == 2


def test_human_tables_have_a_total_row_and_no_bars_off_a_terminal():
    key = create()
    record(key["id"], "2026-02-01T10:00:00Z", cost="1")
    record(key["id"], "2026-02-03T10:00:00Z", cost="2")
    out = cli("usage", "summary", "--by", "day", "--period", "all").stdout
    assert out.splitlines()[-1].startswith("total") and "$3.00" in out.splitlines()[-1]
    assert "█" not in out and "\x1b[" not in out


def test_bars_are_proportional():
    from claude_keys.render import bar

    assert bar(1.0, 10) == "█" * 10 and bar(0.0, 10) == "" and bar(0.5, 10) == "█" * 5
    assert len(bar(0.26, 10)) == 3 and bar(0.26, 10)[-1] != "█"


# --- every report equals the brute-force sum of what was recorded -----------------------

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


USAGE_TABLES = ("usage", "usage_daily", "usage_hourly", "usage_project_daily")


def empty_usage():
    from claude_keys import db as store

    conn = store.connect()
    with conn.transaction():
        for table in USAGE_TABLES:
            conn.execute(f"DELETE FROM {table}")
    conn.close()


@pytest.mark.one_backend
def test_rollups_always_equal_the_raw_rows(recorded):
    db, _ = recorded
    sums = "count(*), sum(input_tokens), sum(output_tokens), sum(cost_nanos)"
    raw = sql(f"SELECT {sums} FROM usage", db=db)
    for table in USAGE_TABLES[1:]:
        assert sql(f"SELECT sum(requests), sum(input_tokens), sum(output_tokens), "
                   f"sum(cost_nanos) FROM {table}", db=db) == raw


# --- export and import -----------------------------------------------------------------

def _reports():
    return [report(*args) for args in (["summary", "--period", "all"], ["by-project", "--period", "all"],
                                       ["by-key", "--period", "all"],
                                       ["summary", "--by", "day", "--period", "all"],
                                       ["summary", "--by", "model", "--period", "all"])]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_reimports_to_identical_reports(tmp_path, isolated, fmt):
    a, b = create("--project-id", "alpha"), create("--project-id", "beta")
    rng = random.Random(3)
    for i in range(60):
        record(rng.choice([a, b])["id"], f"2026-02-{1 + i % 20:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
               cost=None if i % 3 else f"0.{i:03d}", model=rng.choice(["claude-sonnet-4-5", "claude-opus-4-1", "mystery"]),
               inp=rng.randint(0, 5000), out=rng.randint(0, 500), read=rng.randint(0, 90000), write=rng.randint(0, 900))
    before = _reports()
    exported = tmp_path / f"usage.{fmt}"
    r = cli("usage", "export", "--format", fmt, "--period", "all")
    assert r.exit_code == 0
    exported.write_text(r.stdout)
    empty_usage()
    assert report("summary", "--period", "all")["requests"] == 0
    r = cli("usage", "import", exported, "--json")
    assert r.exit_code == 0, r
    assert r.json()["imported"] == 60
    assert _reports() == before
    again = cli("usage", "import", exported, "--json").json()
    assert again["imported"] == 0 and again["already_stored"] == 60
    assert _reports() == before


def test_export_filters(tmp_path):
    a, b = create("--project-id", "alpha"), create("--project-id", "beta")
    record(a["id"], "2026-02-01T10:00:00Z", cost="1")
    record(b["id"], "2026-02-02T10:00:00Z", cost="1")
    lines = cli("usage", "export", "--format", "jsonl", "--project-id", "beta", "--period", "all").stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["key"] == b["id"]
    lines = cli("usage", "export", "--format", "jsonl", "--until", "2026-02-01").stdout.splitlines()
    assert [json.loads(line)["project_id"] for line in lines] == ["alpha"]


BAD_LINES = [
    ('{"key": "KEY", "at": "2026-02-01T00:00:00Z"}\n{"key": "KEY", "at": "nope"}\n', "2:", "not a time"),
    ('{"key": "KEY", "at": "2026-02-01T00:00:00Z", "input_tokens": -3}\n', "1:", "non-negative"),
    ('{"key": "KEY", "at": "2026-02-01T00:00:00Z"}\n{"key": "KEY", "at": "2026-02-01T00:00:00Z"\n', "2:", "not valid JSON"),
    ('{"key": "ffffffffffff", "at": "2026-02-01T00:00:00Z"}\n', "1:", "no key"),
    ('{"key": "KEY", "at": "2026-02-01T00:00:00Z", "input_token": 5}\n', "1:", "unknown field"),
    ('{"key": "KEY", "at": "2026-02-01T00:00:00Z", "cost_usd": "lots"}\n', "1:", "not an amount"),
    ('{"at": "2026-02-01T00:00:00Z"}\n', "1:", "no key"),
    ('[1, 2]\n', "1:", "JSON object"),
]


@pytest.mark.parametrize("text, where, what", BAD_LINES)
def test_a_malformed_line_fails_the_whole_import(tmp_path, text, where, what):
    key = create()
    good = "".join(f'{{"key": "{key["id"]}", "at": "2026-01-0{i + 1}T00:00:00Z", "cost_usd": 1}}\n' for i in range(3))
    path = tmp_path / "in.jsonl"
    path.write_text(good + text.replace("KEY", key["id"]))
    r = cli("usage", "import", path)
    assert r.exit_code == 2, r
    line = int(where[:-1]) + 3
    assert f"in.jsonl:{line}:" in r.stderr and what in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert report("summary", "--period", "all")["requests"] == 0


def test_csv_problems_name_their_line(tmp_path):
    key = create()
    path = tmp_path / "in.csv"
    path.write_text(f"key,at,input_tokens\n{key['id']},2026-02-01T00:00:00Z,5\n{key['id']},2026-02-01T00:00:00Z,five\n")
    r = cli("usage", "import", path)
    assert r.exit_code == 2 and "in.csv:3:" in r.stderr
    path.write_text("key,when\nx,y\n")
    r = cli("usage", "import", path)
    assert r.exit_code == 2 and "unknown column" in r.stderr
    path.write_bytes(b"key,at\n\xff\xfe,2026\n")
    r = cli("usage", "import", path)
    assert r.exit_code == 2 and "UTF-8" in r.stderr
    assert report("summary", "--period", "all")["requests"] == 0


def test_records_without_request_id_reimport_to_nothing(tmp_path):
    key = create()
    path = tmp_path / "in.jsonl"
    path.write_text("".join(f'{{"key": "{key["key"]}", "at": "2026-02-01T00:00:0{i}Z", "model": "claude-haiku-4-5", '
                            f'"input_tokens": 1000000}}\n' for i in range(4)))
    assert cli("usage", "import", path, "--json").json()["imported"] == 4
    assert cli("usage", "import", path, "--json").json()["imported"] == 0
    assert report("summary", "--period", "all")["cost_usd"] == 4.0  # priced from the table: $1/M


def test_user_prices_override_and_add_models(tmp_path, monkeypatch):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"my-model": {"input": 2, "output": 4, "cache_read": 0.2,
                                                "cache_write_5m": 2.5, "cache_write_1h": 4},
                                   "claude-sonnet-4-5": {"input": 1, "output": 1, "cache_read": 0,
                                                         "cache_write_5m": 0, "cache_write_1h": 0}}))
    monkeypatch.setenv("CLAUDE_API_PRICES", str(prices))
    key = create()
    record(key["id"], "2026-02-01T00:00:00Z", model="my-model-20260101", inp=1_000_000, out=1_000_000)
    record(key["id"], "2026-02-01T00:00:00Z", model="claude-sonnet-4-5", inp=1_000_000, out=0)
    assert report("summary", "--period", "all")["cost_usd"] == 7.0


def _record_many(args):
    db, key_id, tag, n = args
    store = KeyStore(db)
    for i in range(n):
        store.record_usage(key_id, input_tokens=3, output_tokens=1, cost="0.001", request_id=f"{tag}-{i}",
                           at=f"2026-02-0{1 + i % 3}T12:00:00Z")
    return n


def _import_file(args):
    db, path = args
    from claude_keys.cli import cli as root

    try:
        root.main(["--db", db, "usage", "import", path], prog_name="claude-api")
    except SystemExit as e:
        return e.code
    return 0


def test_imports_and_recorders_at_once_lose_nothing(isolated, tmp_path):
    """Two imports of overlapping files and four recorders, all at once: every request
    stored exactly once, and the roll-ups agree with the rows."""
    key = create()
    files = []
    for f in range(2):
        path = tmp_path / f"part{f}.jsonl"
        path.write_text("".join(
            f'{{"key": "{key["id"]}", "at": "2026-02-0{1 + i % 5}T0{i % 10}:00:00Z", '
            f'"input_tokens": 10, "cost_usd": 0.01, "request_id": "imp-{i}"}}\n'
            for i in range(f * 500, f * 500 + 1500)))
        files.append(str(path))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        imports = pool.map_async(_import_file, [(str(isolated), p) for p in files])
        recorded = pool.map_async(_record_many, [(str(isolated), key["id"], f"w{i}", 100) for i in range(4)])
        assert imports.get() == [0, 0] and sum(recorded.get()) == 400
    total = report("summary", "--period", "all")
    assert total["requests"] == 2000 + 400 and total["input_tokens"] == 2000 * 10 + 400 * 3
    assert round(total["cost_usd"], 6) == round(2000 * 0.01 + 400 * 0.001, 6)
    raw = sql("SELECT count(*), sum(cost_nanos) FROM usage")
    for table in USAGE_TABLES[1:]:
        assert sql(f"SELECT sum(requests), sum(cost_nanos) FROM {table}") == raw


def test_many_processes_recording_lose_nothing(isolated):
    key = create()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        done = sum(pool.map(_record_many, [(str(isolated), key["id"], f"w{i}", 150) for i in range(6)]))
    total = report("summary", "--period", "all")
    assert total["requests"] == done == 900 and total["input_tokens"] == 2700 and total["cost_usd"] == 0.9
    days = report("summary", "--by", "day", "--period", "all")
    assert [d["requests"] for d in days] == [300, 300, 300]


def test_progress_bar_only_on_a_terminal_and_only_after_a_moment(monkeypatch):
    import sys

    from claude_keys.cli.usage import _progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    with _progress() as progress:
        assert progress is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with _progress() as progress:
        progress(total_bytes=100, advance_bytes=10)
        assert progress.bar is None  # too soon to be worth drawing
        progress.start -= 1.0
        progress(advance_bytes=10)
        assert progress.bar is not None and progress.done == 20
        progress(phase="storing", done=5, total=10)


def test_parallel_import_equals_in_process(tmp_path, monkeypatch, isolated):
    """Big inputs are parsed by worker processes in byte ranges: same result, and an
    error deep in the file still names its real line."""
    from claude_keys import db as store
    from claude_keys.importers import import_files, units

    monkeypatch.setattr(units, "CHUNK", 4096)  # many parts, cut mid-line
    key = create()
    path = tmp_path / "big.jsonl"
    path.write_text("".join(
        f'{{"key": "{key["id"]}", "at": "2026-02-0{1 + i % 7}T{i % 24:02d}:00:00Z", "input_tokens": {i}, '
        f'"model": "claude-haiku-4-5", "request_id": "r{i % 900}"}}\n' for i in range(1000)))
    conn = store.connect()
    parallel = import_files(conn, [str(path)], db_path=str(isolated), workers=2)
    assert (parallel.lines, parallel.staged, parallel.imported) == (1000, 900, 900)
    total = report("summary", "--period", "all")
    assert total["input_tokens"] == sum(range(900))  # the first copy of each id wins
    empty_usage()
    import_files(conn, [str(path)], workers=1)
    assert report("summary", "--period", "all") == total
    with open(path, "a") as f:
        f.write('{"key": "x", "at": "2026-02-01T00:00:00Z"}\n' * 3 + "not json\n")
    with pytest.raises(Exception) as error:
        import_files(conn, [str(path)], db_path=str(isolated), workers=2)
    assert "big.jsonl:1001: no key matches that reference: give a key id" in str(error.value)
    conn.close()


def test_any_request_id_is_imported(tmp_path):
    """Request ids are any printable text, high code points included."""
    key = create()
    path = tmp_path / "odd.jsonl"
    ids = ["🗝️" * 3, "zzz", "ü-1", "a b"]
    path.write_text("".join(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "request_id": i,
                                        "cost_usd": 1}) + "\n" for i in ids))
    assert cli("usage", "import", path, "--json").json()["imported"] == 4


def test_edge_dates():
    key = create()
    record(key["id"], "2026-02-01T00:00:00Z", cost="1")
    for args in (["--since", "0001-01-01", "--tz", "Europe/Berlin"], ["--until", "9999-12-31"],
                 ["--since", "1970-01-01", "--until", "9999-12-31", "--tz", "Pacific/Kiritimati"]):
        assert report("summary", *args)["requests"] == 1
        assert sum(r["requests"] for r in report("summary", "--by", "month", *args)) == 1


def test_one_hour_cache_writes_survive_an_export(tmp_path, isolated):
    key = create()
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "model": "mystery-model",
                                "cache_write_tokens": 3_000_000, "cache_write_1h_tokens": 1_000_000}) + "\n")
    assert cli("usage", "import", path).exit_code == 0
    exported = cli("usage", "export", "--format", "jsonl", "--period", "all").stdout
    assert json.loads(exported)["cache_write_1h_tokens"] == 1_000_000
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"mystery-model": {"input": 0, "output": 0, "cache_read": 0,
                                                    "cache_write_5m": 1, "cache_write_1h": 100}}))
    empty_usage()
    path.write_text(exported)
    assert cli("usage", "import", path, env={"CLAUDE_API_PRICES": str(prices)}).exit_code == 0
    assert report("summary", "--period", "all")["cost_usd"] == 2 + 100  # 2M at $1, 1M at $100
