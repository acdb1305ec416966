"""Concurrency limits: a request in flight holds its place until its usage is recorded,
it is released, or its key's timeout passes; never more in flight than the limit,
across 16 processes."""
import time

from claude_keys import KeyStore
from tests.helpers.run import cli, create, proc, verdict
from tests.helpers.store import LIVE, sql
from tests.helpers.workers import spawn_manager, spawn_pool


def test_keys_release_frees_a_place():
    key = create("--max-concurrent", "1")
    code, answer = verdict(key["key"])
    assert code == 0 and verdict(key["key"])[0] == 5
    r = proc("keys", "release", answer["request_id"])
    assert r.exit_code == 0 and "Released" in r.stderr
    assert verdict(key["key"])[0] == 0
    r = cli("keys", "release", answer["request_id"])
    assert r.exit_code == 0 and "was not in flight" in r.stderr


def test_an_unsettled_request_expires_after_the_keys_timeout():
    key = create("--max-concurrent", "1")
    cli("keys", "permissions", key["id"], "--timeout", "1")
    assert verdict(key["key"])[0] == 0
    assert verdict(key["key"])[0] == 5
    time.sleep(1.2)
    assert verdict(key["key"])[0] == 0  # the crashed worker's place came back
    assert sql(LIVE) == [(2,)]  # the expired row counts for nothing; the next admissions clear it


def test_a_dry_run_opens_nothing():
    key = create("--max-concurrent", "1")
    for _ in range(3):
        code, answer = verdict(key["key"], "--dry-run")
        assert code == 0 and answer["request_id"] is None
    assert sql(LIVE) == [(0,)]


def test_a_timeout_of_zero_still_holds_a_place():
    key = create("--max-concurrent", "1")
    assert cli("keys", "permissions", key["id"], "--timeout", "0").exit_code == 0
    assert verdict(key["key"])[0] == 0
    code, body = verdict(key["key"])
    assert code == 5 and "Concurrency limit reached" in body["error"]["message"]


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
    manager = spawn_manager()
    counter, peak, lock = manager.Value("i", 0), manager.Value("i", 0), manager.Lock()
    start_at = time.time() + 3
    with spawn_pool(16) as pool:
        admitted = pool.map(_hold, [(str(isolated), key["key"], start_at, 15, counter, peak, lock)] * 16)
    assert peak.value == 3 and sum(admitted) > 3
    assert sql(LIVE) == [(0,)]
    assert sql("SELECT count(*) FROM usage") == [(sum(admitted),)]


def test_a_concurrency_refusal_says_when_to_try_again():
    # Retry-After: until the first request in flight gives its place up at its timeout,
    # at most gate.CONCURRENCY_RETRY_S; the same in `keys verify --json`, the Decision
    # and (tests/test_asgi.py) the gate's reply. With a rate limit, its headers too.
    from claude_keys.gate import CONCURRENCY_RETRY_S

    key = create("--max-concurrent", "1", "--rate-limit", "100")
    assert verdict(key["key"])[0] == 0
    code, answer = verdict(key["key"])
    assert code == 5 and answer["error"]["message"].startswith("Concurrency limit reached")
    assert answer["headers"]["Retry-After"] == str(CONCURRENCY_RETRY_S)  # the default timeout: 10 minutes
    assert answer["headers"]["X-RateLimit-Limit"] == "100" and answer["headers"]["X-RateLimit-Remaining"] == "99"
    short = create("--max-concurrent", "1")
    assert cli("keys", "permissions", short["id"], "--timeout", "2").exit_code == 0
    assert verdict(short["key"])[0] == 0
    decision = KeyStore().check(key=short["key"])
    assert decision.status == 429 and decision.headers["Retry-After"] in ("1", "2")
    assert verdict(short["key"], "--dry-run")[1]["headers"]["Retry-After"] in ("1", "2")


def test_a_project_concurrency_refusal_says_when_to_try_again():
    from claude_keys import PermissionManager

    key = create("--project-id", "shared")
    PermissionManager().set_project("shared", {"max_concurrent": 1})
    assert verdict(key["key"])[0] == 0
    code, answer = verdict(key["key"])
    assert code == 5 and answer["error"]["message"].startswith("Project concurrency limit reached")
    assert 1 <= int(answer["headers"]["Retry-After"]) <= 5
