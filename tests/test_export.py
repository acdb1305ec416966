"""`usage export`: every request in the range, oldest first, in the import format, so an
export re-imports to identical reports (jsonl and csv, odd text, 1-hour cache writes);
filters; -o FILE created 0600 and never overwritten."""
import json
import os
import random

import pytest

from tests.helpers.run import cli, create, imported, record_at, report
from tests.helpers.store import empty_usage


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
        record_at(rng.choice([a, b])["id"], f"2026-02-{1 + i % 20:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
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
    record_at(a["id"], "2026-02-01T10:00:00Z", cost="1")
    record_at(b["id"], "2026-02-02T10:00:00Z", cost="1")
    lines = cli("usage", "export", "--format", "jsonl", "--project-id", "beta", "--period", "all").stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["key"] == b["id"]
    lines = cli("usage", "export", "--format", "jsonl", "--until", "2026-02-01").stdout.splitlines()
    assert [json.loads(line)["project_id"] for line in lines] == ["alpha"]


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


def test_an_export_with_odd_but_valid_text_re_imports(tmp_path):
    key = create("--project-id", "проект ✓")
    assert cli("usage", "record", "--key", key["id"], "--model", "modèle-ü", "--cost", "1",
               "--request-id", "🗝️-1").exit_code == 0
    out = tmp_path / "usage.jsonl"
    assert cli("usage", "export", "--format", "jsonl", "--period", "all", "-o", out).exit_code == 0
    cli("usage", "delete", "🗝️-1", "--yes")
    assert imported(out)["imported"] == 1


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
