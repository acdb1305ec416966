"""In-process request path: KeyStore.check(headers, tool=...) then record_usage(...),
repeated, against the least work the task needs done in raw sqlite3: one BEGIN
IMMEDIATE transaction with the indexed digest lookup, one insert and the commit (WAL,
synchronous=NORMAL). Targets: >= 0.4x that floor for a key without limits; >= 0.25x for
a key with a monthly budget and a concurrency limit (its check reserves the request's
cost and holds its place in flight; its record settles it).

Beside the floor, the same run measures *our statements alone*: every statement one
check + record_usage pair sends to SQLite (caught from the store's connection, with
their parameters), replayed in plain sqlite3 on a copy of the same store, a fresh
request id each time, the WAL checkpointed as the store's connections do it. That is the
least the pair can cost with the store's schema (its roll-ups, indexes and
transactions) and no Python of ours: the pair's time minus it is the Python, the
floor's time subtracted from it is what the schema asks beyond the floor.

With --cpu, each side is timed by the CPU time of this process (time.process_time)
instead of the wall clock: on a shared, loaded machine the wall clock mostly measures
the scheduler; CPU time is the work itself (SQLite runs in this process; its writes to
the page cache count as system time). Same floor, same rounds.

Usage: python bench/request_path.py [--seconds S] [--keys N] [--cpu]
"""
from __future__ import annotations

import argparse
import hashlib
import sqlite3
import statistics
import time
from contextlib import contextmanager

from _common import report, scratch, verdict

clock = time.perf_counter  # (--cpu: time.process_time)


KINDS = {  # key kind -> (generate_key options, check options)
    "without limits": ({"rate_limit": None, "profile": "enterprise"}, {}),
    "with a budget and a concurrency limit": (
        {"rate_limit": None, "profile": "enterprise", "monthly_budget": 10**8, "max_concurrent": 64},
        {"cost": "0.01"}),
    "rate-limited": ({"rate_limit": 10**9, "profile": "pro"}, {}),
}


def seed_keys(db, n: int, kind: str):
    """n keys through the library (the last one is used), fast: one transaction."""
    from claude_keys import AuthManager
    from claude_keys import keys as lib
    from claude_keys import db as store

    auth = AuthManager(db)
    if n > 1:
        conn = store.connect(db)
        import secrets as rnd

        with store.write(conn):
            for i in range(n - 1):
                token = "cc_bench_" + rnd.token_hex(16)
                lib._insert(conn, f"b{i:011d}", token, f"proj{i % 50}", None, "enterprise", {},
                            created_at=0, expires_at=None, in_keyring=False, lineage=f"b{i:011d}",
                            rotated_from=None, source="imported")
        conn.close()
    return auth.generate_key("bench", use_keyring=False, **KINDS[kind][0])


def pairs(db, secret: str, kind: str):
    """The store, and a function making one check + record_usage pair on it."""
    from claude_keys import KeyStore

    store = KeyStore(db)
    headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    check, tracked = KINDS[kind][1], kind != "without limits" and kind != "rate-limited"

    def pair():
        d = store.check(headers, tool="Read", **check)
        assert d.allowed, d.body
        store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300,
                           request_id=d.request_id if tracked else None)

    return store, pair


def ours(db, secret: str, seconds: float, kind: str) -> float:
    store, pair = pairs(db, secret, kind)
    n, start = 0, clock()
    while True:
        for _ in range(100):
            pair()
        n += 100
        elapsed = clock() - start
        if elapsed >= seconds:
            store.close()
            return n / elapsed


def raw_store(db, keys: int):
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE keys (id TEXT PRIMARY KEY, digest BLOB UNIQUE, project TEXT)")
    conn.execute("CREATE TABLE usage (id INTEGER PRIMARY KEY, key_id TEXT, at_ms INTEGER, model TEXT, "
                 "input_tokens INTEGER, output_tokens INTEGER)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO keys VALUES (?, ?, ?)",
                     ((f"k{i}", hashlib.sha256(f"t{i}".encode()).digest(), "p") for i in range(keys)))
    conn.execute("COMMIT")
    conn.close()


def raw(db, keys: int, seconds: float) -> float:
    """The floor: one BEGIN IMMEDIATE transaction with the lookup by digest, one insert and
    the commit, in plain sqlite3."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    token = f"t{keys - 1}"
    n, start = 0, clock()
    while True:
        for _ in range(100):
            conn.execute("BEGIN IMMEDIATE")
            key_id = conn.execute("SELECT id FROM keys WHERE digest = ?",
                                  (hashlib.sha256(token.encode()).digest(),)).fetchone()[0]
            conn.execute("INSERT INTO usage (key_id, at_ms, model, input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?)",
                         (key_id, time.time_ns() // 1_000_000, "claude-sonnet-4-5", 1200, 300))
            conn.execute("COMMIT")
        n += 100
        elapsed = clock() - start
        if elapsed >= seconds:
            conn.close()
            return n / elapsed


@contextmanager
def catching():
    """Every statement the store's SQLite connections send meanwhile, with its parameters
    (transactions included), appended to the list it yields."""
    from claude_keys.db import sqlite as backend

    sent, execute = [], backend.Connection.execute

    def caught(self, sql, params=()):
        sent.append((sql, tuple(params)))
        return execute(self, sql, params)

    backend.Connection.execute = caught
    try:
        yield sent
    finally:
        backend.Connection.execute = execute


def statements(db, secret: str, kind: str) -> list[tuple[str, tuple]]:
    """The statements of one warm check + record_usage pair."""
    store, pair = pairs(db, secret, kind)
    try:
        for _ in range(50):  # warm: the key and the statements' first-use work
            pair()
        with catching() as sent:
            pair()
    finally:
        store.close()
    return sent


def _minted(p) -> bool:
    return type(p) is str and p.startswith(("req_", "req-"))


def our_statements(db, sent, seconds: float, checkpoint_every: int | None = None) -> float:
    """`sent` replayed in plain sqlite3 again and again, each time with new request ids of
    the same length (every `req_...` or `req-...` parameter: a check's, which its record
    settles, or a record's own; one new id for each id caught). Replays a second. Times
    are replayed as caught: a rate-limited key's slot then lands on one row each time,
    and its prune finds nothing (cheaper than the real thing; that row has no target).

    The WAL is checkpointed as the store's own connections do it: KeyStore's every
    WAL_AUTOCHECKPOINT pages (the default); with `checkpoint_every` (an event loop's
    connection, which never checkpoints), every that many write transactions, off the
    clock (a worker thread does it there, not the loop)."""
    from claude_keys.db.sqlite import WAL_AUTOCHECKPOINT

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint={0 if checkpoint_every else WAL_AUTOCHECKPOINT}")
    caught, plan, writes, open_ = {}, [], 0, False  # plan: (sql, params, [(param, which new id)])
    for sql, params in sent:
        plan.append((sql, params, [(i, caught.setdefault(p, len(caught))) for i, p in enumerate(params)
                                   if _minted(p)]))
        verb = sql.lstrip()[:6].upper()
        if verb == "BEGIN ":
            open_ = True
        elif verb == "COMMIT" or (not open_ and verb in ("INSERT", "UPDATE", "DELETE")):
            writes, open_ = writes + 1, False
    assert len(caught) < 256
    prefixes = [old[:4] for old in caught]
    n, written, start = 0, 0, clock()
    while True:
        for _ in range(10):
            stamp = f"{time.time_ns():016x}{n:06x}"
            ids = [f"{prefix}{stamp}{i:02x}" for i, prefix in enumerate(prefixes)]
            n += 1
            for sql, params, spots in plan:
                if spots:
                    params = list(params)
                    for i, which in spots:
                        params[i] = ids[which]
                conn.execute(sql, params).fetchall()
            written += writes
            if checkpoint_every and written >= checkpoint_every:
                paused = clock()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                start += clock() - paused
                written = 0
        elapsed = clock() - start
        if elapsed >= seconds:
            conn.close()
            return n / elapsed


def copy_store(source, target) -> None:
    """A consistent copy of a store in use (its WAL included), by SQLite's backup."""
    source, target = sqlite3.connect(source), sqlite3.connect(target)
    source.backup(target)
    source.close()
    target.close()


def measure(keys: int, seconds: float, kind: str, rounds: int = 8) -> tuple[float, float, float, int]:
    """Median rates over `rounds` alternating rounds, so drift on a shared machine
    hits all three alike: ours, the floor, our statements alone (and how many those are)."""
    folder = scratch("path")
    secret = seed_keys(folder / "ours.db", keys, kind)
    raw_store(folder / "raw.db", keys)
    sent = statements(folder / "ours.db", secret, kind)
    copy_store(folder / "ours.db", folder / "replay.db")
    mine, floor, alone = [], [], []
    for _ in range(rounds):
        mine.append(ours(folder / "ours.db", secret, seconds / rounds, kind))
        floor.append(raw(folder / "raw.db", keys, seconds / rounds))
        alone.append(our_statements(folder / "replay.db", sent, seconds / rounds))
    return statistics.median(mine), statistics.median(floor), statistics.median(alone), len(sent)


TARGETS = {"without limits": 0.4, "with a budget and a concurrency limit": 0.25, "rate-limited": None}


def main(seconds: float = 4.0, keys: int = 10) -> list[tuple]:
    rows = []
    for kind, target in TARGETS.items():
        rate, floor, alone, count = measure(keys, seconds, kind)
        ratio = rate / floor
        rows.append((f"check + record_usage (key {kind}, {keys:,} keys)", f"{rate:,.0f}/s", f"{floor:,.0f}/s",
                     f"{ratio:.2f}x", f">= {target}x" if target else "", verdict(ratio >= target) if target else ""))
        rows.append((f"  our {count} statements alone (plain sqlite3; µs a pair: ours {1e6 / rate:.1f}, "
                     f"statements {1e6 / alone:.1f}, floor {1e6 / floor:.1f})", f"{alone:,.0f}/s", f"{floor:,.0f}/s",
                     f"{alone / floor:.2f}x", "", ""))
    report("In-process request path", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--cpu", action="store_true", help="time by this process's CPU time, not the wall clock")
    args = parser.parse_args()
    if args.cpu:
        clock = time.process_time
    main(args.seconds, args.keys)
