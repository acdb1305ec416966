"""Prices (pricing.py): the built-in table, long-context rates for everything in a request
past 200k input tokens, fast-mode rates, and a prices.json that overrides and adds
models and tiers; a model without a price is recorded unpriced, never guessed."""
import json

import pytest

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


# -- Bedrock regional endpoints, web searches, standard and fast past 200k, cost modes --

def _costs():
    return {r["request_id"]: (None if r["cost_usd"] is None else round(r["cost_usd"] * 1e9))
            for r in map(json.loads, cli("usage", "export", "--format", "jsonl", "--period", "all").stdout.splitlines())}


def test_bedrock_regional_endpoints_cost_ten_percent_more_from_sonnet_4_5_on():
    key = create()

    def cost(model, **tokens):
        args = [f"--{k.replace('_', '-')}" if i % 2 == 0 else str(v)
                for k, v in tokens.items() for i in (0, 1)]
        r = cli("usage", "record", "--key", key["id"], "--model", model, *args, "--json")
        assert r.exit_code == 0, r
        return round(r.json()["cost_usd"] * 1e9)

    # Sonnet 4.5: $3 in, $15 out, $0.30 cache read per million; regional is x1.1.
    base = 1000 * 3_000 + 200 * 15_000 + 5000 * 300  # 7,500,000 nano-dollars
    assert cost("claude-sonnet-4-5-20250929", input_tokens=1000, output_tokens=200, cache_read_tokens=5000) == base
    for prefix in ("us", "eu", "apac", "jp", "us-gov"):
        assert cost(f"{prefix}.anthropic.claude-sonnet-4-5-20250929-v1:0", input_tokens=1000,
                    output_tokens=200, cache_read_tokens=5000) == 8_250_000
    assert cost("global.anthropic.claude-sonnet-4-5-20250929-v1:0", input_tokens=1000, output_tokens=200,
                cache_read_tokens=5000) == base  # global: no premium
    assert cost("anthropic.claude-sonnet-4-5-20250929-v1:0", input_tokens=1000, output_tokens=200,
                cache_read_tokens=5000) == base
    # Haiku 4.5 ($1/$5) regional: 1000 in + 100 out = 1,500,000 -> 1,650,000.
    assert cost("eu.anthropic.claude-haiku-4-5-20251001-v1:0", input_tokens=1000, output_tokens=100) == 1_650_000
    # Opus 4.1 predates the rule: its regional id pays the listed $15/$75.
    assert cost("us.anthropic.claude-opus-4-1-20250805-v1:0", input_tokens=1000, output_tokens=100) == 22_500_000
    # Long context applies first, then the premium: 250k in at $6 = $1.50 -> $1.65.
    assert cost("us.anthropic.claude-sonnet-4-5-20250929-v1:0", input_tokens=250_000) == 1_650_000_000


def test_web_searches_cost_ten_dollars_per_thousand(tmp_path):
    folder = tmp_path / "projects" / "p"
    search = {"server_tool_use": {"web_search_requests": 3}}
    with_searches = json.loads(line("m1", "r1", inp=1000, out=100))
    with_searches["message"]["usage"].update(search)
    stated = json.loads(line("m2", "r2", inp=1000, out=100, costUSD=0.5))
    stated["message"]["usage"].update(search)
    write(folder / "s.jsonl", json.dumps(with_searches), json.dumps(stated))
    imported(tmp_path)
    costs = _costs()
    # Haiku 4.5: 1000 x $1 + 100 x $5 per million = 1,500,000; three searches at $0.01 each.
    assert costs["cc:m1:r1"] == 1_500_000 + 3 * 10_000_000
    assert costs["cc:m2:r2"] == 500_000_000  # a stated costUSD wins, searches included in it
    key = create()
    r = cli("usage", "record", "--key", key["id"], "--model", "claude-haiku-4-5", "--input-tokens", "1000",
            "--web-search-requests", "2", "--json")
    assert round(r.json()["cost_usd"] * 1e9) == 1_000_000 + 20_000_000
    from claude_keys import KeyStore

    done = KeyStore().record_usage(key["id"], model="claude-haiku-4-5", input_tokens=1000, web_search_requests=4)
    assert done.cost_nanos == 1_000_000 + 40_000_000
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "model": "claude-haiku-4-5",
                                   "output_tokens": 1000, "web_search_requests": 1, "request_id": "w1"}) + "\n")
    imported(records)
    assert _costs()["w1"] == 5_000_000 + 10_000_000


def test_opus_4_6_has_one_rule_past_200k_for_standard_and_fast(tmp_path):
    """The published list bills Opus 4.6's whole 1M window at its rates, standard and
    fast alike: a 300k-token request costs 6x more fast than standard, not 12x."""
    folder = tmp_path / "projects" / "p"
    opus = "claude-opus-4-6"
    write(folder / "s.jsonl", line("m1", "r1", model=opus, inp=300_000, out=1000),
          line("m2", "r2", model=opus, inp=300_000, out=1000, speed="fast"))
    imported(tmp_path)
    costs = _costs()
    assert costs["cc:m1:r1"] == 300_000 * 5_000 + 1000 * 25_000  # $1.525
    assert costs["cc:m2:r2"] == 300_000 * 30_000 + 1000 * 150_000  # $9.15 (ccusage agrees)
    assert costs["cc:m2:r2"] == 6 * costs["cc:m1:r1"]


def test_cost_modes_on_import_and_record(tmp_path):
    folder = tmp_path / "projects" / "p"
    write(folder / "s.jsonl", line("m1", "r1", inp=1000, out=100, costUSD=0.25),  # states its cost
          line("m2", "r2", inp=1000, out=100))  # does not
    computed = 1000 * 1_000 + 100 * 5_000
    imported(tmp_path)  # auto: the stated cost wins, the other from tokens
    assert _costs() == {"cc:m1:r1": 250_000_000, "cc:m2:r2": computed}
    # The cost is stored as computed at import: another mode needs a fresh store or a
    # delete and --full; here each mode imports into a store of its own path.
    cli("usage", "delete", "cc:m1:r1", "cc:m2:r2", "--yes")
    assert imported(tmp_path, "--full", "--cost-mode", "calculate")["imported"] == 2
    assert _costs() == {"cc:m1:r1": computed, "cc:m2:r2": computed}
    cli("usage", "delete", "cc:m1:r1", "cc:m2:r2", "--yes")
    display = imported(tmp_path, "--full", "--cost-mode", "display")
    assert display["unpriced_models"] == ["claude-haiku-4-5-20251001"]
    assert _costs() == {"cc:m1:r1": 250_000_000, "cc:m2:r2": None}  # no stated cost: unpriced
    # Records (jsonl) and usage record follow the same modes.
    key = create()
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({"key": key["id"], "at": "2026-02-01T00:00:00Z", "model": "claude-haiku-4-5",
                                   "output_tokens": 1000, "cost_usd": 1, "request_id": "x1"}) + "\n")
    imported(records, "--cost-mode", "calculate")
    assert _costs()["x1"] == 5_000_000
    r = cli("usage", "record", "--key", key["id"], "--model", "claude-haiku-4-5", "--output-tokens", "1000",
            "--cost", "1", "--cost-mode", "calculate", "--json")
    assert round(r.json()["cost_usd"] * 1e9) == 5_000_000
    r = cli("usage", "record", "--key", key["id"], "--model", "claude-haiku-4-5", "--output-tokens", "1000",
            "--cost-mode", "display", "--json")
    assert r.json()["priced"] is False and "unpriced" in r.stderr
    assert cli("usage", "import", records, "--cost-mode", "guess").exit_code == 2


@pytest.mark.new_store
def test_the_prices_command(tmp_path, monkeypatch, store_backend):
    r = cli("prices", "--json")
    assert r.exit_code == 0, r
    answer = r.json()
    assert answer["date"] == "2026-09-01" and answer["web_search_usd_per_1000"] == 10
    if store_backend == "sqlite":  # next to the store; PostgreSQL's is in the user config folder
        assert answer["override"] == {"path": str(tmp_path / "store" / "prices.json"), "exists": False}
    else:
        assert answer["override"]["path"].endswith("claude-api/prices.json")
    assert not (tmp_path / "store").exists()  # reading the prices never makes a store
    models = {m["model"]: m for m in answer["models"]}
    sonnet = models["claude-sonnet-4-5"]
    assert (sonnet["input"], sonnet["output"], sonnet["cache_read"], sonnet["cache_write_5m"],
            sonnet["cache_write_1h"]) == (3, 15, 0.3, 3.75, 6)
    assert sonnet["long_context"]["above"] == 200_000 and sonnet["long_context"]["output"] == 22.5
    assert sonnet["regional_premium_percent"] == 10
    opus = models["claude-opus-4-6"]
    assert opus["long_context"] is None and opus["fast"]["input"] == 30 and opus["fast"]["long_context"] is None
    assert models["claude-opus-4-1"]["regional_premium_percent"] == 0
    # An override file: named, in use, and its models listed.
    prices = tmp_path / "mine.json"
    prices.write_text(json.dumps({"_date": "2027-01-01", "my-model": {
        "input": 2, "output": 4, "cache_read": 0.2, "cache_write_5m": 2.5, "cache_write_1h": 4}}))
    monkeypatch.setenv("CLAUDE_API_PRICES", str(prices))
    answer = cli("prices", "--json").json()
    assert answer["override"] == {"path": str(prices), "exists": True} and answer["date"] == "2027-01-01"
    assert "my-model" in {m["model"] for m in answer["models"]}
    human = cli("prices")
    assert human.exit_code == 0 and "sonnet-4-5" in human.stdout and "2027-01-01" in human.stdout
    assert f"Override file: {prices} (in use)" in human.stdout
    prices.write_text("{not json")
    monkeypatch.setenv("CLAUDE_API_PRICES", str(tmp_path / "broken.json"))
    (tmp_path / "broken.json").write_text("{not json")
    r = cli("prices")
    assert r.exit_code == 2 and "cannot read prices" in r.stderr and "Traceback" not in r.stderr
