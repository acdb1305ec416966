"""What a key lineage or a project has used, against its limits: spend this month and in
total, tokens today, requests in flight (and the cost they reserve), requests in the
rate window. Read by the gate (inside its admission transaction), by `keys show` and
by `projects`.

Every sum is exact however large (rollups.exact_sums): a report or a budget check can
never fail on a sum. Times are UTC; months are calendar months.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .rollups import combine, exact_sums

DAY_MS = 86_400_000
DEFAULT_TIMEOUT_S = 600  # how long an unsettled request holds its place, for a key without a timeout
_TOKENS = ("input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens "
           "+ cache_write_1h_tokens")


def project_scope(project_id: str) -> str:
    """A project's rate window, beside the key lineages' (whose names are hex ids)."""
    return f"project:{project_id}"


@dataclass(frozen=True)
class ProjectLimits:
    """A project's own limits (None: no limit), shared by all its keys."""

    project_id: str
    monthly_budget_nanos: int | None = None
    total_budget_nanos: int | None = None
    rate_limit: int | None = None
    tokens_per_day: int | None = None
    max_concurrent: int | None = None

    FIELDS = ("monthly_budget_nanos", "total_budget_nanos", "rate_limit", "tokens_per_day",
              "max_concurrent")

    @property
    def any(self) -> bool:
        return any(getattr(self, f) is not None for f in self.FIELDS)

    @property
    def tracks_requests(self) -> bool:
        return (self.max_concurrent is not None or self.monthly_budget_nanos is not None
                or self.total_budget_nanos is not None)


@dataclass(frozen=True)
class Month:
    """The calendar month (UTC) around a moment, as day numbers and its reset time."""

    today: int
    first_day: int
    next_first_day: int

    @classmethod
    def of(cls, now_ms: int) -> "Month":
        moment = dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc)
        start = dt.datetime(moment.year, moment.month, 1, tzinfo=dt.timezone.utc)
        after = dt.datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1,
                            tzinfo=dt.timezone.utc)
        return cls(now_ms // DAY_MS, int(start.timestamp()) // 86400, int(after.timestamp()) // 86400)

    @property
    def resets(self) -> str:
        return _iso_day(self.next_first_day)

    @property
    def tomorrow(self) -> str:
        return _iso_day(self.today + 1)


def _iso_day(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86400, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Used:
    """What one scope (a key lineage, or a project) has used."""

    month_nanos: int = 0
    total_nanos: int | None = None  # None: not read
    tokens_today: int = 0
    in_flight: int = 0
    reserved_nanos: int = 0
    window: int | None = None  # requests in the last minute; None: not read
    oldest_ms: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def committed_month(self) -> int:
        """Spent this month plus what requests in flight have reserved."""
        return self.month_nanos + self.reserved_nanos

    @property
    def committed_total(self) -> int:
        return (self.total_nanos or 0) + self.reserved_nanos


# The usage of a lineage (every key it has had) or of a project, from its daily roll-up.
_SOURCES = {
    "lineage": ("usage_daily", "key_id IN (SELECT id FROM keys WHERE lineage = ?)"),
    "project": ("usage_project_daily", "project_id = ?"),
}


def spend(conn, kind: str, subject: str, month: Month, *, total: bool) -> tuple[int, int, int | None]:
    """(cost this month, tokens today, cost in total or None) of a lineage or a project."""
    table, where = _SOURCES[kind]
    today = int(month.today)  # written into the SQL: exact_sums repeats each expression
    month_cost, tokens = combine(conn.execute(
        f"SELECT {exact_sums(['cost_nanos', f'CASE WHEN day = {today} THEN {_TOKENS} END'])} FROM {table} "
        f"WHERE {where} AND day >= ? AND day < ?",
        (subject, month.first_day, month.next_first_day)).fetchone())
    all_time = None
    if total:
        (all_time,) = combine(conn.execute(f"SELECT {exact_sums(['cost_nanos'])} FROM {table} WHERE {where}",
                                           (subject,)).fetchone())
    return month_cost, tokens, all_time


def in_flight(conn, kind: str, subject: str, now_ms: int) -> tuple[int, int]:
    """(requests in flight, cost they reserve) of a lineage or a project."""
    column = "lineage" if kind == "lineage" else "project_id"
    row = conn.execute(f"SELECT count(*), {exact_sums(['reserved_nanos'])} FROM in_flight "
                       f"WHERE {column} = ? AND expires_ms > ?", (subject, now_ms)).fetchone()
    return row[0], combine(row[1:])[0]


def window(conn, scope: str, now_ms: int, window_ms: int = 60_000) -> tuple[int, int | None]:
    """Requests in the rate window of a scope, and the oldest one's time (a read)."""
    count, oldest = conn.execute(
        "SELECT coalesce(sum(n), 0), min(at_ms) FROM rate_slots WHERE lineage = ? AND at_ms > ?",
        (scope, now_ms - window_ms)).fetchone()
    return count, oldest


def read(conn, kind: str, subject: str, now_ms: int, *, total: bool = True,
         tracked: bool = True, scope: str | None = None) -> Used:
    """Everything a scope has used (the parts that are asked for)."""
    month = Month.of(now_ms)
    used = Used()
    used.month_nanos, used.tokens_today, used.total_nanos = spend(conn, kind, subject, month, total=total)
    if tracked:
        used.in_flight, used.reserved_nanos = in_flight(conn, kind, subject, now_ms)
    if scope is not None:
        used.window, used.oldest_ms = window(conn, scope, now_ms)
    return used


def expire(conn, lineage: str, project_id: str | None, now_ms: int) -> None:
    """Inside an admission: forget requests of this lineage (and project) that were never
    settled and whose time is up, so a crashed worker holds nothing for long."""
    conn.execute("DELETE FROM in_flight WHERE lineage = ? AND expires_ms <= ?", (lineage, now_ms))
    if project_id is not None:
        conn.execute("DELETE FROM in_flight WHERE project_id = ? AND expires_ms <= ?", (project_id, now_ms))
