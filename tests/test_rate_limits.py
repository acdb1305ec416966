"""Rate limits: one sliding 60-second window per lineage (and per project), kept on the
store's clock; exact under threads and processes, on SQLite and on PostgreSQL, where
taking a slot is one round trip."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from claude_keys import KeyStore
from claude_keys import db as store
from tests.helpers.run import cli, create, error, proc, verdict, verify
from tests.helpers.store import assert_consistent, sql
from tests.helpers.workers import spawn_pool


def test_rate_limit_counts_down_and_says_when_it_resets():
    key = create("--rate-limit", "3")
    remaining = [verify(key["key"], code=0)["headers"]["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    answer = verify(key["key"], code=5)
    assert answer["status"] == 429 and answer["headers"]["X-RateLimit-Remaining"] == "0"
    kind, message = error(answer)
    assert kind == "rate_limit_error" and message.startswith("Rate limit exceeded. Reset in ")
    seconds = int(message.split("Reset in ")[1].split()[0])
    assert 55 <= seconds <= 60


def test_dry_run_takes_no_slot_and_leaves_last_used(isolated):
    key = create("--rate-limit", "2")
    for _ in range(5):
        assert verify(key["key"], "--dry-run", code=0)["headers"]["X-RateLimit-Remaining"] == "2"
    assert cli("keys", "show", key["id"], "--json").json()["last_used_at"] is None
    verify(key["key"], code=0)
    assert cli("keys", "show", key["id"], "--json").json()["last_used_at"] is not None
    verify(key["key"], code=0)
    assert verify(key["key"], "--dry-run", code=5)["status"] == 429


def _slots(db, lineage, *ages_s):
    """Requests made `ages_s` seconds ago, as the gate would have stored them."""
    conn = store.connect(db)
    now = time.time_ns() // 1_000_000
    with conn.transaction():
        for age in ages_s:
            conn.execute("INSERT INTO rate_slots VALUES (?, ?, 1) ON CONFLICT (lineage, at_ms) "
                         "DO UPDATE SET n = rate_slots.n + 1", (lineage, now - int(age * 1000)))
        conn.execute("INSERT INTO rate_windows VALUES (?, (SELECT sum(n) FROM rate_slots WHERE "
                     "lineage = ?)) ON CONFLICT (lineage) DO UPDATE SET used = excluded.used",
                     (lineage, lineage))
    conn.close()


def test_sliding_window_has_no_burst_at_the_edge(isolated):
    """Ten requests 59 s ago still count; ten from 61 s ago do not (and are pruned)."""
    key = create("--rate-limit", "10")
    _slots(isolated, key["id"], *[59] * 10)
    answer = verify(key["key"], code=5)
    assert int(error(answer)[1].split("Reset in ")[1].split()[0]) <= 2
    key2 = create("--rate-limit", "10")
    _slots(isolated, key2["id"], *[61] * 10)
    verify(key2["key"], code=0)
    assert sql("SELECT sum(n) FROM rate_slots WHERE lineage = ?", (key2["id"],)) == [(1,)]
    assert sql("SELECT used FROM rate_windows WHERE lineage = ?", (key2["id"],)) == [(1,)]


def test_unlimited_keys_have_no_rate_headers():
    key = create()
    answer = verify(key["key"], code=0)
    assert answer["headers"] == {} and answer["timeout"] is None


def test_a_rate_limit_of_zero_says_so():
    key = create("--rate-limit", "0")
    assert error(verify(key["key"], code=5))[1] == "Rate limit exceeded. This API key allows no requests."


def test_a_refusal_by_one_rate_limit_keeps_the_other_window_true():
    """The key's window is pruned, then the project's limit refuses: the refusal commits,
    and the key's count must drop with its slots (else it stays inflated for good)."""
    assert cli("projects", "set", "shared", "--rate-limit", "2").exit_code == 0
    a = create("--project-id", "shared", "--rate-limit", "1")
    b = create("--project-id", "shared")
    assert verdict(a["key"])[0] == 0 and verdict(b["key"])[0] == 0
    lineage = sql("SELECT lineage FROM keys WHERE id = ?", (a["id"],))[0][0]
    sql("UPDATE rate_slots SET at_ms = at_ms - 120000 WHERE lineage = ?", (lineage,))  # a's slot is old
    code, body = verdict(a["key"])
    assert code == 5 and "Project rate limit exceeded" in body["error"]["message"]
    assert_consistent()
    assert sql("SELECT used FROM rate_windows WHERE lineage = ?", (lineage,))[0][0] == 0


# -- many processes, one window ---------------------------------------------------

def test_many_processes_get_exactly_the_limit():
    """32 verifications from 8 parallel streams of real processes, limit 13: exactly 13,
    and the window counts exactly its slots."""
    limit = 13
    key = create("--rate-limit", str(limit))

    def attempt(_):
        return proc("keys", "verify", "-", input=key["key"]).exit_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(attempt, range(32)))
    assert codes.count(0) == limit and codes.count(5) == 32 - limit, codes
    assert sql("SELECT used FROM rate_windows") == [(limit,)]


def _check_and_record(args):
    db, secret, tag, n = args
    keys = KeyStore(db)
    allowed = 0
    for i in range(n):
        decision = keys.check(key=secret)
        allowed += decision.allowed
        keys.record_usage(decision.key_id, input_tokens=3, cost="0.001", request_id=f"{tag}-{i}")
    return allowed


@pytest.mark.postgres_only
def test_processes_share_one_window_and_lose_no_usage(pg):
    key = create("--rate-limit", "37")
    with spawn_pool(8) as pool:
        allowed = pool.map(_check_and_record, [(pg, key["key"], f"w{i}", 25) for i in range(8)])
    assert sum(allowed) == 37
    assert sql("SELECT count(*), sum(input_tokens), sum(cost_nanos) FROM usage") == [(200, 600, 200_000_000)]
    assert_consistent()


@pytest.mark.postgres_only
def test_hosts_share_the_server_clock(pg, monkeypatch):
    """A host whose clock is two hours off still takes slots in the one shared window."""
    key = create("--rate-limit", "5")
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + 2 * 3600 * 10**9)
    keys = KeyStore()
    assert [keys.check(key=key["key"]).allowed for _ in range(6)] == [True] * 5 + [False]
    (slot,), = sql("SELECT max(at_ms) FROM rate_slots")
    assert abs(slot - real() // 1_000_000) < 5_000  # the server's time, not this host's


@pytest.mark.postgres_only
def test_a_slot_is_one_round_trip(pg, monkeypatch):
    from claude_keys.db import postgres

    key = create("--rate-limit", "100")
    keys = KeyStore()
    keys.check(key=key["key"])
    calls = []
    for name in ("execute", "rows"):
        method = getattr(postgres.Connection, name)
        monkeypatch.setattr(postgres.Connection, name,
                            lambda self, *a, method=method: calls.append(a[0]) or method(self, *a))
    assert keys.check(key=key["key"]).allowed
    assert len(calls) == 2 and "claude_take_slot" in calls[1]  # the key's row, then the slot
