"""Importing Claude Code session logs: totals must come out exactly."""
import json

import pytest

from tests.helpers.claude_logs import write_logs
from tests.helpers.run import cli, create, proc


def summary(*args):
    r = cli("usage", *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


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
    total = summary("summary", "--period", "all")
    assert (total["requests"], total["input_tokens"], total["output_tokens"], total["cache_read_tokens"],
            total["cache_write_tokens"]) == (truth.requests, truth.input_tokens, truth.output_tokens,
                                             truth.cache_read_tokens, truth.cache_write_tokens)
    assert round(total["cost_usd"] * 1e9) == truth.cost_nanos and total["unpriced_requests"] == 0
    days = {d["period"]: [d["requests"], d["total_tokens"], round(d["cost_usd"] * 1e9)]
            for d in summary("summary", "--by", "day", "--period", "all") if d["requests"]}
    assert days == truth.by_day and len(days) >= 3
    projects = {p["project_id"]: [p["requests"], p["total_tokens"], round(p["cost_usd"] * 1e9)]
                for p in summary("by-project", "--period", "all")}
    assert projects == truth.by_project


def test_reimport_adds_nothing_and_files_can_be_given_one_by_one(logs):
    root, truth = logs
    assert cli("usage", "import", root / "projects").exit_code == 0  # the projects folder itself
    before = summary("summary", "--period", "all")
    again = cli("usage", "import", root, "--json").json()  # only the unfinished last lines again
    assert (again["lines"], again["requests"], again["imported"]) == (truth.torn_lines, 0, 0)
    assert again["unchanged_files"] == again["files"] - truth.torn_lines
    full = cli("usage", "import", root, "--full", "--json").json()
    assert full["imported"] == 0 and full["already_stored"] == truth.requests and full["lines"] == truth.lines
    files = sorted((root / "projects" / "-home-user-project0").glob("*.jsonl"))
    one = cli("usage", "import", *files, "--full", "--json").json()
    assert one["imported"] == 0 and one["already_stored"] > 0
    assert summary("summary", "--period", "all") == before


def test_a_single_log_takes_its_project_from_the_folder(tmp_path):
    truth = write_logs(tmp_path, projects=1, sessions=1, responses=5, seed=2)
    log = next((tmp_path / "projects" / "-home-user-project0").glob("*.jsonl"))
    r = cli("usage", "import", log, "--format", "claude-code", "--json")
    assert r.exit_code == 0, r
    projects = summary("by-project", "--period", "all")
    assert [p["project_id"] for p in projects] == ["-home-user-project0"]
    assert projects[0]["requests"] <= truth.requests  # no subagent logs given


def test_key_attributes_the_usage(logs):
    root, truth = logs
    key = create("--project-id", "laptop")
    assert cli("usage", "import", root, "--key", key["id"]).exit_code == 0
    rows = summary("by-key", "--period", "all")
    assert [(r["key_id"], r["requests"]) for r in rows] == [(key["id"], truth.requests)]
    # The project stays the log's folder.
    assert {p["project_id"] for p in summary("by-project", "--period", "all")} == set(truth.by_project)


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
    total = summary("summary", "--period", "all")
    assert total["requests"] == 1 and total["output_tokens"] == 500
    assert [r["session_id"] for r in summary("summary", "--by", "session", "--period", "all")] == ["s-main"]
    (folder / "b.jsonl").write_text(line(9000, sidechain=True, session="s-side") + "\n")
    assert cli("usage", "import", tmp_path, "--json").json()["replaced"] == 1
    total = summary("summary", "--period", "all")
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
    total = summary("summary", "--period", "all")
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
    assert [p["project_id"] for p in summary("by-project", "--period", "all")] == ["-home-user-project0"]
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
           dict(good, requestId="req_5", timestamp="2025-10-30T09:00:40+01:00")]
    (folder / "s.jsonl").write_text("\n".join(json.dumps(x) for x in [good, *bad]) + "\n")
    r = cli("usage", "import", tmp_path, "--json")
    assert r.exit_code == 0, r
    result = r.json()
    assert result["imported"] == 2 and result["skipped"] == {"implausible usage": 2, "no timestamp": 1}
