"""`usage statusline` latency, whole process, as Claude Code runs it: its JSON on stdin,
one line out. Side by side with `ccusage statusline` on the same input and logs when
ccusage is given.

The store holds the logs' history (imported once, as a user would); then, interleaved:
- our status line with nothing new in the transcript,
- our status line with one response appended to the transcript before each call
  (what happens during a conversation: only those bytes are read),
- ccusage's, with its cache (its default: 1 s) and with --no-cache,
- the floors: `python -c pass` and `python -c "import click, sqlite3"`.
Target (issue 18): median <= 50 ms warm. Wall times and the processes' CPU times are
both shown, with the load average: on a loaded 2-core machine wall time mostly measures
the wait for a core.

ccusage is not a dependency: `npm install --prefix "$(mktemp -d)" ccusage@20.0.24`, then
--ccusage THAT/node_modules/.bin/ccusage.

Usage: python bench/statusline.py [--ccusage PATH] [--runs 31] [--responses 400]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import EXE, env_for, run, scratch, verdict

sys.path.insert(0, str(Path(__file__).parent.parent))  # tests.helpers


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _once(args, env, stdin: bytes) -> tuple[float, float]:
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(args, env=env, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{args[0]} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return wall, _children_cpu() - cpu


def main(ccusage: str | None = None, runs: int = 31, responses: int = 400) -> list[tuple]:
    from tests.helpers.cc_lines import line
    from tests.helpers.claude_logs import write_logs

    folder = scratch("statusline")
    logs, db = folder / "claude", folder / "keys.db"
    now = datetime.now(timezone.utc)
    # Three days of history, the last session running now.
    write_logs(logs, projects=3, sessions=4, responses=responses, start=now - timedelta(days=3),
               span_hours=72 - 1)
    env = {**env_for(db), "CLAUDE_CONFIG_DIR": str(logs)}
    done = run([EXE, "usage", "import", str(logs), "--json"], env)
    if done.returncode:
        raise SystemExit(done.stderr)
    transcript = max((p for p in (logs / "projects").rglob("*.jsonl") if "subagents" not in p.parts),
                     key=lambda p: p.stat().st_mtime_ns)
    size_kb = transcript.stat().st_size / 1024
    stdin = json.dumps({
        "hook_event_name": "Status", "session_id": transcript.stem, "transcript_path": str(transcript),
        "cwd": "/home/user/app", "model": {"id": "claude-sonnet-4-5-20250929", "display_name": "Sonnet 4.5"},
        "workspace": {"current_dir": "/home/user/app", "project_dir": "/home/user/app"},
        "version": "2.0.31", "cost": {"total_cost_usd": 1.25, "total_duration_ms": 600000},
    }).encode()
    appended = [0]

    def append_one() -> None:  # one response, as Claude Code writes it during a conversation
        appended[0] += 1
        n = appended[0]
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        with open(transcript, "a") as f:
            f.write(line(f"msg_bench_{n}", f"req_bench_{n}", inp=2000, out=400, read=30_000,
                         model="claude-sonnet-4-5-20250929", ts=stamp, session=transcript.stem) + "\n")

    ours = [EXE, "usage", "statusline"]
    commands = {
        "floor: python -c pass": ([sys.executable, "-c", "pass"], None),
        "floor: python -c 'import click, sqlite3'": ([sys.executable, "-c", "import click, sqlite3"], None),
        "claude-api usage statusline, nothing new": (ours, None),
        "claude-api usage statusline, one response appended": (ours, append_one),
    }
    if ccusage:
        commands["ccusage statusline (its 1 s cache)"] = ([ccusage, "statusline"], None)
        commands["ccusage statusline --no-cache"] = ([ccusage, "statusline", "--no-cache"], None)
    cc_env = {**env, "TZ": os.environ.get("TZ", "UTC")}
    lines = {}
    for name, (args, before) in commands.items():  # warm the page cache, .pyc files, ccusage's cache
        lines[name] = subprocess.run(args, env=cc_env, input=stdin, capture_output=True).stdout.decode().strip()
    walls = {name: [] for name in commands}
    cpus = {name: [] for name in commands}
    load_before = os.getloadavg()
    for _ in range(runs):
        for name, (args, before) in commands.items():
            if before:
                before()
            wall, cpu = _once(args, cc_env, stdin)
            walls[name].append(wall)
            cpus[name].append(cpu)
    load_after = os.getloadavg()

    def ms(values, q=None) -> str:
        if q is None:
            return f"{statistics.median(values) * 1000:.1f} ms"
        return f"{statistics.quantiles(values, n=10)[q] * 1000:.1f} ms" if len(values) >= 2 else "-"

    rows = []
    for name in commands:
        median = statistics.median(walls[name])
        target = "<= 50 ms" if name.startswith("claude-api") else ""
        rows.append((name, ms(walls[name]), ms(walls[name], 8), ms(cpus[name]), target,
                     verdict(median <= 0.050) if target else ""))
    print(f"\n## Status line ({runs} interleaved runs; transcript {size_kb:,.0f} KB; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after)\n")
    print("| command | median wall | p90 wall | median CPU | target | |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print("\nWhat each printed:\n")
    for name, text in lines.items():
        if text:
            print(f"- {name}: `{text}`")
    if not ccusage:
        print("\n(ccusage not given: pass --ccusage PATH to measure it on the same input)")
    sys.stdout.flush()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ccusage", help="path to the ccusage executable")
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--responses", type=int, default=400, help="responses per session in the logs")
    args = parser.parse_args()
    main(args.ccusage, args.runs, args.responses)
