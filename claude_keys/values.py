"""Parsing of command-line values: durations, times, money and counts.

Shared by the CLI (wrapped as click parameter types) and the Python API. Every parser
raises InvalidInput with a message fit for one line on stderr. Kept free of heavy
imports: `keys verify --cost` parses money on the hot path.
"""
from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone  # click loads datetime anyway

from .errors import InvalidInput

NANOS_PER_USD = 1_000_000_000
MAX_USD = 1_000_000_000  # a billion dollars: far above any real limit (budgets, max cost per task)
# What one request may cost: a million times any real one. Stored sums of such costs stay
# exact (64-bit nano-dollars, $9.2 billion) or the record that would pass that is refused.
MAX_REQUEST_USD = 1_000_000
MAX_REQUEST_NANOS = MAX_REQUEST_USD * 1_000_000_000
LAST_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z: every stored time is before it
MAX_COUNT = 10**12  # tokens of one request: a million times any real one, and sums stay in int64
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_S = 100 * 365 * 86400
_DURATION_RE = re.compile(r"(\d{1,12})([smhdw])")
_MONEY_RE = re.compile(r"\$?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,3}))?")


def now_s() -> int:
    return int(time.time())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_duration(text: str) -> int:
    """'90s', '12h', '30d', '2w' -> seconds. '0s' is zero (now)."""
    m = _DURATION_RE.fullmatch(str(text).strip())
    if not m:
        raise InvalidInput(
            f"{text!r} is not a duration: use a whole number and a unit s, m, h, d or w (e.g. 30d)"
        )
    seconds = int(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds > MAX_DURATION_S:
        raise InvalidInput(f"{text!r} is too long: at most 100 years")
    return seconds


def parse_money(value) -> int:
    """USD as str, int, float or Decimal -> integer nano-dollars, exactly.

    Non-negative and finite; more than nine decimals are rounded half-to-even.
    Floats are read through their shortest repr, so 0.1 is exactly $0.10.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"{value!r} is not an amount in USD")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value).strip()
    m = _MONEY_RE.fullmatch(text)
    if not m or not (m.group(1) or m.group(2)):
        raise InvalidInput(
            f"{text!r} is not an amount in USD: use a non-negative number such as 0.50"
        )
    digits = (m.group(1) or "") + (m.group(2) or "")
    scale = len(m.group(2) or "") - int(m.group(3) or 0) - 9  # value = int(digits) / 10**(scale+9)
    n = int(digits or "0")
    if scale <= 0:
        if len(digits.lstrip("0")) - scale > 30:  # absurdly large: refuse before building it
            raise InvalidInput(f"{text!r} is too large: at most ${MAX_USD:,}")
        nanos = n * 10**-scale
    else:
        q, r = divmod(n, 10**scale)
        half = 10**scale // 2
        nanos = q + (1 if r > half or (r == half and q % 2) else 0)
    if nanos > MAX_USD * NANOS_PER_USD:
        raise InvalidInput(f"{text!r} is too large: at most ${MAX_USD:,}")
    return nanos


def parse_cost(value) -> int:
    """The cost of one request: money, at most MAX_REQUEST_USD."""
    nanos = parse_money(value)
    if nanos > MAX_REQUEST_NANOS:
        raise InvalidInput(f"a cost of {usd_text(nanos)} is not one request's: at most "
                           f"${MAX_REQUEST_USD:,} a request")
    return nanos


def usd_text(nanos: int | None, places: int = 2) -> str:
    """Human text: $1.50, or more places when the amount needs them ($0.0042)."""
    if nanos is None:
        return "unlimited"
    whole, frac = divmod(nanos, NANOS_PER_USD)
    frac_text = f"{frac:09d}".rstrip("0")
    if len(frac_text) < places:
        frac_text = frac_text.ljust(places, "0")
    return f"${whole:,}.{frac_text}" if frac_text else f"${whole:,}"


def parse_count(value, what: str = "value") -> int:
    """A non-negative integer (tokens, requests per minute)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a non-negative whole number, not {value!r}")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"\d{1,16}", text):
            raise InvalidInput(f"{what} must be a non-negative whole number, not {text!r}")
        n = int(text)
    if n < 0:
        raise InvalidInput(f"{what} must be a non-negative whole number, not {n}")
    if n > MAX_COUNT:
        raise InvalidInput(f"{what} is too large: at most {MAX_COUNT:,}")
    return n


_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def time_ms(text) -> int | None:
    """An ISO-8601 datetime -> epoch milliseconds, or None when it is not one. Without a
    zone it is UTC. Exact (no float), and cheap enough for the imports' hot loop."""
    if type(text) is not str or len(text) < 10:
        return None
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MS


def parse_time(text: str, *, end: bool = False, tz=None) -> int:
    """ISO-8601 date or datetime, or a duration back from now (`7d`, `12h`) -> epoch
    milliseconds.

    A datetime without a zone is UTC. A bare date is midnight in `tz` (default UTC);
    with end=True a bare date means the end of that day (exclusive), so `--until
    2026-01-31` includes all of the 31st.
    """
    raw = str(text).strip()
    ms = None
    if _DURATION_RE.fullmatch(raw):
        return max(0, now_ms() - parse_duration(raw) * 1000)
    if _ISO_DATE_RE.fullmatch(raw):
        try:
            day = datetime.strptime(raw, "%Y-%m-%d")
            if end and day.date() == date.max:
                return LAST_MS  # the end of 9999-12-31
            if end:
                day += timedelta(days=1)
            ms = (day.replace(tzinfo=tz or timezone.utc) - _EPOCH) // _MS
        except (ValueError, OverflowError):
            pass
    else:
        ms = time_ms(raw)
    if ms is None:
        raise InvalidInput(f"{text!r} is not a time: use an ISO-8601 date (2026-01-31) or "
                           "datetime (2026-01-31T12:00:00Z), or a duration back from now (7d, 12h)")
    return ms


def iso_s(epoch_s: int | None) -> str | None:
    """Epoch seconds -> '2026-01-31T12:00:00Z'."""
    if epoch_s is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def iso_ms(epoch_ms: int | None) -> str | None:
    """Epoch milliseconds -> ISO-8601 UTC; milliseconds shown only when non-zero."""
    if epoch_ms is None:
        return None
    seconds, ms = divmod(epoch_ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{base}.{ms:03d}Z" if ms else base + "Z"


_BAD_TEXT_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_text(value: str, what: str, *, max_len: int = 256, allow_empty: bool = False) -> str:
    """Names and project ids: any printable text, kept exactly as given."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    if not value and not allow_empty:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{what} is too long: at most {max_len} characters")
    if _BAD_TEXT_RE.search(value):
        raise InvalidInput(f"{what} must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # invalid UTF-8 on the command line arrives as surrogates
        raise InvalidInput(f"{what} must be valid UTF-8 text") from None
    return value
