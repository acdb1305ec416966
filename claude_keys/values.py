"""Parsing of command-line values: durations, times, money and counts.

Shared by the CLI (wrapped as click parameter types) and the Python API. Every parser
raises InvalidInput with a message fit for one line on stderr. Kept free of heavy
imports: `keys verify --cost` parses money on the hot path.
"""
from __future__ import annotations

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


class LazyPattern:
    """re.compile(pattern), done at its first use, with its flags written inline
    (`(?a)`, `(?i)`). The package's patterns, compiled at import, cost `usage
    statusline` ~3 ms, mostly for calls it never makes; and `re` itself (with `enum`)
    ~6 ms of a process's start, which a status line that matches nothing does not load.
    After the first use the pattern's methods are this object's own attributes: a call
    costs what it costs on the compiled pattern."""

    def __init__(self, pattern: str):
        self._source = pattern

    def __getattr__(self, name: str):
        import re

        compiled = re.compile(self._source)
        for method in ("match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer"):
            setattr(self, method, getattr(compiled, method))
        self.pattern, self.flags = compiled.pattern, compiled.flags
        return getattr(compiled, name)


class _JsonDefaults:
    """What the json module's C scanner asks of its decoder: json.loads' defaults."""
    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_json_scan = None
_JSON_SPACE = " \t\n\r"
# What the scanner raises where there is no valid JSON value: StopIteration, a ValueError
# (json's JSONDecodeError), or SystemError while json.decoder is not loaded (Python 3.10
# and 3.11: the C scanner takes JSONDecodeError from sys.modules, and finding it missing
# raises nothing; later versions import json.decoder, and with it `re`, to raise it).
JSON_ERRORS = (StopIteration, ValueError, SystemError)


def json_scanner():
    """The json module's C scanner with json.loads' defaults, made without loading the
    json package (which loads `re` and `enum`: ~8 ms of a process's start, more than
    `usage statusline` can spare); the package's own scanner where that C module is
    missing. Called as scan(text, index) -> (value, end); one of JSON_ERRORS when
    there is no valid JSON value at `index`."""
    global _json_scan
    if _json_scan is None:
        try:
            from _json import make_scanner
        except ImportError:
            from json import JSONDecoder, scanner

            _json_scan = scanner.make_scanner(JSONDecoder())
        else:
            _json_scan = make_scanner(_JsonDefaults)
    return _json_scan


def json_value(text: str):
    """json.loads(text), without the json package when `text` is valid JSON (see
    json_scanner). Anything else is parsed again by json.loads, so that its error (a
    ValueError) is json's own."""
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        value, end = json_scanner()(text, start)
    except JSON_ERRORS:
        pass
    else:
        if end == len(text) or not text[end:].strip(_JSON_SPACE):
            return value
    import json

    return json.loads(text)


# (?a), ASCII: without it \d is any script's digit ('١٠٠', '１２', '𝟗'), and int() reads them all.
_DURATION_RE = LazyPattern(r"(?a)(\d{1,12})([smhdw])")
_MONEY_RE = LazyPattern(r"(?a)\$?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,3}))?")
_COUNT_RE = LazyPattern(r"(?a)\d{1,16}")


def now_s() -> int:
    return int(time.time())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_random_bits = None


def new_request_id(prefix: str) -> str:
    """Time-ordered (nanoseconds, then 32 random bits): new rows land together at the
    end of the usage table's b-tree instead of on random pages. The bits need to be
    unique, not secret (`random` reseeds in a forked child; it is imported on first use,
    as `keys verify --dry-run` needs none). The prefix says whether the request is in
    flight (inflight.py)."""
    global _random_bits
    if _random_bits is None:
        from random import getrandbits as _random_bits
    return f"{prefix}{time.time_ns():016x}{_random_bits(32):08x}"


def ascii_number(value, what: str) -> str:
    """The text of a number, time or duration, stripped: ASCII only. int(), float(),
    Decimal(), datetime.fromisoformat() and str.strip() all take other scripts' digits,
    signs and spaces ('١٠٠', '１２', '𝟗d', '\u2212', '\u3000'); a number here means one
    a person reads the same in any terminal."""
    text = str(value)
    if not text.isascii():
        raise InvalidInput(f"{what} must be written with the ASCII digits 0-9, not {shown(text)}")
    return text.strip()


def parse_duration(text: str) -> int:
    """'90s', '12h', '30d', '2w' -> seconds. '0s' is zero (now)."""
    m = _DURATION_RE.fullmatch(ascii_number(text, "the duration"))
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
    Floats are read through their shortest repr, so 0.1 is exactly $0.10. Works on the
    digits as text, so no input (5,000 digits, 1e999) ever builds a huge integer.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"{value!r} is not an amount in USD")
    if isinstance(value, int):
        if value < 0:
            raise InvalidInput(f"{shown(value)} is not an amount in USD: use a non-negative number")
        if value > MAX_USD:
            raise InvalidInput(f"{shown(value)} is too large: at most ${MAX_USD:,}")
        return value * NANOS_PER_USD
    text = repr(value) if isinstance(value, float) else ascii_number(value, "the amount")
    whole, _, frac = text.partition(".")
    if text.isascii() and (whole + frac).isdigit() and "." not in frac:
        exponent = 0  # digits with a point at most (every price in the table): no pattern needed
    else:
        m = _MONEY_RE.fullmatch(text)
        if not m or not (m.group(1) or m.group(2)):
            raise InvalidInput(
                f"{shown(text)} is not an amount in USD: use a non-negative number such as 0.50"
            )
        whole, frac, exponent = m.group(1) or "", m.group(2) or "", int(m.group(3) or 0)
    digits = (whole + frac).lstrip("0")
    # digits[:point] is the whole number of nano-dollars, digits[point:] the rest.
    point = len(whole) + exponent + 9 - (len(whole + frac) - len(digits))
    if not digits:
        return 0
    if point > len(str(MAX_USD * NANOS_PER_USD)):
        raise InvalidInput(f"{shown(text)} is too large: at most ${MAX_USD:,}")
    if point >= 0:
        nanos, rest = int(digits[:point].ljust(point, "0") or "0"), digits[point:]
    else:
        nanos, rest = 0, "0" * -point + digits
    # Round half to even on the digits beyond the nano-dollar.
    if rest and (rest[0] > "5" or (rest[0] == "5" and (rest[1:].strip("0") or nanos % 2))):
        nanos += 1
    if nanos > MAX_USD * NANOS_PER_USD:
        raise InvalidInput(f"{shown(text)} is too large: at most ${MAX_USD:,}")
    return nanos


def parse_cost(value) -> int:
    """The cost of one request: money, at most MAX_REQUEST_USD."""
    nanos = parse_money(value)
    if nanos > MAX_REQUEST_NANOS:
        raise InvalidInput(f"a cost of {usd_text(nanos)} is not one request's: at most "
                           f"${MAX_REQUEST_USD:,} a request")
    return nanos


def shown(value) -> str:
    """A caller's value as an error message quotes it: bounded, so a 5,000-digit input or
    a 200,000-character text stays one short line (and an int too large for str() has
    a message at all)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return "a number that large"
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "…")


class Usd(float):
    """An amount in USD made from exact nano-dollars: a float to the code that computes
    with it (the Python API returns these wherever it returns dollars), and exact where it
    is written out: `.nanos`, and `.literal`, the decimal text JSON and CSV carry
    (render.json_text), since a float has only 15-17 significant digits
    (100000000.000000001 would print as 100000000.0)."""

    __slots__ = ("nanos",)

    def __new__(cls, nanos: int):
        nanos = int(nanos)  # PostgreSQL's sums arrive as Decimal
        self = super().__new__(cls, nanos / NANOS_PER_USD)
        self.nanos = nanos
        return self

    @property
    def literal(self) -> str:
        """'100000000.000000001', '0.5', '3.0': never an exponent, never rounded."""
        sign = "-" if self.nanos < 0 else ""
        whole, frac = divmod(abs(self.nanos), NANOS_PER_USD)
        return f"{sign}{whole}.{f'{frac:09d}'.rstrip('0') or '0'}"

    def __repr__(self) -> str:
        return self.literal

    __str__ = __repr__

    def __reduce__(self):  # pickle and copy by the exact amount
        return Usd, (self.nanos,)


def in_usd(nanos: int | None) -> Usd | None:
    """Nano-dollars as the dollars JSON shows (None, no limit, stays None)."""
    return None if nanos is None else Usd(nanos)


def usd_text(nanos: int | None, places: int = 2) -> str:
    """Money in a sentence: dollars and cents, rounded half up ($19.4725527 -> $19.47);
    an amount below a cent keeps two significant digits ($0.0042), so it never reads
    as $0.00. `places` > 2 shows that many digits (trailing zeros after the cents
    dropped), for usd_pair. JSON and CSV never come through here: they carry exact
    amounts (Usd.literal)."""
    if nanos is None:
        return "unlimited"
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    if places <= 2 and 0 < nanos < 10_000_000:
        sub_cent = min(9, 11 - len(str(nanos)))  # up to the second significant digit
        step = 10 ** (9 - sub_cent)
        rounded = (nanos + step // 2) // step
        if rounded * step < 10_000_000:  # else it rounds up to a whole cent
            return f"{sign}$0.{rounded:0{sub_cent}d}".rstrip("0")
    places = max(2, min(9, places))
    step = 10 ** (9 - places)
    whole, frac = divmod((nanos + step // 2) // step, 10 ** places)
    return f"{sign}${whole:,}.{f'{frac:0{places}d}'.rstrip('0').ljust(2, '0')}"


def usd_pair(a: int | None, b: int | None) -> tuple[str, str]:
    """Two amounts a sentence compares ("$19.47 of $10.00 spent", "cost $1.20, over the
    maximum of $1.00"), in cents unless rounding would make two different amounts read
    the same: then as many more digits as tell them apart ($10.004 of $10.00), so a
    spend above a budget never reads as equal to it. Rounding is monotonic, so the
    order always reads right."""
    for places in range(2, 10):
        shown = usd_text(a, places), usd_text(b, places)
        if a == b or a is None or b is None or shown[0] != shown[1]:
            return shown
    return shown


def usd_exact(nanos: int) -> str:
    """Every digit ($2.7955665): for what is stored as text, such as audit details."""
    whole, frac = divmod(nanos, NANOS_PER_USD)
    return f"${whole:,}.{f'{frac:09d}'.rstrip('0').ljust(2, '0')}"


def counted(n: int, word: str, plural: str | None = None) -> str:
    """"1 request", "40 requests", "2 files not read" (`plural` where +s is wrong)."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def parse_count(value, what: str = "value") -> int:
    """A non-negative integer (tokens, requests per minute)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a non-negative whole number, not {value!r}")
    if isinstance(value, int):
        n = value
    else:
        text = ascii_number(value, what)
        if not _COUNT_RE.fullmatch(text):
            raise InvalidInput(f"{what} must be a non-negative whole number, not {text!r}")
        n = int(text)
    if n < 0:
        raise InvalidInput(f"{what} must be a non-negative whole number, not {n}")
    if n > MAX_COUNT:
        raise InvalidInput(f"{what} is too large: at most {MAX_COUNT:,}")
    return n


_ISO_DATE_RE = LazyPattern(r"(?a)\d{4}-\d{2}-\d{2}")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def time_ms(text) -> int | None:
    """An ISO-8601 datetime -> epoch milliseconds, or None when it is not one. Without a
    zone it is UTC. Exact (no float), and cheap enough for the imports' hot loop."""
    if type(text) is not str or len(text) < 10 or not text.isascii():  # fromisoformat reads '٢٠٢٦'
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
    raw = ascii_number(text, "the time")
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


# What no text the store keeps may hold: C0 and C1 control characters (escape sequences
# drive terminals; U+009B is a one-character CSI), line and paragraph separators,
# bidirectional overrides, isolates and marks (U+202E shows "exe.txt" as "txt.exe"), and
# lone surrogates (invalid UTF-8 on a command line or in a file arrives as these).
UNSAFE_TEXT = LazyPattern("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                          "\u2066-\u2069\ud800-\udfff]")


def scrubbed(text: str, *, escape: bool = True) -> str:
    """`text` without what UNSAFE_TEXT matches: each such character escaped as repr()
    shows it (`\\x1b`), or with escape=False removed. Printable text, nearly all of it,
    comes back as it is without the pattern being compiled (~1 ms): str.isprintable() is
    False for every character the pattern matches."""
    if text.isprintable():
        return text
    return UNSAFE_TEXT.sub((lambda m: repr(m.group())[1:-1]) if escape else "", text)


def check_text(value: str, what: str, *, max_len: int = 256, allow_empty: bool = False) -> str:
    """The one gate for text a person or a program hands us (project ids, names, reasons,
    models, request ids, tools; from the command line, the Python API or a file): str,
    valid UTF-8, no control, separator or bidirectional-control characters, at most
    `max_len` characters. Kept exactly as given."""
    if type(value) is not str:
        if not isinstance(value, str):
            raise InvalidInput(f"{what} must be text, not {type(value).__name__}")
        value = str.__str__(value)  # a str subclass: keep its text, not its behaviour
    if not value and not allow_empty:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{what} is too long: at most {max_len:,} characters")
    bad = None if value.isprintable() else UNSAFE_TEXT.search(value)  # (see scrubbed)
    if bad:
        ch = bad.group()
        if "\ud800" <= ch <= "\udfff":
            raise InvalidInput(f"{what} must be valid UTF-8 text")
        kind = ("bidirectional control characters" if ch in _BIDI else
                "line separators" if ch in "\u2028\u2029" else "control characters")
        raise InvalidInput(f"{what} must not contain {kind} (U+{ord(ch):04X})")
    return value


_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_flag(value, what: str) -> bool:
    """A yes/no argument of the Python API: True or False, nothing that merely looks like one."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be True or False, not {type(value).__name__}")
    return value


def parse_seconds(value, what: str = "the duration") -> int:
    """A duration from the Python API: whole seconds (int, or a finite float), a
    datetime.timedelta, or text such as "30d". Non-negative, at most 100 years."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{what} must be seconds or a duration such as 30d, not {type(value).__name__}")
    if not 0 <= value <= MAX_DURATION_S:  # also refuses nan
        raise InvalidInput(f"{what} must be between 0 seconds and 100 years")
    return int(value)


def moment_ms(at) -> int | None:
    """A time from the Python API as epoch ms: None (now), a datetime (naive = UTC),
    epoch seconds (int or finite float), or ISO text. Between 1970 and 9999."""
    if at is None:
        return None
    if isinstance(at, datetime):
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        try:
            ms = (at - _EPOCH) // _MS
        except (OverflowError, ValueError, TypeError):  # a tzinfo out of range or broken
            ms = -1
    elif isinstance(at, (int, float)) and not isinstance(at, bool):
        ms = int(at * 1000) if -1 < at < LAST_MS / 1000 else -1  # refuses nan and inf too
    elif isinstance(at, str):
        ms = parse_time(at)
    else:
        raise InvalidInput(f"cannot read a time from {type(at).__name__}: give a datetime, "
                           "epoch seconds or ISO-8601 text")
    if not 0 <= ms < LAST_MS:
        raise InvalidInput("the time must be between 1970 and 9999")
    return ms
