"""A request's life (claude_keys/inflight.py): opened by an admission, settled by usage
under any key of its lineage, released, or held out past its timeout; a request id has
one owner; disable and enable are exact; spend above a reservation is flagged. Each
case of issue 16 runs on both backends."""
import json
import time

import pytest

from claude_keys import KeyStore, RequestIdConflict, inflight
from tests.helpers.run import cli, create, one_error_line, proc, verdict
from tests.helpers.store import LIVE, NANOS, assert_consistent, sql
from tests.helpers.workers import spawn_pool


def _record(key_ref, rid, cost, code=0):
    r = cli("usage", "record", "--key", key_ref, "--request-id", rid, "--cost", cost, "--json")
    assert r.exit_code == code, r
    return r


def _with_timeout(seconds, *options):
    key = create(*options)
    assert cli("keys", "permissions", key["id"], "--timeout", str(seconds)).exit_code == 0
    return key


def _rotated(*options):
    old = create("--name", "svc", *options)
    new = json.loads(cli("keys", "rotate", "svc", "--grace", "1h", "--json").stdout)
    return old, new


def test_usage_under_the_new_key_settles_a_request_of_the_old_one(isolated):
    old, new = _rotated("--max-concurrent", "1", "--monthly-budget", "1")
    code, admitted = verdict(old["key"], "--cost", "0.40")
    assert code == 0
    _record("svc", admitted["request_id"], "0.40")  # "svc" now names the new key: same lineage
    assert sql(LIVE) == [(0,)]
    assert verdict(new["key"], "--cost", "0.40")[0] == 0  # its place is free again
    now = json.loads(cli("keys", "show", "svc", "--json").stdout)["current"]
    assert now["month_cost_usd"] == 0.4 and now["reserved_usd"] == 0.4  # $0.40 spent, $0.40 held by the 2nd


def test_a_request_id_has_one_owner(isolated):
    a, b = create("--project-id", "xa", "--monthly-budget", "1"), create("--project-id", "xb")
    code, admitted = verdict(a["key"], "--cost", "0.60")
    rid = admitted["request_id"]
    r = _record(b["id"], rid, "0.60", code=1)  # in flight for A: refused, naming the id
    assert rid in one_error_line(r, 1, "another key")
    assert sql("SELECT count(*) FROM usage") == [(0,)]
    assert "already recorded" not in _record(a["id"], rid, "0.60").stderr
    assert json.loads(cli("projects", "show", "xa", "--json").stdout)["month_cost_usd"] == 0.6
    _record(b["id"], rid, "0.60", code=1)  # stored for A: still refused
    again = _record(a["id"], rid, "0.60")  # A again: already recorded, nothing changed
    assert json.loads(again.stdout)["recorded"] is False
    store = KeyStore()
    assert store.release(rid) is False  # settled: nothing to give back
    assert verdict(a["key"], "--cost", "0.50")[0] == 5  # the $0.60 counts: A cannot spend it again
    with pytest.raises(RequestIdConflict):
        store.record_usage(b["id"], cost="0.01", request_id=rid)
    assert sql("SELECT key_id FROM usage") == [(a["id"],)]
    assert_consistent()


def test_an_id_never_in_flight_is_recorded_in_one_statement_and_still_has_one_owner(isolated):
    """A check that puts nothing in flight (no counted limit) mints a `req-` id, a counted
    one a `req_` id; recording a `req-` id is the plain insert, and the owner rules hold
    for it as for any id: the same lineage again changes nothing, another is refused."""
    plain, counted = create("--project-id", "xa"), create("--project-id", "xb", "--monthly-budget", "1")
    store = KeyStore()
    untracked = store.check(key=plain["key"])
    tracked = store.check(key=counted["key"], cost="0.10")
    assert untracked.request_id.startswith("req-") and tracked.request_id.startswith("req_")
    assert sql(LIVE) == [(1,)]  # only the counted one is in flight
    assert store.record_usage(plain["id"], cost="0.20", request_id=untracked.request_id).recorded
    assert store.record_usage(plain["id"], cost="0.20", request_id=untracked.request_id).recorded is False
    with pytest.raises(RequestIdConflict):
        store.record_usage(counted["id"], cost="0.30", request_id=untracked.request_id)
    # an id of the caller's in that form: the same rules
    assert store.record_usage(counted["id"], cost="0.05", request_id="req-mine").recorded
    with pytest.raises(RequestIdConflict):
        store.record_usage(plain["id"], cost="0.05", request_id="req-mine")
    assert store.record_usage(counted["id"], cost="0.10", request_id=tracked.request_id).recorded
    assert sql(LIVE) == [(0,)]
    assert sorted(sql("SELECT request_id, key_id, cost_nanos FROM usage")) == sorted([
        (untracked.request_id, plain["id"], 20 * NANOS // 100), ("req-mine", counted["id"], 5 * NANOS // 100),
        (tracked.request_id, counted["id"], 10 * NANOS // 100)])
    assert_consistent()


def test_the_settle_of_an_id_never_in_flight_is_one_insert():
    """Its steps (db/steps.py), whatever the backend: the plain insert alone when it
    stores the row; the owner's lookup only when the id was stored already."""
    row = ("req-18ee1e344ed89647ed2ab62e", "k1") + (0,) * 11
    steps = inflight.settle_steps(row, "k1", 0, "INSERT …")
    assert next(steps) == ("write_usage", "INSERT …", row, True)
    with pytest.raises(StopIteration) as stored:
        steps.send(1)
    assert stored.value.value == (True, None)
    steps = inflight.settle_steps(row, "k1", 0, "INSERT …")
    next(steps)
    assert steps.send(0)[0] == "one"  # stored already: whose?
    with pytest.raises(RequestIdConflict):
        steps.send(("k2",))
    tracked = ("req_18ee1e344ed89647ed2ab62e",) + row[1:]
    assert next(inflight.settle_steps(tracked, "k1", 0, "INSERT …"))[0] == "record_request"


def test_disabling_a_retiring_key_leaves_the_newer_one_alone_and_enable_undoes_exactly_that(isolated):
    old, new = _rotated()
    r = cli("keys", "disable", old["id"], "--reason", "leaked")
    assert r.exit_code == 0 and old["id"] in r.stderr and new["id"] not in r.stderr
    assert verdict(old["key"])[0] == 3 and verdict(new["key"])[0] == 0
    assert "was not disabled" in cli("keys", "enable", new["id"]).stderr
    assert verdict(old["key"])[0] == 3  # enabling the new key did not bring the leaked one back
    # The current key suspends the lineage; the leaked one stays disabled on its own.
    r = cli("keys", "disable", new["id"])
    assert r.exit_code == 0 and new["id"] in r.stderr and old["id"] not in r.stderr
    assert cli("keys", "enable", new["id"]).exit_code == 0
    assert verdict(new["key"])[0] == 0 and verdict(old["key"])[0] == 3
    r = cli("keys", "enable", old["id"])
    assert old["id"] in r.stderr and verdict(old["key"])[0] == 0
    # A disable of the whole lineage is undone as a whole, from either key (it asks first: issue 20).
    r = cli("keys", "disable", new["id"], "-y")
    assert old["id"] in r.stderr and new["id"] in r.stderr
    r = cli("keys", "enable", old["id"])
    assert old["id"] in r.stderr and new["id"] in r.stderr
    assert verdict(new["key"])[0] == 0 and verdict(old["key"])[0] == 0
    audit = [e for e in cli("audit", "--format", "json").json() if e["action"] in ("disable", "enable")]
    assert [e["changes"]["keys"][1] for e in audit][0] == [old["id"]]  # every key changed, listed
    assert [len(e["changes"]["keys"][1]) for e in audit] == [1, 1, 1, 1, 2, 2]


def test_an_expired_request_frees_its_place_but_keeps_its_money_until_settled(isolated):
    key = _with_timeout(1, "--monthly-budget", "2", "--max-concurrent", "1")
    store = KeyStore()
    first = store.check(key=key["key"], cost="1.00")
    assert first.allowed
    time.sleep(1.3)  # past its timeout
    second = store.check(key=key["key"], cost="1.50")
    assert second.status == 429 and "Monthly budget exceeded" in second.message  # the $1.00 is still held
    other = store.check(key=key["key"], cost="0.50")
    assert other.allowed  # its place was freed: concurrency is not blocked by lost work
    assert store.release(other.request_id)
    done = store.record_usage(key["id"], cost="1.00", request_id=first.request_id)  # a settle after expiry
    assert done.recorded and sql(LIVE) == [(0,)]
    assert sql("SELECT sum(cost_nanos) FROM usage") == [(NANOS,)]
    assert not store.check(key=key["key"], cost="1.50").allowed  # never $2.50 against $2.00


def test_the_hold_limit_ends_a_reservation_that_never_settles(isolated):
    key = _with_timeout(1, "--monthly-budget", "1")
    assert cli("keys", "permissions", key["id"], "--hold", "2").exit_code == 0
    store = KeyStore()
    assert store.check(key=key["key"], cost="1.00").allowed
    time.sleep(1.3)
    assert not store.check(key=key["key"], cost="1.00").allowed  # expired, still held
    time.sleep(1.0)
    assert store.check(key=key["key"], cost="1.00").allowed  # past the hold: given back
    assert cli("projects", "set", "p", "--hold", "1h").exit_code == 0
    assert json.loads(cli("projects", "show", "p", "--json").stdout)["hold"] == 3600
    assert cli("projects", "set", "p", "--hold", "default").exit_code == 0
    assert json.loads(cli("keys", "permissions", key["id"], "--json").stdout)["hold"] == 2


def test_spend_above_the_reservation_is_recorded_and_flagged(isolated):
    key = create("--max-cost", "0.10", "--monthly-budget", "10")
    store = KeyStore()
    admitted = store.check(key=key["key"])  # reserves the key's maximum per task
    done = store.record_usage(key["id"], cost="5.00", request_id=admitted.request_id)
    assert done.recorded and done.reserved_nanos == NANOS // 10 and "$5.00" in done.warning
    assert sql("SELECT sum(cost_nanos) FROM usage") == [(5 * NANOS,)]  # it happened: recorded
    code, cli_admitted = verdict(key["key"], "--cost", "0.05")
    r = _record(key["id"], cli_admitted["request_id"], "0.07")
    assert "more than the $0.05" in r.stderr and json.loads(r.stdout)["warnings"]
    within = store.check(key=key["key"], cost="0.10")
    assert store.record_usage(key["id"], cost="0.10", request_id=within.request_id).warning is None
    shown = json.loads(cli("keys", "show", key["id"], "--json").stdout)["current"]
    assert shown["settled_above_reservation"] == 2
    assert "above reservation" in cli("keys", "show", key["id"]).stdout
    flagged = [e for e in cli("audit", "--format", "json").json() if e["action"] == "usage above reservation"]
    assert len(flagged) == 2


def _check_and_settle(args):
    """A gateway worker: check, work (sometimes past the key's timeout), record the real
    cost under the lineage's current key; with rotation happening meanwhile."""
    from claude_keys import PermissionManager

    db, secrets, start_at, n, slow = args
    store, names = KeyStore(db), PermissionManager(db)
    while time.time() < start_at:
        time.sleep(0.001)
    admitted = 0
    for i in range(n):
        secret = secrets[i % len(secrets)]  # the old secret keeps working during its grace
        decision = store.check(key=secret, cost="0.05")
        if not decision.allowed:
            assert decision.status == 429, decision.body
            continue
        admitted += 1
        time.sleep(1.2 if slow and i % 3 == 0 else 0.01)  # some settle after expiry
        current = names.get_profile("race")["id"]  # the name means the lineage's current key
        store.record_usage(current, cost="0.05", request_id=decision.request_id)
    return admitted


def test_racing_checks_and_settles_across_a_rotation_never_pass_the_budget(isolated):
    key = _with_timeout(1, "--name", "race", "--monthly-budget", "1.00", "--max-concurrent", "4")
    start_at = time.time() + 3
    with spawn_pool(8) as pool:
        pending = pool.map_async(_check_and_settle, [(str(isolated), [key["key"]], start_at, 12,
                                                       worker % 2 == 0) for worker in range(8)])
        time.sleep(3.5)
        rotated = json.loads(proc("keys", "rotate", "race", "--grace", "1h", "--json").stdout)
        admitted = sum(pending.get(timeout=120))
    spent = sql("SELECT count(*), coalesce(sum(cost_nanos), 0) FROM usage")[0]
    assert spent == (admitted, admitted * NANOS // 20)  # every admitted request settled, once
    assert spent[1] <= NANOS  # never above the budget
    assert sql(LIVE) == [(0,)]
    assert verdict(rotated["key"], "--cost", "0.05")[0] == (0 if spent[1] < NANOS else 5)
    assert_consistent()


def test_an_import_of_records_respects_request_id_owners_and_settles(isolated, tmp_path):
    a, b = create("--monthly-budget", "1"), create()
    code, admitted = verdict(a["key"], "--cost", "0.60")
    rid = admitted["request_id"]

    def records(key_id, *extra):
        path = tmp_path / "records.jsonl"
        lines = [{"key": key_id, "at": "2026-01-02T00:00:00Z", "cost_usd": 0.5, "model": "m",
                  "request_id": rid}, *extra]
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        return path

    other = {"key": b["id"], "at": "2026-01-02T00:00:00Z", "cost_usd": 0.1, "model": "m", "request_id": "fine"}
    r = proc("usage", "import", records(b["id"], other))  # in flight for A
    assert rid in one_error_line(r, 1, "another key")
    assert sql("SELECT count(*) FROM usage") == [(0,)]  # nothing of it, not even the fine line
    assert proc("usage", "import", records(a["id"])).exit_code == 0  # A's own record settles it
    assert sql(LIVE) == [(0,)] and sql("SELECT count(*) FROM in_flight") == [(0,)]
    r = proc("usage", "import", records(b["id"]))  # stored for A now
    assert rid in one_error_line(r, 1, "another key")
    assert_consistent()
