"""`usage import` throughput and memory, as whole processes.

- jsonl: records as `usage export` writes them (time-ordered, 200 keys, 20 projects);
  the figure is records per second.
- Claude Code logs (tests/helpers/claude_logs.py: repeated content-block lines, user lines,
  subagent logs); the figure is log lines read per second.
Each is run at two sizes to show that peak memory does not grow with the input.
Target: >= 150,000 records (lines) per second.

Usage: python bench/import_speed.py [--records 1000000] [--log-mb 100 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from _common import EXE, env_for, inputs_folder, report, scratch, verdict

sys.path.insert(0, str(Path(__file__).parent.parent))  # tests.helpers.claude_logs

MODELS = ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-sonnet-4"]


def write_jsonl(path: Path, records: int, seed: int = 9) -> None:
    rng = random.Random(seed)
    start = 1_735_689_600_000
    step = 365 * 86_400_000 / records
    projects = [f"project-{i:02d}" for i in range(20)]
    with open(path, "w") as f:
        for i in range(records):
            at = start + int(i * step)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at // 1000)) + f".{at % 1000:03d}Z"
            f.write(json.dumps({
                "key": None, "project_id": rng.choice(projects), "at": stamp,
                "model": rng.choice(MODELS), "input_tokens": rng.randrange(4000),
                "output_tokens": rng.randrange(1500), "cache_read_tokens": rng.randrange(60000),
                "cache_write_tokens": rng.randrange(4000), "cost_usd": None,
                "request_id": f"req_{at:013d}{i:09d}"}) + "\n")


def write_logs(root: Path, megabytes: int) -> None:
    """Claude Code logs of about `megabytes`, in batches of generated projects."""
    from tests.helpers.claude_logs import write_logs as generate

    size, seed = 0, 0
    # A batch of 4 x 10 sessions is ~110 KB per response a session: 400 make ~44 MB; a
    # smaller size gets smaller batches (the smoke test's 1 MB had been 44 MB).
    responses = max(1, min(400, round(megabytes * 1_000_000 / 110_000)))
    while size < megabytes * 1_000_000:
        generate(root, projects=4, sessions=10, responses=responses, seed=seed, first_project=4 * seed)
        size = sum(p.stat().st_size for p in root.rglob("*.jsonl"))
        seed += 1


def timed_import(path: Path, *args: str) -> tuple[float, int, dict]:
    """Wall seconds, peak RSS in MB, and the --json answer of one import process."""
    import tempfile

    db = scratch("import") / "keys.db"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([EXE, "usage", "import", str(path), "--json", *args],
                                env=env_for(db), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it, with its own peak memory
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"import failed: {err.read()}")
        out.seek(0)
        return elapsed, usage.ru_maxrss // 1024, json.load(out)


def main(records: int = 1_000_000, log_mb=(100, 1000)) -> list[tuple]:
    rows = []
    for n in sorted({records // 10, records}):
        path = inputs_folder() / f"import-{n}.jsonl"
        if not path.exists():
            write_jsonl(path, n)
        elapsed, rss, answer = timed_import(path)
        assert answer["imported"] == n, answer
        rate = n / elapsed
        rows.append((f"jsonl, {n:,} records ({path.stat().st_size / 1e6:.0f} MB)", f"{rate:,.0f} records/s",
                     f"{elapsed:.1f} s, peak RSS {rss} MB", "", ">= 150,000/s", verdict(rate >= 150_000)))
    for mb in log_mb:
        root = inputs_folder() / f"claude-logs-{mb}mb"
        if not root.exists():
            write_logs(root, mb)
        elapsed, rss, answer = timed_import(root)
        rate = answer["lines"] / elapsed
        rows.append((f"Claude Code logs, {mb} MB ({answer['lines']:,} lines, {answer['requests']:,} requests)",
                     f"{rate:,.0f} lines/s", f"{elapsed:.1f} s, peak RSS {rss} MB", "", ">= 150,000/s",
                     verdict(rate >= 150_000)))
    report("usage import", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--log-mb", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    main(args.records, tuple(args.log_mb))
