"""Importing usage from files: jsonl and csv (the export's record format) and
Claude Code session logs.

Every file is read into a temporary staging table first (big inputs by worker
processes, see units.py). A malformed line in a jsonl or csv file stops the import
with its file and line number before anything reaches the store; Claude Code logs
skip what is not a request. Then the staged requests are merged into the store in
batches, each one write transaction: requests already stored (by request id) change
nothing, so an import can be re-run, and an import killed part-way leaves whole
batches that the re-run completes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import InvalidInput
from .staging import Staging
from .units import PARALLEL_FROM, pack, read, read_in_worker, split

FORMATS = ("auto", "jsonl", "csv", "claude-code")


@dataclass
class ImportResult:
    files: int = 0
    lines: int = 0
    staged: int = 0
    imported: int = 0
    already_stored: int = 0
    skipped: dict = field(default_factory=dict)  # reason -> count (Claude Code logs)
    unpriced_models: set = field(default_factory=set)

    def as_json(self) -> dict:
        return {"files": self.files, "lines": self.lines, "requests": self.staged,
                "imported": self.imported, "already_stored": self.already_stored,
                "skipped": dict(sorted(self.skipped.items())),
                "unpriced_models": sorted(self.unpriced_models)}


def detect(path: str) -> str:
    """The format of one input: a folder is Claude Code logs; .csv is csv; a file whose
    first record has only our record fields is jsonl; any other JSON lines are Claude
    Code logs (their first line is often a summary or snapshot, not a request)."""
    if os.path.isdir(path):
        return "claude-code"
    if path.lower().endswith(".csv"):
        return "csv"
    from .records import FIELDS
    from .units import json_line

    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                try:
                    first = json_line(raw)
                except ValueError:
                    return "jsonl"  # the jsonl reader names the line
                if isinstance(first, dict) and first and not set(first) <= set(FIELDS):
                    return "claude-code"
                return "jsonl"
    return "jsonl"


def import_files(conn, paths: list[str], *, fmt: str = "auto", key=None, prices=None,
                 progress=None, db_path: str | None = None, workers: int | None = None) -> ImportResult:
    """Import every path. `key` is a keys row to attribute key-less records to;
    `db_path` lets worker processes open the store (to look up keys that records name).
    `progress(advance_bytes=..., total_bytes=..., phase=...)` is told how far along we are."""
    from ..pricing import table

    if fmt not in FORMATS:
        raise InvalidInput(f"unknown import format {fmt!r}: use {', '.join(FORMATS)}")
    for path in paths:
        if not os.path.exists(path):
            raise InvalidInput(f"{path}: no such file or folder")
        if os.path.isdir(path) and fmt not in ("auto", "claude-code"):
            raise InvalidInput(f"{path} is a folder: only Claude Code logs are read from folders")
    plan = [(path, detect(path) if fmt == "auto" else fmt) for path in paths]
    result = ImportResult()
    total = 0
    for part in _parts(plan):  # a first pass over names and sizes only
        total += part.size
        result.files += part.start == 0  # each file has exactly one part from its start
    if progress:
        progress(total_bytes=total, phase="reading")
    prices = prices if prices is not None else table()
    staging = Staging(conn)
    try:
        if workers is None:
            workers = min(os.cpu_count() or 1, 8) if total >= PARALLEL_FROM and db_path else 1
        if workers > 1:
            _read_in_workers(pack(_parts(plan)), staging, result, key, prices, db_path,
                             workers, progress)
        else:
            for part in _parts(plan):
                read(part, staging, result, conn=conn, key=key, prices=prices)
                if progress:
                    progress(advance_bytes=part.size)
        result.imported, result.already_stored = staging.merge(progress)
        result.staged = result.imported + result.already_stored
    finally:
        staging.close()
    return result


def _parts(plan):
    """The parts of every input, in order."""
    from . import claude_code

    for path, kind in plan:
        files = claude_code.log_files(path) if kind == "claude-code" else [(path, None)]
        for file, project in files:
            yield from split(file, kind, project)


def _read_in_workers(units, staging, result, key, prices, db_path, workers, progress) -> None:
    """Parse units (lists of parts) in worker processes; take their rows in input order.
    At most two units per worker are in flight, so memory does not grow with the input."""
    import collections
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    key_row = {"id": key["id"], "project_id": key["project_id"]} if key is not None else None
    # spawn, not fork: the importing process holds an open SQLite connection.
    with tempfile.TemporaryDirectory(prefix="claude-api-import-") as scratch_dir, \
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = collections.deque()
        try:
            for unit in units:
                pending.append((unit, pool.submit(read_in_worker, unit, db_path, key_row, prices,
                                                  scratch_dir)))
                while len(pending) > 2 * workers or (pending and pending[0][1].done()):
                    _absorb(*pending.popleft(), staging, result, progress)
            while pending:
                _absorb(*pending.popleft(), staging, result, progress)
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise


def _absorb(unit, future, staging, result, progress) -> None:
    scratch, lines, skipped, unpriced = future.result()
    staging.absorb(scratch)
    result.lines += lines
    for why, n in skipped.items():
        result.skipped[why] = result.skipped.get(why, 0) + n
    result.unpriced_models |= unpriced
    if progress:
        progress(advance_bytes=sum(part.size for part in unit))
