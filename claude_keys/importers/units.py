"""An import's units of work, and reading them on every core.

Parsing is most of an import's time, and Python parses on one core; so big inputs are
cut into parts (a whole file, or a byte range of lines of a big jsonl or log file),
packed into units of about 16 MB that worker processes parse in parallel, each into a
scratch SQLite file. The importing process then takes the units in input order (so
"the first copy wins" still means first in the input) into its staging table. Small
inputs are read in the importing process itself, through the same readers.
"""
from __future__ import annotations

import os
from collections import namedtuple

from . import claude_code
from .lines import BadLine
from .result import ImportResult

CHUNK = 16 << 20  # bytes of a big file per unit
PARALLEL_FROM = 8 << 20  # smaller inputs are parsed in-process: workers cost ~0.1 s to start


class Part(namedtuple("Part", "path kind project start end last seed",
                      defaults=(None, 0, None, True, ()))):
    """Lines of one file: those that begin in [start, end). `kind`: "jsonl", "csv" or
    "claude-code"; `project`: a Claude Code log's project folder; `last`: the file's
    last part (its reader says how far the file was read); `seed`: Claude Code, the
    checksum of the file before where this run began. (A tuple: see importers._File.)"""

    __slots__ = ()

    @property
    def size(self) -> int:
        return (self.end if self.end is not None else os.path.getsize(self.path)) - self.start


def split(path: str, kind: str, project: str | None = None, start: int = 0,
          size: int | None = None, seed: tuple = ()) -> list[Part]:
    """A file's parts, from `start` (where an earlier import stopped; `seed` is the
    checksum of the bytes before it) to `size` (its size now: what is appended while
    we read waits for the next import)."""
    if size is None:
        size = os.path.getsize(path)
    if kind == "csv" or size - start <= CHUNK:  # a quoted csv field may span lines: never cut
        return [Part(path, kind, project, start, size if kind == "claude-code" else None, seed=seed)]
    starts = range(start, size, CHUNK)
    return [Part(path, kind, project, s, min(s + CHUNK, size), last=s == starts[-1], seed=seed)
            for s in starts]


def pack(parts):
    """Consecutive parts packed into units of about CHUNK bytes (many small logs in one)."""
    unit, size = [], 0
    for part in parts:
        if unit and size + part.size > CHUNK:
            yield unit
            unit, size = [], 0
        unit.append(part)
        size += part.size
    if unit:
        yield unit


def read(part: Part, sink, result, *, conn=None, key=None, prices=None) -> None:
    """Parse one part into `sink` (anything with add(record, rank)), counting into `result`.
    A malformed line raises BadLine with the line's number in its file."""
    try:
        if part.kind == "claude-code":
            claude_code.read(part, sink, result, key=key, prices=prices)
        else:
            from . import records  # with the key lookup it needs: not for Claude Code logs

            records.read(part, sink, result, records.KeyResolver(conn, key), prices=prices)
    except BadLine as e:
        if not part.start:
            raise
        raise BadLine(e.path, e.line + first_line_number(part) - 1, e.reason) from None


def worker_start(parent: int) -> None:
    """In each worker: leave Ctrl-C to the importing process (`parent`), which stops the
    workers and reports; and die with it, however it dies: Linux's parent-death signal
    where there is one, and everywhere a watch on the parent's id (a worker whose parent
    is gone is adopted by another process), so a killed import leaves no worker behind."""
    import signal
    import sys
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # started with SIGTERM held back (see _workers_ignore_interrupts)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the signal was set
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _watch_parent(parent: int, every: float = 0.5) -> None:
    """The fallback: end this worker within `every` seconds of its parent's death."""
    import time

    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def read_in_worker(unit: list[Part], db_path: str, key, prices: dict, scratch_dir: str):
    """Worker process: parse a unit's parts into a scratch file. Returns (file, lines,
    skipped, unpriced models, how far each file was read, warnings); a malformed line
    raises BadLine."""
    import tempfile  # here: `usage statusline` imports in-process and never needs it

    from ..db import connect
    from ..db.staging import Scratch

    fd, scratch = tempfile.mkstemp(suffix=".db", dir=scratch_dir)
    os.close(fd)
    os.unlink(scratch)  # SQLite creates it
    result = ImportResult()
    conn = connect(db_path) if any(p.kind != "claude-code" for p in unit) else None  # records name keys
    sink = Scratch(scratch)
    try:
        for part in unit:
            read(part, sink, result, conn=conn, key=key, prices=prices)
        sink.close()
    finally:
        if conn is not None:
            conn.close()
    return (scratch, result.lines, result.skipped, result.unpriced_models, result.read_to,
            result.warnings)


def first_line_number(part: Part) -> int:
    """The line number, within its file, of the first line a part owns."""
    if not part.start:
        return 1
    count = 1
    with open(part.path, "rb") as f:
        remaining = part.start
        while remaining > 0:
            block = f.read(min(remaining, 1 << 20))
            if not block:
                break
            count += block.count(b"\n")
            remaining -= len(block)
        f.seek(part.start - 1)
        if f.read(1) != b"\n":
            count += 1  # the part's first line is the one after the line it cut through
    return count
