"""claude-api against ccusage on the same Claude Code logs: totals and time, in one run.

On a copy of generated logs (tests/helpers/claude_logs.py):
1. the first import (`usage import LOGS`) against ccusage's one pass
   (`ccusage claude daily --json --offline`, CLAUDE_CONFIG_DIR=LOGS, TZ=UTC), and
   every day's input, output, cache-write and cache-read tokens and cost compared;
   then both again --runs times, interleaved, each import into a fresh store: the
   medians of wall time and of CPU time (ours with its worker processes), with the load;
2. re-importing the unchanged logs, against the first import (target <= 5%) and
   against a floor: a process that only walks and stats every log (the least work
   that learns nothing changed);
3. 1% more lines appended (new responses at the end of existing sessions), then
   import + `usage summary --by day --json` against `ccusage daily` again (target:
   faster), totals compared again.

ccusage is not a dependency: install it in a scratch folder outside the repository,
`npm install --prefix "$(mktemp -d)" ccusage@20.0.24`, and pass --ccusage
THAT/node_modules/.bin/ccusage. Without it, ours is measured against the floor only.

Usage: python bench/vs_ccusage.py [--ccusage PATH] [--log-mb 500] [--logs DIR] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import EXE, env_for, inputs_folder, report, scratch, verdict

sys.path.insert(0, str(Path(__file__).parent.parent))  # tests.helpers.claude_logs
FLOOR_WALK = [sys.executable, "-c", "import os, sys\n"
              "for root, dirs, files in os.walk(sys.argv[1]):\n"
              "    for f in files:\n"
              "        os.stat(os.path.join(root, f))"]


# `usage import` as the CLI runs it, but with the merge into the store left out: starting,
# finding the logs, and the worker processes reading them into the staging. What is left
# of the first import if its merge cost nothing (or ran wholly beside the reading).
READING_ALONE = [sys.executable, "-P", "-c", "import sys\n"  # (-P: the installed package, not ./)
                 "from claude_keys.db.staging import Staging\n"
                 "Staging.merge = lambda self, progress=None: (self.flush(), (0, 0, 0))[1]\n"
                 "from claude_keys.cli import main\n"
                 "sys.argv = ['claude-api', 'usage', 'import', sys.argv[1], '--json']\n"
                 "main()"]

CPU_USED: list[float] = []  # the CPU seconds of each timed() process (and its workers), in order


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(args, env) -> tuple[float, str]:
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    CPU_USED.append(_children_cpu() - cpu)
    if done.returncode:
        raise SystemExit(f"{args[0]} failed: {done.stderr[-2000:]}")
    return elapsed, done.stdout


def first_imports(ccusage: str, logs: Path, work: Path, runs: int) -> tuple[tuple, tuple, tuple]:
    """Our first import (each into a fresh store), the same import without its merge,
    and ccusage's pass, `runs` times each, interleaved: the medians of (wall, CPU) of
    each. One run of each is not enough on a machine other work shares: its load moves
    the wall times by 2x from minute to minute."""
    ours, reading, theirs_ = [], [], []
    for n in range(runs):
        ours.append((ours_import(logs, env_for(work / f"first-{n}.db"))[0], CPU_USED[-1]))
        reading.append((timed(READING_ALONE + [str(logs)], env_for(work / f"reading-{n}.db"))[0], CPU_USED[-1]))
        theirs_.append((theirs(ccusage, logs)[0], CPU_USED[-1]))
    median = lambda pairs: tuple(statistics.median(p[i] for p in pairs) for i in (0, 1))  # noqa: E731
    return median(ours), median(reading), median(theirs_)


def ours_import(logs: Path, env) -> tuple[float, dict]:
    elapsed, stdout = timed([EXE, "usage", "import", str(logs), "--json"], env)
    return elapsed, json.loads(stdout)


def ours_days(env) -> tuple[float, dict]:
    elapsed, stdout = timed([EXE, "usage", "summary", "--by", "day", "--period", "all", "--json"], env)
    return elapsed, {d["period"]: d for d in json.loads(stdout) if d["requests"]}


def theirs(ccusage: str, logs: Path) -> tuple[float, dict]:
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(logs), "TZ": "UTC"}
    elapsed, stdout = timed([ccusage, "claude", "daily", "--json", "--offline"], env)
    return elapsed, {d["date"]: d for d in json.loads(stdout)["daily"]}


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


def append_lines(logs: Path, lines: int, seed: int = 77) -> int:
    """Claude Code going on: new responses at the end of existing sessions, `lines` lines
    in all (spread over about one session in ten). Returns the lines written."""
    from tests.helpers.claude_logs import Truth, _Writer
    from datetime import datetime, timedelta, timezone

    rng = random.Random(seed)
    writer = _Writer(rng, Truth())
    sessions = sorted(p for p in logs.rglob("*.jsonl") if "subagents" not in p.parts)
    chosen = sessions[::10] or sessions
    at = datetime(2026, 4, 20, 9, 0, tzinfo=timezone.utc)
    written = 0
    while written < lines:
        for path in chosen:
            at += timedelta(seconds=rng.randint(5, 90))
            new = [writer.user(path.stem, at)] + writer.response(path.parent.name, path.stem, at)
            with open(path, "a") as f:
                f.write("\n".join(new) + "\n")
            written += len(new)
            if written >= lines:
                break
    return written


def main(ccusage: str | None = None, log_mb: int = 500, logs: Path | None = None, runs: int = 3) -> list[tuple]:
    if logs is None:
        from import_speed import write_logs

        logs = inputs_folder() / f"claude-logs-{log_mb}mb"
        if not logs.exists():
            write_logs(logs, log_mb)
    work = scratch("vs")
    copy = work / "claude"
    shutil.copytree(logs, copy)  # lines are appended below: never to the kept inputs
    size = sum(p.stat().st_size for p in copy.rglob("*.jsonl")) / 1e6
    env = env_for(work / "keys.db")
    rows, problems = [], []

    first, answer = ours_import(copy, env)
    _, mine = ours_days(env)
    cc_first = None
    if ccusage:
        cc_first, cc = theirs(ccusage, copy)
        problems += compare(mine, cc)
        load = os.getloadavg()[0]
        (wall, cpu), (read_wall, read_cpu), (cc_wall, cc_cpu) = first_imports(ccusage, copy, work, runs)
        what = f"first import, {size:.0f} MB ({answer['lines']:,} lines, {answer['requests']:,} requests)"
        rows.append((f"{what}, median of {runs}, wall (load {load:.1f} to {os.getloadavg()[0]:.1f})",
                     f"{wall:.2f} s", f"{cc_wall:.2f} s (ccusage daily)", f"{wall / cc_wall:.2f}x", "<= 1x",
                     verdict(wall <= cc_wall)))
        rows.append((f"{what}, median of {runs}, CPU (with workers)", f"{cpu:.2f} s", f"{cc_cpu:.2f} s",
                     f"{cpu / cc_cpu:.2f}x", "", ""))
        rows.append(("the same without its merge (start, find the logs, the workers read them), wall",
                     f"{read_wall:.2f} s", f"{cc_wall:.2f} s", f"{read_wall / cc_wall:.2f}x", "", ""))
        rows.append(("the same without its merge, CPU", f"{read_cpu:.2f} s", f"{cc_cpu:.2f} s",
                     f"{read_cpu / cc_cpu:.2f}x", "", ""))
        cores = os.cpu_count() or 1
        rows.append((f"the first import's CPU spread evenly over this machine's {cores} cores (a bound "
                     "for any overlap of merge and reading)", f"{cpu / cores:.2f} s", f"{cc_wall:.2f} s",
                     f"{cpu / cores / cc_wall:.2f}x", "", ""))
    else:
        rows.append((f"first import, {size:.0f} MB", f"{first:.2f} s", "", "", "", ""))

    again, floor = [], []
    for _ in range(runs):  # interleaved with the floor, medians
        again.append(ours_import(copy, env)[0])
        start = time.perf_counter()
        subprocess.run(FLOOR_WALK + [str(copy)], check=True)
        floor.append(time.perf_counter() - start)
    again_s, floor_s = statistics.median(again), statistics.median(floor)
    rows.append(("re-import, logs unchanged", f"{again_s:.2f} s", f"{first:.2f} s (first import)",
                 f"{again_s / first:.1%}", "<= 5%", verdict(again_s <= 0.05 * first)))
    rows.append(("re-import, logs unchanged", f"{again_s:.2f} s", f"{floor_s:.2f} s (walk + stat every log)",
                 f"{again_s / floor_s:.2f}x", "", ""))

    added = append_lines(copy, answer["lines"] // 100)
    t_import, grew = ours_import(copy, env)
    t_report, mine = ours_days(env)
    ours_total = t_import + t_report
    if ccusage:
        cc_after, cc = theirs(ccusage, copy)
        problems += compare(mine, cc)
        rows.append((f"+1% lines ({added:,} appended): import + report", f"{ours_total:.2f} s "
                     f"({grew['lines']:,} lines read)", f"{cc_after:.2f} s (ccusage daily)",
                     f"{ours_total / cc_after:.2f}x", "< 1x", verdict(ours_total < cc_after)))
        totals = lambda rows_, f: sum(r[f] for r in rows_.values())  # noqa: E731
        rows.append(("totals, all days", f"{totals(mine, 'total_tokens'):,} tokens, "
                     f"${totals(mine, 'cost_usd'):,.6f}", f"{sum(d['totalTokens'] for d in cc.values()):,} "
                     f"tokens, ${sum(d['totalCost'] for d in cc.values()):,.6f}", "", "equal",
                     verdict(not problems)))
    else:
        rows.append((f"+1% lines ({added:,} appended): import + report", f"{ours_total:.2f} s", "", "", "", ""))
    report(f"claude-api vs ccusage on {size:.0f} MB of generated logs", rows)
    for p in problems[:20]:
        print("  mismatch:", p)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ccusage", help="path to the ccusage executable")
    parser.add_argument("--log-mb", type=int, default=500)
    parser.add_argument("--logs", type=Path, help="an existing CLAUDE_CONFIG_DIR-style folder instead")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    main(args.ccusage, args.log_mb, args.logs, args.runs)
