"""Values (values.py) and the one gate every value passes: durations, times, counts, money
(exact, at most $1,000,000 a request, sums exact past 64 bits) and text (no control or
bidi characters, length caps). A bad value is exit 2 with one line, and changes nothing."""
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_keys import InvalidInput, KeyStore, TooLarge
from claude_keys.errors import ClaudeKeysError, KeyNotFound
from claude_keys.values import NANOS_PER_USD, iso_ms, json_value, parse_count, parse_duration, parse_money, parse_time
from tests.helpers.run import cli, create, imported, one_error_line, verdict
from tests.helpers.store import NANOS, assert_consistent, sql

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@given(st.integers(0, 10**7), st.sampled_from(list(UNITS)))
def test_durations_parse_exactly(n, unit):
    if n * UNITS[unit] > 100 * 365 * 86400:
        with pytest.raises(InvalidInput, match="at most 100 years"):
            parse_duration(f"{n}{unit}")
    else:
        assert parse_duration(f"{n}{unit}") == n * UNITS[unit]


@given(st.text(max_size=30))
def test_anything_else_is_not_a_duration(text):
    import re

    if re.fullmatch(r"\s*\d{1,12}[smhdw]\s*", text):
        return
    with pytest.raises(InvalidInput):
        parse_duration(text)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31),
                    timezones=st.just(timezone.utc)))
def test_times_round_trip_through_iso(moment):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    ms = (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)  # exact
    assert parse_time(iso_ms(ms)) == ms
    assert parse_time(moment.isoformat()) == ms
    assert parse_time(moment.replace(tzinfo=None).isoformat()) == ms  # no zone: UTC


@given(st.dates(min_value=datetime(1970, 1, 2).date(), max_value=datetime(9998, 12, 30).date()))
def test_until_a_date_includes_the_whole_day(day):
    start = parse_time(day.isoformat())
    assert parse_time(day.isoformat(), end=True) - start == 86_400_000


@given(st.text(max_size=40))
def test_times_never_crash(text):
    try:
        parse_time(text)
    except InvalidInput:
        pass


money = st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False, allow_infinity=False)


@given(money)
def test_money_parses_exactly(amount):
    assert parse_money(str(amount)) == int(amount * NANOS_PER_USD)
    assert parse_money(amount) == int(amount * NANOS_PER_USD)


@given(st.lists(money, max_size=50))
def test_sums_of_money_are_exact(amounts):
    """The sum of parsed amounts is the parsed sum: no float drift, ever."""
    assert sum(parse_money(str(a)) for a in amounts) == parse_money(str(sum(amounts, Decimal(0))))


@given(st.floats(min_value=0, max_value=10**6, allow_nan=False, allow_infinity=False))
def test_floats_are_read_as_their_shortest_decimal(value):
    assert parse_money(value) == parse_money(repr(value))


@pytest.mark.one_backend
@given(st.from_regex(r"[0-9]{0,12}(\.[0-9]{0,12})?", fullmatch=True))
def test_plain_decimals_read_without_the_pattern_as_with_it(text):
    """Digits with a point at most are read by string methods (no `re` to load for a
    price table); the same text with an exponent of 0 goes through the pattern."""
    def read(t):
        try:
            return parse_money(t)
        except InvalidInput as e:
            return str(e).replace("e0", "")
    assert read(text) == read(text + "e0")


@given(st.one_of(st.text(max_size=20), st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(max_value=-1), st.just("1e999"), st.just("-0.5")))
def test_bad_money_is_refused_cleanly(value):
    try:
        assert parse_money(value) >= 0
    except InvalidInput:
        pass


@given(st.one_of(st.integers(), st.text(max_size=25)))
def test_counts_are_non_negative_integers(value):
    try:
        n = parse_count(value)
    except InvalidInput:
        return
    assert isinstance(n, int) and n >= 0 and str(n) == str(value).strip().lstrip("0") or n == 0


def test_errors_are_claude_keys_errors():
    assert issubclass(KeyNotFound, ClaudeKeysError) and issubclass(InvalidInput, ClaudeKeysError)
    assert timedelta(days=1).total_seconds() == UNITS["d"]
    create()  # (and the per-test store is there as usual)


# -- on the command line -------------------------------------------------------------

BAD_VALUES = [
    ("keys", "create", "--project-id", "p", "--rate-limit", "-1"),
    ("keys", "create", "--project-id", "p", "--rate-limit", "abc"),
    ("keys", "create", "--project-id", "p", "--rate-limit", "1.5"),
    ("keys", "create", "--project-id", "p", "--rate-limit", "99999999999999999999999"),
    ("keys", "create", "--project-id", "p", "--max-cost", "-0.5"),
    ("keys", "create", "--project-id", "p", "--max-cost", "abc"),
    ("keys", "create", "--project-id", "p", "--max-cost", "nan"),
    ("keys", "create", "--project-id", "p", "--max-cost", "inf"),
    ("keys", "create", "--project-id", "p", "--max-cost", "1e400"),
    ("keys", "create", "--project-id", "p", "--monthly-budget", "-3"),
    ("keys", "create", "--project-id", "p", "--monthly-budget", "ten"),
    ("keys", "create", "--project-id", "p", "--expires-in", "30"),
    ("keys", "create", "--project-id", "p", "--expires-in", "30x"),
    ("keys", "create", "--project-id", "p", "--expires-in", "-1d"),
    ("keys", "create", "--project-id", "p", "--expires-in", "1y"),
    ("keys", "create", "--project-id", "p", "--expires-in", "99999999999d"),
    ("keys", "create", "--project-id", "p", "--profile", "gold"),
    ("keys", "create", "--project-id", ""),
    ("keys", "create", "--project-id", "a\x1b[31mb"),
    ("keys", "create"),
    ("keys", "list", "--status", "weird"),
    ("keys", "list", "--profile", "gold"),
    ("keys", "list", "--format", "nope"),
    ("keys", "rotate", "KEY", "--grace", "5"),
    ("keys", "rotate", "KEY", "--grace", "soon"),
    ("keys", "permissions", "KEY", "--set-profile", "gold"),
    ("keys", "permissions", "KEY", "--max-cost", "-1"),
    ("keys", "permissions", "KEY", "--rate-limit", "fast"),
    ("keys", "permissions", "KEY", "--timeout", "-5"),
    ("keys", "permissions", "KEY", "--timeout", "abc"),
    ("keys", "permissions", "KEY", "--monthly-budget", "nan"),
    ("keys", "permissions", "KEY", "--tokens-per-day", "-1"),
    ("keys", "permissions", "KEY", "--keep-overrides"),
    ("profiles", "show", "gold"),
    ("keys", "frobnicate"),
    ("keys", "list", "--no-such-option"),
]


@pytest.mark.parametrize("args", BAD_VALUES, ids=lambda a: " ".join(a[1:])[:60])
def test_bad_values_exit_2_with_one_clear_line(args):
    key = create()
    args = [key["id"] if a == "KEY" else a for a in args]
    r = cli(*args)
    assert r.exit_code == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r
    assert r.stdout == ""
    assert len(cli("keys", "list", "--json").json()) == 1  # nothing half-written


HOSTILE_TEXT = {
    "a C1 control (one-byte CSI)": "proj\x9b31mred",
    "an escape sequence": "proj\x1b[2J",
    "a bidi override": "gnp\u202eexe.txt",
    "a bidi isolate": "a\u2066b\u2069",
    "a line separator": "a\u2028b",
    "invalid UTF-8": "a\udcffb",
}


@pytest.mark.parametrize("what", HOSTILE_TEXT, ids=list(HOSTILE_TEXT))
def test_one_gate_for_text_on_the_command_line(what):
    bad = HOSTILE_TEXT[what]
    key = create()
    for args in (("keys", "create", "--project-id", bad), ("keys", "create", "--project-id", "p", "--name", bad),
                 ("keys", "revoke", key["id"], "--force", "--reason", bad),
                 ("usage", "record", "--key", key["id"], "--model", bad),
                 ("usage", "record", "--key", key["id"], "--request-id", bad),
                 ("keys", "permissions", key["id"], "--allow-tool", bad),
                 ("profiles", "standard-agents", "--add", bad),
                 # spend control and usage imports
                 ("projects", "set", bad, "--rate-limit", "5"), ("projects", "show", bad),
                 ("keys", "disable", key["id"], "--reason", bad), ("keys", "edit", key["id"], "--name", bad),
                 ("keys", "release", bad), ("usage", "delete", bad, "-y"),
                 ("usage", "delete", "--project-id", bad, "--since", "7d", "-y"),
                 ("usage", "summary", "--by", "project,model", "--project-id", bad),
                 ("usage", "blocks", "--project-id", bad), ("usage", "export", "--format", "csv", "--project-id", bad)):
        one_error_line(cli(*args), 2)
    assert [k["status"] for k in cli("keys", "list", "--json").json()] == ["active"]
    assert cli("keys", "show", key["id"], "--json").json()["name"] is None
    assert sql("SELECT count(*) FROM usage") == [(0,)]
    assert sql("SELECT count(*) FROM projects") == [(0,)]


def test_every_kind_of_text_has_a_length_cap():
    key = create()
    for args in (("keys", "create", "--project-id", "p" * 257), ("keys", "create", "--project-id", "p", "--name", "n" * 257),
                 ("usage", "record", "--key", key["id"], "--model", "m" * 200_000),
                 ("usage", "record", "--key", key["id"], "--request-id", "r" * 257),
                 ("keys", "revoke", key["id"], "--force", "--reason", "x" * 1001),
                 ("keys", "disable", key["id"], "--reason", "x" * 1001), ("keys", "edit", key["id"], "--name", "n" * 257),
                 ("keys", "release", "r" * 257), ("usage", "delete", "r" * 257, "-y"),
                 ("projects", "set", "p" * 257, "--rate-limit", "5")):
        one_error_line(cli(*args), 2, "too long")
    with pytest.raises(InvalidInput):
        KeyStore().record_usage(key["id"], model="m" * 200_000)
    assert sql("SELECT count(*) FROM usage") == [(0,)]


def test_bad_numbers_are_bad_input():
    key = create()
    one_error_line(cli("usage", "record", "--key", key["id"], "--cost", "9" * 5000), 2, "too large")
    one_error_line(cli("keys", "verify", key["key"], "--cost", "1" + "0" * 4999), 2, "too large")
    r = cli("keys", "create", "--project-id", "p", "--max-cost", "0." + "0" * 5000 + "1", "--json")
    assert r.exit_code == 0  # a long but valid amount: it rounds to $0
    for zone in ("Europe", "Europe/", "../../etc/passwd", "x" * 300):
        one_error_line(cli("usage", "summary", "--tz", zone), 2, "time zone")


# -- money that cannot overflow ------------------------------------------------------

def test_one_request_costs_at_most_a_million_dollars(tmp_path):
    key = create()
    store = KeyStore()
    with pytest.raises(InvalidInput):
        store.record_usage(key["id"], cost="1000000.01")
    with pytest.raises(InvalidInput):
        store.check(key=key["key"], cost=10**9)
    assert store.record_usage(key["id"], cost=1_000_000).cost_usd == 1_000_000
    for args in (["usage", "record", "--key", key["id"], "--cost", "1000000000"],
                 ["keys", "verify", key["key"], "--cost", "1000001"],
                 ["usage", "record", "--key", key["id"], "--model", "claude-opus-4-1",
                  "--output-tokens", "999999999999"]):
        r = cli(*args)
        assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r)
    records = tmp_path / "big.jsonl"
    records.write_text(json.dumps({"key": key["id"], "at": "2026-01-01T00:00:00Z", "cost_usd": 2_000_000}) + "\n")
    r = cli("usage", "import", records)
    assert r.exit_code == 2 and "big.jsonl:1" in r.stderr


def test_sums_past_what_64_bits_hold_are_refused_or_exact(tmp_path):
    """9,223 requests at the $1,000,000 cap fill one roll-up row to $9,223,000,000; the
    next one would pass 2**63 nano-dollars, and is refused whole. Everything else stays
    exact and working."""
    key = create("--monthly-budget", "1000000000")
    store = KeyStore()
    at = "2026-01-05T10:00:00Z"
    # All but the last as one import (a call each took 9 s on PostgreSQL); the last
    # through record_usage, whose roll-up row then holds exactly $9,223,000,000.
    records = tmp_path / "big.jsonl"
    records.write_text("".join(json.dumps({"key": key["id"], "at": at, "cost_usd": 1_000_000, "model": "m",
                                           "request_id": f"big-{i}"}) + "\n" for i in range(9_222)))
    assert imported(str(records))["imported"] == 9_222
    store.record_usage(key["id"], cost=1_000_000, model="m", at=at, request_id="big-9222")
    with pytest.raises(TooLarge):
        store.record_usage(key["id"], cost=1_000_000, model="m", at=at, request_id="one-too-many")
    r = cli("usage", "record", "--key", key["id"], "--cost", "1000000", "--model", "m", "--at", at)
    assert r.exit_code == 2 and "holds exactly" in r.stderr and len(r.stderr.splitlines()) == 1
    assert sql("SELECT count(*) FROM usage WHERE request_id = 'one-too-many'") == [(0,)]
    # Another day or model is another roll-up row: recording goes on, and every sum over
    # rows (a report, a budget) is exact past 2**63.
    store.record_usage(key["id"], cost=1_000_000, model="m", at="2026-01-06T10:00:00Z")
    store.record_usage(key["id"], cost="0.000000001", model="n", at=at)
    total = cli("usage", "summary", "--period", "all", "--json").json()
    assert total["requests"] == 9_225 and round(total["cost_usd"]) == 9_224_000_000
    assert cli("usage", "summary", "--period", "all", "--by", "day").exit_code == 0
    from claude_keys import reports
    from claude_keys import db as stores

    conn = stores.connect()
    totals = reports.Report(conn, reports.window("all")).totals()[()]
    conn.close()
    assert totals[5] == 9_224 * 10**6 * NANOS + 1 > 2**63  # summed past 64 bits, to the nano-dollar
    shown = cli("keys", "show", key["id"], "--json").json()["current"]
    assert round(shown["total_cost_usd"]) == 9_224_000_000
    code, _ = verdict(key["key"])
    assert code in (0, 5)  # decided, not crashed
    assert cli("usage", "by-key", "--period", "all", "--json").exit_code == 0
    assert_consistent()


def test_money_in_sentences_is_dollars_and_cents():
    """Issue 20: "$19.4725527 of $10.00" reads as dollars and cents; below a cent two
    significant digits; compared amounts never read equal when they differ."""
    from claude_keys.values import usd_pair, usd_text

    assert [usd_text(n) for n in (19_472_552_700, 2_795_566_500, 4_200_000, 9_996_000, 0, 1_234_567_890_123)] \
        == ["$19.47", "$2.80", "$0.0042", "$0.01", "$0.00", "$1,234.57"]
    assert usd_pair(19_472_552_700, 10 * NANOS_PER_USD) == ("$19.47", "$10.00")
    assert usd_pair(10_004_000_000, 10 * NANOS_PER_USD) == ("$10.004", "$10.00")
    assert usd_pair(9_999_600_000, 10 * NANOS_PER_USD) == ("$9.9996", "$10.00")
    assert usd_pair(10 * NANOS_PER_USD + 1, 10 * NANOS_PER_USD) == ("$10.000000001", "$10.00")
    assert usd_pair(10 * NANOS_PER_USD, 10 * NANOS_PER_USD) == ("$10.00", "$10.00")


@given(st.integers(0, 10**15), st.integers(0, 10**15))
def test_compared_amounts_read_in_their_order(a, b):
    from claude_keys.values import usd_pair

    ta, tb = usd_pair(a, b)
    as_number = lambda t: Decimal(t[1:].replace(",", ""))  # noqa: E731
    assert (ta == tb) == (a == b)
    assert (as_number(ta) > as_number(tb)) == (a > b)


@pytest.mark.one_backend
def test_printable_text_is_never_what_the_gate_refuses():
    """values.scrubbed and check_text skip the pattern for printable text (it is compiled
    only when needed): that holds only if no printable character is one it matches."""
    from claude_keys.values import UNSAFE_TEXT, scrubbed

    assert [hex(c) for c in range(0x110000) if chr(c).isprintable() and UNSAFE_TEXT.search(chr(c))] == []
    assert scrubbed("a\x1bb\u202ec") == "a\\x1bb\\u202ec" and scrubbed("a\x1bb", escape=False) == "ab"
    assert scrubbed("Sonnet 4.5 · ünïcode") == "Sonnet 4.5 · ünïcode"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@pytest.mark.one_backend
@given(json_values, st.sampled_from(["", " ", "\n", " \t\r\n "]), st.sampled_from(["", " ", "\n\n"]))
def test_json_is_read_as_json_loads_reads_it(value, before, after):
    """values.json_value (the C scanner, without loading the json package) on what json
    writes, and on anything else: the same value, or json.loads' own error."""
    text = before + json.dumps(value, indent=None if len(before) % 2 else 1) + after
    assert json_value(text) == json.loads(text)


@pytest.mark.one_backend
@given(st.one_of(st.text(max_size=30), st.sampled_from(["", " ", "{}x", "[1,]", "\ufeff{}", "NaN", "-Infinity",
                                                          '{"a": 1} {"b": 2}', "1 2", "\u00a0{}", "01"])))
def test_what_is_not_json_fails_as_json_loads_fails(text):
    try:
        expected = json.loads(text)
    except ValueError as e:
        with pytest.raises(ValueError) as caught:
            json_value(text)
        assert str(caught.value) == str(e)
    else:
        got = json_value(text)
        assert got == expected or (got != got and expected != expected)  # (NaN is not NaN)


@pytest.mark.one_backend
def test_json_is_read_without_the_json_package_and_bad_json_still_fails_cleanly():
    """In a fresh process, where the json package is not loaded: a valid text is read
    without loading it; a torn one (the C scanner then cannot make its error) is the
    ValueError json.loads gives, and a torn line is the importer's "not valid JSON"."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from claude_keys.values import json_value\n"
            "from claude_keys.importers.lines import json_line\n"
            "assert json_value(' {\"a\": [1, 2.5, null]} ') == {'a': [1, 2.5, None]}\n"
            "assert 'json' not in sys.modules\n"
            "for bad in ('{\"a\": 1', '{\"a\": 1} x', ''):\n"
            "    try:\n"
            "        json_line(bad.encode())\n"
            "    except ValueError as e:\n"
            "        assert str(e) == 'not valid JSON', e\n"
            "    else:\n"
            "        raise AssertionError(bad)\n"
            "try:\n"
            "    json_value('{\"a\": 1')\n"
            "except ValueError as e:\n"
            "    print(type(e).__name__, e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == (
        "JSONDecodeError Expecting ',' delimiter: line 1 column 8 (char 7)"), done
