"""Reports by a key's owner and metadata (issue 17): `usage summary --by owner` and
`--by meta.team` against `--by key`, which read the same rows (by key) and differ only
in summing them per label, on the store bench/reports_scale.py builds (200 keys in 20
projects), its keys given an owner per project and one of 7 teams (every tenth key
none). Also `--by day,meta.team` against `--by day,key`.

Target: a label report within 1.1x of the same report by key (median of --runs, whole
processes, interleaved).

Usage: python bench/labels_report.py [--size 1000000] [--runs 7]
"""
from __future__ import annotations

import argparse
import json

from _common import EXE, env_for, inputs_folder, interleaved, ms, report, verdict
from reports_scale import build

PAIRS = {  # a label report: the report by key it is compared with
    "--by owner": ("--by key", ["--by", "owner"]),
    "--by meta.team": ("--by key", ["--by", "meta.team"]),
    "--by day,meta.team": ("--by day,key", ["--by", "day,meta.team"]),
}
BASES = {"--by key": ["--by", "key"], "--by day,key": ["--by", "day,key"]}


def label(path) -> None:
    from claude_keys import db as store

    conn = store.connect(path)
    try:
        with conn.write():
            rows = conn.execute("SELECT id, project_id FROM keys ORDER BY seq").fetchall()
            for i, (key_id, project) in enumerate(rows):
                meta = json.dumps({"team": f"team-{i % 7}"}) if i % 10 else None
                conn.execute("UPDATE keys SET owner = ?, metadata = ? WHERE id = ?",
                             (f"owner-of-{project}", meta, key_id))
    finally:
        conn.close()


def main(size: int = 1_000_000, runs: int = 7) -> list[tuple]:
    path = inputs_folder() / f"labels-{size}.db"
    if not path.exists():
        print(f"building a store of {size:,} records (kept in {path})", flush=True)
        build(path, size)
        label(path)
    every = {**BASES, **{name: args for name, (_, args) in PAIRS.items()}}
    commands = {name: [EXE, "usage", "summary", *args, "--period", "all", "--json"] for name, args in every.items()}
    times = interleaved(commands, env_for(path), runs)
    rows = []
    for name, (base, _) in PAIRS.items():
        ratio = times[name] / times[base]
        rows.append((f"`usage summary {name}`, {size:,} records", ms(times[name]),
                     f"{ms(times[base])} (`{base}`)", f"{ratio:.2f}x", "<= 1.1x", verdict(ratio <= 1.1)))
    report(f"Reports by owner and metadata (median of {runs})", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    main(args.size, args.runs)
