"""Prices (pricing.py): the built-in table, long-context rates for everything in a request
past 200k input tokens, fast-mode rates, and a prices.json that overrides and adds
models and tiers; a model without a price is recorded unpriced, never guessed."""
import json

from tests.helpers.cc_lines import line, write
from tests.helpers.run import cli, create, imported, record_at, report


def test_user_prices_override_and_add_models(tmp_path, monkeypatch):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"my-model": {"input": 2, "output": 4, "cache_read": 0.2,
                                                "cache_write_5m": 2.5, "cache_write_1h": 4},
                                   "claude-sonnet-4-5": {"input": 1, "output": 1, "cache_read": 0,
                                                         "cache_write_5m": 0, "cache_write_1h": 0}}))
    monkeypatch.setenv("CLAUDE_API_PRICES", str(prices))
    key = create()
    record_at(key["id"], "2026-02-01T00:00:00Z", model="my-model-20260101", inp=1_000_000, out=1_000_000)
    record_at(key["id"], "2026-02-01T00:00:00Z", model="claude-sonnet-4-5", inp=1_000_000, out=0)
    assert report("summary", "--period", "all")["cost_usd"] == 7.0


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
    # Past 200k input, fast mode keeps its rates: Opus 4.6 has no long-context tier in
    # either mode (the published list since 2026-03-13).
    assert round(by["cc:m3:r3"] * 1e9) == 250_000 * 30_000 + 100 * 150_000
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
