"""What a key lineage or a project has used, against its limits: spend this month and in
total, tokens today, requests in flight (and the cost they reserve), requests in the
rate window. Read by the gate (inside its admission transaction), by `keys show` and
by `projects`.

Every sum is exact however large (rollups.exact_sums): a report or a budget check can
never fail on a sum. Days, weeks and months are calendar periods in the store's budget
time zone (periods.py; the setting `budget_tz`, default UTC).
"""
from __future__ import annotations

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
    (inflight.py; None: the default), its alert thresholds (percent, as text "50,80,95";
    None: the default) and its model lists (JSON text, NULL: every model; models.py).
    (Plain classes here, not dataclasses: this module is on `keys verify`'s cold path,
    and making a dataclass costs ~0.4 ms of import each.)"""

    LIMITS = ("monthly_budget_nanos", "total_budget_nanos", "rate_limit", "tokens_per_day",
              "max_concurrent", "daily_budget_nanos", "weekly_budget_nanos", "input_tokens_per_minute",
              "output_tokens_per_minute")
    FIELDS = LIMITS + ("hold", "alert_at", "allowed_models", "blocked_models")
    BUDGETS = {"day": "daily_budget_nanos", "week": "weekly_budget_nanos", "month": "monthly_budget_nanos",
               "total": "total_budget_nanos"}
    __slots__ = ("project_id", *FIELDS, "any", "tracks_requests", "model_lists")

    def __init__(self, project_id: str, monthly_budget_nanos: int | None = None,
                 total_budget_nanos: int | None = None, rate_limit: int | None = None,
                 tokens_per_day: int | None = None, max_concurrent: int | None = None,
                 daily_budget_nanos: int | None = None, weekly_budget_nanos: int | None = None,
                 input_tokens_per_minute: int | None = None, output_tokens_per_minute: int | None = None,
                 hold: int | None = None, alert_at: str | None = None, allowed_models: str | None = None,
                 blocked_models: str | None = None):
        self.project_id = project_id
        self.monthly_budget_nanos, self.total_budget_nanos = monthly_budget_nanos, total_budget_nanos
        self.daily_budget_nanos, self.weekly_budget_nanos = daily_budget_nanos, weekly_budget_nanos
        self.rate_limit, self.tokens_per_day, self.max_concurrent = rate_limit, tokens_per_day, max_concurrent
        self.input_tokens_per_minute, self.output_tokens_per_minute = input_tokens_per_minute, output_tokens_per_minute
        self.hold, self.alert_at = hold, alert_at
        self.allowed_models, self.blocked_models = allowed_models, blocked_models
        self.any = any(getattr(self, f) is not None for f in self.LIMITS)
        self.tracks_requests = max_concurrent is not None or self.has_budget
        self.model_lists = None
        if allowed_models is not None or blocked_models is not None:
            from . import models

            self.model_lists = models.lists(*self.models())

    @property
    def has_budget(self) -> bool:
        """Whether a request's cost must be reserved (a model without a price cannot be)."""
        return any(getattr(self, f) is not None for f in self.BUDGETS.values())

    def budgets(self) -> dict:
        """period name ("day", "week", "month", "total") -> its budget, for those set."""
        return {name: getattr(self, f) for name, f in self.BUDGETS.items() if getattr(self, f) is not None}

    def models(self) -> tuple[tuple, tuple]:
        """(allowed, blocked) patterns; ("*",) and (): every model."""
        import json

        return (tuple(json.loads(self.allowed_models)) if self.allowed_models is not None else ("*",),
                tuple(json.loads(self.blocked_models)) if self.blocked_models is not None else ())


def of_project(conn, project_id: str) -> ProjectLimits:
    """A project's limits, as stored (no row: none)."""
    row = conn.row(f"SELECT {', '.join(ProjectLimits.FIELDS)} FROM projects WHERE project_id = ?", (project_id,))
    return ProjectLimits(project_id, *(tuple(row) if row else ()))


@lru_cache(maxsize=1024)
def project_limits(project_id: str, *values) -> ProjectLimits:
    """A project's limits from a key row's (the request path asks for the same few)."""
    return ProjectLimits(project_id, *values)


class Used:
    """What one scope (a key lineage, or a project) has used."""

    __slots__ = ("spent", "tokens", "month_nanos", "total_nanos", "tokens_today", "in_flight", "reserved_nanos",
                 "stale", "window", "oldest_ms", "minute_input", "minute_output")

    def __init__(self):
        self.spent: dict = {}  # period name -> nano-dollars recorded in it (the periods read)
        self.tokens: dict = {}  # period name -> tokens recorded in it
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


# Where a scope's usage is summed from: its roll-ups per UTC day and per UTC hour, and
# (only at a period edge inside an hour) the usage rows themselves.
#
# Why this shape (and not day roll-ups keyed by the budget zone's day): the periods are
# calendar periods in a zone the operator may change at any time, and SQLite cannot
# compute a zone's local day inside the roll-up trigger. The UTC roll-ups already
# exist, are written on every request, and are exact under any zone: a period is whole
# UTC days (usage_daily / usage_project_daily) plus or minus the whole UTC hours at its
# ends (usage_hourly, found by index: hour, project, key) plus, in a zone whose offset is not
# whole hours (India, Adelaide, Newfoundland...), the minutes between its boundary and
# the hour (the usage rows, by the time index). Nothing to re-key when the zone
# changes, nothing new to write per request; in UTC a month is days alone, as before.
_DAYS = {  # (a join: faster than `key_id IN (SELECT …)`, which builds a temporary table)
    "lineage": "keys k JOIN usage_daily d ON d.key_id = k.id WHERE k.lineage = ?",
    "project": "usage_project_daily d WHERE d.project_id = ?",
}
# The hours of a lineage: the (key, project) pairs it used on those days (one CTE,
# `pairs`, for the whole statement), then each hour's roll-up row by its primary key
# (hour, project, key): seeks, not a scan of every key's hours. (With the pairs as a
# subquery in each part instead, SQLite ran a statement holding two such parts ten
# times slower than the parts one by one.)
_PAIRS = ("pairs AS (SELECT DISTINCT d.key_id, d.project_id FROM keys k JOIN usage_daily d ON d.key_id = k.id "
          "WHERE k.lineage = ? AND d.day >= {d0} AND d.day <= {d1})")
_HOURS = {
    # (CROSS JOIN: SQLite keeps the pairs outside, as written, instead of reading every
    # key's rows of an hour through an index it builds each time; PostgreSQL plans freely.)
    "lineage": ("pairs p CROSS JOIN usage_hourly h WHERE h.project_id = p.project_id AND h.key_id = p.key_id "
                "AND h.hour IN ({hours})"),
    "project": "usage_hourly h WHERE h.project_id = ? AND h.hour IN ({hours})",
}
_ROWS = {
    "lineage": "usage u JOIN keys k ON u.key_id = k.id WHERE k.lineage = ? AND u.at_ms >= {a} AND u.at_ms < {b}",
    "project": "usage u WHERE u.project_id = ? AND u.at_ms >= {a} AND u.at_ms < {b}",
}
HOUR_MS = 3_600_000


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


def _minute_parts(kind: str) -> list[str]:
    """A scope's tokens in the last minute, as two parts of _used_sql's UNION ALL: its
    recorded input and output, and the input declared by its requests in flight that
    started in it. Parameters: _minute_params, then the scope and since."""
    usage, flight = _MINUTE[kind]
    return [f"(SELECT {exact_sums(['input_tokens', 'output_tokens'])} FROM {usage})",
            f"(SELECT {exact_sums(['input_tokens'])}, 0, 0 FROM in_flight WHERE {flight} AND started_ms > ?)"]


def minute_frees_steps(kind: str, subject: str, project_id: str, now_ms: int, which: str, excess: int):
    """Seconds until at least `excess` of a scope's `which` ("input" or "output") tokens
    of the last minute have left it (Retry-After): read only for a refusal. (Steps:
    db/steps.py.)"""
    usage, flight = _MINUTE[kind]
    since = now_ms - MINUTE_MS
    entries = list((yield ("all", f"SELECT at_ms, {which}_tokens FROM {usage}",
                           _minute_params(kind, subject, project_id, since))))
    if which == "input":
        entries += (yield ("all", f"SELECT started_ms, input_tokens FROM in_flight WHERE {flight} "
                           "AND started_ms > ? AND input_tokens > 0", (subject, since)))
    gone = 0
    for at, tokens in sorted(entries):
        gone += tokens or 0
        if gone >= excess:
            return max(1, -(-(at + MINUTE_MS - now_ms) // 1000))
    return MINUTE_MS // 1000  # (not reached: the window holds the excess)



def pieces(start_ms: int, end_ms: int) -> tuple:
    """[start_ms, end_ms) as (whole UTC days (first, after) or None, UTC hours to add,
    UTC hours to take away (inside those days), the sub-hour (start, end) ranges at the
    edges). At each end, whichever reads fewer hours: the hours up to the first whole
    day, or that whole day less the hours before the start (a day in Berlin is one UTC
    day, plus an hour before it, less its last hour: three reads, not twenty-four)."""
    h0, h1 = -(-start_ms // HOUR_MS), end_ms // HOUR_MS
    if h0 > h1:  # inside one hour
        return None, (), (), ((start_ms, end_ms),)
    rows = tuple(r for r in ((start_ms, h0 * HOUR_MS), (h1 * HOUR_MS, end_ms)) if r[0] < r[1])
    up, down = -(-h0 // 24), h0 // 24
    first = up if up * 24 - h0 <= h0 - down * 24 else down
    down, up = h1 // 24, -(-h1 // 24)
    after = down if h1 - down * 24 <= up * 24 - h1 else up
    if first >= after:  # no whole day: the hours themselves
        return None, tuple(range(h0, h1)), (), rows
    plus = tuple(range(h0, first * 24)) + tuple(range(after * 24, h1))
    minus = tuple(range(first * 24, h0)) + tuple(range(h1, after * 24))
    return (first, after), plus, minus, rows


def _span_parts(kind: str, start_ms: int, end_ms: int) -> list[tuple[str, int, tuple, int]]:
    """Subqueries, each summing (cost, tokens) exactly over one piece of the span: (SQL,
    how many `?` (the scope) it holds, the UTC hours it reads, its sign). Bounds are
    written into the SQL (exact_sums repeats each expression; the statement is cached
    until a period moves on)."""
    days, plus, minus, rows = pieces(start_ms, end_ms)
    sums = exact_sums(["cost_nanos", _TOKENS])
    parts = []
    if days:
        parts.append((f"(SELECT {sums} FROM {_DAYS[kind]} AND d.day >= {days[0]} AND d.day < {days[1]})", 1, (), 1))
    for hours, sign in ((plus, 1), (minus, -1)):
        if hours:
            listed = ", ".join(str(h) for h in hours)
            parts.append((f"(SELECT {sums} FROM " + _HOURS[kind].format(hours=listed) + ")",
                          int(kind != "lineage"), hours, sign))
    for a, b in rows:
        parts.append((f"(SELECT {sums} FROM " + _ROWS[kind].format(a=a, b=b) + ")", 1, (), 1))
    return parts


@lru_cache(maxsize=64)
def _used_sql(kind: str, spans: tuple, total: bool, tracked: bool, minute: bool = False) -> tuple[str, tuple, int]:
    """One statement reading a scope's spend (and tokens) in each span, in total, and its
    requests in flight; the signs of each span's parts (1: add, -1: take away); and how many times the scope is
    its parameter before the in-flight part's. One statement, so one snapshot: on
    PostgreSQL a usage insert may commit between two statements, and its cost would then
    be neither spend (read before) nor reservation (settled after). Its parts are rows
    of a UNION ALL, each tagged with its place (four values each)."""
    parts, signs = [], []
    for start_ms, end_ms in spans:
        mine = _span_parts(kind, start_ms, end_ms)
        parts += mine
        signs.append(tuple(sign for _, _, _, sign in mine))
    if total:
        parts.append((f"(SELECT {exact_sums(['cost_nanos'])}, 0, 0 FROM {_DAYS[kind]})", 1, (), 1))
    if tracked:
        parts.append((inflight.used_sql("lineage" if kind == "lineage" else "project_id"), 0, (), 1))
    if minute:
        parts += [(part, 0, (), 1) for part in _minute_parts(kind)]
    if not parts:
        parts.append(("(SELECT 0, 0, 0, 0)", 0, (), 1))
    hours = [h for _, _, hs, _ in parts for h in hs] if kind == "lineage" else []
    cte = ("WITH " + _PAIRS.format(d0=min(hours) // 24, d1=max(hours) // 24) + " ") if hours else ""
    sql = cte + " UNION ALL ".join(f"SELECT {i} AS part, s{i}.* FROM {p} AS s{i}"
                                   for i, (p, _, _, _) in enumerate(parts))
    return sql, tuple(signs), bool(cte) + sum(n for _, n, _, _ in parts)


def read(conn, kind: str, subject: str, now_ms: int, spans: dict | None = None, *, total: bool = True,
         tracked: bool = True, scope: str | None = None, minute: str | None = None) -> Used:
    """Everything a scope has used (the parts that are asked for). `spans`: name ->
    periods.Period (or anything with start_ms and end_ms) to sum the spend of; by default
    the UTC calendar day, week and month. `minute`: the scope's project, to read its
    tokens of the last minute (tokens-per-minute limits)."""
    from .db.steps import run

    return run(conn, read_steps(kind, subject, now_ms, spans, total=total, tracked=tracked, scope=scope,
                                minute=minute))


def read_steps(kind: str, subject: str, now_ms: int, spans: dict | None = None, *, total: bool = True,
               tracked: bool = True, scope: str | None = None, minute: str | None = None):
    """`read` as steps (db/steps.py): the gate's admission runs them on either kind of
    connection."""
    if spans is None:
        from .periods import periods

        spans = periods(now_ms)
    names = tuple(spans)
    sql, signs, scoped = _used_sql(kind, tuple([(spans[n].start_ms, spans[n].end_ms) for n in names]), total,
                                    tracked, minute is not None)
    params = [subject] * scoped + ([now_ms, now_ms, now_ms, subject] if tracked else [])
    if minute is not None:
        params += _minute_params(kind, subject, minute, now_ms - MINUTE_MS) + [subject, now_ms - MINUTE_MS]
    rows = sorted(map(tuple, (yield ("all", sql, params))))
    used = Used()
    at = 0
    for name, span_signs in zip(names, signs):
        cost = tokens = 0
        for row, sign in zip(rows[at:], span_signs):
            c, t = combine(row[1:5])
            cost, tokens = cost + sign * c, tokens + sign * t
        used.spent[name], used.tokens[name] = cost, tokens
        at += len(span_signs)
    used.month_nanos = used.spent.get("month", 0)
    used.tokens_today = used.tokens.get("day", 0)
    if total:
        used.total_nanos, at = combine(rows[at][1:3])[0], at + 1
    if tracked:
        rest, at = rows[at], at + 1
        used.in_flight, used.reserved_nanos, used.stale = rest[1], combine(rest[2:4])[0], rest[4]
    if minute is not None:
        recorded_in, used.minute_output = combine(rows[at][1:5])
        used.minute_input = recorded_in + combine(rows[at + 1][1:3])[0]
    if scope is not None:
        used.window, used.oldest_ms = yield from windows.window_steps(scope, now_ms)
    return used


def standing(used: Used, budgets: dict, calendar: dict, now_ms: int) -> list[dict]:
    """Each budget (`budgets`: period name -> nano-dollars, as Permissions.budgets()
    gives them) with what is spent in its period, reserved by requests in flight (they
    count against every period), left, and when it resets: `keys show`, `projects
    show` and `alerts` read this. Money in USD (exact); times ISO-8601 with the budget
    zone's offset."""
    from .periods import ADJECTIVE
    from .values import in_usd

    out = []
    for name, budget in budgets.items():
        period = calendar.get(name)
        spent = spent_in(used, name)
        reserved = used.reserved_nanos
        committed = spent + reserved
        out.append({
            "budget": ADJECTIVE[name],
            "limit_usd": in_usd(budget),
            "spent_usd": in_usd(spent),
            "reserved_usd": in_usd(reserved),
            "left_usd": in_usd(left(used, {name: budget})[name]),
            "percent": round(committed * 100 / budget, 1) if budget else (100.0 if committed else 0.0),
            "period_start": iso_in_zone(period.start_ms, period.tz) if period is not None else None,
            "resets_at": period.resets if period is not None else None,
            "resets_in_s": period.seconds_left(now_ms) if period is not None else None,
        })
    return out


def spent_in(used: Used, name: str) -> int:
    """What is recorded in a budget's period ("total": ever)."""
    return (used.total_nanos or 0) if name == "total" else used.spent.get(name, 0)


def left(used: Used, budgets: dict) -> dict:
    """Each budget's period name -> nano-dollars left of it (never below 0): what is
    recorded in its period and reserved by requests in flight taken off, as `standing`
    counts them."""
    return {name: max(0, budget - spent_in(used, name) - used.reserved_nanos) for name, budget in budgets.items()}


def tightest_budget(conn, key_row, now: int) -> dict | None:
    """Of a key's budgets (its lineage's: a rotated key shares them) and its project's,
    the one with the least left, as `keys show` and `projects show` count it (spent in
    the period of the store's budget time zone, and reserved by requests in flight):
    {"scope": "key" or "project", "budget": "daily" … "total", "left_nanos"}; None when
    neither has a budget. The status line shows it, so this loads no more than it needs
    (not the key lifecycle: a key's budgets are its profile's and overrides')."""
    from . import periods, profiles, settings

    calendar = periods.periods(now, settings.budget_tz(conn))
    found = []
    for scope, kind, subject, budgets in (
            ("key", "lineage", key_row["lineage"], profiles.resolve(key_row).budgets()),
            ("project", "project", key_row["project_id"], of_project(conn, key_row["project_id"]).budgets())):
        if not budgets:
            continue
        spans = {name: calendar[name] for name in budgets if name in calendar}
        used = read(conn, kind, subject, now, spans, total="total" in budgets)
        for name, nanos in left(used, budgets).items():
            found.append({"scope": scope, "budget": periods.ADJECTIVE[name], "left_nanos": nanos})
    return min(found, key=lambda b: b["left_nanos"]) if found else None


def iso_in_zone(ms: int, tz: str) -> str:
    from .periods import iso_in_zone as iso

    return iso(ms, tz)
