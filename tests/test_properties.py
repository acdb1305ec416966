"""Property-based tests: key references, durations, times and money."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_keys import db as store
from claude_keys.errors import AmbiguousKey, ClaudeKeysError, InvalidInput, KeyNotFound
from claude_keys.keys import find
from claude_keys.values import (
    NANOS_PER_USD, iso_ms, parse_count, parse_duration, parse_money, parse_time,
)
from tests.helpers.run import create

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


@pytest.fixture(scope="module")
def keyed_store(tmp_path_factory):
    from claude_keys import AuthManager

    db = tmp_path_factory.mktemp("refs") / "keys.db"
    auth = AuthManager(db)
    secrets = [auth.generate_key("p", use_keyring=False) for _ in range(30)]
    conn = store.connect(db)
    ids = [find(conn, s)["id"] for s in secrets]
    return conn, secrets, ids


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(st.text(max_size=60))
def test_any_reference_finds_one_key_or_fails_cleanly(keyed_store, ref):
    conn, secrets, ids = keyed_store
    try:
        row = find(conn, ref)
    except (KeyNotFound, AmbiguousKey) as e:
        assert "\n" not in str(e) and not any(s in str(e) for s in secrets)
        return
    # Found: then it was the secret, the id, or an unambiguous id prefix of 4+ characters.
    assert ref == row["id"] or ref in secrets or (len(ref) >= 4 and row["id"].startswith(ref)
                                                  and sum(i.startswith(ref) for i in ids) == 1)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_ids_prefixes_and_secrets_resolve(keyed_store, data):
    conn, secrets, ids = keyed_store
    i = data.draw(st.integers(0, len(ids) - 1))
    assert find(conn, secrets[i])["id"] == ids[i] and find(conn, ids[i])["id"] == ids[i]
    n = data.draw(st.integers(4, 12))
    prefix = ids[i][:n]
    if sum(other.startswith(prefix) for other in ids) == 1:
        assert find(conn, prefix)["id"] == ids[i]
    else:
        with pytest.raises(AmbiguousKey):
            find(conn, prefix)


def test_errors_are_claude_keys_errors():
    assert issubclass(KeyNotFound, ClaudeKeysError) and issubclass(InvalidInput, ClaudeKeysError)
    assert timedelta(days=1).total_seconds() == UNITS["d"]
    create()  # the fixtures above do not disturb the per-test store
