"""In-process request path: KeyStore.check(headers, tool=...) then record_usage(...),
repeated, against the same work done in raw sqlite3 (an indexed digest lookup, one
insert, one commit; WAL, synchronous=NORMAL). Target: >= 0.4 x the raw rate.

Usage: python bench/request_path.py [--seconds S] [--keys N]
"""
from __future__ import annotations

import argparse
import hashlib
import sqlite3
import statistics
import time

from _common import report, scratch, verdict


def seed_keys(db, n: int, rate_limit=None):
    """n keys through the library (the last one is used), fast: one transaction."""
    from claude_keys import AuthManager
    from claude_keys import keys as lib
    from claude_keys import store

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
    profile = "enterprise" if rate_limit is None else "pro"  # enterprise: no rate limit
    return auth.generate_key("bench", rate_limit=rate_limit, profile=profile, use_keyring=False)


def ours(db, secret: str, seconds: float) -> float:
    from claude_keys import KeyStore

    store = KeyStore(db)
    headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(100):
            d = store.check(headers, tool="Read")
            assert d.allowed, d.body
            store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300)
        n += 100
        elapsed = time.perf_counter() - start
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
    """The floor: the same work in plain sqlite3 (lookup by digest, insert, commit)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    token = f"t{keys - 1}"
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(100):
            key_id = conn.execute("SELECT id FROM keys WHERE digest = ?",
                                  (hashlib.sha256(token.encode()).digest(),)).fetchone()[0]
            conn.execute("BEGIN")
            conn.execute("INSERT INTO usage (key_id, at_ms, model, input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?)",
                         (key_id, time.time_ns() // 1_000_000, "claude-sonnet-4-5", 1200, 300))
            conn.execute("COMMIT")
        n += 100
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            conn.close()
            return n / elapsed


def measure(keys: int, seconds: float, rate_limit=None, rounds: int = 8) -> tuple[float, float]:
    """Median rates over `rounds` alternating rounds, so drift on a shared machine
    hits both alike."""
    folder = scratch("path")
    secret = seed_keys(folder / "ours.db", keys, rate_limit)
    raw_store(folder / "raw.db", keys)
    mine, floor = [], []
    for _ in range(rounds):
        mine.append(ours(folder / "ours.db", secret, seconds / rounds))
        floor.append(raw(folder / "raw.db", keys, seconds / rounds))
    return statistics.median(mine), statistics.median(floor)


def main(seconds: float = 4.0, keys: int = 10) -> list[tuple]:
    rows = []
    for label, limit in (("no rate limit", None), ("rate-limited key", 10**9)):
        rate, floor = measure(keys, seconds, limit)
        ratio = rate / floor
        rows.append((f"check + record_usage ({label}, {keys:,} keys)", f"{rate:,.0f}/s", f"{floor:,.0f}/s",
                     f"{ratio:.2f}x", ">= 0.4x", verdict(ratio >= 0.4)))
    report("In-process request path", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--keys", type=int, default=10)
    args = parser.parse_args()
    main(args.seconds, args.keys)
