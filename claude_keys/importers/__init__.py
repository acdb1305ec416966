"""Importing usage from files: jsonl and csv (the export's record format) and
Claude Code session logs.

Every file is read into a temporary staging table first (big inputs by worker
processes, see units.py). A malformed line in a jsonl or csv file stops the import
with its file and line number before anything reaches the store; Claude Code logs
skip what is not a request. Then the staged requests are merged into the store in
batches, each one write transaction: requests already stored (by request id) change
nothing (but a bigger copy of a Claude Code request replaces its stored one), so an
import can be re-run, and an import killed part-way leaves whole batches that the
re-run completes.

Claude Code logs are read incrementally (offsets.py): a re-run reads only the lines
appended since the last import of each log, on this host. A log moved to another
project folder is read at its new path, and its stored requests take the new project
(moves.py).
"""
from __future__ import annotations

import os
import stat
from collections import namedtuple

from ..errors import ClaudeKeysError, ConnectionLost, InvalidInput, Terminated
from .lines import shown, text_field
from .result import ImportResult
from ..values import counted

# The staging and the readers load when import_files runs: `usage statusline` loads this
# package for offsets.unchanged() alone, and most of its calls stop there.

FORMATS = ("auto", "jsonl", "csv", "claude-code")


class ImportInterrupted(ClaudeKeysError):
    """Ctrl-C: says how much was stored (whole batches), and that a re-run finishes."""

    exit_code = 130


class ImportTerminated(ImportInterrupted):
    exit_code = 143  # 128 + SIGTERM, as a shell reports a process it terminated


def detect(path: str) -> str:
    """The format of one input: a folder is Claude Code logs; .csv is csv; a file whose
    first record has the shape of a Claude Code log line is one; anything else follows
    the jsonl rules (so a typo in a field name is an error with its line, not a log
    that silently holds nothing)."""
    if os.path.isdir(path):
        return "claude-code"
    if path.lower().endswith(".csv"):
        return "csv"
    from .claude_code import looks_like_log
    from .lines import json_line

    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                try:
                    first = json_line(raw)
                except ValueError:
                    return "jsonl"  # the jsonl reader names the line
                return "claude-code" if looks_like_log(first) else "jsonl"
    return "jsonl"


# An input file: its path, kind, project (Claude Code), where this run reads it from (an
# earlier import read up to there), its size, and `seed`, the checksum of the bytes
# before `start` (offsets.py). Tuples, not dataclasses, here, in units.py, result.py and
# reports.py: `usage statusline` imports through them, and dataclasses (with inspect)
# costs it several ms to load.
_File = namedtuple("_File", "path kind project start size seed")


def import_files(conn, paths: list[str], *, fmt: str = "auto", key=None, prices=None,
                 progress=None, db_path: str | None = None, workers: int | None = None,
                 full: bool = False) -> ImportResult:
    """Import every path. `key` is a keys row to attribute key-less records to;
    `db_path` lets worker processes open the store (to look up keys that records name).
    `full` reads Claude Code logs from their start, whatever earlier imports read.
    `progress(advance_bytes=..., total_bytes=..., phase=...)` is told how far along we are."""
    from ..db.staging import Staging
    from ..pricing import table
    from .offsets import Offsets
    from .units import PARALLEL_FROM, pack, read, split

    if fmt not in FORMATS:
        raise InvalidInput(f"unknown import format {fmt!r}: use {', '.join(FORMATS)}")
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            raise InvalidInput(f"{shown(path)}: {e.strerror or 'cannot be read'}") from None
        if stat.S_ISDIR(mode):
            if fmt not in ("auto", "claude-code"):
                raise InvalidInput(f"{shown(path)} is a folder: only Claude Code logs are read from folders")
        elif not stat.S_ISREG(mode):
            raise InvalidInput(f"{shown(path)} is not a regular file (a FIFO or a device is not imported)")
    result = ImportResult()
    staging = None
    try:
        plan = [(path, detect(path) if fmt == "auto" else fmt) for path in paths]
        offsets = Offsets(conn, full=full)
        files = list(_files(plan, offsets, result))  # names, sizes and offsets: no log is read yet
        result.files = len(files)
        todo = [f for f in files if f.size > f.start or f.kind != "claude-code"]
        result.unchanged_files = len(files) - len(todo)
        total = sum(f.size - f.start for f in todo)
        if progress:
            progress(total_bytes=total, phase="reading")
        prices = prices if prices is not None else table()
        staging = Staging(conn)
        parts = [p for f in todo for p in split(f.path, f.kind, f.project, f.start, f.size, f.seed)]
        if workers is None:
            workers = min(os.cpu_count() or 1, 8) if total >= PARALLEL_FROM and db_path else 1
        if workers > 1:
            _read_in_workers(pack(parts), staging, result, key, prices, db_path, workers, progress)
        else:
            for part in parts:
                read(part, staging, result, conn=conn, key=key, prices=prices)
                if progress:
                    progress(advance_bytes=part.size)
        result.imported, result.replaced, result.already_stored = staging.merge(progress)
        result.staged = result.imported + result.replaced + result.already_stored
        if offsets.moves:
            from .moves import relabel

            result.relabelled = relabel(conn, offsets.moves)
            result.moved_files = len(offsets.moves)
        offsets.save(conn, result.read_to)
    except BaseException as e:
        if staging is not None:
            staging.close(quietly=True)  # the error to tell is this one, not a clean-up's
        if isinstance(e, KeyboardInterrupt):
            raise _interrupted(staging, terminated=isinstance(e, Terminated)) from None
        if isinstance(e, ConnectionLost):
            raise _lost(staging, conn) from None
        raise
    staging.close()
    return result


def _stored_so_far(staging: Staging | None, before: str) -> str:
    if staging is None or not staging.total:
        return "nothing was stored"
    done = staging.imported + staging.replaced
    already = staging.merged - done  # (a rerun after an interruption meets the stored part)
    said = f"{done:,} of {counted(staging.total, 'request')} {'was' if done == 1 else 'were'} stored before {before}"
    if already:
        said += f" ({already:,} more {'was' if already == 1 else 'were'} stored already)"
    return said + (", the rest were not" if staging.merged < staging.total else "")


def _interrupted(staging: Staging | None, terminated: bool = False) -> ImportInterrupted:
    kind, what = (ImportTerminated, "terminated") if terminated else (ImportInterrupted, "interrupted")
    if staging is None or not staging.total:
        return kind(f"{what} while reading the input: nothing was stored; run the same import again")
    return kind(
        f"{what}: {_stored_so_far(staging, 'the interruption')}; run the same import again to finish it "
        "(what is stored already is not counted twice)")


def _lost(staging: Staging | None, conn) -> ConnectionLost:
    return ConnectionLost(
        f"the connection to the store {conn.location} was lost during the import: "
        f"{_stored_so_far(staging, 'it was lost')}; run the same import again to finish it (what is stored "
        "already is not counted twice)")


def _files(plan, offsets, result):
    """Every input file, with where to read it from: Claude Code logs from where an
    earlier import of the same file stopped."""
    from . import claude_code

    def problem(path, why):
        result.warnings.append(f"{shown(path)}: not read: {why}")
        result.skipped["file not read"] = result.skipped.get("file not read", 0) + 1

    for path, kind in plan:
        if kind != "claude-code":
            yield _File(path, kind, None, 0, os.path.getsize(path), ())
            continue
        for file, project, st in claude_code.log_files(path, problem):
            try:
                project = text_field(project, "project folder name")
            except InvalidInput as e:
                problem(file, str(e))
                continue
            start, seed = offsets.start(file, st)
            if start == 0:
                old = offsets.moved_from(file, st)
                if old is not None:
                    offsets.moves.append((file, project, old))
            result.projects.add(project)
            yield _File(file, kind, project, start, st.st_size, seed)


def _read_in_workers(units, staging, result, key, prices, db_path, workers, progress) -> None:
    """Parse units (lists of parts) in worker processes; take their rows in input order.
    At most two units per worker are in flight, so memory does not grow with the input."""
    import collections
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    from .units import read_in_worker, worker_start

    key_row = {"id": key["id"], "project_id": key["project_id"]} if key is not None else None
    # spawn, not fork: the importing process holds an open SQLite connection.
    with tempfile.TemporaryDirectory(prefix="claude-api-import-") as scratch_dir, \
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                initializer=worker_start, initargs=(os.getpid(),)) as pool:
        pending = collections.deque()
        submitted = 0
        try:
            for unit in units:
                with _workers_ignore_interrupts(submitted < workers):
                    future = pool.submit(read_in_worker, unit, db_path, key_row, prices, scratch_dir)
                submitted += 1
                pending.append((unit, future))
                while len(pending) > 2 * workers or (pending and pending[0][1].done()):
                    _absorb(*pending.popleft(), staging, result, progress)
            while pending:
                _absorb(*pending.popleft(), staging, result, progress)
        except BaseException:
            _stop_workers(pool)
            raise


def _stop_workers(pool) -> None:
    """Interrupted (Ctrl-C, SIGTERM, an error): end the workers now rather than let each
    finish its unit, and let the pool's shutdown (on leaving `with`) reap them."""
    # The pool's manager thread, taken before shutdown(wait=False) forgets it: it must see
    # its workers gone and close its wake-up pipe before we go on. Left running, it closed
    # the pipe while Python's exit was writing to it (a traceback after our one line,
    # "Bad file descriptor").
    manager = getattr(pool, "_executor_manager_thread", None)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()  # (SIGKILL: a worker holds SIGTERM back until it is started)
        except (OSError, ValueError, AttributeError):
            pass  # already gone
    pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None:
        manager.join(timeout=5)


class _workers_ignore_interrupts:
    """While a submit may start a worker: SIGINT ignored, so the worker starts with it
    ignored (Python keeps an inherited SIG_IGN) and a Ctrl-C during its start-up
    cannot print its traceback; SIGTERM held back (blocked: it lands once the worker is
    started), so the start-up is never cut off half-way (the worker would print
    multiprocessing's EOFError). The importing process handles both itself."""

    def __init__(self, starting: bool):
        self.starting, self.saved, self.masked = starting, None, False

    def __enter__(self):
        import signal
        import threading

        if self.starting and threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
            if hasattr(signal, "pthread_sigmask"):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
                self.masked = True

    def __exit__(self, *exc):
        import signal

        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved)
        if self.masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # a pending one lands here


def _absorb(unit, future, staging, result, progress) -> None:
    scratch, lines, skipped, unpriced, read_to, warnings = future.result()
    staging.absorb(scratch)
    result.lines += lines
    for why, n in skipped.items():
        result.skipped[why] = result.skipped.get(why, 0) + n
    result.unpriced_models |= unpriced
    result.read_to.update(read_to)
    result.warnings += warnings
    if progress:
        progress(advance_bytes=sum(part.size for part in unit))
