"""Exact money everywhere: every JSON and CSV output carries the exact amount of its
stored nano-dollars at any size, as a number literal never made through a float
($149,999,999.99999985 is not 149999999.99999985 as a float, nor $100,000,000.000000001
100000000.0); the Python API's amounts are floats that carry the exact amount too."""
import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from claude_keys import AuthManager, KeyStore, PermissionManager
from claude_keys.render import json_text
from claude_keys.values import Usd
from tests.helpers.run import cli, create

HUGE_LIMIT = Decimal("100000000.000000001")
NEAR_BILLION = Decimal("999999999.999999999")
NANO = Decimal("0.000000001")
REQUEST = Decimal("999999.999999999")  # the most one request may cost, to the nano-dollar
REQUESTS = 150
SPENT = REQUEST * REQUESTS  # 149999999.999999850: beyond a float's 15-17 digits


def data(*args):
    r = cli(*args)
    assert r.exit_code == 0, r
    return json.loads(r.stdout, parse_float=Decimal)


def rows_of_csv(*args):
    r = cli(*args)
    assert r.exit_code == 0, r
    return list(csv.DictReader(io.StringIO(r.stdout)))


def assert_literal(value, expected: Decimal):
    """Parsed with parse_float=Decimal: the literal itself was exact (an int literal would
    be a whole amount written without its point; amounts always keep theirs)."""
    assert isinstance(value, Decimal) and value == expected, (value, expected)


@pytest.fixture
def spent(tmp_path):
    """Key `spender` in project `spend` with REQUESTS requests of REQUEST each, key `tiny`
    in project `tiny` with one of a nano-dollar, and key `limits` with huge and tiny limits."""
    spender = create("--project-id", "spend", "--name", "spender")
    tiny = create("--project-id", "tiny", "--name", "tiny")
    limits = create("--project-id", "big", "--name", "limits", "--monthly-budget", str(HUGE_LIMIT),
                    "--total-budget", str(NEAR_BILLION), "--max-cost", str(NANO))
    at = (datetime.now(timezone.utc) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [json.dumps({"key": spender["id"], "at": at, "model": "m", "input_tokens": 1,
                         "output_tokens": 1, "cost_usd": str(REQUEST), "request_id": f"r{n}"})
             for n in range(REQUESTS)]
    lines.append(json.dumps({"key": tiny["id"], "at": at, "model": "m", "input_tokens": 1,
                             "output_tokens": 0, "cost_usd": str(NANO), "request_id": "tiny"}))
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert cli("usage", "import", path, "--format", "jsonl").exit_code == 0
    assert cli("projects", "set", "big", "--monthly-budget", str(HUGE_LIMIT),
               "--total-budget", str(NEAR_BILLION)).exit_code == 0
    return {"spender": spender["id"], "tiny": tiny["id"], "limits": limits["id"]}


def test_limits_are_exact_in_every_output(spent):
    perms = data("keys", "permissions", "limits", "--json")
    assert_literal(perms["monthly_budget"], HUGE_LIMIT)
    assert_literal(perms["total_budget"], NEAR_BILLION)
    assert_literal(perms["max_cost_per_task"], NANO)
    shown = data("keys", "show", "limits", "--json")
    assert_literal(shown["permissions"]["max_cost_per_task"], NANO)
    assert_literal(shown["current"]["monthly_budget"], HUGE_LIMIT)
    assert_literal(shown["current"]["total_budget"], NEAR_BILLION)
    project = data("projects", "show", "big", "--json")
    assert_literal(project["monthly_budget"], HUGE_LIMIT)
    assert_literal(project["total_budget"], NEAR_BILLION)
    listed = {p["project_id"]: p for p in data("projects", "list", "--json")}
    assert_literal(listed["big"]["monthly_budget"], HUGE_LIMIT)
    as_csv = {p["project_id"]: p for p in rows_of_csv("projects", "list", "--format", "csv")}
    assert Decimal(as_csv["big"]["monthly_budget"]) == HUGE_LIMIT
    assert Decimal(as_csv["big"]["total_budget"]) == NEAR_BILLION
    trail = [e for e in data("audit", "--json") if e["key_id"] == spent["limits"]]
    created = trail[0]["changes"]
    assert_literal(created["monthly_budget"][1], HUGE_LIMIT)
    assert_literal(created["max_cost_per_task"][1], NANO)


def test_spending_is_exact_in_every_report(spent):
    summary = data("usage", "summary", "--period", "all", "--json")
    assert_literal(summary["cost_usd"], SPENT + NANO)
    [row] = rows_of_csv("usage", "summary", "--period", "all", "--format", "csv")
    assert Decimal(row["cost_usd"]) == SPENT + NANO
    for command, field in ((("usage", "by-key"), "key_id"), (("usage", "by-project"), "project_id")):
        by = {r[field]: r for r in data(*command, "--period", "all", "--json")}
        assert_literal(by[spent["spender"] if field == "key_id" else "spend"]["cost_usd"], SPENT)
        assert_literal(by[spent["tiny"] if field == "key_id" else "tiny"]["cost_usd"], NANO)
        by_csv = {r[field]: r for r in rows_of_csv(*command, "--period", "all", "--format", "csv")}
        assert Decimal(by_csv[spent["spender"] if field == "key_id" else "spend"]["cost_usd"]) == SPENT
        assert Decimal(by_csv[spent["tiny"] if field == "key_id" else "tiny"]["cost_usd"]) == NANO
    by_model = data("usage", "summary", "--period", "all", "--by", "model", "--json")
    assert_literal(by_model[0]["cost_usd"], SPENT + NANO)
    [block] = data("usage", "blocks", "--period", "all", "--json")
    assert_literal(block["cost_usd"], SPENT + NANO)
    key = data("keys", "show", "spender", "--json")["current"]
    assert_literal(key["month_cost_usd"], SPENT)
    assert_literal(key["total_cost_usd"], SPENT)
    project = data("projects", "show", "spend", "--json")
    assert_literal(project["month_cost_usd"], SPENT)
    assert_literal(project["total_cost_usd"], SPENT)
    assert_literal(data("projects", "show", "tiny", "--json")["total_cost_usd"], NANO)


def test_exports_carry_each_exact_cost(spent):
    r = cli("usage", "export", "--period", "all", "--format", "jsonl")
    records = [json.loads(line, parse_float=Decimal) for line in r.stdout.splitlines()]
    assert len(records) == REQUESTS + 1
    for record in records:
        assert_literal(record["cost_usd"], NANO if record["request_id"] == "tiny" else REQUEST)
    rows = rows_of_csv("usage", "export", "--period", "all", "--format", "csv")
    assert sum(Decimal(row["cost_usd"]) for row in rows) == SPENT + NANO


def test_recording_and_deleting_say_the_exact_amount(spent):
    recorded = data("usage", "record", "--key", "tiny", "--cost", str(NANO), "--request-id", "t2", "--json")
    assert_literal(recorded["cost_usd"], NANO)
    deleted = data("usage", "delete", "--key", "spender", "--since", "2000-01-01", "--until", "0s", "--force", "--json")
    assert_literal(deleted["cost_usd"], SPENT)
    [entry] = [e for e in data("audit", "--json") if e["action"] == "usage delete"]
    assert_literal(entry["changes"]["cost_usd"][0], SPENT)


def test_the_python_api_returns_floats_that_carry_the_exact_amount(spent):
    with KeyStore() as store:
        done = store.record_usage(spent["tiny"], cost=str(NANO), request_id="t3")
    assert isinstance(done.cost_usd, float) and done.cost_usd.nanos == 1
    with PermissionManager() as perms:
        profile = perms.get_profile("limits")
        project = perms.get_project("spend")
    assert isinstance(profile["monthly_budget"], float)
    assert profile["monthly_budget"].nanos == HUGE_LIMIT * 10**9
    assert project["total_cost_usd"].nanos == SPENT * 10**9
    assert json.loads(json_text(project), parse_float=Decimal)["total_cost_usd"] == SPENT


@pytest.mark.one_backend
@pytest.mark.parametrize("nanos,literal", [(0, "0.0"), (1, "0.000000001"), (3 * 10**9, "3.0"),
                                           (100_000_000_000_000_001, "100000000.000000001"),
                                           (9_223_372_036_854_775_807, "9223372036.854775807"),
                                           (-500_000_000, "-0.5")])
def test_an_amount_is_written_as_its_exact_literal(nanos, literal):
    amount = Usd(nanos)
    assert amount.literal == repr(amount) == str(amount) == literal
    assert json_text({"a": [amount]}) == f'{{"a": [{literal}]}}'
    assert float(amount) == nanos / 10**9


@pytest.mark.one_backend
def test_json_text_writes_what_json_dumps_does_for_everything_else():
    value = {"s": "é\n\u2028\"", "n": None, "t": True, "f": 1.5, "i": -3, "l": [], "d": {},
             "nested": [{"x": [1, [2]]}], 7: "int key"}
    for indent in (None, 2):
        assert json_text(value, indent) == json.dumps(value, indent=indent, ensure_ascii=False)
