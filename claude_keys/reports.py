"""Usage reports: totals, and the same counters by period, project, key or model.

Reports read the roll-ups, never every request, so they cost about the same on a store
of ten million requests as on one of a thousand. A time range [since, until) is cut
into pieces: whole UTC days come from a daily roll-up (per project and model; per key
when the report is about keys), whole hours from usage_hourly, and only what is left
inside an hour (a --since/--until at 10:17, or a zone offset like +05:30) from the raw
usage rows. Buckets (days, weeks, months) are calendar periods in the
report's time zone; each piece's rows are summed into the bucket that contains them.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from .errors import InvalidInput
from .values import LAST_MS, NANOS_PER_USD, iso_ms, parse_time

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
PERIODS = ("day", "week", "month", "all")
SERIES = ("day", "week", "month")
GROUPS = {"project": "project_id", "key": "key_id", "model": "model"}
COUNTERS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens",
            "cache_write_tokens", "cost_nanos", "unpriced_requests")
_ROLLUP_SUMS = ("sum(requests), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
                "sum(cache_write_5m_tokens) + sum(cache_write_1h_tokens), sum(cost_nanos), "
                "sum(unpriced)")
_RAW_SUMS = ("count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
             "sum(cache_write_5m_tokens + cache_write_1h_tokens), sum(cost_nanos), "
             "sum(1 - priced)")
# source -> (table, time column, milliseconds per unit, sums)
_SOURCES = {
    "daily": ("usage_daily", "day", DAY_MS, _ROLLUP_SUMS),
    "hourly": ("usage_hourly", "hour", HOUR_MS, _ROLLUP_SUMS),
    "raw": ("usage", "at_ms", 1, _RAW_SUMS),
}


def zone(name: str | None):
    if not name or name.upper() == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("Europe"), too long
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from None


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _local_midnight(day: date, tz) -> int:
    return _to_ms(datetime(day.year, day.month, day.day, tzinfo=tz))


def _start_of(kind: str, day: date) -> date:
    if kind == "week":
        return day - timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    return day


def _next(kind: str, day: date) -> date:
    if kind == "day":
        return day + timedelta(days=1)
    if kind == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass
class Window:
    """[since_ms, until_ms) in UTC milliseconds; None is open-ended."""

    since_ms: int | None
    until_ms: int | None
    tz: object

    def as_json(self) -> dict:
        return {"since": iso_ms(self.since_ms), "until": iso_ms(self.until_ms)}


def window(period: str | None = None, since: str | None = None, until: str | None = None,
           tz_name: str | None = None, now_ms: int | None = None) -> Window:
    """The report's range. --since/--until replace the period's bounds; with either of
    them and no --period, the other bound is open. The default period is the month."""
    tz = zone(tz_name)
    if period is None:
        period = "all" if (since or until) else "month"
    if period not in PERIODS:
        raise InvalidInput(f"unknown period {period!r}: use day, week, month or all")
    start = None
    if period != "all":
        now = datetime.fromtimestamp((now_ms if now_ms is not None else _to_ms(datetime.now(timezone.utc))) / 1000, tz)
        start = _local_midnight(_start_of(period, now.date()), tz)
    since_ms = parse_time(since, tz=tz) if since else start
    until_ms = parse_time(until, end=True, tz=tz) if until else None
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise InvalidInput("--since is after --until")
    # Every stored time is in [1970, 10000): bounds beyond that only mean "open".
    if since_ms is not None and since_ms <= 0:
        since_ms = None
    if until_ms is not None and until_ms >= LAST_MS:
        until_ms = None
    return Window(since_ms, until_ms, tz)


def _ceil(ms, unit):
    return None if ms is None else -(-ms // unit) * unit


def _floor(ms, unit):
    return None if ms is None else ms // unit * unit


def _pieces(a: int | None, b: int | None) -> list[tuple[str, int | None, int | None]]:
    """Cover [a, b) with whole UTC days, whole hours, and raw time at the edges."""
    out = []
    ha, hb = _ceil(a, HOUR_MS), _floor(b, HOUR_MS)
    if ha is not None and hb is not None and ha >= hb:
        return [("raw", a, b)]
    if a is not None and a < ha:
        out.append(("raw", a, ha))
    if b is not None and hb < b:
        out.append(("raw", hb, b))
    da, db = _ceil(ha, DAY_MS), _floor(hb, DAY_MS)
    if da is not None and db is not None and da >= db:
        out.append(("hourly", ha, hb))
        return out
    if ha is not None and ha < da:
        out.append(("hourly", ha, da))
    if hb is not None and db < hb:
        out.append(("hourly", db, hb))
    out.append(("daily", da, db))
    return out


def _merge(ranges):
    """Join touching [lo, hi) ranges (None: open-ended) so each source is read in few queries."""
    neg, pos = float("-inf"), float("inf")
    spans = sorted((neg if lo is None else lo, pos if hi is None else hi) for lo, hi in ranges)
    out = []
    for lo, hi in spans:
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(None if lo == neg else lo, None if hi == pos else hi) for lo, hi in out]


class Report:
    """One query over the store: a window, optional filters, optional grouping."""

    def __init__(self, conn, win: Window, *, project_id=None, key_id=None):
        self.conn, self.win = conn, win
        self.project_id, self.key_id = project_id, key_id
        self.filters = []
        self.params = []
        if project_id is not None:
            self.filters.append("project_id = ?")
            self.params.append(project_id)
        if key_id is not None:
            self.filters.append("key_id = ?")
            self.params.append(key_id)

    def _read(self, source: str, lo, hi, by_time: bool, group: str | None):
        """Yield (time in ms or None, group value or None, counters) from one source."""
        table, column, unit, sums = _SOURCES[source]
        if source == "daily":
            table = self._daily_table(group)
        where = list(self.filters)
        params = list(self.params)
        if lo is not None:
            where.append(f"{column} >= ?")
            params.append(lo // unit)
        if hi is not None:
            where.append(f"{column} < ?")
            params.append(hi // unit)
        keys = ([column] if by_time else []) + ([group] if group else [])
        sql = f"SELECT {', '.join(keys + [sums])} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if keys:
            sql += " GROUP BY " + ", ".join(keys)
        for row in self.conn.execute(sql, params):
            t = row[0] * unit if by_time else None
            g = (row[1 if by_time else 0] or None) if group else None  # '' (no key/model) -> None
            counters = row[len(keys):]
            if counters[0]:
                yield t, g, counters

    def _daily_table(self, group: str | None) -> str:
        """Per project and model (small at any volume) unless the report is about keys."""
        return "usage_daily" if self.key_id is not None or group == "key_id" else "usage_project_daily"

    def totals(self, group: str | None = None) -> dict:
        """Counters over the whole window, per group value (None when not grouped)."""
        out: dict = {}
        for source, lo, hi in _pieces(self.win.since_ms, self.win.until_ms):
            for _, g, counters in self._read(source, lo, hi, False, group):
                _add(out, g, counters)
        return out

    def series(self, kind: str) -> list[tuple[str, tuple]]:
        """(label, counters) per day, week or month in the window's time zone, from the
        first to the last period with usage (empty periods between them included)."""
        since, until = self.win.since_ms, self.win.until_ms
        first, last = self._span()
        if first is None:
            return []
        lo = since if since is not None else first
        hi = until if until is not None else last + 1
        if lo >= hi:
            return []
        tz = self.win.tz
        day = _start_of(kind, datetime.fromtimestamp(lo / 1000, tz).date())
        starts, labels = [], []
        while True:
            start = _local_midnight(day, tz)
            if start >= hi:
                break
            starts.append(start)
            labels.append(day.isoformat()[:7] if kind == "month" else day.isoformat())
            day = _next(kind, day)
        bounds = [max(s, lo) for s in starts] + [hi]
        by_source: dict = {}
        for a, b in zip(bounds, bounds[1:]):
            for source, p_lo, p_hi in _pieces(a, b):
                by_source.setdefault(source, []).append((p_lo, p_hi))
        sums: dict = {}
        for source, ranges in by_source.items():
            for r_lo, r_hi in _merge(ranges):
                for t, _, counters in self._read(source, r_lo, r_hi, True, None):
                    _add(sums, bisect.bisect_right(starts, t) - 1, counters)
        filled = [i for i in sums if i >= 0]
        if not filled:
            return []
        zero = (0,) * len(COUNTERS)
        return [(labels[i], sums.get(i, zero)) for i in range(min(filled), max(filled) + 1)]

    def _span(self) -> tuple[int | None, int | None]:
        """The first and last UTC day with usage (as ms), within the filters. Two queries:
        SQLite answers a lone min() or max() from the index, but not both at once."""
        table = self._daily_table(None)
        where = (" WHERE " + " AND ".join(self.filters)) if self.filters else ""
        first = self.conn.execute(f"SELECT min(day) FROM {table}{where}", self.params).fetchone()[0]
        if first is None:
            return None, None
        last = self.conn.execute(f"SELECT max(day) FROM {table}{where}", self.params).fetchone()[0]
        return first * DAY_MS, (last + 1) * DAY_MS - 1


def _add(acc: dict, key, counters) -> None:
    current = acc.get(key)
    acc[key] = tuple(counters) if current is None else tuple(x + (y or 0) for x, y in zip(current, counters))


def row(counters) -> dict:
    """Counters as a report row: tokens, total tokens and cost in USD."""
    requests, inp, out, read, write, cost, unpriced = (c or 0 for c in counters)
    return {
        "requests": requests,
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "total_tokens": inp + out + read + write,
        "cost_usd": cost / NANOS_PER_USD,
        "unpriced_requests": unpriced,
    }


EMPTY = (0,) * len(COUNTERS)
