"""Cold-process cost of the CLI's hot commands against the floor of the same interpreter.

Target: `keys verify KEY --dry-run` <= 1.6 x `python -c "import click, sqlite3"`; `keys list
--json` and `usage summary --json` <= 2.5 x. Usage: python bench/cold_cli.py [--runs N]
"""
from __future__ import annotations

import argparse

from _common import EXE, FLOOR_IMPORT, create_key, env_for, interleaved, ms, report, run, scratch, verdict


def main(runs: int = 31, keys: int = 10) -> list[tuple]:
    db = scratch("cold") / "keys.db"
    env = env_for(db)
    secret, _ = create_key(env, "--profile", "pro")
    for _ in range(keys - 1):
        create_key(env)
    commands = {
        "floor": FLOOR_IMPORT,
        "keys verify KEY --dry-run": [EXE, "keys", "verify", secret, "--dry-run", "--tool", "Read"],
        "keys list --json": [EXE, "keys", "list", "--json"],
    }
    if run([EXE, "usage", "summary", "--help"], env).returncode == 0:
        commands["usage summary --json"] = [EXE, "usage", "summary", "--json"]
    medians = interleaved(commands, env, runs)
    floor = medians.pop("floor")
    rows = []
    for name, median in medians.items():
        target = 1.6 if "verify" in name else 2.5
        ratio = median / floor
        rows.append((name, ms(median), ms(floor), f"{ratio:.2f}x", f"<= {target}x", verdict(ratio <= target)))
    report(f"Cold CLI ({runs} interleaved runs, medians, {keys} keys)", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--keys", type=int, default=10)
    args = parser.parse_args()
    main(args.runs, args.keys)
