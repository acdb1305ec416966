"""Recording usage: one row per request, priced exactly, deduplicated by request id.

The roll-ups (db.rollups) change with the usage row, in the same statement
(conn.write_usage), so every writer keeps them right. Bulk imports add to them set-wise
instead (db/staging.py).
Reports live in claude_keys.reports.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from . import inflight, pricing
from .db import rollups
from .db.rollups import TOKEN_FIELDS, USAGE_COLUMNS as COLUMNS, remove_requests as remove_rows
from .errors import InvalidInput, KeyNotFound
from .values import (LAST_MS, MAX_COUNT, MAX_REQUEST_NANOS, NANOS_PER_USD, Usd, check_text, iso_ms,
                     now_ms, parse_cost, parse_count, usd_pair)


FUTURE_MS = 86_400_000  # usage dated more than a day ahead of now is bad input
_INSERT = (f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
           "ON CONFLICT (request_id) DO NOTHING")


@dataclass
class Recorded:
    recorded: bool  # False: that request id was already stored, nothing changed
    request_id: str
    cost_nanos: int
    priced: bool  # False: unknown model and no cost given (recorded at $0, flagged)
    reserved_nanos: int | None = None  # what its check reserved, when it settled one that did

    @property
    def reserved_usd(self) -> Usd | None:
        return None if self.reserved_nanos is None else Usd(self.reserved_nanos)

    @property
    def warning(self) -> str | None:
        """Set when the request cost more than its check reserved (inflight.py)."""
        if self.reserved_nanos is None or self.cost_nanos <= self.reserved_nanos:
            return None
        cost, reserved = usd_pair(self.cost_nanos, self.reserved_nanos)
        return (f"request {self.request_id} cost {cost}, more than the "
                f"{reserved} its check reserved: recorded, and flagged in the audit log")

    @property
    def cost_usd(self) -> Usd:
        return Usd(self.cost_nanos)


def check_tokens(**counts) -> dict:
    for name, value in counts.items():
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            counts[name] = parse_count(value, name.replace("_", " "))
    return counts


def check_counts(*counts) -> tuple:
    """TOKEN_FIELDS' counts, in that order, checked (check_tokens without the names, for
    the request path: a plain int in range costs one comparison)."""
    for value in counts:
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            return tuple(check_tokens(**dict(zip(TOKEN_FIELDS, counts))).values())
    return counts


def owner_of(conn, key_id: str) -> tuple[str, str]:
    """A key's (project id, lineage)."""
    from .db.steps import run

    return run(conn, owner_steps(key_id))


def owner_steps(key_id: str):
    row = yield ("one", "SELECT project_id, lineage FROM keys WHERE id = ?", (key_id,))
    if row is None:
        from .keys import looks_like_id

        raise KeyNotFound(f"no key has the id {key_id!r}" if looks_like_id(key_id)
                          else "no key has that id (record_usage takes a key's id, not its secret)")
    return row[0], row[1]


@lru_cache(maxsize=1024)
def _model(name: str) -> str:
    """A model name, checked once per name (the request path records the same few)."""
    return check_text(name, "model", max_len=256, allow_empty=True)


def check_time(at_ms: int, now: int | None = None) -> int:
    """A usage time: from 1970, and at most a day ahead of now (clocks drift; a record
    dated next year is a mistake that would sit in reports and budgets)."""
    if not 0 <= at_ms < LAST_MS:
        raise InvalidInput("the time of a usage record must be between 1970 and 9999")
    latest = (now if now is not None else now_ms()) + FUTURE_MS
    if at_ms > latest:
        raise InvalidInput(f"the time {iso_ms(at_ms)} is more than a day in the future")
    return at_ms


def record(conn, key_id: str, project_id: str, lineage: str, **given) -> Recorded:
    """Store one request (record_steps, run on `conn`)."""
    from .db.steps import run

    return run(conn, record_steps(key_id, project_id, lineage, **given))


def record_steps(key_id: str, project_id: str, lineage: str, *, pricer: pricing.Pricer,
                 model: str | None = None, tokens: dict | tuple, cost_nanos: int | None = None,
                 request_id: str | None = None, at_ms: int | None = None, speed=None,
                 web_searches: int = 0):
    """Store one request, as steps (db/steps.py). `tokens` holds TOKEN_FIELDS (checked with check_tokens, or
    their counts in that order, checked with check_counts); a
    missing cost comes from `pricer` (at fast-mode rates for speed "fast", with the price
    of `web_searches`; its cost mode may override a given cost), and an
    unknown model is recorded at $0, unpriced. Neither a model nor a cost is bad input:
    such a request could never be priced. A request id given is checked and settles the
    request in flight with it (inflight.settle_steps)."""
    model = _model(model or "") if type(model or "") is str else check_text(model, "model")
    if not model and cost_nanos is None:
        raise InvalidInput("give the request's model (to price it) or its cost")
    fast = False if speed is None else pricing.is_fast(speed)
    fresh = request_id is None  # a new id: nothing can hold it, so one plain insert
    request_id = inflight.new_id(False) if fresh else check_text(request_id, "request id")
    at_ms = now_ms() if at_ms is None else check_time(at_ms)
    counts = tokens if type(tokens) is tuple else [tokens[f] for f in TOKEN_FIELDS]
    if cost_nanos is not None and not 0 <= cost_nanos <= MAX_REQUEST_NANOS:
        parse_cost(cost_nanos / NANOS_PER_USD)  # says why, as every other way in does
    cost = pricer.cost(cost_nanos, model, *counts, fast, web_searches)
    priced = cost is not None
    cost = cost or 0
    row = (request_id, key_id, project_id, at_ms, model, *counts, cost, int(priced), None)
    if fresh:
        return Recorded((yield ("write_usage", _INSERT, row, True)) == 1, request_id, cost, priced)
    stored, reserved = yield from inflight.settle_steps(row, lineage, cost, _INSERT)
    return Recorded(stored, request_id, cost, priced, reserved)


def release(conn, request_id: str) -> bool:
    """End a request in flight without usage (its work failed). False if it was not in
    flight (settled, released or expired already)."""
    from .db.steps import run

    return run(conn, inflight.release_steps(check_text(request_id, "request id")))


EXPORT_FIELDS = ("key", "project_id", "at", "model", "input_tokens", "output_tokens",
                 "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cost_usd",
                 "request_id", "session_id")


def export_rows(conn, *, since_ms=None, until_ms=None, project_id=None,
                key_id=None, session_id=None):
    """Every stored request in the range, oldest first, in the import record format.

    `cost_usd` is null for an unpriced request, so a re-import prices it again rather
    than taking $0 as given; cache_write_tokens counts both kinds of cache write, and
    cache_write_1h_tokens how many of them were 1-hour writes (priced apart).
    """
    where, params = [], []
    for column, op, value in (("at_ms", ">=", since_ms), ("at_ms", "<", until_ms),
                              ("project_id", "=", project_id), ("key_id", "=", key_id),
                              ("session_id", "=", session_id)):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    sql = ("SELECT key_id, project_id, at_ms, model, input_tokens, output_tokens, cache_read_tokens, "
           "cache_write_5m_tokens + cache_write_1h_tokens, cache_write_1h_tokens, cost_nanos, priced, "
           "request_id, session_id FROM usage")
    if where:
        sql += " WHERE " + " AND ".join(where)
    for key, project, at, model, inp, out, read, writes, hour_writes, cost, priced, request_id, \
            session in conn.execute(sql + " ORDER BY at_ms, request_id", params):
        yield {"key": key, "project_id": project, "at": iso_ms(at), "model": model or None,
               "input_tokens": inp, "output_tokens": out, "cache_read_tokens": read,
               "cache_write_tokens": writes, "cache_write_1h_tokens": hour_writes,
               "cost_usd": Usd(cost) if priced else None, "request_id": request_id,
               "session_id": session}


@dataclass
class Selection:
    """Which requests `usage delete` takes back: request ids, or a key and/or a project
    within [since_ms, until_ms)."""

    request_ids: tuple = ()
    key_id: str | None = None
    project_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def where(self) -> tuple[str, list]:
        if self.request_ids:
            return f"request_id IN ({', '.join('?' * len(self.request_ids))})", list(self.request_ids)
        if (self.key_id is None and self.project_id is None) or self.since_ms is None \
                or self.until_ms is None:
            raise InvalidInput("say what to delete: request ids, or --key and/or --project-id "
                               "with --since and --until")
        where, params = ["at_ms >= ?", "at_ms < ?"], [self.since_ms, self.until_ms]
        for column, value in (("key_id", self.key_id), ("project_id", self.project_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return " AND ".join(where), params

    def describe(self, deleted: list | None = None) -> dict:
        """For the audit trail: the selection, with the request ids that were `deleted`
        (an id given but not stored was not deleted, so it is not named)."""
        if self.request_ids:
            ids = self.request_ids if deleted is None else deleted
            shown = list(ids[:20])
            return {"request_ids": shown + ([f"… {len(ids) - 20} more"] if len(ids) > 20 else [])}
        return {k: v for k, v in (("key_id", self.key_id), ("project_id", self.project_id),
                                  ("since", iso_ms(self.since_ms)), ("until", iso_ms(self.until_ms)))
                if v is not None}


_SUMS = ("1", "input_tokens", "output_tokens", "cache_read_tokens",
         "cache_write_5m_tokens + cache_write_1h_tokens", "cost_nanos")
MAX_IDS = 10_000  # request ids in one `usage delete`


def deletion_totals(conn, selection: Selection, table: str = "usage") -> dict:
    """What the selection holds: requests, tokens and cost (exact)."""
    where, params = selection.where() if table == "usage" else ("true", [])
    sums = rollups.combine(conn.execute(
        f"SELECT {rollups.exact_sums(_SUMS)} FROM {table} WHERE {where}", params).fetchone())
    names = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
             "cost_nanos")
    return dict(zip(names, sums))


def delete(conn, selection: Selection) -> dict:
    """Delete the selected requests with their roll-ups, in one write transaction,
    audited. Returns what was deleted (deletion_totals) and, for request ids, which
    were not found."""
    from . import audit

    if len(selection.request_ids) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS:,} request ids at once")
    where, params = selection.where()
    with conn.write():
        conn.execute("DROP TABLE IF EXISTS doomed")
        conn.execute(f"CREATE TEMP TABLE doomed AS SELECT * FROM usage WHERE {where}", params)
        totals = deletion_totals(conn, selection, "doomed")
        missing, deleted = [], None
        if selection.request_ids:
            found = {r[0] for r in conn.execute("SELECT request_id FROM doomed")}
            missing = [r for r in selection.request_ids if r not in found]
            deleted = [r for r in selection.request_ids if r in found]
        remove_rows(conn, "doomed")
        conn.execute("DROP TABLE doomed")
        if totals["requests"]:
            audit.record(conn, "usage delete", selection.key_id,
                         {"requests": totals["requests"], "cost_nanos": totals["cost_nanos"]},
                         {"requests": 0, "cost_usd": 0, "deleted": selection.describe(deleted)})
    return {**totals, "missing": missing}



def stored_without_key(conn, projects) -> list[tuple[str, int, int, int]]:
    """Usage of these projects stored with no key: (project, requests, first and last
    time in ms) per project. An import with --key tells whether its logs were
    imported before without one (and so stay without one)."""
    projects = sorted(projects)
    if not projects:
        return []
    marks = ", ".join("?" * len(projects))
    return [tuple(r) for r in conn.execute(
        f"SELECT project_id, COUNT(*), MIN(at_ms), MAX(at_ms) FROM usage WHERE key_id IS NULL "
        f"AND project_id IN ({marks}) GROUP BY project_id ORDER BY project_id", projects)]
