"""Budget checks in the budget time zone (issue 17): KeyStore.check(cost=…) then
release(…), repeated, for a key with a monthly budget in UTC (what every budget was
before), and a key with a daily and a monthly budget in UTC, in Europe/Berlin (whole-hour
offset: its periods' ends are read by the hour) and in Asia/Kolkata (a half-hour offset:
the half hours at its periods' ends are read from the usage rows). The key has 200
requests of history over 40 days. Prints microseconds per check + release (median of
three runs).

Usage: python bench/budget_periods.py [--n N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import scratch

CASES = (("monthly budget, UTC", {"monthly_budget": 1000}, None),
         ("daily + monthly, UTC", {"daily_budget": 1000, "monthly_budget": 1000}, None),
         ("daily + monthly, Europe/Berlin", {"daily_budget": 1000, "monthly_budget": 1000}, "Europe/Berlin"),
         ("daily + monthly, Asia/Kolkata", {"daily_budget": 1000, "monthly_budget": 1000}, "Asia/Kolkata"))


def one(options: dict, zone: str | None, n: int) -> float:
    from claude_keys import AuthManager, KeyStore
    from claude_keys.db import connect

    db = str(scratch("budget-periods") / "keys.db")
    secret = AuthManager(db).generate_key("p", rate_limit=None, use_keyring=False, **options)
    if zone:
        from claude_keys import settings

        settings.change(connect(db), "budget-tz", zone)
    store = KeyStore(db)
    key_id = store.check(key=secret, cost="0.001").key_id
    for i in range(200):
        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - (i % 40) * 86400))
        store.record_usage(key_id, cost="0.001", at=f"{day}T{(i * 7) % 24:02d}:00:00Z")
    started = time.perf_counter()
    for _ in range(n):
        store.release(store.check(key=secret, cost="0.001").request_id)
    return (time.perf_counter() - started) / n * 1e6


def main(n: int = 1000) -> list[tuple]:
    print(f"\n## Budget periods in a time zone\n\nload average {os.getloadavg()[0]:.1f}")
    rows = []
    for name, options, zone in CASES:
        runs = [one(options, zone, n) for _ in range(3)]
        rows.append((name, statistics.median(runs)))
        print(f"{name:32} {statistics.median(runs):7.0f} us per check + release")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    main(parser.parse_args().n)
