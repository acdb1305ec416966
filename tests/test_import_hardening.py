"""Hostile input on the import side: text that must not reach the store or a terminal,
lines that crash parsers, files that are not files, records that contradict
themselves, and Ctrl-C in the middle of an import."""
import json
import os
import signal
import subprocess
import time

import pytest

from tests.helpers.cc_lines import line, write
from tests.helpers.run import EXE, cli, create, proc
from tests.helpers.store import assert_consistent, sql

BAD_TEXT = {
    "lone surrogate": "claude-\udcff",
    "C1 control (CSI)": "claude-\u009b31m",
    "bidi override": "claude-\u202egnp",
    "escape sequence": "\x1b]0;pwned\x07claude",
    "200,000 characters": "c" * 200_000,
}


def imported(*args, code=0):
    r = cli("usage", "import", *args, "--json")
    assert r.exit_code == code, r
    return r.json() if code == 0 else r


def stored_text() -> str:
    return repr(sql("SELECT request_id, project_id, model, session_id FROM usage"))


@pytest.mark.parametrize("field", ["model", "message id", "request id", "session id"])
def test_bad_text_in_a_claude_code_line_skips_that_line_only(tmp_path, field):
    folder = tmp_path / "projects" / "p"
    bad = []
    for i, value in enumerate(BAD_TEXT.values()):
        args = {"model": {"model": value}, "message id": {"msg": value},
                "request id": {"req": value}, "session id": {"session": value}}[field]
        bad.append(line(**{"msg": f"m{i}", "req": f"r{i}", **args}))
    # json.dumps writes a lone surrogate as the escape \udcff: it must not abort the import.
    write(folder / "s.jsonl", line("good", "g1", out=7), *bad)
    result = imported(tmp_path)
    assert result["imported"] == 1 and result["skipped"] == {"bad text": len(BAD_TEXT)}
    assert sql("SELECT request_id, output_tokens FROM usage") == [("cc:good:g1", 7)]
    out = cli("usage", "summary", "--by", "model", "--period", "all", "--format", "csv").stdout
    assert "\x1b" not in out and "\u202e" not in out


def test_a_project_folder_with_bad_text_is_one_warning(tmp_path):
    write(tmp_path / "projects" / "ok" / "s.jsonl", line("m1", "r1"))
    write(tmp_path / "projects" / "bad\x1b[2J" / "s.jsonl", line("m2", "r2"))
    r = cli("usage", "import", tmp_path, "--json")
    assert r.exit_code == 0, r
    assert r.json()["imported"] == 1 and r.json()["skipped"] == {"file not read": 1}
    warning = [x for x in r.stderr.splitlines() if x.startswith("Warning:")]
    assert len(warning) == 1 and "\x1b" not in r.stderr and "project folder name" in warning[0]


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


def test_an_export_with_odd_but_valid_text_re_imports(tmp_path):
    key = create("--project-id", "проект ✓")
    assert cli("usage", "record", "--key", key["id"], "--model", "modèle-ü", "--cost", "1",
               "--request-id", "🗝️-1").exit_code == 0
    out = tmp_path / "usage.jsonl"
    assert cli("usage", "export", "--format", "jsonl", "--period", "all", "-o", out).exit_code == 0
    cli("usage", "delete", "🗝️-1", "--yes")
    assert imported(out)["imported"] == 1


def test_a_line_nested_a_thousand_deep(tmp_path):
    deep = '{"message": {"usage": ' + "[" * 5000 + "]" * 5000 + "}}"
    write(tmp_path / "projects" / "p" / "s.jsonl", line("m1", "r1"), deep, line("m2", "r2"))
    result = imported(tmp_path)
    assert result["imported"] == 2 and result["skipped"] == {"unreadable line": 1}
    key = create()
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "cost_usd": 1}) + "\n"
                    + '{"key": ' + "[" * 5000 + "]" * 5000 + "}\n")
    r = imported(path, code=2)
    assert "in.jsonl:2: not valid JSON (nested too deeply)" in r.stderr


def test_what_is_not_a_regular_file_is_one_warning_each(tmp_path):
    folder = tmp_path / "projects" / "p"
    write(folder / "good.jsonl", line("m1", "r1", out=3))
    os.mkfifo(folder / "fifo.jsonl")  # opening it would wait for a writer forever
    os.symlink("/dev/zero", folder / "zero.jsonl")  # reading it would never end
    os.symlink(folder / "gone.jsonl", folder / "dangling.jsonl")
    os.symlink(folder / "loop.jsonl", folder / "loop.jsonl")
    os.symlink(folder, folder / "myself")  # a folder loop
    elsewhere = tmp_path / "elsewhere" / "-home-me-other"
    write(elsewhere / "s.jsonl", line("m2", "r2", out=4))
    os.symlink(elsewhere, tmp_path / "projects" / "linked")  # a symlinked project folder
    r = proc("usage", "import", tmp_path, "--json", timeout=30)
    assert r.exit_code == 0, r
    result = json.loads(r.stdout)
    assert result["imported"] == 2 and result["skipped"] == {"file not read": 5}
    warnings = [x for x in r.stderr.splitlines() if x.startswith("Warning:")]
    assert len(warnings) == 5 and "Traceback" not in r.stderr
    text = "\n".join(warnings)
    assert "fifo.jsonl: not read: not a regular file" in text and "zero.jsonl: not read: not a regular" in text
    assert "dangling.jsonl: not read: a dangling symlink" in text and "loop.jsonl: not read: a symlink loop" in text
    assert "myself: not read: already read" in text
    projects = {p["project_id"] for p in json.loads(proc("usage", "by-project", "--period", "all", "--json").stdout)}
    assert projects == {"p", "linked"}
    # Named on the command line, a FIFO is refused at once.
    r = proc("usage", "import", folder / "fifo.jsonl", timeout=30)
    assert r.exit_code == 2 and "is not a regular file" in r.stderr


def test_an_unreadable_log_is_one_warning(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    folder = tmp_path / "projects" / "p"
    write(folder / "a.jsonl", line("m1", "r1"))
    write(folder / "b.jsonl", line("m2", "r2"))
    (folder / "b.jsonl").chmod(0)
    r = cli("usage", "import", tmp_path, "--json")
    assert r.exit_code == 0 and r.json()["imported"] == 1 and r.json()["skipped"] == {"file not read": 1}


def test_auto_format_knows_claude_code_logs_by_their_shape(tmp_path):
    key = create()
    typo = tmp_path / "typo.jsonl"
    typo.write_text(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "input_token": 5}) + "\n")
    r = imported(typo, code=2)
    assert "typo.jsonl:1: unknown field(s) 'input_token'" in r.stderr
    log = tmp_path / "log.jsonl"
    write(log, json.dumps({"type": "file-history-snapshot", "messageId": "x", "snapshot": {}}), line("m1", "r1"))
    assert imported(log)["imported"] == 1
    summary_first = tmp_path / "summary.jsonl"
    write(summary_first, json.dumps({"type": "summary", "summary": "A chat", "leafUuid": "u"}), line("m2", "r2"))
    assert imported(summary_first)["imported"] == 1


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


def test_the_summary_line_counts_in_words(tmp_path):
    write(tmp_path / "projects" / "p" / "s.jsonl", line("m1", "r1"))
    r = cli("usage", "import", tmp_path)
    assert r.stderr.strip() == "Read 1 line from 1 file: 1 request, 1 new, 0 already stored."


def test_export_to_a_file(tmp_path):
    key = create()
    cli("usage", "record", "--key", key["id"], "--cost", "1", "--at", "2026-02-01T00:00:00Z")
    out = tmp_path / "usage.csv"
    old = os.umask(0)
    try:
        r = cli("usage", "export", "--format", "csv", "--period", "all", "-o", out)
    finally:
        os.umask(old)
    assert r.exit_code == 0 and r.stdout == "" and "Wrote 1 request to" in r.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600" and out.read_text().count("\n") == 2
    r = cli("usage", "export", "--format", "csv", "--period", "all", "--output", out)
    assert r.exit_code == 1 and "exists" in r.stderr and out.read_text().count("\n") == 2


def _interrupt(path, delay):
    child = subprocess.Popen([EXE, "usage", "import", str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    return child.returncode, err


def test_ctrl_c_says_what_was_stored_and_a_rerun_finishes(isolated, tmp_path):
    key = create()
    n = 150_000
    path = tmp_path / "usage.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"key": key["id"], "at": f"2026-0{1 + i % 9}-{1 + i % 28:02d}T00:00:00Z",
                                "model": "claude-haiku-4-5", "input_tokens": i % 100,
                                "request_id": f"r{i:07d}"}) + "\n")
    seen = set()
    for delay in (0.5, 1.5, 3.0, 5.0):
        code, err = _interrupt(path, delay)
        if code == 0 or (code == -signal.SIGINT and not err):
            continue  # it finished first, or (a loaded machine) Python had not started yet
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 130 and "Traceback" not in err and len(lines) == 1, err
        assert lines[0].startswith("Error: interrupted"), err
        seen.add("stored" if "requests were stored" in lines[0] else "reading")
        stored = sql("SELECT count(*) FROM usage")[0][0]
        if "requests were stored" in lines[0]:
            assert f"{stored:,} of {n:,} requests were stored" in lines[0]
        else:
            assert stored == 0
        assert_consistent()
    assert seen, "the import always finished first: make the file bigger"
    done = proc("usage", "import", path, "--json")
    assert done.exit_code == 0, done
    assert sql("SELECT count(*), sum(input_tokens) FROM usage") == [(n, sum(i % 100 for i in range(n)))]
    assert_consistent()
