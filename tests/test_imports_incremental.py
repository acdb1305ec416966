"""Claude Code imports that stay right and current: a re-run reads only what was
appended, a request imported mid-write is corrected by its final copy, replays in
subagent logs count once, and the long-context and fast-mode prices apply."""
import json
import socket

import pytest

from tests.helpers.cc_lines import append, line, write
from tests.helpers.run import cli, create
from tests.helpers.store import assert_consistent, sql

HAIKU = (1_000, 5_000)  # nano-dollars per input, output token ($1 / $5 per million)


def imported(*args):
    r = cli("usage", "import", *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


def total():
    r = cli("usage", "summary", "--period", "all", "--json")
    assert r.exit_code == 0, r
    t = r.json()
    return t["requests"], t["input_tokens"], t["output_tokens"], round(t["cost_usd"] * 1e9)


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


def test_long_context_requests_pay_the_long_context_rates_for_everything(tmp_path):
    folder = tmp_path / "projects" / "p"
    sonnet = "claude-sonnet-4-5-20250929"
    write(folder / "s.jsonl",
          line("m1", "r1", model=sonnet, inp=150_000, read=50_000, out=1000),  # exactly 200k: standard
          line("m2", "r2", model=sonnet, inp=150_000, read=50_000, w5=1, out=1000),  # 200,001
          line("m3", "r3", model="claude-sonnet-4-20250514", inp=10, read=300_000, w1=10, out=10))
    imported(tmp_path)
    by = {r["request_id"]: round(r["cost_usd"] * 1e9) for r in map(json.loads, cli(
        "usage", "export", "--format", "jsonl", "--period", "all").stdout.splitlines())}
    assert by["cc:m1:r1"] == 150_000 * 3_000 + 50_000 * 300 + 1000 * 15_000
    assert by["cc:m2:r2"] == 150_000 * 6_000 + 50_000 * 600 + 1 * 7_500 + 1000 * 22_500
    assert by["cc:m3:r3"] == 10 * 6_000 + 300_000 * 600 + 10 * 12_000 + 10 * 22_500


def test_fast_mode_is_priced_at_fast_rates(tmp_path):
    folder = tmp_path / "projects" / "p"
    opus = "claude-opus-4-6"
    write(folder / "s.jsonl",
          line("m1", "r1", model=opus, inp=1000, out=2000, read=10_000, w5=100, speed="fast"),
          line("m2", "r2", model=opus, inp=1000, out=2000, speed="standard"),
          line("m3", "r3", model=opus, inp=250_000, out=100, speed="fast"),
          line("m4", "r4", model="claude-haiku-4-5", inp=10, out=10, speed="fast"))  # no fast price
    result = imported(tmp_path)
    assert result["unpriced_models"] == ["claude-haiku-4-5"]
    by = {r["request_id"]: r["cost_usd"] for r in map(json.loads, cli(
        "usage", "export", "--format", "jsonl", "--period", "all").stdout.splitlines())}
    assert round(by["cc:m1:r1"] * 1e9) == 1000 * 30_000 + 2000 * 150_000 + 10_000 * 3_000 + 100 * 37_500
    assert round(by["cc:m2:r2"] * 1e9) == 1000 * 5_000 + 2000 * 25_000
    assert round(by["cc:m3:r3"] * 1e9) == 250_000 * 60_000 + 100 * 225_000
    assert by["cc:m4:r4"] is None  # unpriced, never the standard price
    key = create()
    r = cli("usage", "record", "--key", key["id"], "--model", opus, "--speed", "fast",
            "--input-tokens", "1000", "--json")
    assert r.json()["cost_usd"] == 0.03
    from claude_keys import KeyStore

    done = KeyStore().record_usage(key["id"], model=opus, output_tokens=1000, speed="fast")
    assert done.cost_nanos == 150_000_000


def test_prices_json_takes_long_context_and_fast_tiers(tmp_path, monkeypatch):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"my-model": {
        "input": 1, "output": 2, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0,
        "long_context": {"above": 100, "input": 10, "output": 20, "cache_read": 0, "cache_write_5m": 0,
                         "cache_write_1h": 0},
        "fast": {"input": 100, "output": 200, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0}}}))
    monkeypatch.setenv("CLAUDE_API_PRICES", str(prices))
    key = create()

    def cost(*args):
        r = cli("usage", "record", "--key", key["id"], "--model", "my-model", *args, "--json")
        assert r.exit_code == 0, r
        return round(r.json()["cost_usd"] * 1e9)

    assert cost("--input-tokens", "100", "--output-tokens", "1") == 100 * 1000 + 2000
    assert cost("--input-tokens", "101", "--output-tokens", "1") == 101 * 10_000 + 20_000
    assert cost("--input-tokens", "101", "--speed", "fast") == 101 * 100_000  # fast has no long tier
    prices.write_text(json.dumps({"my-model": {"input": 1, "output": 2, "cache_read": 0,
                                               "cache_write_5m": 0, "cache_write_1h": 0, "long_contxt": {}}}))
    monkeypatch.setenv("CLAUDE_API_PRICES", str(tmp_path / "other.json"))  # a new path: not cached
    (tmp_path / "other.json").write_text(prices.read_text())
    r = cli("usage", "record", "--key", key["id"], "--model", "my-model", "--input-tokens", "1")
    assert r.exit_code == 2 and "unknown price field(s) long_contxt" in r.stderr


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


def test_offsets_are_kept_per_host(log, monkeypatch):
    here = socket.gethostname()
    write(log, line("m1", "r1"))
    imported(log.parent)
    assert sql("SELECT host, read_to FROM import_files") == [(here, log.stat().st_size)]
    monkeypatch.setattr(socket, "gethostname", lambda: "other-host")
    again = imported(log.parent)  # another host's file at the same path: read whole
    assert (again["lines"], again["imported"], again["already_stored"]) == (1, 0, 1)
    assert sorted(r[0] for r in sql("SELECT host FROM import_files")) == sorted([here, "other-host"])


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
