"""Flat in the number of keys: the cold `keys verify` process and the in-process
check + record_usage rate with 100,000 keys in the store, against 10 keys.
Target: within 10% of each other.

Usage: python bench/keys_scale.py [--keys 100000] [--runs 21] [--seconds 4]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _common import EXE, env_for, ms, report, scratch, timed, verdict

sys.path.insert(0, str(Path(__file__).parent.parent))


def main(many: int = 100_000, runs: int = 21, seconds: float = 4.0) -> list[tuple]:
    from request_path import ours, seed_keys

    stores = {}
    for n in (10, many):
        db = scratch(f"keys{n}") / "keys.db"
        stores[n] = (db, seed_keys(db, n, "without limits"))
    # Cold verify, interleaved between the two stores.
    cold = {n: [] for n in stores}
    for n, (db, secret) in stores.items():  # warm up
        timed([EXE, "keys", "verify", secret, "--dry-run"], env_for(db))
    for _ in range(runs):
        for n, (db, secret) in stores.items():
            cold[n].append(timed([EXE, "keys", "verify", secret, "--dry-run"], env_for(db)))
    # In-process rate, alternating rounds.
    rates = {n: [] for n in stores}
    for _ in range(6):
        for n, (db, secret) in stores.items():
            rates[n].append(ours(db, secret, seconds / 6, "without limits"))
    few, lots = 10, many
    v_few, v_lots = statistics.median(cold[few]), statistics.median(cold[lots])
    r_few, r_lots = statistics.median(rates[few]), statistics.median(rates[lots])
    rows = [
        (f"`keys verify --dry-run`, {lots:,} keys", ms(v_lots), f"{ms(v_few)} with {few} keys",
         f"{v_lots / v_few:.2f}x", "within 10%", verdict(abs(v_lots / v_few - 1) <= 0.10)),
        (f"check + record_usage, {lots:,} keys", f"{r_lots:,.0f}/s", f"{r_few:,.0f}/s with {few} keys",
         f"{r_lots / r_few:.2f}x", "within 10%", verdict(abs(r_lots / r_few - 1) <= 0.10)),
    ]
    report("Flat in the number of keys", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    main(args.keys, args.runs, args.seconds)
