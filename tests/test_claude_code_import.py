"""`usage import` of Claude Code's logs (importers/claude_code.py, offsets.py): totals
equal a generator's truth; a re-run reads only what was appended, and a request's
final copy replaces an earlier one; replays count once; logs are found where Claude
Code keeps them; hostile lines, fields, folders and files are skipped with a warning,
never fatal."""
import json
import os
import socket

import pytest

from tests.helpers.cc_lines import append, line, write
from tests.helpers.claude_logs import write_logs
from tests.helpers.hostile import BAD_TEXT
from tests.helpers.run import cli, create, imported, proc, report, total
from tests.helpers.store import assert_consistent, sql


@pytest.fixture
def logs(tmp_path):
    truth = write_logs(tmp_path / "claude", projects=3, sessions=4, responses=30, seed=11)
    return tmp_path / "claude", truth


def test_totals_equal_the_truth(logs):
    root, truth = logs
    r = cli("usage", "import", root, "--json")
    assert r.exit_code == 0, r
    result = r.json()
    assert result["requests"] == result["imported"] == truth.requests
    assert result["lines"] == truth.lines
    assert result["files"] == len(list(root.rglob("*.jsonl")))
    assert result["skipped"]["synthetic message"] > 0
    assert result["skipped"]["unfinished last line"] == truth.torn_lines
    total = report("summary", "--period", "all")
    assert (total["requests"], total["input_tokens"], total["output_tokens"], total["cache_read_tokens"],
            total["cache_write_tokens"]) == (truth.requests, truth.input_tokens, truth.output_tokens,
                                             truth.cache_read_tokens, truth.cache_write_tokens)
    assert round(total["cost_usd"] * 1e9) == truth.cost_nanos and total["unpriced_requests"] == 0
    days = {d["period"]: [d["requests"], d["total_tokens"], round(d["cost_usd"] * 1e9)]
            for d in report("summary", "--by", "day", "--period", "all") if d["requests"]}
    assert days == truth.by_day and len(days) >= 3
    projects = {p["project_id"]: [p["requests"], p["total_tokens"], round(p["cost_usd"] * 1e9)]
                for p in report("by-project", "--period", "all")}
    assert projects == truth.by_project


def test_reimport_adds_nothing_and_files_can_be_given_one_by_one(logs):
    root, truth = logs
    assert cli("usage", "import", root / "projects").exit_code == 0  # the projects folder itself
    before = report("summary", "--period", "all")
    again = cli("usage", "import", root, "--json").json()  # only the unfinished last lines again
    assert (again["lines"], again["requests"], again["imported"]) == (truth.torn_lines, 0, 0)
    assert again["unchanged_files"] == again["files"] - truth.torn_lines
    full = cli("usage", "import", root, "--full", "--json").json()
    assert full["imported"] == 0 and full["already_stored"] == truth.requests and full["lines"] == truth.lines
    files = sorted((root / "projects" / "-home-user-project0").glob("*.jsonl"))
    one = cli("usage", "import", *files, "--full", "--json").json()
    assert one["imported"] == 0 and one["already_stored"] > 0
    assert report("summary", "--period", "all") == before


def test_a_single_log_takes_its_project_from_the_folder(tmp_path):
    truth = write_logs(tmp_path, projects=1, sessions=1, responses=5, seed=2)
    log = next((tmp_path / "projects" / "-home-user-project0").glob("*.jsonl"))
    r = cli("usage", "import", log, "--format", "claude-code", "--json")
    assert r.exit_code == 0, r
    projects = report("by-project", "--period", "all")
    assert [p["project_id"] for p in projects] == ["-home-user-project0"]
    assert projects[0]["requests"] <= truth.requests  # no subagent logs given


def test_key_attributes_the_usage(logs):
    root, truth = logs
    key = create("--project-id", "laptop")
    assert cli("usage", "import", root, "--key", key["id"]).exit_code == 0
    rows = report("by-key", "--period", "all")
    assert [(r["key_id"], r["requests"]) for r in rows] == [(key["id"], truth.requests)]
    # The project stays the log's folder.
    assert {p["project_id"] for p in report("by-project", "--period", "all")} == set(truth.by_project)


def test_the_largest_copy_of_a_request_wins_and_a_main_copy_wins_a_tie(tmp_path):
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)

    def line(output, sidechain=False, ts="2026-02-01T10:00:00.000Z", session="s-main"):
        return json.dumps({"type": "assistant", "isSidechain": sidechain, "timestamp": ts, "requestId": "req_1",
                           "sessionId": session, "message": {"id": "msg_1", "model": "claude-haiku-4-5-20251001",
                                                             "usage": {"input_tokens": 10, "output_tokens": output}}},
                          separators=(",", ":"))
    (folder / "a.jsonl").write_text("\n".join([line(1), line(500), line(3)]) + "\n")
    (folder / "b.jsonl").write_text(line(500, sidechain=True, session="s-side") + "\n")
    assert cli("usage", "import", tmp_path).exit_code == 0
    total = report("summary", "--period", "all")
    assert total["requests"] == 1 and total["output_tokens"] == 500
    assert [r["session_id"] for r in report("summary", "--by", "session", "--period", "all")] == ["s-main"]
    (folder / "b.jsonl").write_text(line(9000, sidechain=True, session="s-side") + "\n")
    assert cli("usage", "import", tmp_path, "--json").json()["replaced"] == 1
    total = report("summary", "--period", "all")
    assert total["requests"] == 1 and total["output_tokens"] == 9000


def test_real_processes_import_and_report(logs):
    root, truth = logs
    r = proc("usage", "import", root, "--json")
    assert r.exit_code == 0, r
    assert "\x1b" not in r.stderr  # no progress bar off a terminal
    total = json.loads(proc("usage", "summary", "--period", "all", "--json").stdout)
    assert total["requests"] == truth.requests


def test_parallel_import_of_logs_equals_the_truth(logs, monkeypatch, isolated):
    from claude_keys import db as store
    from claude_keys.importers import import_files, units

    root, truth = logs
    monkeypatch.setattr(units, "CHUNK", 20_000)  # big logs cut in parts, small ones packed
    result = import_files(store.connect(), [str(root)], db_path=str(isolated), workers=2)
    assert (result.lines, result.imported) == (truth.lines, truth.requests)
    assert result.files == len(list(root.rglob("*.jsonl")))  # a file cut in parts counts once
    total = report("summary", "--period", "all")
    assert total["total_tokens"] == truth.total_tokens and round(total["cost_usd"] * 1e9) == truth.cost_nanos


def test_what_can_be_given(tmp_path):
    """A project folder (subagents stay in its project), a single subagent log, and logs
    that begin with a summary line are all recognised."""
    truth = write_logs(tmp_path, projects=1, sessions=3, responses=20, seed=5)
    folder = tmp_path / "projects" / "-home-user-project0"
    summary_first = folder / "with-summary.jsonl"
    summary_first.write_text('{"type":"summary","summary":"A chat","leafUuid":"u1"}\n'
                             + next(folder.glob("*.jsonl")).read_text())
    r = cli("usage", "import", folder, "--json")
    assert r.exit_code == 0, r
    assert [p["project_id"] for p in report("by-project", "--period", "all")] == ["-home-user-project0"]
    assert r.json()["imported"] == truth.requests
    subagent = next(folder.glob("*/subagents/*.jsonl"))
    assert cli("usage", "import", subagent, "--json").json()["unchanged_files"] == 1
    assert cli("usage", "import", subagent, "--full", "--json").json()["already_stored"] > 0
    r = cli("usage", "import", summary_first, "--json")  # --format auto sees a Claude Code log
    assert r.exit_code == 0, r


def test_implausible_lines_are_skipped_not_fatal(tmp_path):
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    good = {"type": "assistant", "timestamp": "2026-02-01T10:00:00.000Z", "requestId": "req_1",
            "message": {"id": "msg_1", "model": "claude-haiku-4-5", "usage": {"input_tokens": 10, "output_tokens": 5}}}
    bad = [dict(good, requestId="req_2", costUSD=1e300),
           dict(good, requestId="req_3", message=dict(good["message"], usage={"input_tokens": 10**20, "output_tokens": 1})),
           dict(good, requestId="req_4", timestamp="2025-10-30T09:00:40+01:00Z"),
           dict(good, requestId="req_5", timestamp="2025-10-30T09:00:40+01:00",
                message=dict(good["message"], id="msg_5"))]  # another message: counted apart
    (folder / "s.jsonl").write_text("\n".join(json.dumps(x) for x in [good, *bad]) + "\n")
    r = cli("usage", "import", tmp_path, "--json")
    assert r.exit_code == 0, r
    result = r.json()
    assert result["imported"] == 2 and result["skipped"] == {"implausible usage": 2, "no timestamp": 1}


# -- incremental imports ----------------------------------------------------------------

HAIKU = (1_000, 5_000)  # nano-dollars per input, output token ($1 / $5 per million)


@pytest.fixture
def log(tmp_path):
    return tmp_path / "claude" / "projects" / "-home-me-app" / "s1.jsonl"


def test_a_request_imported_mid_write_is_corrected_by_its_final_copy(log, tmp_path):
    key = create("--project-id", "laptop")
    write(log, line(out=1), line(out=5))  # 2 of the 3 lines Claude Code writes
    assert imported(log.parent.parent.parent, "--key", key["id"])["imported"] == 1
    assert total() == (1, 10, 5, 10 * HAIKU[0] + 5 * HAIKU[1])
    append(log, line(out=800))  # the final line arrives later
    again = imported(log.parent.parent.parent, "--key", key["id"])
    assert (again["lines"], again["requests"], again["imported"], again["replaced"]) == (1, 1, 0, 1)
    assert total() == (1, 10, 800, 10 * HAIKU[0] + 800 * HAIKU[1])
    # Every roll-up moved with it: days, hours, the key's budget roll-up, sessions.
    assert_consistent()
    assert sql("SELECT sum(output_tokens) FROM usage_daily WHERE key_id = ?", (key["id"],)) == [(800,)]
    assert sql("SELECT sum(output_tokens), sum(requests) FROM usage_sessions") == [(800, 1)]
    # A smaller or equal copy later changes nothing.
    append(log, line(out=3), line(out=800))
    assert imported(log.parent)["replaced"] == 0
    assert total() == (1, 10, 800, 10 * HAIKU[0] + 800 * HAIKU[1])


def test_a_replay_in_a_subagent_log_counts_once(log):
    parent = line("msg_A", "req_1", out=300, read=1000)
    write(log, parent, line("msg_B", "req_2", out=40))
    agent = log.parent / "s1" / "subagents" / "agent-1.jsonl"
    # /btw replays the parent's message under a new request id, then answers on its own.
    write(agent, line("msg_A", "req_9", out=300, read=1000, sidechain=True),
          line("msg_C", "req_10", out=70, sidechain=True))
    first = imported(log.parent)
    assert (first["requests"], first["imported"]) == (3, 3)
    want = (3, 30, 410, 30 * HAIKU[0] + 410 * HAIKU[1] + 1000 * 100)  # cache reads at $0.10
    assert total() == want
    # The replay seen in a later run (the parent was stored before) is still the same request.
    agent2 = log.parent / "s1" / "subagents" / "agent-2.jsonl"
    write(agent2, line("msg_B", "req_77", out=40, sidechain=True))
    assert imported(log.parent)["imported"] == 0
    assert total() == want
    assert_consistent()


# Where each copy of message msg_A is, and the runs that bring them (each run: the files
# it is given, in that order). Every order counts the message once.
REPLAY_RUNS = {
    "subagent alone, then the main log": [["agent"], ["main"]],
    "main log alone, then the subagent": [["main"], ["agent"]],
    "one run, subagent first": [["agent", "main"]],
    "one run, main log first": [["main", "agent"]],
    "subagent, then both again": [["agent"], ["agent", "main"]],
    "two replays in two runs, then the main log": [["agent"], ["agent2"], ["main"]],
    "a main-conversation copy under another id, then the main log": [["resumed"], ["main"]],
}


@pytest.mark.parametrize("runs", REPLAY_RUNS.values(), ids=REPLAY_RUNS.keys())
def test_a_message_under_two_request_ids_counts_once_in_any_order(log, runs):
    files = {"main": log, "agent": log.parent / "s1" / "subagents" / "agent-1.jsonl",
             "agent2": log.parent / "s1" / "subagents" / "agent-2.jsonl",
             "resumed": log.parent / "s2.jsonl"}
    write(files["main"], line("msg_A", "req_1", out=300, read=1000), line("msg_B", "req_2", out=40))
    write(files["agent"], line("msg_A", "req_9", out=300, read=1000, sidechain=True))
    write(files["agent2"], line("msg_A", "req_8", out=300, read=1000, sidechain=True))
    write(files["resumed"], line("msg_A", "req_5", out=300, read=1000, session="s2"))
    for run in runs:
        imported(*(files[name] for name in run))
    # msg_A once ($0.0018: 10 in, 300 out, 1000 cache reads at Haiku 4.5's prices), msg_B once.
    assert total() == (2, 20, 340, 20 * HAIKU[0] + 340 * HAIKU[1] + 1000 * 100)
    assert sql("SELECT count(*) FROM usage WHERE request_id LIKE 'cc:msg_A:%'") == [(1,)]
    assert_consistent()
    # And a full re-read of everything changes nothing.
    again = imported(*files.values(), "--full")
    assert (again["imported"], again["replaced"]) == (0, 0)
    assert total() == (2, 20, 340, 20 * HAIKU[0] + 340 * HAIKU[1] + 1000 * 100)


def test_the_biggest_copy_of_a_replayed_message_wins_across_runs(log):
    agent = log.parent / "s1" / "subagents" / "agent-1.jsonl"
    write(agent, line("msg_A", "req_9", out=30, sidechain=True))  # imported mid-write
    imported(agent)
    write(log, line("msg_A", "req_1", out=300))  # the main log's final copy
    assert imported(log)["replaced"] == 1
    assert total() == (1, 10, 300, 10 * HAIKU[0] + 300 * HAIKU[1])
    assert_consistent()


def test_a_torn_last_line_is_read_again_once_complete(log):
    full = line("m1", "r1", out=700)
    write(log, line("m0", "r0", out=9), full[:40], end="")  # Claude Code is mid-way through a line
    first = imported(log.parent)
    assert first["skipped"] == {"unfinished last line": 1} and first["imported"] == 1
    with open(log, "a") as f:
        f.write(full[40:] + "\n")
    again = imported(log.parent)
    assert (again["lines"], again["imported"], again["skipped"]) == (1, 1, {})
    assert total() == (2, 20, 709, 20 * HAIKU[0] + 709 * HAIKU[1])
    assert imported(log.parent)["lines"] == 0  # and nothing more after that


def test_only_appended_lines_are_read(log):
    write(log, *(line(f"m{i}", f"r{i}", out=i + 1) for i in range(50)))
    write(log.parent / "other.jsonl", line("x", "y"))
    assert imported(log.parent)["lines"] == 51
    append(log, *(line(f"n{i}", f"q{i}", out=1) for i in range(3)))
    again = imported(log.parent)
    assert (again["files"], again["unchanged_files"], again["lines"], again["imported"]) == (2, 1, 3, 3)
    r = cli("usage", "import", log.parent)
    assert r.stderr.strip() == ("Read 0 lines from 0 files (2 files unchanged since the last import): "
                                "0 requests, 0 new, 0 already stored.")


def test_a_file_truncated_and_rewritten_is_read_whole_again(log):
    write(log, *(line(f"m{i}", f"r{i}", out=100) for i in range(5)))
    imported(log.parent)
    write(log, line("m0", "r0", out=100), line("new", "rn", out=7))  # shorter: truncated, rewritten
    again = imported(log.parent)
    assert (again["lines"], again["imported"], again["already_stored"]) == (2, 1, 1)
    # The same size with other bytes (replaced in place): read whole too.
    before = log.read_text()
    after = before.replace('"m0"', '"z0"')
    assert len(after) == len(before)
    log.write_text(after)
    assert imported(log.parent)["imported"] == 1
    assert total()[0] == 7
    assert_consistent()


def _rewritten_in_the_middle(log, old: str, new: str) -> None:
    """Rewrite `old` as `new` (same length) in place, keeping the size and the first and
    last 4 KB, with a later modification time."""
    data = log.read_bytes()
    at = data.index(old.encode())
    assert 4096 < at < len(data) - 4096 and len(old) == len(new)
    with open(log, "r+b") as f:
        f.seek(at)
        f.write(new.encode())
    stamp = log.stat().st_mtime_ns + 1_000_000_000
    os.utime(log, ns=(stamp, stamp))


def test_a_log_rewritten_in_the_middle_is_read_again(log):
    write(log, *(line(f"m{i:03d}", f"r{i:03d}", out=100) for i in range(120)))
    assert imported(log.parent)["imported"] == 120
    size = log.stat().st_size
    # The same size, the same first and last 4 KB: only the middle says it was rewritten.
    _rewritten_in_the_middle(log, '"m060"', '"z060"')
    assert log.stat().st_size == size
    again = imported(log.parent)
    assert (again["lines"], again["imported"], again["already_stored"]) == (120, 1, 119)
    assert total()[0] == 121
    # An untouched log (same size and modification time) is not read at all.
    assert imported(log.parent)["lines"] == 0
    assert_consistent()


def test_an_append_reads_only_the_appended_lines(log):
    write(log, *(line(f"m{i:03d}", f"r{i:03d}", out=100) for i in range(120)))
    imported(log.parent)
    append(log, line("n1", "q1"), line("n2", "q2"))
    again = imported(log.parent)
    assert (again["lines"], again["imported"], again["already_stored"]) == (2, 2, 0)
    # The appended lines extend the checksum: the next append is checked the same way.
    append(log, line("n3", "q3"))
    assert imported(log.parent)["lines"] == 1
    _rewritten_in_the_middle(log, '"m050"', '"z050"')
    assert imported(log.parent)["lines"] == 123  # a rewrite after appends: read whole
    assert total()[0] == 124


def test_a_log_read_in_many_parts_keeps_its_checksum(log, monkeypatch):
    from claude_keys.importers import units

    monkeypatch.setattr(units, "CHUNK", 2000)  # every log cut into parts of 2 KB
    write(log, *(line(f"m{i:03d}", f"r{i:03d}", out=100) for i in range(120)))
    assert imported(log.parent)["lines"] == 120
    append(log, *(line(f"n{i:03d}", f"q{i:03d}") for i in range(30)))  # appended: several parts too
    assert imported(log.parent)["lines"] == 30
    _rewritten_in_the_middle(log, '"m060"', '"z060"')
    assert imported(log.parent)["lines"] == 150
    assert total()[0] == 151


def test_offsets_saved_by_an_older_version_are_read_whole_once(log):
    write(log, *(line(f"m{i:03d}", f"r{i:03d}", out=100) for i in range(10)))
    imported(log.parent)
    sql("UPDATE import_files SET fingerprint = '0123456789abcdef0123456789abcdef'")  # the old form
    append(log, line("n1", "q1"))
    again = imported(log.parent)
    assert (again["lines"], again["imported"], again["already_stored"]) == (11, 1, 10)
    append(log, line("n2", "q2"))
    assert imported(log.parent)["lines"] == 1  # then incremental again
    assert total()[0] == 12


def test_offsets_are_kept_per_host(log, monkeypatch):
    here = socket.gethostname()
    write(log, line("m1", "r1"))
    imported(log.parent)
    assert sql("SELECT host, read_to FROM import_files") == [(here, log.stat().st_size)]
    from claude_keys.importers import offsets

    monkeypatch.setattr(offsets, "host", lambda: "other-host")
    again = imported(log.parent)  # another host's file at the same path: read whole
    assert (again["lines"], again["imported"], again["already_stored"]) == (1, 0, 1)
    assert sorted(r[0] for r in sql("SELECT host FROM import_files")) == sorted([here, "other-host"])


def test_sessions_of_an_older_import_are_filled_in(log):
    """Requests stored before sessions were kept get theirs from the next import."""
    write(log, line("m1", "r1", out=5, session="abc"))
    imported(log.parent)
    from claude_keys import db as store

    conn = store.connect()
    with conn.transaction():  # as an earlier version stored it
        conn.execute("UPDATE usage SET session_id = NULL")
        conn.execute("DELETE FROM usage_sessions")
        conn.execute("DELETE FROM import_files")
    conn.close()
    assert cli("usage", "summary", "--by", "session", "--period", "all", "--json").json() == []
    assert imported(log.parent)["replaced"] == 1
    rows = cli("usage", "summary", "--by", "session", "--period", "all", "--json").json()
    assert [(r["session_id"], r["output_tokens"]) for r in rows] == [("abc", 5)]
    assert_consistent()


# -- where the logs are, and what is in them ----------------------------------------

def test_comma_separated_config_dirs_are_read_and_named(tmp_path, monkeypatch):
    a, b, empty = tmp_path / "a", tmp_path / "b", tmp_path / "empty"
    write(a / "projects" / "p1" / "s.jsonl", line("m1", "r1", out=1))
    write(b / "projects" / "p2" / "s.jsonl", line("m2", "r2", out=2))
    empty.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{a}, {b},{empty}")
    r = cli("usage", "import")
    assert r.exit_code == 0, r
    assert f"Reading Claude Code logs from {a}, {b}." in r.stderr
    assert f"{empty} (from CLAUDE_CONFIG_DIR) has no projects/ folder" in r.stderr
    assert total()[:3] == (2, 20, 3)
    projects = cli("usage", "by-project", "--period", "all", "--json").json()
    assert sorted(p["project_id"] for p in projects) == ["p1", "p2"]
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(empty))
    r = cli("usage", "import")
    assert r.exit_code == 1 and "no Claude Code logs found" in r.stderr


def test_home_folders_are_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    write(tmp_path / ".config" / "claude" / "projects" / "p" / "s.jsonl", line("m1", "r1"))
    r = cli("usage", "import", "--json")
    assert r.exit_code == 0, r
    assert f"from {tmp_path / '.config' / 'claude'}." in r.stderr and r.json()["imported"] == 1


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


def test_the_summary_line_counts_in_words(tmp_path):
    write(tmp_path / "projects" / "p" / "s.jsonl", line("m1", "r1"))
    r = cli("usage", "import", tmp_path)
    assert r.stderr.strip() == "Read 1 line from 1 file: 1 request, 1 new, 0 already stored."


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


def test_skipped_lines_are_counted_in_words(tmp_path):
    """"40 synthetic message" (issue 20): each reason reads as a counted phrase; the JSON
    keeps its keys."""
    synthetic = [line(f"s{i}", f"q{i}", model="<synthetic>") for i in range(2)]
    write(tmp_path / "projects" / "p" / "s.jsonl", line("m1", "r1"), *synthetic, line("m2", "r2", ts="bad"))
    r = cli("usage", "import", tmp_path)
    assert r.exit_code == 0, r
    assert r.stderr.strip().endswith("; skipped 1 line without a timestamp, 2 synthetic messages."), r


def test_an_unpriced_model_warning_reads_as_english(tmp_path):
    key = create()
    r = cli("usage", "record", "--key", key["id"], "--model", "no-such-model", "--input-tokens", "5")
    assert r.exit_code == 0, r
    assert "has no price in the price table" in r.stderr and "no a price" not in r.stderr


# -- labels follow files ---------------------------------------------------------------

def _projects():
    return {r["project_id"]: r["requests"] for r in report("by-project", "--period", "all")}


@pytest.mark.parametrize("how", ["rename", "copy and delete"])
def test_a_moved_session_file_takes_its_new_project(log, how):
    """A session log moved to another project folder: the next incremental import gives
    its stored requests the new project, roll-ups included; other logs keep theirs."""
    projects = log.parent.parent
    write(log, line("m1", "r1", out=10), line("m2", "r2", out=20, ts="2026-02-03T10:00:00.000Z"))
    agent = log.parent / "s1" / "subagents" / "agent-1.jsonl"
    write(agent, line("m3", "r3", out=30, sidechain=True))
    write(log.parent / "s2.jsonl", line("m4", "r4", out=40, session="s2"))  # stays where it is
    assert imported(projects)["imported"] == 4
    before = sql("SELECT sum(output_tokens) FROM usage_project_daily WHERE project_id = '-home-me-app'")
    assert before == [(100,)]
    target = projects / "-home-me-new"
    (target / "s1" / "subagents").mkdir(parents=True)
    for old, new in ((log, target / "s1.jsonl"), (agent, target / "s1" / "subagents" / "agent-1.jsonl")):
        if how == "rename":
            os.rename(old, new)
        else:
            new.write_bytes(old.read_bytes())
            old.unlink()
    append(target / "s1.jsonl", line("m5", "r5", out=50))  # and Claude Code goes on writing there
    again = imported(projects)
    assert (again["imported"], again["already_stored"], again["moved_files"], again["relabelled"]) == (1, 3, 2, 3)
    assert _projects() == {"-home-me-new": 4, "-home-me-app": 1}
    rows = {r["project_id"]: r["output_tokens"] for r in report("by-project", "--period", "all")}
    assert rows == {"-home-me-new": 110, "-home-me-app": 40}
    assert sql("SELECT project_id, sum(output_tokens) FROM usage_sessions GROUP BY project_id "
               "ORDER BY project_id") == [("-home-me-app", 40), ("-home-me-new", 110)]
    assert_consistent()  # every roll-up agrees with the usage rows
    # The next import reads nothing again, and changes nothing.
    third = imported(projects)
    assert (third["lines"], third["relabelled"], third["moved_files"]) == (0, 0, 0)
    assert _projects() == {"-home-me-new": 4, "-home-me-app": 1}


def test_a_copied_session_file_changes_no_label(log):
    """A copy (the old file still there) is not a move: both folders keep their project."""
    write(log, line("m1", "r1", out=10))
    assert imported(log.parent.parent)["imported"] == 1
    copy = log.parent.parent / "-home-me-other" / "s1.jsonl"
    write(copy, line("m1", "r1", out=10))
    again = imported(log.parent.parent)
    assert (again["already_stored"], again["relabelled"]) == (1, 0)
    assert _projects() == {"-home-me-app": 1}


def _usage_indexes(conn) -> set:
    if conn.backend != "sqlite":
        return set()  # (PostgreSQL's merge sends batches to the server; its indexes stay as they are)
    return {r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage' "
                                       "AND sql IS NOT NULL").fetchall()}


def test_a_first_import_in_many_batches_keeps_every_index_and_total(logs, monkeypatch, isolated):
    """The first batch into an empty store makes the usage indexes again after its rows
    (cheaper than keeping them row by row); later batches, into a store holding more
    than they bring, keep them as they go. Either way: the truth, every roll-up, the
    same indexes. Two imports on one connection (as the live view runs them) each stage
    in a private database of their own."""
    from claude_keys import db as store
    from claude_keys.db import staging
    from claude_keys.importers import import_files

    root, truth = logs
    monkeypatch.setattr(staging, "BATCH", 10)  # the first batches on an empty store, then many
    conn = store.connect()
    try:
        indexes = _usage_indexes(conn)
        assert indexes or conn.backend != "sqlite"
        files = sorted(str(p) for p in root.rglob("*.jsonl"))
        first = import_files(conn, files[:3], db_path=str(isolated))
        rest = import_files(conn, files, db_path=str(isolated))
        assert first.imported > 30 and first.imported + rest.imported == truth.requests
        assert _usage_indexes(conn) == indexes
    finally:
        conn.close()
    assert assert_consistent()[:2] == (truth.requests, truth.input_tokens)
    total = report("summary", "--period", "all")
    assert total["total_tokens"] == truth.total_tokens and round(total["cost_usd"] * 1e9) == truth.cost_nanos
