"""Recording usage: one row per request, priced exactly, deduplicated by request id.

The roll-ups (claude_keys.rollups) change in the same statement as the usage row: by
SQLite's trigger, or on PostgreSQL in one statement with the insert, so every writer
keeps them right. Bulk imports add to them set-wise instead (importers/staging.py).
Reports live in claude_keys.reports.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import lru_cache

from . import pricing, rollups
from .errors import InvalidInput, KeyNotFound
from .values import (LAST_MS, MAX_COUNT, MAX_REQUEST_NANOS, NANOS_PER_USD, check_text, now_ms, parse_cost,
                     parse_count)

COLUMNS = ("request_id", "key_id", "project_id", "at_ms", "model", "input_tokens",
           "output_tokens", "cache_read_tokens", "cache_write_5m_tokens",
           "cache_write_1h_tokens", "cost_nanos", "priced")
_INSERT = (f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
           "ON CONFLICT (request_id) DO NOTHING")
# One statement either way (SQLite's trigger keeps the roll-ups); it stores 1 row, or 0
# for a request id already stored.
INSERT = {"sqlite": _INSERT, "postgres": rollups.with_rollups(_INSERT + " RETURNING *")}
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens",
                "cache_write_1h_tokens")


@dataclass
class Recorded:
    recorded: bool  # False: that request id was already stored, nothing changed
    request_id: str
    cost_nanos: int
    priced: bool  # False: unknown model and no cost given (recorded at $0, flagged)

    @property
    def cost_usd(self) -> float:
        return self.cost_nanos / 1_000_000_000


def new_request_id() -> str:
    """Time-ordered (nanoseconds, then 32 random bits): new rows land together at the
    end of the usage table's b-tree instead of on random pages. The bits need to be
    unique, not secret (`random` reseeds in a forked child)."""
    return f"req_{time.time_ns():016x}{random.getrandbits(32):08x}"


def check_tokens(**counts) -> dict:
    for name, value in counts.items():
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            counts[name] = parse_count(value, name.replace("_", " "))
    return counts


def project_of(conn, key_id: str) -> str:
    row = conn.execute("SELECT project_id FROM keys WHERE id = ?", (key_id,)).fetchone()
    if row is None:
        from .keys import looks_like_id

        raise KeyNotFound(f"no key has the id {key_id!r}" if looks_like_id(key_id)
                          else "no key has that id (record_usage takes a key's id, not its secret)")
    return row[0]


@lru_cache(maxsize=1024)
def _model(name: str) -> str:
    """A model name, checked once per name (the request path records the same few)."""
    return check_text(name, "model", max_len=256, allow_empty=True)


def record(conn, key_id: str, project_id: str, *, pricer: pricing.Pricer,
           model: str | None = None, tokens: dict, cost_nanos: int | None = None,
           request_id: str | None = None, at_ms: int | None = None) -> Recorded:
    """Store one request. `tokens` holds TOKEN_FIELDS (checked with check_tokens); a
    missing cost comes from `pricer`, and an unknown model is recorded at $0, unpriced.
    A request in flight with that request id is settled by it (see limits.SETTLED)."""
    model = _model(model or "") if type(model or "") is str else check_text(model, "model")
    request_id = new_request_id() if request_id is None else check_text(request_id, "request id")
    if at_ms is None:
        at_ms = now_ms()
    elif not 0 <= at_ms < LAST_MS:  # 1970 .. 9999
        raise InvalidInput("the time of a usage record must be between 1970 and 9999")
    counts = [tokens[f] for f in TOKEN_FIELDS]
    if cost_nanos is not None and not 0 <= cost_nanos <= MAX_REQUEST_NANOS:
        parse_cost(cost_nanos / NANOS_PER_USD)  # says why, as every other way in does
    cost = cost_nanos if cost_nanos is not None else pricer(model, *counts)
    priced = cost is not None
    cost = cost or 0
    row = (request_id, key_id, project_id, at_ms, model, *counts, cost, int(priced))
    cur = conn.execute(INSERT[conn.dialect], row)  # one statement: its own transaction
    inserted = cur.rowcount if conn.dialect == "sqlite" else cur.fetchone()[0]
    return Recorded(inserted == 1, request_id, cost, priced)


def release(conn, request_id: str) -> bool:
    """End a request in flight without usage (its work failed). False if it was not in
    flight (settled, released or expired already)."""
    request_id = check_text(request_id, "request id")
    sql = ("DELETE FROM in_flight WHERE request_id = ? AND NOT EXISTS "
           "(SELECT 1 FROM usage WHERE usage.request_id = in_flight.request_id)")
    if conn.dialect == "postgres":
        return conn.execute(sql, (request_id,)).rowcount == 1
    with conn.transaction():
        return conn.execute(sql, (request_id,)).rowcount == 1


EXPORT_FIELDS = ("key", "project_id", "at", "model", "input_tokens", "output_tokens",
                 "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cost_usd",
                 "request_id")


def export_rows(conn, *, since_ms=None, until_ms=None, project_id=None,
                key_id=None):
    """Every stored request in the range, oldest first, in the import record format.

    `cost_usd` is null for an unpriced request, so a re-import prices it again rather
    than taking $0 as given; cache_write_tokens counts both kinds of cache write, and
    cache_write_1h_tokens how many of them were 1-hour writes (priced apart).
    """
    where, params = [], []
    for column, op, value in (("at_ms", ">=", since_ms), ("at_ms", "<", until_ms),
                              ("project_id", "=", project_id), ("key_id", "=", key_id)):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    sql = ("SELECT key_id, project_id, at_ms, model, input_tokens, output_tokens, cache_read_tokens, "
           "cache_write_5m_tokens + cache_write_1h_tokens, cache_write_1h_tokens, cost_nanos, priced, "
           "request_id FROM usage")
    if where:
        sql += " WHERE " + " AND ".join(where)
    from .values import iso_ms

    for key, project, at, model, inp, out, read, writes, hour_writes, cost, priced, request_id in (
            conn.execute(sql + " ORDER BY at_ms, request_id", params)):
        yield {"key": key, "project_id": project, "at": iso_ms(at), "model": model or None,
               "input_tokens": inp, "output_tokens": out, "cache_read_tokens": read,
               "cache_write_tokens": writes, "cache_write_1h_tokens": hour_writes,
               "cost_usd": cost / 1_000_000_000 if priced else None, "request_id": request_id}
