"""The request path's work, counted rather than timed (timings on a shared machine move
by more than a change makes; BENCHMARKS.md §2): the Python functions of claude_keys that
a check + record_usage runs, for a key without limits and for a key with a budget and a
concurrency limit. The bounds sit a little above today's counts, so a change that adds
per-request Python work to the hot path fails here and says so. On both backends."""
import sys

from claude_keys import AuthManager, KeyStore
from tests.helpers.store import assert_consistent, sql

PACKAGE = "/claude_keys/"


def calls_of_a_pair(store: KeyStore, secret: str, cost=None, request_id: bool = False) -> int:
    """The fewest calls into claude_keys' own functions over a few check + record pairs
    (the fewest: the key's last-used time is written at most once a second)."""
    counted = []
    for _ in range(8):
        n = 0

        def profile(frame, event, arg):
            nonlocal n
            if event == "call" and PACKAGE in frame.f_code.co_filename:
                n += 1

        sys.setprofile(profile)
        try:
            d = store.check({"authorization": f"Bearer {secret}"}, tool="Read", cost=cost)
            store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300,
                               request_id=d.request_id if request_id else None)
        finally:
            sys.setprofile(None)
        assert d.allowed, d.body
        counted.append(n)
    return min(counted)


def test_a_key_without_limits_costs_few_calls(store_backend):
    secret = AuthManager().generate_key("hot", rate_limit=None, profile="enterprise")
    with KeyStore() as store:
        calls = calls_of_a_pair(store, secret)
    assert calls <= BOUNDS[store_backend]["without limits"], calls
    assert sql("SELECT count(*) FROM usage") == [(8,)]
    assert_consistent()


def test_a_budgeted_key_costs_few_calls(store_backend):
    secret = AuthManager().generate_key("hot", rate_limit=None, profile="enterprise", monthly_budget=100,
                                        max_concurrent=4)
    with KeyStore() as store:
        calls = calls_of_a_pair(store, secret, cost="0.01", request_id=True)
    assert calls <= BOUNDS[store_backend]["budgeted"], calls
    assert sql("SELECT count(*) FROM in_flight") == [(0,)]  # every one settled
    assert sql("SELECT count(*), sum(cost_nanos) > 0 FROM usage") == [(8, 1)]
    assert_consistent()


# Counted on 2026-12-03 (652fe73): SQLite 26 and 63, PostgreSQL 99 and 155 (the pool's
# checkout and the connection's wrapper are ours too); before it 36 and 80, 105 and 172.
# With the request path written as steps (db/steps.py, issue 19's async pool) merged over
# it: SQLite 37 and 86, PostgreSQL 177 budgeted (each step generator and its player count).
# 2026-12-04: SQLite 39 and 89; PostgreSQL 111 and 182 before a statement's row class was
# kept (its column names were read again on every call, a generator step each), 68 and 139 after.
BOUNDS = {"sqlite": {"without limits": 40, "budgeted": 90},
          "postgres": {"without limits": 75, "budgeted": 150}}
