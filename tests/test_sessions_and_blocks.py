"""The reports ccusage users rely on: usage per Claude Code session, and the 5-hour
blocks subscriptions count in (the active one with its burn rate and projection),
each equal to a brute-force reading of what was recorded."""
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers.cc_lines import line, write
from tests.helpers.run import cli, create, imported, report

HOUR = 3_600_000


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_by_session(tmp_path):
    folder = tmp_path / "projects" / "-home-me-app"
    write(folder / "s1.jsonl", line("m1", "r1", out=10, session="s1"), line("m2", "r2", out=20, session="s1"))
    write(folder / "s2.jsonl", line("m3", "r3", out=5, session="s2", ts="2026-02-02T23:59:59.999Z"))
    write(tmp_path / "projects" / "-home-me-lib" / "s3.jsonl", line("m4", "r4", out=7, session="s3"))
    assert cli("usage", "import", tmp_path).exit_code == 0
    key = create()  # usage recorded by the service has no session: not in this report
    cli("usage", "record", "--key", key["id"], "--cost", "1", "--at", "2026-02-01T10:00:00Z")
    rows = report("summary", "--by", "session", "--period", "all")
    assert [(r["session_id"], r["project_id"], r["output_tokens"]) for r in rows] == [
        ("s1", "-home-me-app", 30), ("s3", "-home-me-lib", 7), ("s2", "-home-me-app", 5)]
    # A window's edge inside an hour reads the requests there, still only those with a session.
    rows = report("summary", "--by", "session", "--since", "2026-02-02T23:30:00Z")
    assert [(r["session_id"], r["requests"]) for r in rows] == [("s2", 1)]
    rows = report("summary", "--by", "session,model", "--period", "all", "--project-id", "-home-me-app")
    assert [(r["session_id"], r["model"]) for r in rows] == [("s1", "claude-haiku-4-5"),  # one name per model
                                                             ("s2", "claude-haiku-4-5")]


def blocks_by_hand(times):
    """ccusage's rule: a block starts at the hour of its first request and lasts 5 hours."""
    out = []
    for t in sorted(times):
        if not out or t >= out[-1][0] + 5 * HOUR:
            out.append([t // HOUR * HOUR, 0])
        out[-1][1] += 1
    return [(start, n) for start, n in out]


@pytest.mark.parametrize("seed", [1, 2])
def test_blocks_equal_the_rule(seed, tmp_path):
    rng = random.Random(seed)
    key = create()
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    times, at, records = [], start, []
    for i in range(120):
        at += timedelta(minutes=rng.choice([1, 7, 30, 55, 61, 200, 299, 301, 600, 2000]))
        times.append(ms(at))
        records.append(json.dumps({"key": key["id"], "at": at.isoformat(), "cost_usd": "0.01",
                                   "input_tokens": 100, "request_id": f"r{i}"}) + "\n")
    (tmp_path / "usage.jsonl").write_text("".join(records))  # one import, not 120 commands
    assert imported(str(tmp_path / "usage.jsonl"))["imported"] == 120
    want = blocks_by_hand(times)
    got = report("blocks", "--period", "all")
    assert [(ms(datetime.fromisoformat(b["start"].replace("Z", "+00:00"))), b["requests"]) for b in got] == want
    assert all(b["end"] and not b["active"] and b["tokens_per_minute"] is None for b in got)
    # A window shows the blocks that start in it, each the same as in the whole history.
    middle = datetime.fromtimestamp(want[len(want) // 2][0] / 1000 + 1800, timezone.utc)
    later = report("blocks", "--since", middle.isoformat())
    assert [b["start"] for b in later] == [b["start"] for b in got if b["start"] > middle.isoformat()[:16]]


def test_the_active_block_has_a_burn_rate_and_a_projection():
    key = create()
    now = datetime.now(timezone.utc)
    for minutes, tokens in ((61, 6000), (1, 6000)):
        r = cli("usage", "record", "--key", key["id"], "--model", "claude-haiku-4-5",
                "--input-tokens", tokens, "--at", f"{minutes}m")
        assert r.exit_code == 0, r
    blocks = report("blocks", "--since", "1d")
    active = [b for b in blocks if b["active"]]
    assert len(active) == 1
    block = active[0]
    start = datetime.fromisoformat(block["start"].replace("Z", "+00:00"))
    assert start <= now and start + timedelta(hours=5) > now
    if block["requests"] == 2:  # both in one block (the first was not 5 hours before a boundary)
        assert block["tokens_per_minute"] == pytest.approx(12000 / 60, rel=0.01)
        remaining = (start + timedelta(hours=5) - now).total_seconds() / 60
        assert block["projected_total_tokens"] == pytest.approx(12000 + 200 * remaining, rel=0.02)
        assert block["projected_cost_usd"] == pytest.approx(block["cost_usd"] * (1 + remaining / 60), rel=0.02)
    table = cli("usage", "blocks", "--since", "1d").stdout
    assert "(active)" in table and "projected cost" in table
