"""What a key lineage or a project has used, against its limits: spend this month and in
total, tokens today, requests in flight (and the cost they reserve), requests in the
rate window. Read by the gate (inside its admission transaction), by `keys show` and
by `projects`.

Every sum is exact however large (rollups.exact_sums): a report or a budget check can
never fail on a sum. Times are UTC; months are calendar months.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

from . import inflight
from .db import windows
from .db.rollups import combine, exact_sums

DAY_MS = 86_400_000
_TOKENS = ("input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens "
           "+ cache_write_1h_tokens")


def project_scope(project_id: str) -> str:
    """A project's rate window, beside the key lineages' (whose names are hex ids)."""
    return f"project:{project_id}"


class ProjectLimits:
    """A project's own limits (None: no limit), shared by all its keys, its hold limit
    (inflight.py; None: the default) and its model lists (JSON text, NULL: every model;
    models.py). (Plain classes here, not dataclasses: this module is on `keys verify`'s
    cold path, and making a dataclass costs ~0.4 ms of import each.)"""

    LIMITS = ("monthly_budget_nanos", "total_budget_nanos", "rate_limit", "tokens_per_day",
              "max_concurrent", "input_tokens_per_minute", "output_tokens_per_minute")
    FIELDS = LIMITS + ("hold", "allowed_models", "blocked_models")
    __slots__ = ("project_id", *FIELDS, "any", "tracks_requests", "model_lists")

    def __init__(self, project_id: str, monthly_budget_nanos: int | None = None,
                 total_budget_nanos: int | None = None, rate_limit: int | None = None,
                 tokens_per_day: int | None = None, max_concurrent: int | None = None,
                 input_tokens_per_minute: int | None = None, output_tokens_per_minute: int | None = None,
                 hold: int | None = None, allowed_models: str | None = None, blocked_models: str | None = None):
        self.project_id = project_id
        self.monthly_budget_nanos, self.total_budget_nanos = monthly_budget_nanos, total_budget_nanos
        self.rate_limit, self.tokens_per_day, self.max_concurrent = rate_limit, tokens_per_day, max_concurrent
        self.input_tokens_per_minute, self.output_tokens_per_minute = input_tokens_per_minute, output_tokens_per_minute
        self.hold = hold
        self.allowed_models, self.blocked_models = allowed_models, blocked_models
        self.any = any(getattr(self, f) is not None for f in self.LIMITS)
        self.tracks_requests = (max_concurrent is not None or monthly_budget_nanos is not None
                                or total_budget_nanos is not None)
        self.model_lists = None
        if allowed_models is not None or blocked_models is not None:
            from . import models

            self.model_lists = models.lists(*self.models())

    @property
    def has_budget(self) -> bool:
        return self.monthly_budget_nanos is not None or self.total_budget_nanos is not None

    def models(self) -> tuple[tuple, tuple]:
        """(allowed, blocked) patterns; ("*",) and (): every model."""
        import json

        return (tuple(json.loads(self.allowed_models)) if self.allowed_models is not None else ("*",),
                tuple(json.loads(self.blocked_models)) if self.blocked_models is not None else ())


@lru_cache(maxsize=1024)
def project_limits(project_id: str, *values) -> ProjectLimits:
    """A project's limits from a key row's (the request path asks for the same few)."""
    return ProjectLimits(project_id, *values)


class Month:
    """The calendar month (UTC) around a moment, as day numbers and its reset time."""

    __slots__ = ("today", "first_day", "next_first_day")

    def __init__(self, today: int, first_day: int, next_first_day: int):
        self.today, self.first_day, self.next_first_day = today, first_day, next_first_day

    @classmethod
    def of(cls, now_ms: int) -> "Month":
        return _month_of_day(now_ms // DAY_MS)

    @property
    def resets(self) -> str:
        return _iso_day(self.next_first_day)

    @property
    def tomorrow(self) -> str:
        return _iso_day(self.today + 1)


@lru_cache(maxsize=4)
def _month_of_day(today: int) -> Month:
    moment = dt.datetime.fromtimestamp(today * 86400, dt.timezone.utc)
    start = dt.datetime(moment.year, moment.month, 1, tzinfo=dt.timezone.utc)
    after = dt.datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=dt.timezone.utc)
    return Month(today, int(start.timestamp()) // 86400, int(after.timestamp()) // 86400)


def _iso_day(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86400, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Used:
    """What one scope (a key lineage, or a project) has used."""

    __slots__ = ("month_nanos", "total_nanos", "tokens_today", "in_flight", "reserved_nanos", "stale",
                 "window", "oldest_ms", "minute_input", "minute_output")

    def __init__(self):
        self.month_nanos = 0
        self.total_nanos: int | None = None  # None: not read
        self.tokens_today = 0
        self.in_flight = 0
        self.reserved_nanos = 0
        self.stale = 0  # rows of requests past their hold, not yet cleared
        self.window: int | None = None  # requests in the last minute; None: not read
        self.oldest_ms: int | None = None
        # Tokens of the last 60 s (None: not read): recorded, and for input also declared
        # by requests still in flight that started in it.
        self.minute_input: int | None = None
        self.minute_output: int | None = None


# The usage of a lineage (every key it has had) or of a project, from its daily roll-up.
_SOURCES = {  # (a join: faster than `key_id IN (SELECT …)`, which builds a temporary table)
    "lineage": ("keys k JOIN usage_daily d ON d.key_id = k.id", "k.lineage = ?"),
    "project": ("usage_project_daily", "project_id = ?"),
}


MINUTE_MS = 60_000
# The last minute's usage of a scope: one range of usage_by_project_time (its project's
# last minute, read from the index alone), a lineage's keys picked out of it (every key
# of a lineage has its project).
_MINUTE = {
    "lineage": ("usage WHERE project_id = ? AND at_ms > ? AND key_id IN (SELECT id FROM keys WHERE lineage = ?)",
                "lineage = ?"),
    "project": ("usage WHERE project_id = ? AND at_ms > ?", "project_id = ?"),
}


def _minute_params(kind: str, subject: str, project_id: str, since: int) -> list:
    """The parameters of a scope's last-minute usage (_MINUTE)."""
    return [project_id, since, subject] if kind == "lineage" else [project_id, since]


def _minute_sql(kind: str) -> str:
    """A scope's tokens in the last minute: recorded input and output, and the input
    declared by its requests in flight that started in it. Parameters: _minute_params,
    then the scope and since."""
    usage, flight = _MINUTE[kind]
    return (f"(SELECT {exact_sums(['input_tokens', 'output_tokens'])} FROM {usage}) AS w CROSS JOIN "
            f"(SELECT {exact_sums(['input_tokens'])} FROM in_flight WHERE {flight} AND started_ms > ?) AS wf")


def minute_frees(conn, kind: str, subject: str, project_id: str, now_ms: int, which: str, excess: int) -> int:
    """Seconds until at least `excess` of a scope's `which` ("input" or "output") tokens
    of the last minute have left it (Retry-After): read only for a refusal."""
    usage, flight = _MINUTE[kind]
    since = now_ms - MINUTE_MS
    entries = conn.execute(f"SELECT at_ms, {which}_tokens FROM {usage}",
                           _minute_params(kind, subject, project_id, since)).fetchall()
    if which == "input":
        entries += conn.execute(f"SELECT started_ms, input_tokens FROM in_flight WHERE {flight} "
                                "AND started_ms > ? AND input_tokens > 0", (subject, since)).fetchall()
    gone = 0
    for at, tokens in sorted(entries):
        gone += tokens or 0
        if gone >= excess:
            return max(1, -(-(at + MINUTE_MS - now_ms) // 1000))
    return MINUTE_MS // 1000  # (not reached: the window holds the excess)


@lru_cache(maxsize=64)
def _used_sql(kind: str, today: int, total: bool, tracked: bool, minute: bool = False) -> str:
    """One statement reading a scope's spend this month (and tokens today), in total, and
    its requests in flight. One statement, so one snapshot: on PostgreSQL a usage insert
    may commit between two statements, and its cost would then be neither spend (read
    before) nor reservation (settled after). `today` is written into the SQL, not a
    parameter: exact_sums repeats each expression."""
    table, where = _SOURCES[kind]
    parts = [f"(SELECT {exact_sums(['cost_nanos', f'CASE WHEN day = {today} THEN {_TOKENS} END'])} "
             f"FROM {table} WHERE {where} AND day >= ? AND day < ?) AS m"]
    if total:
        parts.append(f"(SELECT {exact_sums(['cost_nanos'])} FROM {table} WHERE {where}) AS t")
    if tracked:
        parts.append(inflight.used_sql("lineage" if kind == "lineage" else "project_id") + " AS f")
    if minute:
        parts.append(_minute_sql(kind))
    return "SELECT * FROM " + " CROSS JOIN ".join(parts)


def read(conn, kind: str, subject: str, now_ms: int, month: Month | None = None, *, total: bool = True,
         tracked: bool = True, scope: str | None = None, minute: str | None = None) -> Used:
    """Everything a scope has used (the parts that are asked for; `minute`: the scope's
    project, to read its tokens of the last minute, for tokens-per-minute limits)."""
    month = month or Month.of(now_ms)
    params = [subject, month.first_day, month.next_first_day]
    params += [subject] if total else []
    params += [now_ms, now_ms, now_ms, subject] if tracked else []
    if minute is not None:
        params += _minute_params(kind, subject, minute, now_ms - MINUTE_MS) + [subject, now_ms - MINUTE_MS]
    row = conn.execute(_used_sql(kind, month.today, total, tracked, minute is not None), params).fetchone()
    used = Used()
    used.month_nanos, used.tokens_today = combine(row[0:4])
    rest = row[4:]
    if total:
        used.total_nanos, rest = combine(rest[0:2])[0], rest[2:]
    if tracked:
        used.in_flight, used.reserved_nanos, used.stale = rest[0], combine(rest[1:3])[0], rest[3]
        rest = rest[4:]
    if minute is not None:
        recorded_in, used.minute_output, declared_in = combine(rest[0:6])
        used.minute_input = recorded_in + declared_in
    if scope is not None:
        used.window, used.oldest_ms = windows.window(conn, scope, now_ms)
    return used
