"""This checkout against an earlier commit, side by side in one run: the in-process
request path (KeyStore.check + record_usage) and a cold `keys verify --dry-run`, on
SQLite and, when PostgreSQL is installed, on PostgreSQL. Rounds of the two sides
alternate, so drift on a shared machine hits both alike; the figures are medians.

The earlier commit is taken from git (`git archive`) into a temporary folder and run
from there (`python -m claude_keys`, PYTHONPATH): both sides use this interpreter and
these installed libraries, and the same store (the schema is the same).

Usage: python bench/before_after.py [--base REV] [--seconds S] [--runs N] [--no-postgres]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

from _common import FLOOR_IMPORT, ms, scratch

ROOT = Path(__file__).resolve().parent.parent
BASE = "a9d7a53"  # main before the storage package (issue 15)

CHILD = r"""
import sys, time
from claude_keys import KeyStore
db, kind, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
secret = sys.argv[4]
store = KeyStore(db)
headers = {"authorization": f"Bearer {secret}"}
cost = {"cost": "0.01"} if kind == "budget" else {}
for _ in range(50):  # warm up: connections, caches
    d = store.check(headers, tool="Read", **cost)
    store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300,
                       request_id=d.request_id)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    for _ in range(50):
        d = store.check(headers, tool="Read", **cost)
        assert d.allowed, d.body
        store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300,
                           request_id=d.request_id)
    n += 50
print(n / (time.perf_counter() - start))
"""
KINDS = {"plain": {"rate_limit": None},
         "rate-limited": {"rate_limit": 10**9, "profile": "pro"},
         "budget": {"rate_limit": None, "monthly_budget": 10**8, "max_concurrent": 64}}


def checkout(rev: str) -> Path:
    """The package as it was at `rev`, in a temporary folder."""
    folder = scratch("before")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "claude_keys"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def env_of(source: Path, db: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(source), "CLAUDE_API_DB": db, "CLAUDE_API_NO_KEYRING": "1"}


def make_key(db: str, kind: str) -> str:
    code = ("import sys, json; from claude_keys import AuthManager; "
            "print(AuthManager(sys.argv[1]).generate_key('bench', use_keyring=False, **json.loads(sys.argv[2])))")
    done = subprocess.run([sys.executable, "-c", code, db, json.dumps(KINDS[kind])], capture_output=True,
                          text=True, env=env_of(ROOT, db), check=True)
    return done.stdout.strip()


def rate(source: Path, db: str, kind: str, secret: str, seconds: float) -> float:
    done = subprocess.run([sys.executable, "-c", CHILD, db, kind, str(seconds), secret],
                          capture_output=True, text=True, env=env_of(source, db))
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return float(done.stdout)


def request_path(sides: dict, db_for, seconds: float, rounds: int, label: str) -> list[tuple]:
    rows = []
    for kind in KINDS:
        db = db_for(kind)
        secret = make_key(db, kind)
        rates = {name: [] for name in sides}
        for _ in range(rounds):
            for name, source in sides.items():
                rates[name].append(rate(source, db, kind, secret, seconds / rounds))
        before, after = (statistics.median(rates[n]) for n in ("before", "after"))
        rows.append((f"{label}: check + record_usage, key {kind}", f"{before:,.0f}/s", f"{after:,.0f}/s",
                     f"{after / before:.2f}x"))
    return rows


def cold_verify(sides: dict, db: str, runs: int) -> list[tuple]:
    import time

    secret = make_key(db, "rate-limited")
    commands = {name: [sys.executable, "-m", "claude_keys", "keys", "verify", secret, "--dry-run", "--tool", "Read"]
                for name in sides}
    times = {name: [] for name in [*sides, "floor"]}
    for _ in range(runs + 1):  # the first round warms .pyc files and the page cache
        for name in [*sides, "floor"]:
            args = FLOOR_IMPORT if name == "floor" else commands[name]
            env = env_of(sides.get(name, ROOT), db)
            start = time.perf_counter()
            done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(done.stderr.decode()[-2000:])
            times[name].append(elapsed)
    before, after, floor = (statistics.median(times[n][1:]) for n in ("before", "after", "floor"))
    return [("cold keys verify --dry-run (SQLite)", ms(before), ms(after), f"{after / before:.2f}x"),
            ("  floor: python -c 'import click, sqlite3'", ms(floor), ms(floor), "")]


def main(base: str = BASE, seconds: float = 6.0, runs: int = 31, postgres: bool = True) -> list[tuple]:
    sides = {"before": checkout(base), "after": ROOT}
    folder = scratch("before-after")
    rows = cold_verify(sides, str(folder / "cold.db"), runs)
    rows += request_path(sides, lambda kind: str(folder / f"{kind}.db"), seconds, 6, "SQLite")
    if postgres:
        sys.path.insert(0, str(ROOT))
        from tests.helpers import pg_server

        if pg_server.missing_reason() is None:
            server = pg_server.Server(durable=True)
            try:
                rows += request_path(sides, lambda kind: server.create_database(f"bench_{kind.replace('-', '_')}"),
                                     seconds, 6, "PostgreSQL")
            finally:
                server.close()
    print(f"\n## Before ({base}) and after, side by side (medians)\n")
    print("| what | before | after | after / before |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    main(args.base, args.seconds, args.runs, not args.no_postgres)
