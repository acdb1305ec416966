"""PostgreSQL as the store, measured against the least work the task needs on the same
server in the same run:

- KeyStore.check + record_usage for a key without limits, against raw psycopg doing one
  transaction with the digest lookup, one insert and the commit. Target: >= 0.5x.
- a rate-limited key: its slot in one round trip (counted), and its rate.
- 8 processes (each its own key) against one process. Target: >= 1x.

Usage: python bench/postgres.py [--db postgresql://…] [--seconds S] [--processes 8]
Without --db, a throwaway server is started for the run (needs PostgreSQL's binaries,
as the tests do) and removed afterwards; the floor gets its own database beside ours.
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

from _common import report, verdict

sys.path.insert(0, str(Path(__file__).parent.parent))  # tests.helpers.pg_server: the tests' throwaway server


def ours(db: str, secret: str, seconds: float) -> float:
    from claude_keys import KeyStore

    store = KeyStore(db)
    headers = {"authorization": f"Bearer {secret}"}
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(50):
            d = store.check(headers, tool="Read")
            assert d.allowed, d.body
            store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300)
        n += 50
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            store.close()
            return n / elapsed


def raw_setup(uri: str, keys: int) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS keys (id text PRIMARY KEY, digest bytea UNIQUE, project text)")
        conn.execute("CREATE TABLE IF NOT EXISTS usage (id bigserial PRIMARY KEY, key_id text, at_ms bigint, "
                     "model text, input_tokens bigint, output_tokens bigint)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO keys VALUES (%s, %s, 'p') ON CONFLICT DO NOTHING",
                            [(f"k{i}", hashlib.sha256(f"t{i}".encode()).digest()) for i in range(keys)])


def raw(uri: str, keys: int, seconds: float) -> float:
    """The floor: one transaction with the digest lookup, one insert and the commit."""
    import psycopg

    conn = psycopg.connect(uri)
    token = f"t{keys - 1}"
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(50):
            digest = hashlib.sha256(token.encode()).digest()
            key_id = conn.execute("SELECT id FROM keys WHERE digest = %s", (digest,)).fetchone()[0]
            conn.execute("INSERT INTO usage (key_id, at_ms, model, input_tokens, output_tokens) "
                         "VALUES (%s, %s, %s, %s, %s)",
                         (key_id, time.time_ns() // 1_000_000, "claude-sonnet-4-5", 1200, 300))
            conn.commit()
        n += 50
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            conn.close()
            return n / elapsed


def round_trips_of_a_check(db: str, secret: str) -> int:
    """Statements a warm check of a rate-limited key sends (each one round trip)."""
    from claude_keys import KeyStore
    from claude_keys.db import postgres

    store = KeyStore(db)
    store.check(key=secret)
    sent, saved = [], {}
    for name in ("execute", "rows"):  # every statement of the backend passes one of these
        saved[name] = method = getattr(postgres.Connection, name)
        setattr(postgres.Connection, name, lambda self, *a, method=method: sent.append(a[0]) or method(self, *a))
    try:
        store.check(key=secret)
    finally:
        for name, method in saved.items():
            setattr(postgres.Connection, name, method)
    store.close()
    return len(sent)


def _worker(args):
    db, secret, tag, seconds, start_at = args
    from claude_keys import KeyStore

    store = KeyStore(db)
    while time.time() < start_at:
        time.sleep(0.001)
    done = errors = 0
    while time.time() < start_at + seconds:
        try:
            d = store.check(key=secret, tool="Read")
            store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=100, output_tokens=10,
                               request_id=f"{tag}-{done}")
            done += 1
        except Exception as e:  # counted: the target is zero
            errors += 1
            print(f"{tag}: {type(e).__name__}: {e}", file=sys.stderr)
    return done, errors


def _together(db: str, secrets: list[str], seconds: float) -> tuple[int, int]:
    start_at = time.time() + 1.5
    tag = f"{time.time_ns()}"
    with multiprocessing.get_context("spawn").Pool(len(secrets)) as pool:
        results = pool.map(_worker, [(db, s, f"{tag}p{i}", seconds, start_at) for i, s in enumerate(secrets)])
    return sum(r[0] for r in results), sum(r[1] for r in results)


def main(db: str | None = None, seconds: float = 6.0, processes: int = 8, rounds: int = 6) -> list[tuple]:
    server = None
    if db is None:
        from tests.helpers import pg_server

        reason = pg_server.missing_reason()
        if reason:
            print(f"\n## PostgreSQL\n\nskipped: {reason}\n")
            return []
        server = pg_server.Server(durable=True)
        db, floor_db = server.create_database("bench_ours"), server.create_database("bench_floor")
    else:
        floor_db = db
    try:
        return _measure(db, floor_db, seconds, processes, rounds)
    finally:
        if server is not None:
            server.close()


def _measure(db: str, floor_db: str, seconds: float, processes: int, rounds: int) -> list[tuple]:
    from claude_keys import AuthManager
    from claude_keys import db as store

    auth = AuthManager(db)
    plain = auth.generate_key("bench", rate_limit=None, use_keyring=False)
    limited = auth.generate_key("bench", rate_limit=10**9, profile="pro", use_keyring=False)
    secrets = [auth.generate_key(f"p{i}", rate_limit=None, use_keyring=False) for i in range(processes)]
    auth.close()
    raw_setup(floor_db, 10)
    mine, floor, slotted = [], [], []
    for _ in range(rounds):  # alternate, so drift on a shared machine hits all alike
        mine.append(ours(db, plain, seconds / rounds))
        floor.append(raw(floor_db, 10, seconds / rounds))
        slotted.append(ours(db, limited, seconds / rounds))
    rate, base, limited_rate = (statistics.median(x) for x in (mine, floor, slotted))
    trips = round_trips_of_a_check(db, limited)
    alone, together, errors = [], [], 0
    for _ in range(max(1, rounds // 3)):  # alternate: 1 process, then all
        n, e = _together(db, secrets[:1], seconds / 2)
        alone.append(n)
        errors += e
        n, e = _together(db, secrets, seconds / 2)
        together.append(n)
        errors += e
    ratio = statistics.median(t / a for t, a in zip(together, alone))
    conn = store.connect(db)
    stored = conn.execute("SELECT count(*) FROM usage").fetchone()[0]
    rolled = conn.execute("SELECT sum(requests) FROM usage_daily").fetchone()[0]
    conn.close()
    rows = [
        ("check + record_usage (key without limits)", f"{rate:,.0f}/s", f"{base:,.0f}/s raw psycopg",
         f"{rate / base:.2f}x", ">= 0.5x", verdict(rate / base >= 0.5)),
        ("check + record_usage (rate-limited key)", f"{limited_rate:,.0f}/s", f"{base:,.0f}/s raw psycopg",
         f"{limited_rate / base:.2f}x", "", ""),
        ("statements of a rate-limited check", f"{trips} (key lookup + claude_take_slot)", "",
         "", "the slot in 1 round trip", verdict(trips == 2)),
        (f"{processes} processes vs 1, check + record_usage", f"{statistics.median(together) / (seconds / 2):,.0f}/s, "
         f"{errors} errors", f"{statistics.median(alone) / (seconds / 2):,.0f}/s (1 process)", f"{ratio:.2f}x",
         ">= 1x, 0 errors", verdict(ratio >= 1 and errors == 0)),
        ("roll-ups agree with the requests", f"{rolled:,}", f"{stored:,}", "", "equal", verdict(rolled == stored)),
    ]
    report("PostgreSQL", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="an existing PostgreSQL database to use (it must be empty)")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args()
    main(args.db, args.seconds, args.processes)
