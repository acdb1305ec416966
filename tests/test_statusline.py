"""`usage statusline` (claude_keys/statusline.py, run through claude_keys/launch.py): one
line for Claude Code's status bar, from the JSON Claude Code pipes in. It imports only
the bytes appended to the session's transcript since the last call, never fails the
bar (exit 0 and a short fallback whatever goes wrong), never waits on the store longer
than its bound, and loads nothing it does not use."""
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from claude_keys.launch import statusline_store
from tests.helpers.cc_lines import append, line
from tests.helpers.live_logs import add_requests, midday_zone, payload, stamp, transcript
from tests.helpers.processes import dies_with_this_process
from tests.helpers.run import EXE, cli, proc

FALLBACK = "Haiku 4.5 · usage unavailable"


@pytest.fixture
def session(tmp_path, monkeypatch):
    """A transcript under a Claude config folder, "today" set where it is midday."""
    monkeypatch.setenv("CLAUDE_API_TZ", midday_zone())
    monkeypatch.setenv("TZ", "UTC")
    return transcript(tmp_path / "claude")


def status(path, **kwargs) -> list[str]:
    """The line's parts, from the command in this process (what Claude Code runs, a
    process of the installed program, is checked by the tests that start one: its exit
    code, its one line, its fallback, its wait bounds)."""
    r = cli("usage", "statusline", input=payload(path, **kwargs))
    assert r.exit_code == 0 and r.stderr == "", r
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, r
    return r.stdout.rstrip("\n").split(" · ")


def test_a_session_costs_what_its_transcript_holds(session):
    add_requests(session, 1, 3, minutes_ago=[3, 2, 1])
    parts = status(session)
    assert parts[:4] == ["Haiku 4.5", "$0.06 session", "$0.06 today", parts[3]]
    assert parts[3].startswith("$0.06 block (") and parts[3].endswith(" left)")
    assert parts[4] == "$1.80/h"  # $0.06 between the first request and the last, 2 minutes apart


def test_only_the_new_bytes_are_read(session):
    first = add_requests(session, 1, 3, minutes_ago=[3, 2, 1])
    assert status(session)[1] == "$0.06 session"
    # Take the imported requests back out of the store: were the transcript read again
    # from its start, they would come back.
    assert cli("usage", "delete", *first, "--yes").exit_code == 0
    add_requests(session, 4, 2, minutes_ago=[0.5, 0.2])
    parts = status(session)
    assert parts[1:3] == ["$0.04 session", "$0.04 today"]  # exactly the two new lines
    assert status(session)[1] == "$0.04 session"  # nothing appended: nothing changes


def test_the_cost_grows_by_exactly_the_appended_lines(session):
    add_requests(session, 1, 2, minutes_ago=[3, 2])
    assert status(session)[1] == "$0.04 session"
    for n, expected in ((3, "$0.06"), (4, "$0.08")):
        add_requests(session, n, 1, minutes_ago=[1])
        assert status(session)[1] == f"{expected} session"


def test_a_response_written_in_blocks_counts_once_at_its_final_size(session):
    # Claude Code writes a response once per content block, the usage growing.
    append(session, line("msg_1", "req_1", inp=10_000, out=10, model="claude-haiku-4-5-20251001", ts=stamp(2),
                         session=session.stem))
    assert status(session)[1] == "$0.01 session"  # $0.01 + 10 output tokens ($0.00005), to the cent
    append(session, line("msg_1", "req_1", inp=10_000, out=2_000, model="claude-haiku-4-5-20251001",
                         ts=stamp(2), session=session.stem))
    assert status(session)[1] == "$0.02 session"


def test_subagents_count_in_their_session(session):
    add_requests(session, 1, 1, minutes_ago=[2])
    agent = session.parent / session.stem / "subagents" / "agent-1.jsonl"
    agent.parent.mkdir(parents=True)
    add_requests(agent, 10, 2, minutes_ago=[1.5, 1], session=session.stem)
    assert status(session)[1] == "$0.06 session"


def test_other_sessions_count_today_but_not_in_this_session(session):
    other = transcript(session.parents[2], session="11111111-2222-4333-8444-555555555555")
    add_requests(other, 100, 2, minutes_ago=[4, 3])
    assert status(other)[1] == "$0.04 session"
    add_requests(session, 1, 1, minutes_ago=[1])
    assert status(session)[1:3] == ["$0.02 session", "$0.06 today"]


def test_click_path_gives_the_same_line(session):
    add_requests(session, 1, 2, minutes_ago=[2, 1])
    r = cli("usage", "statusline", input=payload(session))
    assert r.exit_code == 0 and r.stdout.startswith("Haiku 4.5 · $0.04 session · $0.04 today · $0.04 block ("), r
    assert status(session)[:3] == ["Haiku 4.5", "$0.04 session", "$0.04 today"]


def test_no_active_block_and_no_session_yet(session):
    # A new session: Claude Code has not written its transcript yet.
    parts = status(session)
    assert parts == ["Haiku 4.5", "$0.00 session", "$0.00 today", "no active block"]


def _key(*limits, project="-home-user-app") -> str:
    r = cli("keys", "create", f"--project-id={project}", "--name", "laptop", *limits, "--json")
    assert r.exit_code == 0, r
    return r.json()["id"]


def _least_left(key: str) -> float:
    """What `keys show` and `projects show` say: the least left of their budgets."""
    shown = cli("keys", "show", key, "--json").json()
    project = cli("projects", "show", "--json", "--", shown["project_id"]).json()
    left = [b["left_usd"] for b in shown["current"]["budgets"] + project["budgets"]]
    return min(left)


def test_a_session_imported_with_a_key_shows_the_budget_left(session):
    # Budgets count days in their own zone: one where it is about noon, so that the last
    # minutes are today's whenever the suite runs (at 00:02 UTC they were yesterday's).
    assert cli("db", "settings", "budget-tz", midday_zone()).exit_code == 0
    key = _key("--daily-budget", "1", "--monthly-budget", "5")
    add_requests(session, 1, 3, minutes_ago=[3, 2, 1])
    assert cli("usage", "import", str(session), "--key", key).exit_code == 0
    parts = status(session)
    assert parts[1] == "$0.06 session" and parts[-1] == "$0.94 budget left (daily)"
    assert _least_left(key) == 0.94
    # The lines appended since are the session's: the status line imports them under its key.
    add_requests(session, 4, 2, minutes_ago=[0.5, 0.2])
    parts = status(session)
    assert parts[1] == "$0.10 session" and parts[-1] == "$0.90 budget left (daily)"
    assert cli("keys", "show", key, "--json").json()["current"]["day_cost_usd"] == 0.1


def test_the_project_budget_shows_when_it_is_the_tightest(session):
    key = _key("--monthly-budget", "5")
    assert cli("projects", "set", "--weekly-budget", "0.5", "--", "-home-user-app").exit_code == 0
    add_requests(session, 1, 2, minutes_ago=[2, 1])
    assert cli("usage", "import", str(session), "--key", key).exit_code == 0
    assert status(session)[-1] == "$0.46 budget left (project weekly)"


def test_the_budget_left_is_counted_in_the_budget_time_zone(session):
    assert cli("db", "settings", "budget-tz", "Pacific/Kiritimati").exit_code == 0  # UTC+14
    key = _key("--daily-budget", "1")
    add_requests(session, 1, 1, minutes_ago=[1])
    add_requests(session, 2, 1, minutes_ago=[15 * 60])  # today there or not, by the hour
    assert cli("usage", "import", str(session), "--key", key).exit_code == 0
    zone = ZoneInfo("Pacific/Kiritimati")
    now = datetime.now(zone)
    today_there = (now - timedelta(hours=15)).date() == now.date()
    expected = "$0.96" if today_there else "$0.98"
    assert status(session)[-1] == f"{expected} budget left (daily)"
    assert f"${_least_left(key):.2f}" == expected


def test_no_budget_part_without_a_key_or_without_budgets(session):
    add_requests(session, 1, 1, minutes_ago=[1])
    other = transcript(session.parents[2], session="11111111-2222-4333-8444-555555555555")
    add_requests(other, 100, 1, minutes_ago=[1])
    key = _key()  # no budget, nor its project
    assert cli("usage", "import", str(other), "--key", key).exit_code == 0
    assert not any("budget" in part for part in status(other) + status(session))


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[1, 2]", b"null", b'"text"', b"\xff\xfe{}", b"{" * 100_000])
def test_garbage_on_stdin_prints_the_fallback(stdin):
    done = subprocess.run([EXE, "usage", "statusline"], input=stdin, capture_output=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"Claude \xc2\xb7 usage unavailable\n", b""), done


def test_a_broken_store_prints_the_fallback_quickly(session, store_backend, tmp_path):
    add_requests(session, 1, 1)
    if store_backend == "sqlite":
        broken = tmp_path / "broken.db"
        broken.write_bytes(b"this is not a database" * 200)
    else:
        broken = "postgresql://nobody@127.0.0.1:1/nothing"  # nothing listens there
    start = time.monotonic()
    r = proc("--db", broken, "usage", "statusline", input=payload(session))
    assert (r.exit_code, r.stdout, r.stderr) == (0, FALLBACK + "\n", ""), r
    assert time.monotonic() - start < 5


def test_a_store_folder_that_cannot_be_made_prints_the_fallback(session, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    r = proc("--db", blocker / "keys.db", "usage", "statusline", input=payload(session))
    assert (r.exit_code, r.stdout) == (0, FALLBACK + "\n"), r


def test_a_missing_transcript_still_shows_the_store(session):
    add_requests(session, 1, 1, minutes_ago=[1])
    assert status(session)[1] == "$0.02 session"
    parts = status(session.parent / "gone.jsonl", session=session.stem)
    assert parts[:3] == ["Haiku 4.5", "$0.02 session", "$0.02 today"]


def test_a_busy_store_is_waited_on_for_at_most_a_second(session, isolated):
    """Another process holds the write lock (a long import): the line comes within the
    bound, with what was stored before; the next call catches up."""
    from claude_keys.db import connect

    add_requests(session, 1, 1, minutes_ago=[2])
    assert status(session)[1] == "$0.02 session"
    add_requests(session, 2, 1, minutes_ago=[1])
    holder = connect(str(isolated))
    try:
        with holder.write():
            start = time.monotonic()
            parts = status(session)
            assert time.monotonic() - start < 10  # its bound is 1 s (the admin default: 30 s)
            assert parts[1] == "$0.02 session"  # the new line waits for the next call
    finally:
        holder.close()
    assert status(session)[1] == "$0.04 session"


def test_stdin_left_open_does_not_hang_the_bar(session):
    add_requests(session, 1, 1)
    child = subprocess.Popen([EXE, "usage", "statusline"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=dies_with_this_process())
    try:
        child.stdin.write(payload(session).encode())  # and never closed
        child.stdin.flush()
        start = time.monotonic()
        assert child.wait(timeout=10) == 0
        assert time.monotonic() - start < 5
        assert child.stdout.read().decode().startswith("Haiku 4.5 · $0.02 session")
    finally:
        child.kill()
        child.wait()
        child.stdin.close()


# Kept off the status line's path: slow to load for what it would do there (Click, the
# lazy-import rule's list), and on SQLite what costs a few ms of a process's start each
# (re with enum, the json package, signal, threading; psycopg loads them all).
HEAVY = {"click", "rich", "tabulate", "keyring", "sqlite_utils", "claude_keys.cli", "claude_keys.keys"}
SLOW_TO_START = {"re", "enum", "json", "signal", "threading"}


@pytest.mark.parametrize("new", [False, True], ids=["nothing new", "a response to import"])
def test_it_loads_nothing_heavy(session, store_backend, new):
    """The installed program as Claude Code starts it loads none of HEAVY (on SQLite nor
    SLOW_TO_START); with nothing new in the transcript, not the importer's staging and
    readers either."""
    heavy = HEAVY | (SLOW_TO_START if store_backend == "sqlite" else set())
    add_requests(session, 1, 1)
    assert status(session)[1] == "$0.02 session"  # the store exists, migrated: no upgrade below
    if new:
        add_requests(session, 2, 1)

    def loaded(*args, **kwargs) -> tuple[str, set]:
        done = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, **kwargs)
        assert done.returncode == 0, done
        return done.stdout, {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
                             if line.startswith("import time:")}

    out, ours = loaded(EXE, "usage", "statusline", input=payload(session))
    assert out.startswith(f"Haiku 4.5 · ${0.04 if new else 0.02:.2f} session"), out
    ours -= loaded("-c", "pass")[1]  # (what Python loads itself: an editable install's finder loads re)
    importer = {"claude_keys.db.staging", "claude_keys.importers.units"}
    assert "claude_keys.statusline" in ours and ours & heavy == set(), sorted(ours & heavy)
    assert ours & importer == (importer if new else set())


def test_a_line_cut_short_does_not_stop_the_import(session):
    """A line cut short (a crash) before a new response, read by the installed program:
    there the json package is not loaded, and the C scanner's error for that line is a
    SystemError on Python 3.10 and 3.11 (values.JSON_ERRORS): the line is skipped and
    the response imported."""
    add_requests(session, 1, 1)
    append(session, '{"type":"assistant","message":{"id":"msg_cut","usage":{"input_tokens":5}')
    add_requests(session, 2, 1)
    done = subprocess.run([EXE, "usage", "statusline"], input=payload(session), capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("Haiku 4.5 · $0.04 session"), done


@pytest.mark.one_backend
@pytest.mark.parametrize("args, store", [
    (["usage", "statusline"], None),
    (["--db", "x.db", "usage", "statusline"], "x.db"),
    (["usage", "statusline", "--db", "x.db"], "x.db"),
    (["--db=x.db", "usage", "statusline"], "x.db"),
    (["usage", "statusline", "--help"], False),
    (["usage", "statusline", "extra"], False),
    (["usage", "summary"], False),
    (["--db", "", "usage", "statusline"], False),  # Click says what is wrong
    (["usage", "statusline", "--db"], False),
    ([], False),
])
def test_only_plain_statusline_command_lines_skip_click(args, store):
    assert statusline_store(args) == store


@pytest.mark.one_backend
def test_help_and_mistakes_still_go_through_click():
    r = proc("usage", "statusline", "--help")
    assert r.exit_code == 0 and "settings.json" in r.stdout and '"statusLine"' in r.stdout
    r = proc("usage", "statusline", "--bogus")
    assert r.exit_code == 2 and "No such option" in r.stderr


@pytest.mark.one_backend
@pytest.mark.parametrize("xdg", [None, "/tmp/somewhere-else"])
def test_the_default_store_folder_is_clicks(monkeypatch, xdg):
    import click

    from claude_keys.db import app_dir

    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    assert app_dir() == click.get_app_dir("claude-api")


def test_the_model_name_is_never_a_control_sequence(session):
    add_requests(session, 1, 1)
    r = proc("usage", "statusline", input=payload(session, display="Opus\x1b[2J\x07 4.5"))
    assert r.exit_code == 0 and r.stdout.startswith("Opus[2J 4.5 · $0.02 session"), r
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout


@pytest.mark.one_backend
def test_the_host_offsets_are_kept_under_is_the_machines_name():
    """offsets.host() reads uname's node name (the socket module is slow to load):
    the same name gethostname() gives, so offsets stored before still match."""
    import socket

    from claude_keys.importers.offsets import host

    assert host() == socket.gethostname()


@pytest.mark.one_backend
def test_no_stdin_at_all_prints_the_fallback():
    done = subprocess.run([EXE, "usage", "statusline"], capture_output=False, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert (done.returncode, done.stdout, done.stderr) == (0, "Claude · usage unavailable\n".encode(), b"")


def test_a_log_path_that_is_not_utf8_is_never_taken_as_unchanged(isolated):
    """Such a path is never remembered (offsets.save skips it): the status line reads
    its log again rather than fail on the path before importing it."""
    from claude_keys import db
    from claude_keys.importers.offsets import unchanged

    conn = db.connect()
    try:
        assert unchanged(conn, ["/tmp/\udcff.jsonl"]) is False
    finally:
        conn.close()
