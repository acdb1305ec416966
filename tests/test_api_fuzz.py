"""Fuzzing the Python API: every public call of KeyStore, AuthManager and
PermissionManager (as the README documents them), each argument in turn given hostile
values of every type. Whatever comes in: a normal answer or a ClaudeKeysError subclass,
never another exception, and the store stays usable (`keys list`, reports) afterwards."""
import datetime as dt
import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_keys import AuthManager, ClaudeKeysError, KeyStore, PermissionManager
from claude_keys.db import connect

SPECIAL = [None, True, False, 0, -1, -0.0, 1.5, 2**63, -(2**63), float("inf"), float("-inf"),
           float("nan"), Decimal("NaN"), Decimal("1e999"), Decimal("-1"), 1j, "", " ", "\x00", "a\x00b",
           "\x9b31m", "\x1b[2J", "\u202eexe", "\u2066x\u2069", "\udcff", "\ud800", "😀", "x" * 200_000,
           "9" * 5000, "nan", "inf", "-1", "1e309", "Pro", "FREE", "cc_" + "A" * 38, b"", b"\xff\xfe",
           b"cc_", bytearray(b"x"), memoryview(b"y"), [], ["Read"], [b"x"], [None], [["nested"]], {},
           {"api_key": ["k"]}, {"x-api-key": 5}, {"authorization": b"Bearer \xff"}, (("x-api-key", None),),
           [("only-one",)], "headers", 42, object(), dt.datetime.max, dt.datetime.min,
           dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=23))), dt.date(2026, 1, 1),
           dt.timedelta(days=-1), dt.timedelta(days=10**6), math.pi, set(), frozenset({"a"})]

hostile = st.one_of(
    st.sampled_from(SPECIAL),
    # 10**5000, made when drawn: in SPECIAL, hypothesis would repr it when it notes that the
    # random module moved during a draw (psycopg_pool's threads use it), and no int of over
    # 4,300 digits has a repr.
    st.builds(pow, st.just(10), st.just(5000)),
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=40),
    st.binary(max_size=40),
    st.lists(st.one_of(st.text(max_size=10), st.integers(), st.none(), st.binary(max_size=5)), max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=15), st.binary(max_size=5), st.integers()),
                    st.one_of(st.text(max_size=20), st.binary(max_size=10), st.none(), st.integers(),
                              st.lists(st.text(max_size=5), max_size=2)), max_size=3),
    st.datetimes(timezones=st.none() | st.timezones()), st.timedeltas(),
)
from tests.helpers.run import cli
from tests.helpers.store import change_marker, connection_of


@pytest.fixture
def api():
    auth, store, perm = AuthManager(), KeyStore(), PermissionManager()
    secret = auth.generate_key("fuzz", profile="pro", rate_limit=1000, use_keyring=False)
    key_id = auth.authenticate({"x-api-key": secret})["key_id"]
    yield auth, store, perm, secret, key_id
    for client in (auth, store, perm):
        client.close()


def calls(auth, store, perm, secret, key_id):
    """Every public entry point with valid arguments (name -> (function, kwargs))."""
    return {
        "KeyStore": (KeyStore, {"db": None}),
        "check": (store.check, {"headers": {"x-api-key": secret}, "key": None, "tool": "Read", "agent": None,
                                "skill": None, "cost": 0.01, "dry_run": True, "query": None}),
        "record_usage": (store.record_usage, {"key_id": key_id, "model": "claude-sonnet-4-5", "input_tokens": 10,
                                              "output_tokens": 5, "cache_read_tokens": 0, "cache_write_tokens": 0,
                                              "cost": None, "request_id": None, "at": None,
                                              "cache_write_1h_tokens": 0, "speed": "standard"}),
        "generate_key": (auth.generate_key, {"project_id": "p", "rate_limit": 100, "profile": "enterprise",
                                             "name": "n", "max_cost": None, "monthly_budget": None,
                                             "total_budget": 50, "max_concurrent": 4,
                                             "expires_in": None, "use_keyring": False}),
        "release": (store.release, {"request_id": "req-1"}),
        "revoke_key": (auth.revoke_key, {"key": "ffffffffffff", "reason": "fuzz"}),
        "validate_key": (auth.validate_key, {"key": secret}),
        "authenticate": (auth.authenticate, {"headers": {"Authorization": f"Bearer {secret}"}, "query": None}),
        "apply_default_profile": (perm.apply_default_profile, {"key": key_id, "profile": "pro"}),
        "set_profile": (perm.set_profile, {"key": key_id, "settings": {"allowed_tools": ["Read"]}}),
        # Each limit of a settings dict fuzzed on its own (the dict above is fuzzed whole).
        "set_profile limits": (lambda key, **limits: perm.set_profile(key, limits),
                               {"key": key_id, "total_budget": 20, "max_concurrent": 3, "monthly_budget": None}),
        "get_profile": (perm.get_profile, {"key": key_id}),
        "get_project": (perm.get_project, {"project_id": "fuzz"}),
        "set_project": (perm.set_project, {"project_id": "fuzz", "settings": {"monthly_budget": 100}}),
        "set_project limits": (lambda project_id, **limits: perm.set_project(project_id, limits),
                               {"project_id": "fuzz", "monthly_budget": 100, "total_budget": None,
                                "rate_limit": 50, "tokens_per_day": None, "max_concurrent": 8}),
    }


def store_still_usable():
    listed = cli("keys", "list", "--json")
    assert listed.exit_code == 0, listed
    for key in listed.json():
        assert key["expires_at"] is None or key["expires_at"].endswith("Z")
    for report in (("usage", "summary", "--period", "all", "--json"), ("keys", "list"), ("projects", "list"),
                   ("projects", "list", "--json")):
        r = cli(*report)
        assert r.exit_code == 0, r


def test_every_public_call_with_hostile_arguments(api, store_backend):
    # 1,000 examples on SQLite; on PostgreSQL, where the values are the same and only the
    # store behind them differs, 300. The store is read back after each call that wrote.
    watch = connect()
    checked = [change_marker(watch)]  # the store as last found usable

    @settings(max_examples=1000 if store_backend == "sqlite" else 300, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def every_public_call(data):
        entry = calls(*api)
        name = data.draw(st.sampled_from(sorted(entry)), label="call")
        function, kwargs = entry[name]
        argument = data.draw(st.sampled_from(sorted(kwargs)), label="argument")
        kwargs = {**kwargs, argument: data.draw(hostile, label="value")}
        try:
            function(**kwargs)
        except ClaudeKeysError as e:
            assert str(e) and "\n" not in str(e)
        # anything else propagates and fails the test
        # A call that wrote something: the store must still read. (Nothing written, it
        # reads as it did when last checked.)
        if change_marker(watch) != checked[0]:
            store_still_usable()
            checked[0] = change_marker(watch)

    try:
        every_public_call()
    finally:
        watch.close()


# The findings of issue 12, each pinned (hypothesis found them too).

def test_lifetimes_must_be_finite_and_not_negative(api):
    auth = api[0]
    for bad in (float("inf"), float("nan"), -1, -0.5, 10**30, "1y", True, [30]):
        with pytest.raises(ClaudeKeysError):
            auth.generate_key("p", expires_in=bad, use_keyring=False)
    store_still_usable()
    secret = auth.generate_key("p", expires_in=dt.timedelta(hours=1), use_keyring=False)
    expires = cli("keys", "show", secret, "--json").json()["expires_at"]
    assert expires is not None and expires.endswith("Z")


def test_request_times_cost_and_keys_of_the_wrong_type(api):
    auth, store, perm, secret, key_id = api
    for at in (float("nan"), float("inf"), -1, 10**20, "yesterday", b"2026", dt.date(2026, 1, 1)):
        with pytest.raises(ClaudeKeysError):
            store.record_usage(key_id, input_tokens=1, cost=0, at=at)
    assert store.record_usage(key_id, input_tokens=1, cost=0, at=dt.datetime(2026, 1, 1, 12)).recorded
    with pytest.raises(ClaudeKeysError):
        store.record_usage(key_id, cost=10**5000)
    # A key as bytes is read like raw headers; a parsed query's list is read too.
    assert store.check(key=secret.encode(), dry_run=True).allowed
    assert store.check(key=b"\xff\xfe", dry_run=True).status == 401
    assert store.check(query={"api_key": [secret]}, dry_run=True).allowed
    assert store.check(query={"api_key": [b"nope"]}, dry_run=True).status == 401
    for bad in ({"query": {"api_key": 5}}, {"query": "api_key=x"}, {"key": 5}, {"headers": "x-api-key"},
                {"headers": 7}, {"headers": {"x-api-key": 5}}, {"key": secret, "tool": ["Read"]},
                {"key": secret, "agent": "a\x1b[2J"}, {"key": secret, "dry_run": "yes"},
                {"key": secret, "cost": float("nan")}):
        with pytest.raises(ClaudeKeysError):
            store.check(**bad)
    for bad in (5, None, b"x", ["x"]):
        with pytest.raises(ClaudeKeysError):
            perm.get_profile(bad)
    with pytest.raises(ClaudeKeysError):
        perm.set_profile(key_id, [("allowed_tools", ["Read"])])
    with pytest.raises(ClaudeKeysError):
        KeyStore(db=5)


def test_an_error_quotes_a_hostile_value_in_a_short_line(api):
    """A message that quotes the caller's value stays one short line, whatever the
    value: an int too large for str() (hypothesis found `speed=10**5000` raising
    ValueError), a 200,000-character text, a name that is not text."""
    auth, store, perm, secret, key_id = api
    calls = [lambda bad: store.record_usage(key_id, model="claude-sonnet-4-5", input_tokens=1, speed=bad),
             lambda bad: perm.set_profile(key_id, {bad: 1}),
             lambda bad: perm.set_project("fuzz", {bad: 1}),
             lambda bad: perm.apply_default_profile(key_id, bad)]
    for call in calls:
        for bad in (10**5000, "x" * 200_000, "\x1b[2J", 3.5):
            try:
                call(bad)
            except ClaudeKeysError as e:
                assert len(str(e)) < 200 and "\n" not in str(e) and "\x1b" not in str(e), str(e)[:300]
            else:
                raise AssertionError(f"accepted {str(bad)[:20]!r}")
    store_still_usable()


@pytest.mark.sqlite_only
def test_a_full_disk_is_a_store_error(api):
    """A write the store cannot take (SQLite: its page limit reached, as on a full disk)
    is a StoreError, and the connection is usable again once there is room."""
    from claude_keys import StoreError

    _, store, _, _, key_id = api
    store.record_usage(key_id, input_tokens=1, cost=0)
    conn = connection_of(store)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match="cannot be written"):
        for i in range(10_000):
            store.record_usage(key_id, input_tokens=1, model=f"model-{i}" * 20)
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.record_usage(key_id, input_tokens=1, cost=0).recorded


def test_the_spend_control_calls_validate_their_arguments(api):
    """The calls issue 10 added: bad values are InvalidInput, the store unchanged."""
    from claude_keys import InvalidInput

    auth, store, perm, secret, key_id = api
    before = perm.get_project("fuzz")
    for call in (lambda: perm.set_project("fuzz", None), lambda: perm.set_project("fuzz", [("rate_limit", 3)]),
                 lambda: perm.set_project("fuzz", {"rate_limit": -3}),
                 lambda: perm.set_project("fuzz", {"total_budget": float("inf")}),
                 lambda: perm.set_project("fuzz", {"budget": 1}), lambda: perm.set_project(b"fuzz", {}),
                 lambda: perm.set_project("a\u202eb", {"rate_limit": 1}), lambda: perm.get_project(None),
                 lambda: perm.get_project("x" * 300), lambda: store.release(b"req"), lambda: store.release(None),
                 lambda: store.release("r\x9b"), lambda: store.release("r" * 300),
                 lambda: perm.set_profile(key_id, {"total_budget": float("nan")}),
                 lambda: perm.set_profile(key_id, {"max_concurrent": 1.5}),
                 lambda: auth.generate_key("p", total_budget=Decimal("NaN"), use_keyring=False),
                 lambda: auth.generate_key("p", max_concurrent=True, use_keyring=False),
                 lambda: auth.generate_key("p", max_concurrent=-1, use_keyring=False),
                 lambda: store.check(key=secret, cost=Decimal("-1"), dry_run=True),
                 lambda: store.check(key=secret, cost=[1], dry_run=True),
                 lambda: store.record_usage(key_id, model="claude-haiku-4-5", input_tokens=1, speed="FAST"),
                 lambda: store.record_usage(key_id, model="claude-haiku-4-5", input_tokens=1, speed=["fast"])):
        with pytest.raises(InvalidInput):
            call()
    assert perm.get_project("fuzz") == before
    assert len(cli("keys", "list", "--json").json()) == 1
    assert cli("usage", "summary", "--period", "all", "--json").json()["requests"] == 0
