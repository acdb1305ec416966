"""Many processes on one store: 8 processes calling KeyStore.check + record_usage for
10 s. Target: no error, nothing lost, and aggregate throughput at least that of one
process doing the same alone.

Usage: python bench/concurrency.py [--processes 8] [--seconds 10]
"""
from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import statistics
import sys
import time
from pathlib import Path

from _common import report, scratch, verdict

sys.path.insert(0, str(Path(__file__).parent.parent))


def worker(args):
    db, secret, tag, seconds, start_at = args
    from claude_keys import KeyStore

    store = KeyStore(db)
    headers = {"authorization": f"Bearer {secret}"}
    while time.time() < start_at:  # start together
        time.sleep(0.001)
    done = errors = 0
    end = start_at + seconds
    while time.time() < end:
        try:
            d = store.check(headers, tool="Read")
            assert d.allowed, d.body
            store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=100, output_tokens=10,
                               request_id=f"{tag}-{done}")
            done += 1
        except Exception as e:  # counted, and reported: the target is zero
            errors += 1
            print(f"{tag}: {type(e).__name__}: {e}", file=sys.stderr)
    return done, errors


def run(db, secrets, seconds: float) -> tuple[int, int, float]:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 1.5  # time for the workers to start
    tag = f"{time.time_ns()}"
    with ctx.Pool(len(secrets)) as pool:
        results = pool.map(worker, [(str(db), s, f"{tag}p{i}", seconds, start_at) for i, s in enumerate(secrets)])
    return sum(r[0] for r in results), sum(r[1] for r in results), seconds


def main(processes: int = 8, seconds: float = 10.0, rounds: int = 3) -> list[tuple]:
    from claude_keys import AuthManager

    folder = scratch("concurrency")
    db = folder / "keys.db"
    auth = AuthManager(db)
    secrets = [auth.generate_key(f"p{i}", rate_limit=None, use_keyring=False) for i in range(processes)]
    auth.close()
    alone = together = alone_errors = errors = 0
    singles, groups = [], []
    for _ in range(rounds):  # alternate, so drift on a shared machine hits both alike
        n, e, _ = run(db, secrets[:1], seconds / rounds)
        alone, alone_errors = alone + n, alone_errors + e
        singles.append(n)
        n, e, _ = run(db, secrets, seconds / rounds)
        together, errors = together + n, errors + e
        groups.append(n)
    stored = sqlite3.connect(db).execute("SELECT count(*) FROM usage").fetchone()[0]
    rolled = sqlite3.connect(db).execute("SELECT sum(requests) FROM usage_daily").fetchone()[0]
    ratio = statistics.median(g / s for g, s in zip(groups, singles))
    ok = errors == 0 and alone_errors == 0 and stored == rolled == alone + together and ratio >= 1
    rows = [(f"{processes} processes, check + record_usage, {seconds:.0f} s each",
             f"{together / seconds:,.0f}/s, {errors} errors", f"{alone / seconds:,.0f}/s (1 process)",
             f"{ratio:.2f}x", ">= 1x, 0 errors, nothing lost", verdict(ok)),
            ("requests recorded vs stored (and in the roll-ups)", f"{alone + together:,}",
             f"{stored:,} ({rolled:,})", "", "equal", verdict(stored == rolled == alone + together))]
    report("Concurrency", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    main(args.processes, args.seconds)
