"""Reports at scale: stores of 100,000 and 10,000,000 usage records, and the time of
each report in COMMANDS (totals, by project, by day, by day and model, a week whose
bounds fall inside hours, a week by session, a week's 5-hour blocks) as whole processes.

Targets: each under 1 s with 10M records, and within 1.5x of the same with 100,000.
Stores are built once through the import path (time-ordered records of 200 keys in
20 projects over a year, each key mostly on one model, a session per key and 6 hours)
in the inputs folder (_common.inputs_folder: temporary unless CLAUDE_API_BENCH_CACHE).

Usage: python bench/reports_scale.py [--sizes 100000 10000000] [--runs 9]
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import random
import sys
import time
from pathlib import Path

from _common import EXE, FLOOR_IMPORT, env_for, inputs_folder, interleaved, ms, report, verdict


MODELS = ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-sonnet-4"]
START_MS = 1_735_689_600_000  # 2025-01-01
YEAR_MS = 365 * 86_400_000


def build(path: Path, records: int, seed: int = 5) -> None:
    """A store with `records` requests, written through the import's staging and merge."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from claude_keys import AuthManager
    from claude_keys import db as store
    from claude_keys.db.staging import Staging
    from claude_keys.pricing import Pricer

    tmp = path.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    auth = AuthManager(tmp)
    keys = []
    for i in range(200):
        auth.generate_key(f"project-{i % 20:02d}", profile="pro", use_keyring=False, name=f"key {i}")
    conn = store.connect(tmp)
    keys = [(k, p) for k, p in conn.execute("SELECT id, project_id FROM keys")]
    rng = random.Random(seed)
    favourite = {k: rng.choice(MODELS) for k, _ in keys}
    price = Pricer()
    staging = Staging(conn)
    started = time.time()
    step = YEAR_MS / records
    for i in range(records):
        key, project = keys[rng.randrange(len(keys))]
        model = favourite[key] if rng.random() < 0.85 else rng.choice(MODELS)
        at = START_MS + int(i * step)
        inp, out, read, w5 = rng.randrange(4000), rng.randrange(1500), rng.randrange(60000), rng.randrange(4000)
        cost = price(model, inp, out, read, w5, 0)
        session = f"{key}-{at // 21_600_000}"  # a Claude Code session per key and 6 hours
        staging.add((f"req_{at:013d}{i:09d}", key, project, at, model, inp, out, read, w5, 0, cost, 1, session))
        if i and i % 1_000_000 == 0:
            print(f"  {i:,} records staged ({time.time() - started:.0f} s)", flush=True)
    staging.merge()
    staging.drop()
    conn.close()
    auth.close()
    # Everything into the main file before it is renamed (the WAL keeps its old name).
    final = sqlite3.connect(tmp)
    final.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    final.close()
    os.replace(tmp, path)
    print(f"  built {path.name}: {records:,} records in {time.time() - started:.0f} s", flush=True)


COMMANDS = {
    "usage summary --period all --json": ["usage", "summary", "--period", "all", "--json"],
    "usage by-project --json": ["usage", "by-project", "--period", "all", "--json"],
    "usage summary --by day --period all --json": ["usage", "summary", "--by", "day", "--period", "all", "--json"],
    "usage summary --by day,model --period all --json": ["usage", "summary", "--by", "day,model", "--period", "all",
                                                         "--json"],
    # A week: bounds inside hours (raw requests by the time index) and per session and block.
    "usage summary, a week from 10:17 to 15:43 --json": ["usage", "summary", "--since", "2025-06-02T10:17:00Z",
                                                         "--until", "2025-06-09T15:43:00Z", "--json"],
    "usage summary --by session, a week --json": ["usage", "summary", "--by", "session", "--since", "2025-06-02",
                                                  "--until", "2025-06-09", "--json"],
    "usage blocks, a week --json": ["usage", "blocks", "--since", "2025-06-02", "--until", "2025-06-09", "--json"],
}


def main(sizes=(100_000, 10_000_000), runs: int = 9) -> list[tuple]:
    results = {}
    for size in sizes:
        path = inputs_folder() / f"reports-{size}.db"
        if not path.exists():
            print(f"building a store of {size:,} records (kept in {path})", flush=True)
            build(path, size)
        env = env_for(path)
        commands = {"floor": FLOOR_IMPORT, **{n: [EXE, *a] for n, a in COMMANDS.items()}}
        results[size] = interleaved(commands, env, runs)
    small, large = min(sizes), max(sizes)
    rows = []
    for name in COMMANDS:
        big, little = results[large][name], results[small][name]
        ratio = big / little
        ok = big < 1.0 and ratio <= 1.5
        rows.append((f"`{name}`, {large:,} records", ms(big), f"{ms(little)} with {small:,}",
                     f"{ratio:.2f}x", "< 1 s and <= 1.5x", verdict(ok)))
    report(f"Reports at scale (median of {runs}; process floor {ms(results[large]['floor'])})", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    main(tuple(args.sizes), args.runs)
