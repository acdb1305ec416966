"""`usage statusline`: one line for Claude Code's status bar.

Claude Code runs the command each time its conversation changes (at most every
300 ms), hands it a JSON object on stdin (`session_id`, `transcript_path`, `model`
{`id`, `display_name`}, `workspace`, `cost`, …) and shows the first line it prints; a
command that fails or prints nothing blanks the bar. So this never fails: whatever goes
wrong (no store, a damaged one, bad JSON, a missing transcript) it prints the model and
"usage unavailable" and exits 0. And it is quick: it imports only the bytes Claude Code
appended to this session's transcript since the last call (the incremental import of
importers/, in this process), then reads a few roll-up rows (reports.py). It loads
nothing it does not use: run as `claude-api usage statusline` it does not even load
Click (cli/fast.py).

Every wait on the store is bounded by WAIT_S (or CLAUDE_API_TIMEOUT, when smaller): a
store busy with a long import still answers reads (a SQLite store in WAL mode, or
PostgreSQL), so the line then shows what was stored before, and the next call
catches up.

"Today" and the 5-hour block count what the store holds: every session's status line
imports its own transcript; `claude-api usage import` brings in the rest.
"""
from __future__ import annotations

import os

WAIT_S = 1.0  # the longest any wait on the store may hold up the status bar
INPUT_LIMIT = 1 << 20  # Claude Code's object is a few KB
FALLBACK = "usage unavailable"
SEPARATOR = " · "


def run(stdin, db=None, *, now_ms: int | None = None) -> str:
    """The status line for the JSON read from `stdin` (a binary or text stream; None
    when there is none), on the store `db` (None: CLAUDE_API_DB or the default). Never
    raises."""
    model = "Claude"
    try:
        payload = read_payload(getattr(stdin, "buffer", stdin))
        model = model_name(payload) or model
        return SEPARATOR.join([model] + figures(payload, db, now_ms=now_ms))
    except BaseException as e:  # noqa: BLE001  (the status bar must never break)
        if isinstance(e, SystemExit):
            raise
        return f"{model}{SEPARATOR}{FALLBACK}"


def read_payload(stdin) -> dict:
    """Claude Code's object; ValueError for anything else. Reading waits at most
    WAIT_S for the writer to close stdin (one that never does cannot hang the bar)."""
    data = _read_bounded(stdin)
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    from .values import json_value

    payload = json_value(data)
    if not isinstance(payload, dict):
        raise ValueError("not a JSON object")
    return payload


def _read_bounded(stdin):
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return stdin.read(INPUT_LIMIT)  # not a file (a test's stream): it cannot block
    if os.isatty(fd):
        raise ValueError("stdin is a terminal: Claude Code pipes its status JSON in")
    import select
    import time

    deadline = time.monotonic() + WAIT_S
    chunks, size = [], 0
    while size <= INPUT_LIMIT:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b"".join(chunks)  # never closed: what came is all there is (JSON or not)
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise ValueError("too much input")


def model_name(payload: dict) -> str | None:
    model = payload.get("model")
    if isinstance(model, dict):
        model = model.get("display_name") or model.get("id")
    if not isinstance(model, str) or not model.strip():
        return None
    from .values import scrubbed

    return scrubbed(model.strip(), escape=False)[:64]  # never a control sequence on the bar


def figures(payload: dict, db=None, *, now_ms: int | None = None) -> list[str]:
    """The line's parts after the model: the session's cost, today's, the active
    block's with its time left, and the burn rate."""
    from .db import connect, timeout
    from .values import now_ms as clock

    now = now_ms if now_ms is not None else clock()
    session = payload.get("session_id")
    transcript = payload.get("transcript_path")
    session = session if isinstance(session, str) and session else None
    conn = connect(db, create=True, wait=min(WAIT_S, timeout()))
    try:
        key = session_key(conn, session) if session else None
        if isinstance(transcript, str) and transcript:
            try:
                import_transcript(conn, transcript, db, key=key)
            except Exception:  # noqa: BLE001
                # Busy (another import holds the write lock past the bound) or a
                # transcript that is gone: show what is stored; the next call imports
                # what was missed. (A store that cannot be read fails below.)
                pass
        parts = _parts(conn, session, now)
        if key is not None:
            parts += budget_part(conn, key, now)
        return parts
    finally:
        conn.close()


def import_transcript(conn, path: str, db=None, key=None) -> None:
    """Store the requests Claude Code appended since they were last read (whole files
    the first time) to the transcript `path` and to its subagents' logs
    (`<session>/subagents/*.jsonl` beside it), in this process, under the keys row
    `key` (None: no key)."""
    from .importers.offsets import unchanged

    path = os.path.abspath(os.path.expanduser(path))
    logs = [path] + subagent_logs(path)
    if unchanged(conn, logs):  # (Claude Code redraws the bar more often than it writes)
        return
    from .db import resolve
    from .importers import import_files
    from .pricing import table, user_prices_path

    prices = table(user_prices_path(resolve(db)))
    import_files(conn, logs, fmt="claude-code", key=key, prices=prices, workers=1)


def session_key(conn, session: str):
    """The keys row the session's usage is attributed to (`usage import --key`, or a
    key recorded for its requests): the key of its latest hour with one; None when its
    requests have no key, or it has none stored yet. (One seek on the session's
    roll-up index: the status line without keys pays only this.)"""
    found = conn.execute("SELECT key_id FROM usage_sessions WHERE session_id = ? AND key_id <> '' "
                         "ORDER BY hour DESC LIMIT 1", (session,)).fetchone()
    return conn.row("SELECT * FROM keys WHERE id = ?", (found[0],)) if found else None


def budget_part(conn, key, now: int) -> list[str]:
    """["$12.34 budget left (weekly)"]: the least left of the key's budgets and its
    project's (`project monthly` when that one is the project's); [] when neither has a
    budget, or it cannot be read (the rest of the line still shows)."""
    try:
        from .limits import tightest_budget
        from .values import usd_text

        tightest = tightest_budget(conn, key, now)
    except Exception:  # noqa: BLE001  (the status bar shows what it has)
        return []
    if tightest is None:
        return []
    whose = "project " if tightest["scope"] == "project" else ""
    return [f"{usd_text(tightest['left_nanos'])} budget left ({whose}{tightest['budget']})"]


def subagent_logs(transcript: str) -> list[str]:
    folder = os.path.join(transcript[:-len(".jsonl")] if transcript.endswith(".jsonl") else transcript,
                          "subagents")
    try:
        return sorted(e.path for e in os.scandir(folder) if e.name.endswith(".jsonl") and e.is_file())
    except OSError:  # no subagents (the usual case)
        return []


def _parts(conn, session: str | None, now: int) -> list[str]:
    from .values import usd_text

    parts = []
    if session:
        parts.append(f"{usd_text(session_cost(conn, session))} session")
    parts.append(f"{usd_text(today_cost(conn, now))} today")
    from .reports import active_block

    block = active_block(conn, now)
    if block is None:
        parts.append("no active block")
    else:
        left = duration_text(block["end_ms"] - now)
        parts.append(f"{usd_text(block['counters'][5])} block ({left} left)")
        rate = block.get("cost_nanos_per_hour")
        if rate is not None:
            parts.append(f"{usd_text(round(rate))}/h")
    return parts


def session_cost(conn, session: str) -> int:
    """A Claude Code session's cost in nano-dollars (its roll-up, by session id)."""
    from .db.rollups import combine
    from .reports import _ROLLUP_SUMS

    row = conn.execute(f"SELECT {_ROLLUP_SUMS} FROM usage_sessions WHERE session_id = ?",
                       (session,)).fetchone()
    return combine(row)[6] or 0 if row else 0


def today_cost(conn, now: int) -> int:
    from . import reports

    since = day_start_ms(now)
    totals = reports.Report(conn, reports.Window(since, None, None)).totals().get((), reports.EMPTY)
    return totals[5] or 0


def day_start_ms(now: int) -> int:
    """Today's midnight where the user is: CLAUDE_API_TZ, else the system's zone."""
    from datetime import datetime

    name = os.environ.get("CLAUDE_API_TZ")
    if name:
        from .reports import zone

        local = datetime.fromtimestamp(now / 1000, zone(name))
        return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
    import time

    t = time.localtime(now / 1000)
    return int(time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1)) * 1000)


def duration_text(ms: int) -> str:
    minutes = max(0, ms) // 60_000
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
