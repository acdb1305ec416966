"""PostgreSQL as the store, measured against the least work the task needs on the same
server in the same run:

- KeyStore.check + record_usage for a key without limits, against raw psycopg doing one
  transaction with the digest lookup, one insert and the commit. Target: >= 0.6x. Also
  with a request id (the settling path), and the statements each call sends.
- a rate-limited key: its slot in one round trip (counted), and its rate.
- 8 processes (each its own key and project) against one process. Target: >= 1.3x.
  Each worker imports, opens its KeyStore and warms up before it is ready; the timed
  window opens for all at once (a barrier) and each counts only inside it.
- 8 processes with 8 keys in one project against 8 in eight projects (every request of
  a project and model updates one roll-up row of the day). Target: under 10 % slower.

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

WARM_UP = 20  # calls made before timing (psycopg prepares a statement at its 5th run)
READY_WAIT_S = 300.0  # how long the ready workers wait for the slowest to import and warm up


def ours(db: str, secret: str, seconds: float, request_ids: bool = False) -> float:
    """KeyStore.check + record_usage, calls per second (`request_ids`: each recorded with
    its own request id, the path that settles a request in flight)."""
    from claude_keys import KeyStore

    store = KeyStore(db)
    headers = {"authorization": f"Bearer {secret}"}
    tag = f"{time.time_ns()}-"
    for i in range(WARM_UP):  # untimed: the pool opened, the statements prepared
        d = store.check(headers, tool="Read")
        store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300,
                           request_id=f"{tag}warm-{i}" if request_ids else None)
    n, start = 0, time.perf_counter()
    while True:
        for i in range(50):
            d = store.check(headers, tool="Read")
            assert d.allowed, d.body
            store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300,
                               request_id=f"{tag}{n + i}" if request_ids else None)
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
    for _ in range(WARM_UP):  # as ours: warm, statements prepared
        conn.execute("SELECT id FROM keys WHERE digest = %s", (hashlib.sha256(token.encode()).digest(),))
        conn.commit()
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


def statements_sent(db: str, secret: str, request_id: bool = False) -> tuple[int, int]:
    """(statements of a warm check, of the record_usage after it) for `secret`'s key: each
    statement is one round trip (autocommit: its commit goes with it)."""
    from claude_keys import KeyStore
    from claude_keys.db import postgres

    store = KeyStore(db)
    d = store.check(key=secret)
    store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1, output_tokens=1)
    sent, saved = [], {}
    for name in ("execute", "rows"):  # every statement of the backend passes one of these
        saved[name] = method = getattr(postgres.Connection, name)
        setattr(postgres.Connection, name, lambda self, *a, method=method: sent.append(a[0]) or method(self, *a))
    try:
        d = store.check(key=secret)
        checked = len(sent)
        store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1, output_tokens=1,
                           request_id=f"trips-{time.time_ns()}" if request_id else None)
    finally:
        for name, method in saved.items():
            setattr(postgres.Connection, name, method)
    store.close()
    return checked, len(sent) - checked


def round_trips_of_a_check(db: str, secret: str) -> int:
    """Statements a warm check of a rate-limited key sends (each one round trip)."""
    return statements_sent(db, secret)[0]


def _worker(db: str, secret: str, tag: str, seconds: float, ready, results) -> None:
    """One process of a concurrent run: it imports, opens its KeyStore and warms up (its
    statements prepared) before it says it is ready; the timed window opens for every
    worker at once when all are, and each counts only the calls it ends inside it."""
    try:
        from claude_keys import KeyStore

        store = KeyStore(db)
        for i in range(WARM_UP):
            d = store.check(key=secret, tool="Read")
            assert d.allowed, d.body
            store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=100, output_tokens=10,
                               request_id=f"{tag}-warm-{i}")
    except BaseException:
        ready.abort()  # (the others stop waiting)
        raise
    ready.wait(timeout=READY_WAIT_S)
    done = errors = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        try:
            d = store.check(key=secret, tool="Read")
            store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=100, output_tokens=10,
                               request_id=f"{tag}-{done}-{errors}")
            ended = time.perf_counter()
            if ended > end:
                break
            done += 1
        except Exception as e:  # counted: the target is zero
            errors += 1
            print(f"{tag}: {type(e).__name__}: {e}", file=sys.stderr)
            if time.perf_counter() > end:
                break
    results.put((done / seconds, errors))
    store.close()


def _together(db: str, secrets: list[str], seconds: float) -> tuple[float, int]:
    """Calls per second of len(secrets) processes at once (each its own key), and errors."""
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(len(secrets)), ctx.Queue()
    tag = f"{time.time_ns()}"
    workers = [ctx.Process(target=_worker, args=(db, s, f"{tag}p{i}", seconds, ready, results))
               for i, s in enumerate(secrets)]
    for w in workers:
        w.start()
    got = []
    try:
        while len(got) < len(workers):
            try:
                got.append(results.get(timeout=1.0))
            except Exception:  # (queue.Empty) a worker that died sends nothing
                if any(w.exitcode not in (None, 0) for w in workers):
                    raise SystemExit("a benchmark worker failed (see its traceback above)")
    finally:
        for w in workers:
            w.join(timeout=30)
    return sum(r[0] for r in got), sum(r[1] for r in got)


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
    # N keys in N projects, and N keys in one project: every request of a project and model
    # updates that project's one roll-up row of the day (usage_project_daily).
    apart = [auth.generate_key(f"p{i}", rate_limit=None, use_keyring=False) for i in range(processes)]
    shared = [auth.generate_key("shared", rate_limit=None, use_keyring=False) for _ in range(processes)]
    auth.close()
    raw_setup(floor_db, 10)
    mine, with_ids, floor, slotted = [], [], [], []
    slices = rounds * 3  # short slices, alternated: drift on a shared machine hits all alike
    for _ in range(slices):
        mine.append(ours(db, plain, seconds / slices))
        floor.append(raw(floor_db, 10, seconds / slices))
        with_ids.append(ours(db, plain, seconds / slices, request_ids=True))
        slotted.append(ours(db, limited, seconds / slices))
    rate, base, id_rate, limited_rate = (statistics.median(x) for x in (mine, floor, with_ids, slotted))
    # each ratio: the median of its slices' ratios to the floor's slice beside them
    to_floor = {name: statistics.median(m / f for m, f in zip(series, floor))
                for name, series in (("plain", mine), ("ids", with_ids), ("limited", slotted))}
    trips = round_trips_of_a_check(db, limited)
    plain_trips = statements_sent(db, plain)
    id_trips = statements_sent(db, plain, request_id=True)[1]
    alone, together, one_project, errors = [], [], [], 0
    for r in range(max(1, rounds // 2)):  # alternate: 1 process, N in N projects, N in one project
        order = [(alone, apart[:1]), (together, apart), (one_project, shared)]
        for runs, secrets in (order if r % 2 == 0 else order[::-1]):
            n, e = _together(db, secrets, seconds / 2)
            runs.append(n)
            errors += e
    ratio = statistics.median(t / a for t, a in zip(together, alone))
    gap = statistics.median(1 - o / t for o, t in zip(one_project, together))
    conn = store.connect(db)
    stored = conn.execute("SELECT count(*) FROM usage").fetchone()[0]
    rolled = conn.execute("SELECT sum(requests) FROM usage_daily").fetchone()[0]
    by_project = conn.execute("SELECT sum(requests) FROM usage_project_daily").fetchone()[0]
    conn.close()
    rows = [
        ("check + record_usage (key without limits)", f"{rate:,.0f}/s", f"{base:,.0f}/s raw psycopg",
         f"{to_floor['plain']:.2f}x", ">= 0.6x", verdict(to_floor["plain"] >= 0.6)),
        ("the same, each recorded with a request id", f"{id_rate:,.0f}/s", f"{base:,.0f}/s raw psycopg",
         f"{to_floor['ids']:.2f}x", "", ""),
        ("check + record_usage (rate-limited key)", f"{limited_rate:,.0f}/s", f"{base:,.0f}/s raw psycopg",
         f"{to_floor['limited']:.2f}x", "", ""),
        ("statements of a rate-limited check", f"{trips} (key lookup + claude_take_slot)", "",
         "", "the slot in 1 round trip", verdict(trips == 2)),
        ("statements of check + record_usage (key without limits)",
         f"{plain_trips[0]} + {plain_trips[1]} ({id_trips} with a request id)", "3 (raw: lookup, insert, commit)",
         "", "1 + 1", verdict(plain_trips == (1, 1) and id_trips == 1)),
        (f"{processes} processes vs 1 (each its own key and project)",
         f"{statistics.median(together):,.0f}/s, {errors} errors",
         f"{statistics.median(alone):,.0f}/s (1 process)", f"{ratio:.2f}x",
         ">= 1.3x, 0 errors", verdict(ratio >= 1.3 and errors == 0)),
        (f"{processes} processes in one project vs in {processes} projects",
         f"{statistics.median(one_project):,.0f}/s", f"{statistics.median(together):,.0f}/s",
         f"{gap:.0%} slower", "< 10% slower", verdict(gap < 0.10)),
        ("roll-ups agree with the requests", f"{rolled:,} (by key), {by_project:,} (by project)", f"{stored:,}",
         "", "equal", verdict(rolled == stored == by_project)),
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
