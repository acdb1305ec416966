"""Importing Claude Code session logs: totals must come out exactly."""
import json

import pytest
from claude_logs import write_logs
from conftest import cli, create, proc


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
    assert result["skipped"]["synthetic message"] > 0 and result["skipped"]["unreadable line"] == truth.torn_lines
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
    again = cli("usage", "import", root, "--json").json()
    assert again["imported"] == 0 and again["already_stored"] == truth.requests
    files = sorted((root / "projects" / "-home-user-project0").glob("*.jsonl"))
    one = cli("usage", "import", *files, "--json").json()
    assert one["imported"] == 0
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


def test_the_largest_copy_of_a_request_wins_and_sidechains_lose(tmp_path):
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)

    def line(output, sidechain=False, ts="2026-02-01T10:00:00.000Z"):
        return json.dumps({"type": "assistant", "isSidechain": sidechain, "timestamp": ts, "requestId": "req_1",
                           "message": {"id": "msg_1", "model": "claude-haiku-4-5-20251001",
                                       "usage": {"input_tokens": 10, "output_tokens": output}}},
                          separators=(",", ":"))
    (folder / "a.jsonl").write_text("\n".join([line(1), line(500), line(3)]) + "\n")
    (folder / "b.jsonl").write_text(line(9000, sidechain=True) + "\n")
    assert cli("usage", "import", tmp_path).exit_code == 0
    total = summary("summary", "--period", "all")
    assert total["requests"] == 1 and total["output_tokens"] == 500


def test_real_processes_import_and_report(logs):
    root, truth = logs
    r = proc("usage", "import", root, "--json")
    assert r.exit_code == 0, r
    assert "\x1b" not in r.stderr  # no progress bar off a terminal
    total = json.loads(proc("usage", "summary", "--period", "all", "--json").stdout)
    assert total["requests"] == truth.requests


def test_parallel_import_of_logs_equals_the_truth(logs, monkeypatch, isolated):
    from claude_keys import store
    from claude_keys.importers import import_files, units

    root, truth = logs
    monkeypatch.setattr(units, "CHUNK", 20_000)  # big logs cut in parts, small ones packed
    result = import_files(store.connect(), [str(root)], db_path=str(isolated), workers=2)
    assert (result.lines, result.imported) == (truth.lines, truth.requests)
    total = summary("summary", "--period", "all")
    assert total["total_tokens"] == truth.total_tokens and round(total["cost_usd"] * 1e9) == truth.cost_nanos
