"""Spend control under concurrency (issue 10): requests in flight reserve their cost,
concurrency limits, lifetime budgets, project limits shared by keys, rotation that follows
the lineage, and money that cannot overflow. Real processes where processes matter."""
import json
import multiprocessing
import time

import pytest

from claude_keys import AuthManager, InvalidInput, KeyStore, PermissionManager, TooLarge
from tests.helpers.run import cli, create, proc
from tests.helpers.store import assert_consistent, sql

NANOS = 1_000_000_000


LIVE = ("SELECT count(*) FROM in_flight WHERE NOT EXISTS "
        "(SELECT 1 FROM usage WHERE usage.request_id = in_flight.request_id)")  # unsettled


def verify(secret, *args):
    r = cli("keys", "verify", secret, "--json", *args)
    return r.exit_code, r.json()


def _spawn(n):
    return multiprocessing.get_context("spawn").Pool(n)


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


def test_32_processes_against_a_one_dollar_budget_admit_exactly_two(isolated):
    key = create("--monthly-budget", "1.00")
    start_at = time.time() + 3  # time for 32 processes to start
    with _spawn(32) as pool:
        results = pool.map(_check_work_record, [(str(isolated), key["key"], start_at, "0.50")] * 32)
    assert sum(r[0] for r in results) == 2
    assert sorted({r[1] for r in results}) == [200, 429]
    assert sql("SELECT count(*), sum(cost_nanos) FROM usage") == [(2, NANOS)]  # never over the budget
    assert sql(LIVE) == [(0,)]  # both settled
    assert verify(key["key"], "--cost", "0.01")[0] == 5


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
    code, answer = verify(key["key"], "--cost", "0.25")
    assert code == 0 and answer["request_id"].startswith("req_")
    code, refused = verify(key["key"])
    assert code == 5 and refused["error"]["message"].startswith("Concurrency limit reached: 1 of 1 request in flight")
    r = proc("usage", "record", "--key", key["id"], "--request-id", answer["request_id"], "--cost", "0.25")
    assert r.exit_code == 0, r
    assert sql(LIVE) == [(0,)]
    assert verify(key["key"])[0] == 0
    shown = cli("keys", "show", key["id"], "--json").json()["current"]
    assert shown["month_cost_usd"] == 0.25 and shown["in_flight"] == 1 and shown["max_concurrent"] == 1


def test_keys_release_frees_a_place():
    key = create("--max-concurrent", "1")
    code, answer = verify(key["key"])
    assert code == 0 and verify(key["key"])[0] == 5
    r = proc("keys", "release", answer["request_id"])
    assert r.exit_code == 0 and "Released" in r.stderr
    assert verify(key["key"])[0] == 0
    r = cli("keys", "release", answer["request_id"])
    assert r.exit_code == 0 and "was not in flight" in r.stderr


def test_an_unsettled_request_expires_after_the_keys_timeout():
    key = create("--max-concurrent", "1")
    cli("keys", "permissions", key["id"], "--timeout", "1")
    assert verify(key["key"])[0] == 0
    assert verify(key["key"])[0] == 5
    time.sleep(1.2)
    assert verify(key["key"])[0] == 0  # the crashed worker's place came back
    assert sql(LIVE) == [(2,)]  # the expired row counts for nothing; the next admissions clear it


def test_a_dry_run_opens_nothing():
    key = create("--max-concurrent", "1")
    for _ in range(3):
        code, answer = verify(key["key"], "--dry-run")
        assert code == 0 and answer["request_id"] is None
    assert sql(LIVE) == [(0,)]


def _hold(args):
    """Check; while admitted, count this process in; leave before settling."""
    db, secret, start_at, rounds, counter, peak, lock = args
    keys = KeyStore(db)
    while time.time() < start_at:
        time.sleep(0.001)
    admitted = 0
    for _ in range(rounds):
        decision = keys.check(key=secret)
        if not decision.allowed:
            time.sleep(0.005)
            continue
        admitted += 1
        with lock:
            counter.value += 1
            peak.value = max(peak.value, counter.value)
        time.sleep(0.01)
        with lock:
            counter.value -= 1
        keys.record_usage(decision.key_id, input_tokens=1, cost="0", request_id=decision.request_id)
    return admitted


def test_16_processes_never_exceed_the_concurrency_limit(isolated):
    key = create("--max-concurrent", "3")
    manager = multiprocessing.get_context("spawn").Manager()
    counter, peak, lock = manager.Value("i", 0), manager.Value("i", 0), manager.Lock()
    start_at = time.time() + 3
    with _spawn(16) as pool:
        admitted = pool.map(_hold, [(str(isolated), key["key"], start_at, 15, counter, peak, lock)] * 16)
    assert peak.value == 3 and sum(admitted) > 3
    assert sql(LIVE) == [(0,)]
    assert sql("SELECT count(*) FROM usage") == [(sum(admitted),)]


def _verify_many(args):
    db, secrets, rounds = args
    keys = KeyStore(db)
    return sum(keys.check(key=secrets[i % len(secrets)]).allowed for i in range(rounds))


def test_a_project_rate_limit_is_one_window_for_all_its_keys(isolated):
    secrets = [create("--project-id", "shop")["key"] for _ in range(3)]
    other = create("--project-id", "elsewhere")["key"]
    r = cli("projects", "set", "shop", "--rate-limit", "20", "--json")
    assert r.exit_code == 0 and r.json()["rate_limit"] == 20
    with _spawn(6) as pool:
        allowed = pool.map(_verify_many, [(str(isolated), secrets, 10)] * 6)
    assert sum(allowed) == 20
    code, answer = verify(secrets[0])
    assert code == 5 and answer["error"]["message"].startswith("Project rate limit exceeded. Reset in")
    assert verify(other)[0] == 0  # another project is not affected


def _spend_in_project(args):
    db, secrets, rounds = args
    keys = KeyStore(db)
    admitted = 0
    for i in range(rounds):
        decision = keys.check(key=secrets[i % len(secrets)], cost="0.25")
        if decision.allowed:
            keys.record_usage(decision.key_id, cost="0.25", request_id=decision.request_id)
            admitted += 1
    return admitted


def test_a_project_budget_is_shared_by_its_keys_in_many_processes(isolated):
    secrets = [create("--project-id", "shop")["key"] for _ in range(3)]
    assert cli("projects", "set", "shop", "--monthly-budget", "2", "--max-concurrent", "unlimited").exit_code == 0
    with _spawn(8) as pool:
        admitted = pool.map(_spend_in_project, [(str(isolated), secrets, 4)] * 8)
    assert sum(admitted) == 8
    assert sql("SELECT sum(cost_nanos) FROM usage") == [(2 * NANOS,)]
    code, answer = verify(secrets[1], "--cost", "0.01")
    assert code == 5 and answer["error"]["message"].startswith(
        "Project monthly budget exceeded: $2.00 of $2.00 spent this month")
    shown = cli("projects", "show", "shop", "--json").json()
    assert (shown["keys"], shown["active_keys"], shown["month_cost_usd"], shown["monthly_budget"]) == (3, 3, 2.0, 2.0)


def test_project_limits_each_refuse_and_say_so():
    key = create("--project-id", "p")
    assert cli("projects", "set", "p", "--tokens-per-day", "100").exit_code == 0
    cli("usage", "record", "--key", key["id"], "--input-tokens", "100", "--cost", "0")
    code, answer = verify(key["key"])
    assert code == 5 and answer["error"]["message"].startswith("Project daily token limit exceeded: 100 of 100")
    assert cli("projects", "set", "p", "--tokens-per-day", "unlimited", "--total-budget", "0.5").exit_code == 0
    cli("usage", "record", "--key", key["id"], "--input-tokens", "1", "--cost", "0.5")
    code, answer = verify(key["key"])
    assert code == 5 and answer["error"]["message"].startswith("Project total budget exceeded: $0.50 of $0.50")
    assert cli("projects", "set", "p", "--total-budget", "unlimited", "--max-concurrent", "0").exit_code == 0
    code, answer = verify(key["key"])
    assert code == 5 and "Project concurrency limit reached: 0 of 0 requests" in answer["error"]["message"]
    changes = [e for e in cli("audit", "--format", "json").json() if e["action"] == "project"]
    assert len(changes) == 3  # every change of a project's limits is audited
    assert cli("projects", "show", "nope").exit_code == 1
    assert cli("projects", "set", "p").exit_code == 2
    assert cli("projects", "set", "p", "--rate-limit", "-3").exit_code == 2
    rows = cli("projects", "list", "--json").json()
    assert [r["project_id"] for r in rows] == ["p"] and set(rows[0]) == {
        "project_id", "keys", "active_keys", "month_cost_usd", "total_cost_usd", "in_flight",
        "monthly_budget", "total_budget", "rate_limit", "tokens_per_day", "max_concurrent"}


def test_the_python_api_reads_and_sets_project_limits():
    perm = PermissionManager()
    AuthManager().generate_key("api-project", use_keyring=False)
    row = perm.set_project("api-project", {"monthly_budget": 10, "rate_limit": 60, "max_concurrent": None})
    assert (row["monthly_budget"], row["rate_limit"], row["max_concurrent"], row["keys"]) == (10.0, 60, None, 1)
    assert perm.get_project("api-project") == row
    with pytest.raises(InvalidInput):
        perm.set_project("api-project", {"monthly_budgett": 1})


def test_a_lifetime_budget_counts_every_month_and_the_whole_lineage():
    key = create("--total-budget", "1")
    cli("usage", "record", "--key", key["id"], "--cost", "0.6", "--at", "2025-03-01T00:00:00Z")
    new = cli("keys", "rotate", key["id"], "--json").json()
    cli("usage", "record", "--key", new["id"], "--cost", "0.3")
    assert verify(new["key"], "--cost", "0.1")[0] == 0
    code, answer = verify(new["key"], "--cost", "0.1")
    assert code == 5 and answer["error"]["message"].startswith(
        "Total budget exceeded: $0.90 of $1.00 spent in total and $0.10 reserved by 1 request in flight")
    perms = cli("keys", "permissions", new["id"], "--json").json()
    assert perms["total_budget"] == 1.0 and perms["max_concurrent"] is None


def test_during_a_grace_period_the_old_secret_follows_the_lineage():
    old = create("--profile", "pro")
    new = cli("keys", "rotate", old["id"], "--grace", "1h", "--json").json()
    r = cli("keys", "permissions", new["id"], "--block-tool", "Bash", "--rate-limit", "2", "--monthly-budget", "0")
    assert r.exit_code == 0
    code, answer = verify(old["key"], "--tool", "Bash")
    assert code == 4 and answer["error"]["message"] == "Tool 'Bash' is not allowed for this API key"
    code, answer = verify(old["key"])
    assert code == 5 and answer["error"]["message"].startswith("Monthly budget exceeded: $0.00 of $0.00")
    cli("keys", "permissions", new["id"], "--monthly-budget", "unlimited")
    assert [verify(s)[0] for s in (old["key"], new["key"], old["key"])] == [0, 0, 5]  # one window of 2
    assert cli("keys", "permissions", old["id"], "--json").json()["rate_limit"] == 2


def test_revoking_the_current_key_stops_the_old_secret_too():
    old = create()
    new = cli("keys", "rotate", old["id"], "--grace", "1h", "--json").json()
    r = cli("keys", "revoke", new["id"], "--force")
    assert r.exit_code == 0 and old["id"] in r.stderr and "grace" in r.stderr
    assert verify(old["key"])[0] == 3 and verify(new["key"])[0] == 3


def test_revoking_an_old_secret_in_grace_just_ends_its_grace():
    old = create()
    new = cli("keys", "rotate", old["id"], "--grace", "1h", "--json").json()
    r = cli("keys", "revoke", old["id"], "--force")
    assert r.exit_code == 0 and "Ended the grace period" in r.stderr
    assert verify(old["key"])[0] == 3 and verify(new["key"])[0] == 0
    assert [k["status"] for k in cli("keys", "list", "--json").json()] == ["revoked", "active"]


# --- money that cannot overflow ---------------------------------------------------------

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


def test_sums_past_what_64_bits_hold_are_refused_or_exact():
    """9,223 requests at the $1,000,000 cap fill one roll-up row to $9,223,000,000; the
    next one would pass 2**63 nano-dollars, and is refused whole. Everything else stays
    exact and working."""
    key = create("--monthly-budget", "1000000000")
    store = KeyStore()
    at = "2026-01-05T10:00:00Z"
    for i in range(9_223):
        store.record_usage(key["id"], cost=1_000_000, model="m", at=at, request_id=f"big-{i}")
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
    code, _ = verify(key["key"])
    assert code in (0, 5)  # decided, not crashed
    assert cli("usage", "by-key", "--period", "all", "--json").exit_code == 0
    assert_consistent()


def test_a_refusal_by_one_rate_limit_keeps_the_other_window_true():
    """The key's window is pruned, then the project's limit refuses: the refusal commits,
    and the key's count must drop with its slots (else it stays inflated for good)."""
    assert cli("projects", "set", "shared", "--rate-limit", "2").exit_code == 0
    a = create("--project-id", "shared", "--rate-limit", "1")
    b = create("--project-id", "shared")
    assert verify(a["key"])[0] == 0 and verify(b["key"])[0] == 0
    lineage = sql("SELECT lineage FROM keys WHERE id = ?", (a["id"],))[0][0]
    sql("UPDATE rate_slots SET at_ms = at_ms - 120000 WHERE lineage = ?", (lineage,))  # a's slot is old
    code, body = verify(a["key"])
    assert code == 5 and "Project rate limit exceeded" in body["error"]["message"]
    assert_consistent()
    assert sql("SELECT used FROM rate_windows WHERE lineage = ?", (lineage,))[0][0] == 0


def test_a_timeout_of_zero_still_holds_a_place():
    key = create("--max-concurrent", "1")
    assert cli("keys", "permissions", key["id"], "--timeout", "0").exit_code == 0
    assert verify(key["key"])[0] == 0
    code, body = verify(key["key"])
    assert code == 5 and "Concurrency limit reached" in body["error"]["message"]


def test_usage_recorded_for_another_key_does_not_settle_a_request():
    """A reservation is settled by usage of the key that made the request, not by any
    usage with the same request id (a service mixing up its keys)."""
    key, other = create("--monthly-budget", "1"), create()
    store = KeyStore()
    admitted = store.check(key=key["key"], cost="0.75")
    store.record_usage(other["id"], cost="0.01", request_id=admitted.request_id)
    assert not store.check(key=key["key"], cost="0.50").allowed  # the 0.75 is still reserved
    assert store.release(admitted.request_id)
    assert store.check(key=key["key"], cost="0.50").allowed
