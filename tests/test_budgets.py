"""Budgets: monthly, lifetime and daily-token limits counted from recorded usage (the
whole lineage's), and the cost a request in flight reserves until its usage settles
it or it is released; exact when 16 processes race for the last dollar."""
import time

import pytest

from claude_keys import KeyStore
from tests.helpers.run import cli, create, error, proc, verdict, verify
from tests.helpers.store import LIVE, NANOS, sql
from tests.helpers.workers import spawn_pool


def record(key, *args):
    r = cli("usage", "record", "--key", key, *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


def test_monthly_budget_is_enforced_from_recorded_usage():
    key = create("--monthly-budget", "1.00")
    record(key["id"], "--cost", "0.79")
    assert verify(key["key"], code=0)["warnings"] == []
    record(key["id"], "--cost", "0.01")
    warning = verify(key["key"], code=0)["warnings"]
    assert len(warning) == 1 and "80% of the monthly budget" in warning[0]
    kind, message = error(verify(key["key"], "--cost", "0.25", code=5))
    assert kind == "rate_limit_error" and "Monthly budget exceeded" in message and "would cost $0.25" in message
    record(key["id"], "--cost", "0.20")
    kind, message = error(verify(key["key"], code=5))
    assert "$1.00 of $1.00 spent" in message and "Resets at " in message
    cli("keys", "permissions", key["id"], "--monthly-budget", "5")
    verify(key["key"], code=0)  # the budget changed; spend is recomputed, nothing stale


def test_last_months_spend_does_not_count():
    key = create("--monthly-budget", "1")
    record(key["id"], "--cost", "50", "--at", "2020-01-15T12:00:00Z")
    verify(key["key"], code=0)


def test_tokens_per_day_are_enforced():
    key = create()
    cli("keys", "permissions", key["id"], "--tokens-per-day", "1000")
    record(key["id"], "--input-tokens", "500", "--output-tokens", "300", "--cost", "0")
    assert "80% of the daily token limit" in verify(key["key"], code=0)["warnings"][0]
    record(key["id"], "--cache-read-tokens", "200", "--cost", "0")
    kind, message = error(verify(key["key"], code=5))
    assert "Daily token limit exceeded: 1,000 of 1,000" in message
    record(key["id"], "--input-tokens", "99999", "--at", "2020-01-01", "--cost", "0")


def test_rotation_does_not_reset_budget_or_rate():
    key = create("--monthly-budget", "1", "--rate-limit", "2")
    record(key["id"], "--cost", "1")
    new = cli("keys", "rotate", key["id"], "--grace", "1h", "--json").json()
    assert error(verify(new["key"], code=5))[1].startswith("Monthly budget exceeded")
    cli("keys", "permissions", new["id"], "--monthly-budget", "unlimited")
    cli("keys", "permissions", key["id"], "--monthly-budget", "unlimited")
    verify(key["key"], code=0)
    verify(new["key"], code=0)
    verify(key["key"], code=5)


def test_usage_dated_more_than_a_day_ahead_is_bad_input_and_spends_nothing():
    key = create("--monthly-budget", "10")
    r = cli("usage", "record", "--key", key["id"], "--cost", "50", "--at", "2099-03-05T00:00:00Z")
    assert r.exit_code == 2 and "more than a day in the future" in r.stderr
    verify(key["key"], code=0)


def test_a_lifetime_budget_counts_every_month_and_the_whole_lineage():
    key = create("--total-budget", "1")
    cli("usage", "record", "--key", key["id"], "--cost", "0.6", "--at", "2025-03-01T00:00:00Z")
    new = cli("keys", "rotate", key["id"], "--json", "-y").json()
    cli("usage", "record", "--key", new["id"], "--cost", "0.3")
    assert verdict(new["key"], "--cost", "0.1")[0] == 0
    code, answer = verdict(new["key"], "--cost", "0.1")
    assert code == 5 and answer["error"]["message"].startswith(
        "Total budget exceeded: $0.90 of $1.00 spent in total and $0.10 reserved by 1 request in flight")
    perms = cli("keys", "permissions", new["id"], "--json").json()
    assert perms["total_budget"] == 1.0 and perms["max_concurrent"] is None


# -- reservations ----------------------------------------------------------------

def test_a_reservation_holds_until_settled_or_released():
    key = create("--monthly-budget", "1.00")
    store = KeyStore()
    first, second = store.check(key=key["key"], cost="0.50"), store.check(key=key["key"], cost="0.50")
    assert first.allowed and second.allowed and first.request_id != second.request_id
    third = store.check(key=key["key"], cost="0.50")
    assert third.status == 429 and "$1.00 reserved by 2 requests in flight" in third.message
    assert store.release(first.request_id) is True and store.release(first.request_id) is False
    fourth = store.check(key=key["key"], cost="0.50")
    assert fourth.allowed
    # Settling replaces the reservation by the real cost.
    store.record_usage(key["id"], cost="0.10", request_id=second.request_id)
    store.record_usage(key["id"], cost="0.20", request_id=fourth.request_id)
    assert cli("keys", "show", key["id"], "--json").json()["current"]["month_cost_usd"] == 0.3
    assert store.check(key=key["key"], cost="0.70").allowed
    assert not store.check(key=key["key"], cost="0.01").allowed


def test_without_a_cost_the_max_cost_per_task_is_reserved():
    key = create("--monthly-budget", "1.00", "--max-cost", "0.40")
    store = KeyStore()
    assert [store.check(key=key["key"]).allowed for _ in range(3)] == [True, True, False]
    message = store.check(key=key["key"]).message
    assert "may cost (its key's maximum per task) $0.40" in message


def test_verify_json_request_ids_are_settled_by_usage_record():
    key = create("--monthly-budget", "5", "--max-concurrent", "1")
    code, answer = verdict(key["key"], "--cost", "0.25")
    assert code == 0 and answer["request_id"].startswith("req_")
    code, refused = verdict(key["key"])
    assert code == 5 and refused["error"]["message"].startswith("Concurrency limit reached: 1 of 1 request in flight")
    r = proc("usage", "record", "--key", key["id"], "--request-id", answer["request_id"], "--cost", "0.25")
    assert r.exit_code == 0, r
    assert sql(LIVE) == [(0,)]
    assert verdict(key["key"])[0] == 0
    shown = cli("keys", "show", key["id"], "--json").json()["current"]
    assert shown["month_cost_usd"] == 0.25 and shown["in_flight"] == 1 and shown["max_concurrent"] == 1


def test_usage_recorded_for_another_key_is_refused_and_the_request_stays_reserved():
    """A reservation is settled by usage of its own lineage; another key recording with
    its request id (a service mixing up its keys) is refused, and nothing is written."""
    from claude_keys import RequestIdConflict

    key, other = create("--monthly-budget", "1"), create()
    store = KeyStore()
    admitted = store.check(key=key["key"], cost="0.75")
    with pytest.raises(RequestIdConflict, match=admitted.request_id):
        store.record_usage(other["id"], cost="0.01", request_id=admitted.request_id)
    assert sql("SELECT count(*) FROM usage") == [(0,)]
    assert not store.check(key=key["key"], cost="0.50").allowed  # the 0.75 is still reserved
    assert store.release(admitted.request_id)
    assert store.check(key=key["key"], cost="0.50").allowed


def _check_work_record(args):
    """A worker as the issue describes it: check with the expected cost, do the work,
    record the real cost against the request id."""
    db, secret, start_at, cost = args
    keys = KeyStore(db)
    while time.time() < start_at:
        time.sleep(0.001)
    decision = keys.check(key=secret, cost=cost)
    if not decision.allowed:
        return 0, decision.status
    time.sleep(0.2)  # the work
    keys.record_usage(decision.key_id, cost=cost, request_id=decision.request_id)
    return 1, decision.status


def test_16_processes_against_a_one_dollar_budget_admit_exactly_two(isolated):
    key = create("--monthly-budget", "1.00")
    start_at = time.time() + 3  # time for 16 processes to start
    with spawn_pool(16) as pool:
        results = pool.map(_check_work_record, [(str(isolated), key["key"], start_at, "0.50")] * 16)
    assert sum(r[0] for r in results) == 2
    assert sorted({r[1] for r in results}) == [200, 429]
    assert sql("SELECT count(*), sum(cost_nanos) FROM usage") == [(2, NANOS)]  # never over the budget
    assert sql(LIVE) == [(0,)]  # both settled
    assert verdict(key["key"], "--cost", "0.01")[0] == 5


def test_a_refusal_shows_cents_and_never_a_spend_equal_to_its_budget():
    """Issue 20: "Monthly budget exceeded: $19.4725527 of $10.00"."""
    key = create("--monthly-budget", "10")
    record(key["id"], "--cost", "19.4725527")
    _, message = error(verify(key["key"], code=5))
    assert "Monthly budget exceeded: $19.47 of $10.00 spent" in message, message
    other = create("--monthly-budget", "10")
    record(other["id"], "--cost", "10.004")
    _, message = error(verify(other["key"], code=5))
    assert "$10.004 of $10.00 spent" in message, message
    shown = cli("keys", "show", other["id"], "--format", "plain").stdout
    assert "$10.004 of $10.00" in shown, shown
    capped = create("--max-cost", "1")
    _, message = error(verify(capped["key"], "--cost", "1.0000001", code=4))
    assert "Cost $1.0000001 is over the maximum of $1.00" in message, message
