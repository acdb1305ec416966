"""claude-api against ccusage on the same Claude Code logs: totals and time.

Generates logs (tests/claude_logs.py), imports them and reports per UTC day, runs
`ccusage claude daily --json --offline` on the same folder (CLAUDE_CONFIG_DIR, TZ=UTC),
and compares every day's input, output, cache-write and cache-read tokens and cost.

ccusage is not a dependency: install it in a scratch folder outside the repo,
`npm install ccusage@20.0.24`, and pass --ccusage PATH/node_modules/.bin/ccusage.

Usage: python bench/vs_ccusage.py --ccusage PATH [--log-mb 100] [--logs DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import EXE, env_for, inputs_folder, report, scratch

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))


def ours(logs: Path) -> tuple[dict, float, float]:
    db = scratch("vs") / "keys.db"
    env = env_for(db)
    start = time.perf_counter()
    done = subprocess.run([EXE, "usage", "import", str(logs), "--json"], env=env, capture_output=True, text=True)
    imported = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr)
    start = time.perf_counter()
    days = json.loads(subprocess.run([EXE, "usage", "summary", "--by", "day", "--period", "all", "--json"],
                                     env=env, capture_output=True, text=True, check=True).stdout)
    reported = time.perf_counter() - start
    return {d["period"]: d for d in days if d["requests"]}, imported, reported


def theirs(ccusage: str, logs: Path) -> tuple[dict, float]:
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(logs), "TZ": "UTC"}
    start = time.perf_counter()
    done = subprocess.run([ccusage, "claude", "daily", "--json", "--offline"], env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"ccusage failed: {done.stderr}")
    return {d["date"]: d for d in json.loads(done.stdout)["daily"]}, elapsed


def compare(mine: dict, cc: dict) -> list[str]:
    problems = []
    for day in sorted(set(mine) | set(cc)):
        a, b = mine.get(day), cc.get(day)
        if a is None or b is None:
            problems.append(f"{day}: only in {'ccusage' if a is None else 'claude-api'}")
            continue
        pairs = [("input", a["input_tokens"], b["inputTokens"]), ("output", a["output_tokens"], b["outputTokens"]),
                 ("cache read", a["cache_read_tokens"], b["cacheReadTokens"]),
                 ("cache write", a["cache_write_tokens"], b["cacheCreationTokens"])]
        problems += [f"{day} {what}: {x} vs {y}" for what, x, y in pairs if x != y]
        if abs(a["cost_usd"] - b["totalCost"]) > 1e-6 * max(1.0, b["totalCost"]):
            problems.append(f"{day} cost: {a['cost_usd']} vs {b['totalCost']}")
    return problems


def main(ccusage: str, log_mb: int = 100, logs: Path | None = None) -> list[tuple]:
    if logs is None:
        from import_speed import write_logs

        logs = inputs_folder() / f"claude-logs-{log_mb}mb"
        if not logs.exists():
                    write_logs(logs, log_mb)
    mine, imported, reported = ours(logs)
    cc, cc_time = theirs(ccusage, logs)
    problems = compare(mine, cc)
    totals = lambda rows, f: sum(r[f] for r in rows.values())  # noqa: E731
    rows = [
        ("days", len(mine), len(cc), "", "equal", "met" if len(mine) == len(cc) else "MISSED"),
        ("total tokens", f"{totals(mine, 'total_tokens'):,}",
         f"{sum(d['totalTokens'] for d in cc.values()):,}", "", "equal", "met" if not problems else "MISSED"),
        ("cost", f"${totals(mine, 'cost_usd'):,.6f}", f"${sum(d['totalCost'] for d in cc.values()):,.6f}", "",
         "equal", "met" if not problems else "MISSED"),
        ("time: import once", f"{imported:.2f} s", f"{cc_time:.2f} s (ccusage daily)", f"{imported / cc_time:.2f}x", "", ""),
        ("time: each report after that", f"{reported:.2f} s", f"{cc_time:.2f} s", f"{reported / cc_time:.2f}x", "", ""),
    ]
    report(f"claude-api vs ccusage on {logs.name}", rows)
    for p in problems[:20]:
        print("  mismatch:", p)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ccusage", required=True, help="path to the ccusage executable")
    parser.add_argument("--log-mb", type=int, default=100)
    parser.add_argument("--logs", type=Path, help="an existing CLAUDE_CONFIG_DIR-style folder instead")
    args = parser.parse_args()
    main(args.ccusage, args.log_mb, args.logs)
