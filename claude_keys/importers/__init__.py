"""Importing usage from files: jsonl and csv (the export's record format) and
Claude Code session logs.

Every file is read into a temporary staging table first. A malformed line in a jsonl
or csv file stops the import with its file and line number before anything reaches
the store; Claude Code logs skip what is not a request. Then the staged requests are
merged into the store in batches, each one write transaction: requests already
stored (by request id) change nothing, so an import can be re-run, and an import
killed part-way leaves whole batches that the re-run completes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import InvalidInput
from .staging import Staging

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
    """The format of one input: a folder is Claude Code logs; .csv is csv; a .jsonl
    file whose first record has Claude Code's fields is a log, else our records."""
    if os.path.isdir(path):
        return "claude-code"
    if path.lower().endswith(".csv"):
        return "csv"
    import json

    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                try:
                    first = json.loads(raw)
                except ValueError:
                    return "jsonl"  # let the jsonl reader report the line
                if isinstance(first, dict) and ("sessionId" in first or "message" in first
                                                or "parentUuid" in first):
                    return "claude-code"
                return "jsonl"
    return "jsonl"


def import_files(conn, paths: list[str], *, fmt: str = "auto", key=None, prices=None,
                 progress=None) -> ImportResult:
    """Import every path. `key` is a keys row to attribute key-less records to.
    `progress(advance_bytes=..., total_bytes=..., phase=...)` is told how far along we are."""
    from . import claude_code, records

    if fmt not in FORMATS:
        raise InvalidInput(f"unknown import format {fmt!r}: use {', '.join(FORMATS)}")
    for path in paths:
        if not os.path.exists(path):
            raise InvalidInput(f"{path}: no such file or folder")
    result = ImportResult()
    plan = [(path, detect(path) if fmt == "auto" else fmt) for path in paths]
    staging = Staging(conn)
    try:
        files = []
        for path, kind in plan:
            if kind == "claude-code":
                files += [(f, kind, project) for f, project in claude_code.log_files(path)]
            elif os.path.isdir(path):
                raise InvalidInput(f"{path} is a folder: only Claude Code logs are read from folders")
            else:
                files.append((path, kind, None))
        if progress:
            progress(total_bytes=sum(os.path.getsize(f) for f, _, _ in files), phase="reading")
        resolver = records.KeyResolver(conn, key)
        for path, kind, project in files:
            result.files += 1
            if kind == "claude-code":
                claude_code.read(path, project, staging, result, key=key, prices=prices,
                                 progress=progress)
            else:
                records.read(path, kind, staging, result, resolver, prices=prices,
                             progress=progress)
        result.imported, result.already_stored = staging.merge(progress)
        result.staged = result.imported + result.already_stored
    finally:
        staging.drop()
    return result
