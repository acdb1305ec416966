"""`usage import` of records (importers/records.py: jsonl and csv): a bad line fails the
whole import and names its line, records must agree with themselves, the first stored
copy of a request id stays, big files are parsed by worker processes with the same
result, imports beside recorders lose nothing; the progress bar, and Ctrl-C, which
says what was stored."""
import json
import signal
import subprocess
import time

import pytest

from tests.helpers.cc_lines import line, write
from tests.helpers.hostile import BAD_TEXT
from tests.helpers.processes import finished_before, started_before
from tests.helpers.run import EXE, cli, create, imported, proc, report, total
from tests.helpers.store import USAGE_TABLES, assert_consistent, empty_usage, sql
from tests.helpers.workers import record_many, spawn_pool

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


def test_any_request_id_is_imported(tmp_path):
    """Request ids are any printable text, high code points included."""
    key = create()
    path = tmp_path / "odd.jsonl"
    ids = ["🗝️" * 3, "zzz", "ü-1", "a b"]
    path.write_text("".join(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "request_id": i,
                                        "cost_usd": 1}) + "\n" for i in ids))
    assert cli("usage", "import", path, "--json").json()["imported"] == 4


def test_records_keep_the_first_stored_copy(tmp_path):
    key = create()
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "output_tokens": 5,
                                "model": "claude-haiku-4-5", "request_id": "r1"}) + "\n")
    imported(path)
    path.write_text(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "output_tokens": 800,
                                "model": "claude-haiku-4-5", "request_id": "r1"}) + "\n")
    again = imported(path)
    assert (again["imported"], again["replaced"], again["already_stored"]) == (0, 0, 1)
    assert total()[2] == 5


@pytest.mark.parametrize("what, value", list(BAD_TEXT.items()))
@pytest.mark.parametrize("field", ["model", "project_id", "request_id", "session_id", "key"])
def test_bad_text_in_a_record_fails_with_its_line(tmp_path, what, value, field):
    key = create()
    good = {"key": key["id"], "at": "2026-02-01T00:00:00Z", "cost_usd": 1}
    path = tmp_path / "in.jsonl"
    bad = {**good, field: value}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    r = imported(path, code=2)
    assert "in.jsonl:2:" in r.stderr and len(r.stderr.splitlines()) == 1 and "\x1b" not in r.stderr
    assert sql("SELECT count(*) FROM usage") == [(0,)]
    if "\udcff" in value:
        return  # the csv module writes text: a lone surrogate cannot be in a csv file
    csv_path = tmp_path / "in.csv"
    import csv

    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(list(bad))
        writer.writerow(list(good.values()) + [""] * (len(bad) - len(good)))
        writer.writerow(list(bad.values()))
    r = imported(csv_path, code=2)
    assert "in.csv:3:" in r.stderr and "\x1b" not in r.stderr


def test_records_that_contradict_themselves(tmp_path):
    alpha, beta = create("--project-id", "alpha"), create("--project-id", "beta")
    path = tmp_path / "in.jsonl"
    good = {"key": alpha["id"], "at": "2026-02-01T00:00:00Z", "cost_usd": 1}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "project_id": "beta"}) + "\n")
    r = imported(path, code=2)
    assert "in.jsonl:2: project_id 'beta' is not the project of its key" in r.stderr
    # A Claude Code request keeps its log's folder as project (`usage import --key`).
    path.write_text(json.dumps({**good, "project_id": "-home-me-app", "request_id": "cc:m:r"}) + "\n")
    assert imported(path)["imported"] == 1
    # Without a key of its own, --key attributes it and the project stays.
    path.write_text(json.dumps({"project_id": "gamma", "at": "2026-02-01T00:00:00Z", "cost_usd": 2}) + "\n")
    assert imported(path, "--key", beta["id"])["imported"] == 1
    # A request with neither a model nor a cost could never be priced.
    r = cli("usage", "record", "--key", alpha["id"], "--input-tokens", "5")
    assert r.exit_code == 2 and "model" in r.stderr
    from claude_keys import InvalidInput, KeyStore

    with pytest.raises(InvalidInput):
        KeyStore().record_usage(alpha["id"], input_tokens=5)
    future = {**good, "at": "2099-01-01T00:00:00Z"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(future) + "\n")
    r = imported(path, code=2)
    assert "in.jsonl:2: the time 2099-01-01T00:00:00Z is more than a day in the future" in r.stderr
    write(tmp_path / "projects" / "p" / "s.jsonl", line("m1", "r1", ts="2099-01-01T00:00:00Z"))
    assert imported(tmp_path / "projects")["skipped"] == {"time in the future": 1}


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
    assert "big.jsonl:1001: no key matches the key field 'x': give a key id" in str(error.value)
    conn.close()


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
    with spawn_pool(6) as pool:
        imports = pool.map_async(_import_file, [(str(isolated), p) for p in files])
        recorded = pool.map_async(record_many, [(str(isolated), key["id"], f"w{i}", 100) for i in range(4)])
        assert imports.get() == [0, 0] and sum(recorded.get()) == 400
    total = report("summary", "--period", "all")
    assert total["requests"] == 2000 + 400 and total["input_tokens"] == 2000 * 10 + 400 * 3
    assert round(total["cost_usd"], 6) == round(2000 * 0.01 + 400 * 0.001, 6)
    raw = sql("SELECT count(*), sum(cost_nanos) FROM usage")
    for table in USAGE_TABLES[1:]:
        assert sql(f"SELECT sum(requests), sum(cost_nanos) FROM {table}") == raw


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


def test_the_progress_description_is_never_markup():
    from claude_keys.cli.usage import _described

    assert _described("logs of [bold]proj[/x]") == "logs of \\[bold]proj\\[/x]"


def _interrupt(path, delay):
    child = subprocess.Popen([EXE, "usage", "import", str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    return child.returncode, err


def test_ctrl_c_says_what_was_stored_and_a_rerun_finishes(isolated, tmp_path):
    key = create()
    n = 100_000
    path = tmp_path / "usage.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"key": key["id"], "at": f"2026-0{1 + i % 9}-{1 + i % 28:02d}T00:00:00Z",
                                "model": "claude-haiku-4-5", "input_tokens": i % 100,
                                "request_id": f"r{i:07d}"}) + "\n")
    seen = set()
    for delay in (0.4, 1.2, 2.0):
        before = sql("SELECT count(*) FROM usage")[0][0]
        code, err = _interrupt(path, delay)
        if finished_before(signal.SIGINT, code, err):
            assert sql("SELECT count(*) FROM usage")[0][0] == n, err
            continue
        if started_before(signal.SIGINT, code, err):
            continue  # (a loaded machine) Python had not started yet
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 130 and "Traceback" not in err and len(lines) == 1, err
        assert lines[0].startswith("Error: interrupted"), err
        seen.add("stored" if "requests were stored" in lines[0] else "reading")
        stored = sql("SELECT count(*) FROM usage")[0][0]
        if "requests were stored" in lines[0]:  # this run's, and those an earlier run stored
            assert f"{stored - before:,} of {n:,} requests were stored" in lines[0], err
            assert (f"({before:,} more were stored already)" in lines[0]) == (before > 0), err
        elif "done by then is stored" in lines[0]:  # after the import ended, as it cleaned up
            assert stored == n, err
        else:
            assert stored == before  # interrupted while reading: this run stored nothing
        assert_consistent()
    assert seen, "the import always finished first: make the file bigger"
    done = proc("usage", "import", path, "--json")
    assert done.exit_code == 0, done
    assert sql("SELECT count(*), sum(input_tokens) FROM usage") == [(n, sum(i % 100 for i in range(n)))]
    assert_consistent()


@pytest.mark.one_backend
def test_an_interrupted_rerun_says_what_an_earlier_run_stored():
    """A rerun meets the part an interrupted run stored: it says so, rather than call
    everything it did not store itself "not stored"."""
    from types import SimpleNamespace

    from claude_keys.importers import _stored_so_far

    def said(imported, merged):
        return _stored_so_far(SimpleNamespace(total=100_000, imported=imported, replaced=0, merged=merged), "it")

    assert said(50_000, 50_000) == "50,000 of 100,000 requests were stored before it, the rest were not"
    assert said(20_000, 70_000) == ("20,000 of 100,000 requests were stored before it (50,000 more were stored "
                                    "already), the rest were not")
    assert said(50_000, 100_000) == "50,000 of 100,000 requests were stored before it (50,000 more were stored already)"
