"""Usage reports: totals, and the same counters by period, project, key, model or
session (or two of these at once), and the 5-hour blocks Claude subscriptions count.

Reports read the roll-ups, never every request, so they cost about the same on a store
of ten million requests as on one of a thousand. A time range [since, until) is cut
into pieces: whole UTC days come from a daily roll-up (per project and model; per key
when the report is about keys), whole hours from usage_hourly, and only what is left
inside an hour (a --since/--until at 10:17, or a zone offset like +05:30) from the raw
usage rows. Buckets (days, weeks, months) are calendar periods in the
report's time zone; each piece's rows are summed into the bucket that contains them.
Reports by session read the per-session roll-up (hourly) instead of the daily ones.

Reports by a key's owner or metadata (`owner`, `meta.KEY`) read by key, exactly as
reports about keys do, and then sum each key's rows into its label's group: a request
counts under its key's owner and metadata as they are now (a lineage shares them, so
an old secret's usage goes with its successor's). Usage without a key, or of a key
without that label, is the None group ("(none)" in human tables).
"""
from __future__ import annotations

import bisect
import os
from collections import namedtuple
from datetime import date, datetime, timedelta, timezone

from . import labels as key_labels  # (`labels` below: a series' period labels)
from .errors import InvalidInput
from .db.rollups import combine, exact_sums
from .pricing import canonical_model
from .values import LAST_MS, Usd, iso_ms, parse_time

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
PERIODS = ("day", "week", "month", "all")
SERIES = ("day", "week", "month")
GROUPS = {"project": "project_id", "key": "key_id", "model": "model", "session": "session_id"}
BLOCK_HOURS = 5
COUNTERS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens",
            "cache_write_tokens", "cost_nanos", "unpriced_requests")
# Summed exactly however large (rollups.exact_sums); the two kinds of cache write are
# summed apart and added up in Python (their sum per row could pass 64 bits).
_ROLLUP_SUMS = exact_sums(["requests", "input_tokens", "output_tokens", "cache_read_tokens",
                           "cache_write_5m_tokens", "cache_write_1h_tokens", "cost_nanos", "unpriced"])
_RAW_SUMS = exact_sums(["1", "input_tokens", "output_tokens", "cache_read_tokens",
                        "cache_write_5m_tokens", "cache_write_1h_tokens", "cost_nanos", "1 - priced"])


ENV_TZ = "CLAUDE_API_TZ"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def zone(name: str | None = None):
    """A report's time zone: `name` (an IANA name, `UTC`, or `local`), else
    CLAUDE_API_TZ, else the system's zone (TZ, else /etc/localtime), as people read
    their own days. Budgets have a zone of their own (limits.py), never this one."""
    if not name:
        name = os.environ.get(ENV_TZ, "").strip() or "local"
    if name.lower() == "local":
        return system_zone()
    if name.upper() == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("Europe"), too long
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from None


def system_zone():
    """The system's zone, as the C library finds it: TZ when set (an IANA name, `:Name`,
    or a zone file's path; one that names no zone is UTC, as there), else
    /etc/localtime, else UTC."""
    from zoneinfo import ZoneInfo

    given = os.environ.get("TZ")
    candidate = "/etc/localtime" if given is None else given.strip().removeprefix(":")
    if candidate.upper() in ("", "UTC", "UTC0", "GMT", "GMT0", "Z"):
        return timezone.utc
    try:
        if candidate.startswith("/"):
            with open(candidate, "rb") as f:
                return ZoneInfo.from_file(f, key=_zone_key(candidate))
        return ZoneInfo(candidate)
    except (OSError, ValueError, LookupError):
        return timezone.utc


def _zone_key(path: str) -> str:
    """A zone file's IANA name where its path says it (/usr/share/zoneinfo/Asia/Tokyo)."""
    real = os.path.realpath(path)
    return real.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in real else "localtime"


def week_day(name: str | None) -> int:
    """--week-start: a day's name (or its first three letters) -> 0 (Monday) .. 6."""
    if name is None:
        return 0
    given = name.strip().lower()
    for i, day in enumerate(WEEKDAYS):
        if given in (day, day[:3]):
            return i
    raise InvalidInput(f"unknown week day {name!r}: use monday, tuesday, … sunday")


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _local_midnight(day: date, tz) -> int:
    return _to_ms(datetime(day.year, day.month, day.day, tzinfo=tz))


def _start_of(kind: str, day: date, week_start: int = 0) -> date:
    if kind == "week":
        return day - timedelta(days=(day.weekday() - week_start) % 7)
    if kind == "month":
        return day.replace(day=1)
    return day


def _next(kind: str, day: date) -> date:
    if kind == "day":
        return day + timedelta(days=1)
    if kind == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _back(kind: str, day: date, n: int) -> date:
    """The start of the period n periods before the one starting on `day`."""
    if kind == "day":
        return day - timedelta(days=n)
    if kind == "week":
        return day - timedelta(days=7 * n)
    months = day.year * 12 + day.month - 1 - n
    return date(months // 12, months % 12 + 1, 1)


class Window(namedtuple("Window", "since_ms until_ms tz week_start what",
                             defaults=(0, "in this range"))):
    """[since_ms, until_ms) in UTC milliseconds; None is open-ended. `week_start`: 0 when
    weeks start on Monday … 6 on Sunday; `what`: the window in words ("this month", "in
    the last 3 days"). (A tuple, not a dataclass: `usage statusline` reads reports, and
    dataclasses costs it ms to load.)"""

    __slots__ = ()

    def as_json(self) -> dict:
        return {"since": iso_ms(self.since_ms), "until": iso_ms(self.until_ms)}


_THIS = {"day": "today", "week": "this week", "month": "this month", "all": "at all"}


def window(period: str | None = None, since: str | None = None, until: str | None = None,
           tz_name: str | None = None, now_ms: int | None = None, *, last: int | None = None,
           unit: str | None = None, week_start: int = 0) -> Window:
    """The report's range. --since/--until replace the period's bounds; with either of
    them and no --period, the other bound is open. `last` N: the N days, weeks or
    months (`unit`, default days) up to now, the current one included. The default
    period is the month."""
    tz = zone(tz_name)
    if last is not None:
        if since or period == "all":
            raise InvalidInput("give --last, or --since/--period all, not both")
        period = None  # --period day|week|month gave --last its unit, not a range
    if period is None:
        period = "all" if (since or until or last is not None) else "month"
    if period not in PERIODS:
        raise InvalidInput(f"unknown period {period!r}: use day, week, month or all")
    start = None
    now = datetime.fromtimestamp((now_ms if now_ms is not None else _to_ms(datetime.now(timezone.utc))) / 1000, tz)
    what = _THIS[period] if not (since or until) else "in this range"
    if last is not None:
        unit = unit or "day"
        if unit not in SERIES:
            raise InvalidInput(f"unknown unit {unit!r} for --last: use day, week or month")
        if not 1 <= last <= 100_000:
            raise InvalidInput("--last takes a number of periods from 1 to 100000")
        try:
            first = max(_back(unit, _start_of(unit, now.date(), week_start), last - 1), date(1970, 1, 1))
        except (ValueError, OverflowError):  # before year 1: everything stored
            first = date(1970, 1, 1)
        start = _local_midnight(first, tz)
        what = f"in the last {last:,} {unit}{'s' if last != 1 else ''}"
    elif period != "all":
        start = _local_midnight(_start_of(period, now.date(), week_start), tz)
    since_ms = parse_time(since, tz=tz) if since else start
    until_ms = parse_time(until, end=True, tz=tz) if until else None
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise InvalidInput("--since is after --until")
    # Every stored time is in [1970, 10000): bounds beyond that only mean "open".
    if since_ms is not None and since_ms <= 0:
        since_ms = None
    if until_ms is not None and until_ms >= LAST_MS:
        until_ms = None
    return Window(since_ms, until_ms, tz, week_start, what)


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

    def __init__(self, conn, win: Window, *, project_id=None, key_id=None, session_id=None):
        self.conn, self.win = conn, win
        self.project_id, self.key_id, self.session_id = project_id, key_id, session_id
        self.filters = []
        self.params = []
        for column, value in (("project_id", project_id), ("key_id", key_id), ("session_id", session_id)):
            if value is not None:
                self.filters.append(f"{column} = ?")
                self.params.append(value)

    def _source(self, source: str, groups: tuple) -> tuple:
        """(table, time column, milliseconds per unit, sums) for a piece of the window."""
        if source == "raw":
            return "usage", "at_ms", 1, _RAW_SUMS
        if "session_id" in groups or self.session_id is not None:  # only this roll-up knows sessions
            return "usage_sessions", "hour", HOUR_MS, _ROLLUP_SUMS
        if source == "hourly":
            return "usage_hourly", "hour", HOUR_MS, _ROLLUP_SUMS
        # Per project and model (small at any volume) unless the report is about keys.
        daily = "usage_daily" if self.key_id is not None or "key_id" in groups else "usage_project_daily"
        return daily, "day", DAY_MS, _ROLLUP_SUMS

    def _read(self, source: str, lo, hi, by_time: bool, groups: tuple = ()):
        """Yield (time in ms or None, group values, counters) from one source."""
        table, column, unit, sums = self._source(source, groups)
        where = list(self.filters)
        params = list(self.params)
        if table == "usage" and "session_id" in groups:
            where.append("session_id IS NOT NULL")  # as in the session roll-up
        if lo is not None:
            where.append(f"{column} >= ?")
            params.append(lo // unit)
        if hi is not None:
            where.append(f"{column} < ?")
            params.append(hi // unit)
        keys = ([column] if by_time else []) + list(groups)
        sql = f"SELECT {', '.join(keys + [sums])} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if keys:
            sql += " GROUP BY " + ", ".join(keys)
        skip = 1 if by_time else 0
        model = groups.index("model") if "model" in groups else None
        for row in self.conn.execute(sql, params):
            t = row[0] * unit if by_time else None
            g = tuple(v or None for v in row[skip:skip + len(groups)])  # '' (no key/model) -> None
            if model is not None and g[model] is not None:
                # One row per model: dated ids, aliases, Bedrock/Vertex spellings merge
                # (the roll-ups keep the name as logged; the sums are added exactly).
                g = g[:model] + (canonical_model(g[model]),) + g[model + 1:]
            requests, inp, out, read, write_5m, write_1h, cost, unpriced = combine(row[len(keys):])
            if requests:
                yield t, g, (requests, inp, out, read, write_5m + write_1h, cost, unpriced)

    def totals(self, *groups: str) -> dict:
        """Counters over the whole window, per tuple of group values (() when not grouped).
        A group may be a label level (`owner`, `meta.KEY`; see the module docstring)."""
        read, regroup = self._labelled(groups)
        out: dict = {}
        for source, lo, hi in _pieces(self.win.since_ms, self.win.until_ms):
            for _, g, counters in self._read(source, lo, hi, False, read):
                _add(out, regroup(g), counters)
        return out

    def _labelled(self, groups: tuple) -> tuple:
        """(the groups to read, a function from their values to the asked groups' values):
        a label level is read as the key, then looked up in the key's owner and metadata."""
        if not any(key_labels.is_level(g) for g in groups):
            return groups, lambda g: g
        read = tuple(dict.fromkeys("key_id" if key_labels.is_level(g) else g for g in groups))
        by_key = {key_id: (owner, key_labels.decode(meta)) for key_id, owner, meta
                  in self.conn.execute("SELECT id, owner, metadata FROM keys")}
        nobody = (None, {})

        def regroup(g):
            values = dict(zip(read, g))
            owner, meta = by_key.get(values["key_id"], nobody)
            return tuple(key_labels.value_of(level, owner, meta) if key_labels.is_level(level) else values[level]
                         for level in groups)

        return read, regroup

    def series(self, kind: str, *groups: str) -> list[tuple[str, tuple, tuple]]:
        """(label, group values, counters) per day, week or month in the window's time
        zone (and per group value), from the first to the last period with usage. Without
        groups, the empty periods between them are included."""
        groups, regroup = self._labelled(groups)
        since, until = self.win.since_ms, self.win.until_ms
        first, last = self._span(groups)
        if first is None:
            return []
        lo = since if since is not None else first
        hi = until if until is not None else last + 1
        if lo >= hi:
            return []
        tz = self.win.tz
        day = _start_of(kind, datetime.fromtimestamp(lo / 1000, tz).date(), self.win.week_start)
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
                for t, g, counters in self._read(source, r_lo, r_hi, True, groups):
                    _add(sums, (bisect.bisect_right(starts, t) - 1, regroup(g)), counters)
        filled = sorted(i for i, _ in sums if i >= 0)
        if not filled:
            return []
        if groups:
            return [(labels[i], g, c) for (i, g), c in sorted(sums.items(), key=_by_period) if i >= 0]
        zero = (0,) * len(COUNTERS)
        return [(labels[i], (), sums.get((i, ()), zero)) for i in range(filled[0], filled[-1] + 1)]

    def _span(self, groups: tuple = ()) -> tuple[int | None, int | None]:
        """The first and last UTC day (hour, for sessions) with usage, as ms, within the
        filters. Two queries: SQLite answers a lone min() or max() from the index, but
        not both at once."""
        table, column, unit, _ = self._source("daily", groups)
        where = (" WHERE " + " AND ".join(self.filters)) if self.filters else ""
        first = self.conn.execute(f"SELECT min({column}) FROM {table}{where}", self.params).fetchone()[0]
        if first is None:
            return None, None
        last = self.conn.execute(f"SELECT max({column}) FROM {table}{where}", self.params).fetchone()[0]
        return first * unit, (last + 1) * unit - 1

    def stored(self) -> tuple[int, int | None, int | None]:
        """What the filters hold in all time, whatever the window: (requests, first ms,
        last ms), to say so when the window is empty. One query on the daily roll-up
        (days x projects x models: small at any volume), then the first and last hour
        found within those two days' rows of the hourly one (index seeks), so the dates
        are right in any zone."""
        table, column, unit, _ = self._source("daily", ())
        where = (" WHERE " + " AND ".join(self.filters)) if self.filters else ""
        row = self.conn.execute(f"SELECT min({column}), max({column}), {exact_sums(['requests'])} "
                                f"FROM {table}{where}", self.params).fetchone()
        (requests,) = combine(row[2:])
        if not requests:
            return 0, None, None
        first, last = row[0] * unit, (row[1] + 1) * unit
        if unit == DAY_MS:
            hourly = self._source("hourly", ())[0]
            more = "".join(f" AND {f}" for f in self.filters)
            edge = f"FROM {hourly} WHERE hour >= ? AND hour < ?{more}"
            lo = self.conn.execute(f"SELECT min(hour) {edge}", [first // HOUR_MS, first // HOUR_MS + 24,
                                                                 *self.params]).fetchone()[0]
            hi = self.conn.execute(f"SELECT max(hour) {edge}", [last // HOUR_MS - 24, last // HOUR_MS,
                                                                *self.params]).fetchone()[0]
            first = first if lo is None else lo * HOUR_MS
            last = last if hi is None else (hi + 1) * HOUR_MS
        return requests, first, last - 1

    def blocks(self, now_ms: int | None = None) -> list[dict]:
        """The 5-hour blocks Claude subscriptions count usage in, that start in the
        window: a block starts at the hour of its first request and lasts 5 hours; the
        first request after it starts the next. Blocks chain back to the last idle day,
        so a block is the same whatever window shows it. The active block (now inside
        it) has its burn rate (from its first to its last request) and a projection to
        its end. Read from the hourly roll-up; only the active block reads requests."""
        now = now_ms if now_ms is not None else _to_ms(datetime.now(timezone.utc))
        since, until = self.win.since_ms, self.win.until_ms
        chain = self._chain_start(since)
        if chain is None:
            return []
        hi = _ceil(until, HOUR_MS)
        starts, end = [], None
        for hour in self._active_hours(chain, hi):
            if end is None or hour >= end:  # the first request after a block starts the next
                starts.append(hour)
                end = hour + BLOCK_HOURS * HOUR_MS
        starts = [t for t in starts if (since is None or t >= since) and (until is None or t < until)]
        if not starts:
            return []
        # Only the blocks shown are summed: a cost set by the window, not by the history.
        hours: dict = {}
        for t, _, counters in self._read("hourly", starts[0], hi, True):
            _add(hours, t, counters)
        shown = []
        for start in starts:
            counters = EMPTY
            for t in range(start, start + BLOCK_HOURS * HOUR_MS, HOUR_MS):
                counters = tuple(x + (y or 0) for x, y in zip(counters, hours.get(t, EMPTY)))
            shown.append({"start_ms": start, "end_ms": start + BLOCK_HOURS * HOUR_MS, "counters": counters})
        for block in shown:
            block["active"] = block["start_ms"] <= now < block["end_ms"]
            if block["active"]:
                self._burn(block, now)
        return shown

    def _active_hours(self, lo: int, hi: int | None) -> list[int]:
        """The UTC hours (in ms) with usage in [lo, hi), within the filters: a loose index
        scan, one seek in the hourly roll-up's index per such hour, so the cost follows
        the hours, not the requests in them."""
        where = "".join(f" AND {f}" for f in self.filters)
        last = (hi if hi is not None else LAST_MS) // HOUR_MS
        table = self._source("hourly", ())[0]
        sql = (f"WITH RECURSIVE h(hour) AS (SELECT min(hour) FROM {table} WHERE hour >= ?{where} "
               f"UNION ALL SELECT (SELECT min(hour) FROM {table} WHERE hour > h.hour{where}) FROM h "
               f"WHERE h.hour < ?) SELECT hour FROM h WHERE hour < ?")
        params = [lo // HOUR_MS, *self.params, *self.params, last, last]
        return [hour * HOUR_MS for (hour,) in self.conn.execute(sql, params) if hour is not None]

    def _chain_start(self, since) -> int | None:
        """Where block chains begin for a window from `since`: the day after the last
        day before it without usage (a day's gap ends every chain), else the first day."""
        table, column, _, _ = self._source("daily", ())
        day_of = "day" if column == "day" else "hour / 24"
        where = "".join(f" AND {f}" for f in self.filters)
        first, _ = self._span()
        if first is None or since is None or since <= first:
            return first
        expected = since // DAY_MS - 1
        for (day,) in self.conn.execute(f"SELECT DISTINCT {day_of} FROM {table} WHERE {day_of} <= ?{where} "
                                        "ORDER BY 1 DESC", [expected] + self.params):
            if day != expected:
                break
            expected -= 1
        return (expected + 1) * DAY_MS

    def _burn(self, block: dict, now: int) -> None:
        """The active block's rate, from its first request to its last, and where that
        rate takes it by the block's end."""
        where = "".join(f" AND {f}" for f in self.filters)
        params = [block["start_ms"], block["end_ms"]] + self.params
        first, last = (self.conn.execute(f"SELECT {fn}(at_ms) FROM usage WHERE at_ms >= ? AND "
                                         f"at_ms < ?{where}", params).fetchone()[0]
                       for fn in ("min", "max"))
        block["first_ms"], block["last_ms"] = first, last
        if first is None or last is None or last <= first:
            return
        requests, inp, out, read, write, cost, _ = block["counters"]
        minutes = (last - first) / 60_000
        block["tokens_per_minute"] = (inp + out + read + write) / minutes
        block["cost_nanos_per_hour"] = cost / minutes * 60
        remaining = max(0, block["end_ms"] - now) / 60_000
        block["remaining_minutes"] = remaining
        block["projected_tokens"] = round(inp + out + read + write + block["tokens_per_minute"] * remaining)
        block["projected_cost_nanos"] = round(cost + cost / minutes * remaining)


def _by_period(item):
    (i, g), counters = item
    return i, -(counters[5] or 0), [v or "" for v in g]


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
        "cost_usd": Usd(cost),
        "unpriced_requests": unpriced,
    }


EMPTY = (0,) * len(COUNTERS)


def active_block(conn, now_ms: int, *, project_id=None, key_id=None) -> dict | None:
    """The 5-hour block under way at `now_ms` (as Report.blocks gives it, with its burn
    rate and projection), or None. Only the last five hours' blocks are summed."""
    since = now_ms - BLOCK_HOURS * HOUR_MS  # an active block starts after this
    report = Report(conn, Window(since, None, timezone.utc), project_id=project_id, key_id=key_id)
    for block in report.blocks(now_ms):
        if block["active"]:
            return block
    return None
