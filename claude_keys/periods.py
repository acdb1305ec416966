"""Budget periods: the calendar day, week (from Monday) and month around a moment, in
the store's budget time zone (a setting, default UTC; `claude-api db settings budget-tz`).

Pure rules, no store: the boundaries are computed here, with the zone's rules (DST
included), as UTC epoch milliseconds; limits.py sums a period's spend between them.
A day is from one local midnight to the next (23 or 25 hours across a DST change; where
a zone skips midnight, the day starts when its clock jumps). `zoneinfo` is imported only
for a zone other than UTC: the request path of a UTC store stays as light as before.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

from .errors import InvalidInput

UTC = "UTC"
NAMES = ("day", "week", "month")  # the calendar periods, shortest first
ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly", "total": "total"}
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "Universal", "Etc/Universal"}


def check_zone(name) -> str:
    """An IANA time zone name as the operator gives it -> the name (InvalidInput if the
    zone database does not know it)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("the budget time zone must be an IANA name such as Europe/Berlin or UTC")
    name = name.strip()
    if name.upper() == "UTC":
        return UTC
    try:
        zone(name)
    except (InvalidInput, ValueError):
        shown = name if len(name) <= 60 else name[:57] + "…"
        raise InvalidInput(f"unknown time zone {shown!r}: give an IANA name such as Europe/Berlin, "
                           "Asia/Tokyo or UTC") from None
    return name


@lru_cache(maxsize=16)
def zone(name: str) -> dt.tzinfo:
    if name in _UTC_NAMES:
        return dt.timezone.utc
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"unknown time zone {name!r}") from None


class Period:
    """One calendar period: [start_ms, end_ms) in UTC epoch ms, and its zone."""

    __slots__ = ("name", "start_ms", "end_ms", "tz")

    def __init__(self, name: str, start_ms: int, end_ms: int, tz: str):
        self.name, self.start_ms, self.end_ms, self.tz = name, start_ms, end_ms, tz

    @property
    def resets(self) -> str:
        """The end, ISO-8601 with the zone's offset there (`Z` in UTC)."""
        return iso_in_zone(self.end_ms, self.tz)

    def seconds_left(self, now_ms: int) -> int:
        return max(1, -(-(self.end_ms - now_ms) // 1000))

    def __repr__(self):
        return f"Period({self.name}, {iso_in_zone(self.start_ms, self.tz)} .. {self.resets})"


def iso_in_zone(ms: int, tz: str) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, zone(tz))
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") and zone(tz) is dt.timezone.utc else text


_latest: dict = {}  # zone -> the calendar asked for last (the request path asks every time)


def periods(now_ms: int, tz: str = UTC) -> dict:
    """{"day": Period, "week": Period, "month": Period} around `now_ms` in zone `tz`."""
    calendar = _latest.get(tz)
    if calendar is not None and calendar["day"].start_ms <= now_ms < calendar["day"].end_ms:
        return calendar  # (the same local day: [start, end) is exactly its moments)
    local = dt.datetime.fromtimestamp(now_ms // 1000, zone(tz)).date()
    calendar = _periods_of(local, tz)
    if len(_latest) < 64 or tz in _latest:
        _latest[tz] = calendar
    return calendar


@lru_cache(maxsize=64)
def _periods_of(local: dt.date, tz: str) -> dict:
    monday = local - dt.timedelta(days=local.weekday())
    first = local.replace(day=1)
    next_first = (first + dt.timedelta(days=32)).replace(day=1)
    spans = {"day": (local, local + dt.timedelta(days=1)),
             "week": (monday, monday + dt.timedelta(days=7)),
             "month": (first, next_first)}
    return {name: Period(name, midnight_ms(a, tz), midnight_ms(b, tz), tz) for name, (a, b) in spans.items()}


def midnight_ms(day: dt.date, tz: str) -> int:
    """When `day` starts in zone `tz`, in UTC epoch ms. A midnight the zone skips (its
    clock jumps past it) is the moment of the jump; a midnight it has twice, the first."""
    z = zone(tz)
    naive = dt.datetime(day.year, day.month, day.day)
    moment = naive.replace(tzinfo=z, fold=0)
    ms = int(moment.timestamp()) * 1000
    back = dt.datetime.fromtimestamp(ms / 1000, z).replace(tzinfo=None)
    if back != naive:  # skipped: fold=0 read it with the offset before the jump, which lands after it
        ms = int(naive.replace(tzinfo=z, fold=1).timestamp()) * 1000
        ms = _first_moment_of(day, tz, ms)
    return ms


def _first_moment_of(day: dt.date, tz: str, near_ms: int) -> int:
    """The first whole minute within a few hours of `near_ms` that falls on `day` locally."""
    z = zone(tz)
    for minute in range(-180, 181):
        ms = near_ms + minute * 60_000
        if dt.datetime.fromtimestamp(ms / 1000, z).date() == day:
            return ms
    return near_ms
