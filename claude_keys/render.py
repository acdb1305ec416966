"""Every listing's output, in one place: table, json, csv, tsv, or a tabulate format.

`table` is a rich table on a terminal and tabulate's plain "simple" layout off one,
so nothing written to a pipe or a file carries colour or box-drawing characters.
rich and tabulate are imported only when a human format is asked for; json, csv and
tsv need neither.
"""
from __future__ import annotations

import json
import sys

from .errors import InvalidInput
from .values import Usd

_encode_str = json.encoder.encode_basestring  # a str as a JSON string, non-ASCII kept

BASIC_FORMATS = ("table", "json", "csv", "tsv")


def tabulate_formats() -> list[str]:
    from tabulate import tabulate_formats as names

    return list(names)


def check_format(name: str) -> str:
    if name in BASIC_FORMATS or name in tabulate_formats():
        return name
    raise InvalidInput(
        f"unknown format {name!r}: use table, json, csv, tsv or a tabulate format "
        "(plain, simple, github, grid, …)"
    )


def write_json(data) -> None:
    sys.stdout.write(json_text(data, indent=2) + "\n")


def json_text(value, indent: int | None = None) -> str:
    """json.dumps(value, indent=indent, ensure_ascii=False), the one way our JSON is
    written, except that money (values.Usd) is its exact literal: json writes any float,
    subclasses too, through float's repr, so $100,000,000.000000001 would read 100000000.0."""
    out: list[str] = []
    _json(value, indent, 0, out)
    return "".join(out)


def _json(value, indent, level, out) -> None:
    if isinstance(value, Usd):
        out.append(value.literal)
    elif isinstance(value, dict) and value:
        inner, end, item_sep = _layout(indent, level)
        out.append("{" + inner)
        for n, (k, v) in enumerate(value.items()):
            if n:
                out.append(item_sep)
            out.append(_scalar(k if isinstance(k, str) else json.dumps(k)) + ": ")  # as json: 1 -> "1"
            _json(v, indent, level + 1, out)
        out.append(end + "}")
    elif isinstance(value, (list, tuple)) and value:
        inner, end, item_sep = _layout(indent, level)
        out.append("[" + inner)
        for n, v in enumerate(value):
            if n:
                out.append(item_sep)
            _json(v, indent, level + 1, out)
        out.append(end + "]")
    else:
        out.append(_scalar(value))


def _layout(indent, level) -> tuple[str, str, str]:
    """What opens a container's items, closes them and separates them (json's own layout)."""
    if indent is None:
        return "", "", ", "
    inner = "\n" + " " * (indent * (level + 1))
    return inner, "\n" + " " * (indent * level), "," + inner


def _scalar(value) -> str:
    if type(value) is str:
        return _encode_str(value)
    return json.dumps(value, ensure_ascii=False)


def _cell(value, column: str, money: frozenset, human: bool):
    if human:
        return human_value(value, money=column in money)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return csv_value(value)


def csv_value(value):
    """A value as a CSV cell: none is empty, money its exact literal (see values.Usd)."""
    if value is None:
        return ""
    if isinstance(value, Usd):
        return value.literal
    return value


def human_value(value, *, money: bool = False):
    """One value as a person reads it: "-" for none, yes/no, lists joined, counts with
    thousands separators, money in dollars and cents. Exact values stay in JSON/CSV."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Shown):
        return value
    if isinstance(value, (list, tuple)):
        return shown_text(", ".join(map(str, value))) if value else "none"
    if isinstance(value, dict):  # e.g. what a `usage delete` took: "request ids: a, b", never a Python dict
        return Shown("; ".join(f"{shown_text(str(k)).replace('_', ' ')}: {human_value(v)}"
                               for k, v in value.items()))
    if money and isinstance(value, (int, float)) or isinstance(value, Usd):
        return usd(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        return shown_text(value)
    return value


class Shown(str):
    """Text already made safe for a terminal, by parts (see shown_text), whose line
    breaks are the layout's own: a cell of several lines, shown as it is."""


def shown_text(text: str) -> str:
    """Text as a terminal may show it: what the text gate refuses (control characters,
    bidirectional controls), escaped, should a store written before the gate hold any."""
    from .values import scrubbed

    return scrubbed(text)


def usd(value: float) -> str:
    """Dollars to the cent ($24.98); an amount below a cent keeps two significant
    digits ($0.0042), so it never reads as $0.00."""
    from .values import usd_text  # one rule for money in tables and in sentences

    return usd_text(value.nanos if isinstance(value, Usd) else round(value * 1_000_000_000))


def table(rows: list[dict], fmt: str, columns: list[str] | None = None, *,
          headers: dict | None = None, money=(), bars: str | None = None,
          empty: str = "nothing to show", total: dict | None = None, optional=(),
          whole=()) -> None:
    """Render a list of rows. Human formats end with the `total` row if one is given,
    show times relative to now ("3 h ago", "in 5 days"; exact in JSON and CSV), and
    right-align numbers. On a terminal, `bars` names a numeric column
    also drawn as a bar, and a table too wide leaves columns out by the one rule of _fit
    (`optional`: columns it does not know, least useful first; `whole` is accepted for
    callers written before that rule, and ignored: ids are always kept whole)."""
    columns = columns or (list(rows[0]) if rows else [])
    if fmt == "json":
        write_json(rows)
        return
    if fmt in ("csv", "tsv"):
        import csv

        out = csv.writer(sys.stdout, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        out.writerow(columns)
        for row in rows:
            out.writerow([_cell(row.get(c), c, frozenset(), human=False) for c in columns])
        return
    if not rows:
        print_message(empty)
        return
    money = frozenset(money)
    titles = [(headers or {}).get(c, c.replace("_", " ")) for c in columns]
    everything = rows + ([total] if total else [])
    body = [[_cell(row.get(c), c, money, human=True) for c in columns] for row in everything]
    body = [[relative_time(cell) if is_time_column(c) else cell for c, cell in zip(columns, row)]
            for row in body]
    numeric = [any(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                   for r in everything) for c in columns]
    if fmt == "table" and sys.stdout.isatty():
        peak = max((r.get(bars) or 0) for r in rows) or 1 if bars else 1
        fractions = [(r.get(bars) or 0) / peak if bars else None for r in rows] + [None] * bool(total)
        _rich_table(columns, titles, body, numeric=numeric, fractions=fractions,
                    optional=optional, total=bool(total))
        return
    from tabulate import tabulate

    # Numbers right-aligned as on a terminal (tabulate would, but only for what it
    # parses as a number: never "$1,234.00" or "1,234").
    sys.stdout.write(
        tabulate(body, titles, tablefmt="simple" if fmt == "table" else fmt, disable_numparse=True,
                 colalign=["right" if n else "left" for n in numeric])
        + "\n"
    )


def record(item: dict, fmt: str, *, money=(), headers: dict | None = None) -> None:
    """Render one object: an object in JSON, one row in csv/tsv, a field/value table otherwise."""
    if fmt in ("json", "csv", "tsv"):
        if fmt == "json":
            write_json(item)
        else:
            table([item], fmt)
        return
    pairs = [((headers or {}).get(k, k.replace("_", " ")), str(_cell(v, k, frozenset(money), True)))
             for k, v in item.items() if not isinstance(v, dict)]
    if fmt == "table" and sys.stdout.isatty():
        _rich_record(pairs)
        return
    from tabulate import tabulate

    sys.stdout.write(tabulate([list(p) for p in pairs], tablefmt="plain" if fmt == "table" else fmt,
                              disable_numparse=True) + "\n")


def console(stderr: bool = False):
    """One factory for rich consoles: rich reads NO_COLOR, width and tty-ness here. Data
    is never markup: no [tags], no :emoji: codes, no highlighting."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, markup=False, emoji=False)


# -- Fitting a table to a terminal: the one rule, by column name ----------------------
#
# Every column is one of three kinds:
# - free text that wraps at its spaces (lists, reasons, an audit's changes), a word
#   broken only if it is longer than LONG_WORD;
# - a free-text name, kept to one line and cut with "…" (the whole name is in --format json);
# - everything else (ids, model names, numbers, money, times, hints, states): never
#   narrower than its widest cell, never broken and never cut.
# When the table is too wide, columns are left out, and a line on stderr says which:
# first a column with nothing to say (every value empty, zero, "none" or "unlimited"),
# then those of DROP_ORDER, least useful first. A column not in DROP_ORDER always stays;
# so does the first column (it names the row) unless it is a row number. When even that
# does not fit, each row is laid out vertically. Other columns slot in by adding their
# names here.
BAR = "\0bar"  # the bar drawn after a series' numbers, as a column of its own
FREE_TEXT = frozenset({"changes", "allowed_tools", "blocked_tools", "allowed_agents", "allowed_skills",
                       "agent", "revoked_reason", "reason", "value", "metadata", "allowed_models",
                       "blocked_models"})
NAMES = frozenset({"name", "actor", "owner"})
DROP_ORDER = (
    # usage: the token details that `total tokens` sums up, then a series' bar
    "cache_write_tokens", "cache_read_tokens", "input_tokens", "output_tokens", BAR,
    # usage blocks: the rates behind the projection
    "projected_total_tokens", "tokens_per_minute", "cost_usd_per_hour",
    # the audit's entry number
    "entry",
    # keys: when made, when last used, the preset
    "metadata", "created_at", "last_used_at", "profile", "owner",
    # projects: the rarer limits, then the key counts (spend and budgets stay longest)
    "blocked_models", "allowed_models", "output_tokens_per_minute", "input_tokens_per_minute",
    "alert_at", "hold", "weekly_budget", "daily_budget", "keys", "retiring_keys", "tokens_per_day", "rate_limit", "max_concurrent", "in_flight",
    "total_budget", "monthly_budget",
    # reports: counts, where the money beside them matters more
    "unpriced_requests", "requests",
    # keys: when a key stops, then its hint
    "expires_at", "hint",
    # labels beside a row's own (a key's name and project in by-key, a session's project)
    "name", "project_id",
    # a report's tokens, last: only its money and its labels matter more
    "total_tokens",
)
ROW_NUMBERS = frozenset({"entry"})
EMPTY_CELLS = frozenset({"", "-", "0", "$0.00", "none", "unlimited", "default (24h)"})
MIN_FREE = 8  # a wrapped column narrower than this reads as a column of fragments
FREE_MIN = {"changes": 24}  # the audit's changes quote times and ids: room for them whole
NAME_ROOM = 8  # a name cut shorter than this says little ("ios-rel…")
LONG_WORD = 30  # free text keeps words up to this long whole
BAR_WIDTH, MIN_BAR = 24, 8


def _column_overhead(n: int) -> int:
    """What our rich tables (SIMPLE_HEAD, no outer edge) add around n columns: a space
    of padding on each side of every cell, and n - 1 separators."""
    return 3 * n - 1


def _width(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in str(text).split("\n")), default=0)


def _short_time(text):
    """2026-01-31T12:00:00Z -> 2026-01-31 12:00 (UTC): a narrow table's times."""
    if isinstance(text, str) and len(text) >= 17 and text[10:11] == "T" and text.endswith("Z"):
        return f"{text[:10]} {text[11:16]}"
    return text


def is_time_column(column: str) -> bool:
    return column == "at" or column.endswith("_at")


def relative_time(text, now: float | None = None):
    """An exact time (ISO-8601 UTC) as people read it in a table: "3 h ago", "in 5 days";
    the date beyond two months. Anything else is returned as it is."""
    import time
    from datetime import datetime

    if not (isinstance(text, str) and len(text) >= 17 and text[10:11] == "T" and text.endswith("Z")):
        return text
    try:
        at = datetime.fromisoformat(text[:-1] + "+00:00").timestamp()
    except ValueError:
        return text
    delta = at - (time.time() if now is None else now)
    ahead, seconds = delta > 0, abs(delta)
    if seconds < 60:
        return "in a moment" if ahead else "just now"
    for unit, size, shown in (("min", 60, 60), ("h", 3600, 48), ("days", 86400, 60)):
        count = round(seconds / size)  # 4 days 23 h reads "in 5 days"
        if count < shown:
            words = f"{count} {'day' if unit == 'days' and count == 1 else unit}"
            return f"in {words}" if ahead else f"{words} ago"
    return text[:10]


def drop_order(columns, body) -> list[int]:
    """Which columns a narrow terminal leaves out, first to last (see DROP_ORDER)."""
    keep_first = columns[0] not in ROW_NUMBERS if columns else False
    empty = [i for i, c in enumerate(columns) if (i or not keep_first) and c != BAR and body
             and all(str(row[i]).strip() in EMPTY_CELLS for row in body)]
    ranked = sorted((i for i, c in enumerate(columns) if c in DROP_ORDER and (i or not keep_first)),
                    key=lambda i: DROP_ORDER.index(columns[i]))
    return empty + [i for i in ranked if i not in empty]


def _fit(columns, titles, body, width, optional=(), bars=False):
    """Choose what a terminal of `width` cells shows. Returns (shown column indexes, body,
    {index: width}), or None when even the columns that always stay do not fit (the
    caller then lays the rows out vertically).

    When the table is too wide: times lose their seconds, free text wraps and names are
    cut (down to their least), then columns go in drop_order() until the rest fit; then
    the most useful of those left out come back while they still fit. (`optional` adds
    columns, least useful first, after DROP_ORDER's.)"""
    keys = list(columns) + ([BAR] if bars else [])
    cells = [list(row) + ([""] if bars else []) for row in body]
    order = drop_order(keys, cells)
    order += [keys.index(c) for c in optional if c in keys and keys.index(c) not in order]
    empty = {i for i in order if keys[i] != BAR and all(str(r[i]).strip() in EMPTY_CELLS for r in cells)}
    times = [i for i, c in enumerate(columns) if is_time_column(c)]

    def fits(shown):
        natural, soft, least, words = _measure(keys, columns, titles, body, shown)
        return sum(least.values()) <= width - _column_overhead(len(shown))

    shown = list(range(len(keys)))
    if times:
        natural, soft, _, _ = _measure(keys, columns, titles, body, shown)
        if sum(soft.values()) > width - _column_overhead(len(shown)):  # seconds matter least: they go first
            body = [[_short_time(c) if i in times else c for i, c in enumerate(row)] for row in body]
    dropped = []
    for i in order:
        if fits(shown):
            break
        shown.remove(i)
        dropped.append(i)
    if not fits(shown):
        return None
    for i in reversed(dropped):  # the most useful first: back in if it fits after all
        if i not in empty and fits(sorted(shown + [i])):
            shown = sorted(shown + [i])
    natural, soft, least, words = _measure(keys, columns, titles, body, shown)
    free = {i: keys[i] in FREE_TEXT or keys[i] in NAMES for i in shown}
    return shown, body, _share(natural, soft, least, words, free, width - _column_overhead(len(shown)))


def _measure(keys, columns, titles, body, shown):
    """For each shown column: its natural width; `soft`, below which a title wraps or a
    word of free text breaks; `least`, the narrowest it may be (a title in two lines;
    free text down to its longest word, names to NAME_ROOM); and its longest word."""
    natural, soft, least, words = {}, {}, {}, {}
    for i in shown:
        if keys[i] == BAR:
            natural[i] = soft[i] = BAR_WIDTH
            least[i] = words[i] = MIN_BAR
            continue
        cells = [row[i] for row in body]
        widest = max([_width(c) for c in cells], default=0)
        natural[i] = soft[i] = max(widest, _width(titles[i]))
        least[i] = max(widest, _two_lines(str(titles[i])))
        words[i] = max([_width(w) for c in cells for w in str(c).split()], default=0)
        title_word = max((_width(w) for w in str(titles[i]).split()), default=0)
        if columns[i] in NAMES:
            least[i] = min(natural[i], max(NAME_ROOM, title_word))
            soft[i] = least[i]
        elif columns[i] in FREE_TEXT:
            least[i] = min(natural[i], max(FREE_MIN.get(columns[i], MIN_FREE), title_word,
                                           min(words[i], LONG_WORD)))
            soft[i] = min(natural[i], max(least[i], words[i]))
    return natural, soft, least, words


def _two_lines(title: str) -> int:
    """The narrowest a title gets wrapped at a space into at most two lines."""
    parts = title.split(" ")
    return min(max(_width(" ".join(parts[:k])), _width(" ".join(parts[k:])))
               for k in range(1, len(parts) + 1))


def _share(natural: dict, soft: dict, least: dict, words: dict, free: dict, room: int) -> dict:
    """Every column's width within `room`: natural if all fit; else narrow, a cell at a
    time and the widest first, free text that can wrap without breaking a word (and
    names, cut), then titles (into two lines), then free text breaking its longest
    words, never below a column's least."""
    widths = dict(natural)
    while sum(widths.values()) > room:
        pool = ([i for i in widths if free[i] and widths[i] > soft[i]]
                or [i for i in widths if not free[i] and widths[i] > least[i]]
                or [i for i in widths if widths[i] > least[i]])
        widths[max(pool, key=lambda i: (widths[i] < words[i], widths[i]))] -= 1
    return widths


def _rich_table(columns, titles, body, *, numeric, fractions, optional=(), total=False) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out = console()
    bars = any(f is not None for f in fractions)
    fitted = _fit(columns, titles, body, out.width, optional, bars)
    if fitted is None:  # too wide even without the optional columns: one record per row
        for n, row in enumerate(body):
            if n:
                out.print()
            _rich_record([(t, str(c)) for t, c in zip(titles, row)], out)
        return
    shown, body, widths = fitted
    hidden = [titles[i] for i in range(len(columns)) if i not in shown]
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    for i in shown:  # every width is decided here (_fit), so rich never has to squeeze
        if i == len(columns):  # the bar
            grid.add_column("", width=widths[i])
        else:
            cut = columns[i] in NAMES
            grid.add_column(Text(str(titles[i])), justify="right" if numeric[i] else "left",
                            overflow="ellipsis" if cut else "fold", no_wrap=cut, width=widths[i])
    for n, (row, fraction) in enumerate(zip(body, fractions)):
        cells = [Text(str(row[i])) for i in shown if i < len(columns)]
        if len(columns) in shown:
            cells.append(Text(bar(fraction, widths[len(columns)]) if fraction is not None else ""))
        is_total = total and n == len(body) - 1
        grid.add_row(*cells, end_section=total and n == len(body) - 2,
                     style="bold" if is_total else None)
    out.print(grid)
    if hidden:  # on stderr, wrapped to the terminal like the table
        console(stderr=True).print(Text(f"(not shown, to fit {out.width} columns: "
                                        f"{', '.join(map(str, hidden))}; --format json shows all)"))


def _rich_record(pairs, out=None) -> None:
    """field / value lines; values wrap (at spaces) only when they are too long to fit."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out = out or console()
    grid = Table(box=box.SIMPLE_HEAD, show_header=False, show_edge=False)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for field, value in pairs:
        grid.add_row(Text(str(field)), Text(str(value)))
    out.print(grid)


_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int = 24) -> str:
    """A proportional bar in eighth-blocks, so small differences still show."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


LIMITS = ("rate_limit", "tokens_per_day", "max_cost_per_task", "monthly_budget", "timeout",
          "total_budget", "max_concurrent", "daily_budget", "weekly_budget", "input_tokens_per_minute",
          "output_tokens_per_minute")


def readable_permissions(item: dict) -> dict:
    """For human formats: no limit reads "unlimited", a list of just "*" reads "all",
    no hold limit of its own reads as the default's."""
    out = dict(item)
    for k, v in item.items():
        if k in LIMITS and v is None:
            out[k] = "unlimited"
        elif k == "hold" and v is None:
            out[k] = "default (24h)"
        elif k == "alert_at" and isinstance(v, list):
            out[k] = Shown(", ".join(f"{p}%" for p in v) or "none")
        elif isinstance(v, list) and v == ["*"]:
            out[k] = "all"
    return out


def print_message(text: str) -> None:
    """A human message: stderr, so stdout stays data."""
    sys.stderr.write(text + "\n")


def budget_lines(budgets: list, tz: str) -> dict:
    """limits.standing's budgets for people, one line each: `daily budget: $0.30 spent
    + $0.10 reserved of $1.00 (40%), $0.60 left; resets 2026-12-04 00:00 +09:00
    (Asia/Tokyo), in 8 h 30 min`."""
    out = {}
    for b in budgets:
        reserved = f" + {usd(b['reserved_usd'])} reserved" if b["reserved_usd"] else ""
        line = (f"{usd(b['spent_usd'])} spent{reserved} of {usd(b['limit_usd'])} ({b['percent']:g}%), "
                f"{usd(b['left_usd'])} left")
        if b["resets_at"] is None:
            line += "; never resets"
        else:
            when = b["resets_at"].replace("T", " ")[:16] + ("" if b["resets_at"].endswith("Z") else
                                                              " " + b["resets_at"][-6:])
            line += f"; resets {when} ({tz}), in {_span(b['resets_in_s'])}"
        out[f"{b['budget']} budget status"] = line
    return out


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = -(-rest // 60) if not (days or hours) else rest // 60
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes)
    return " ".join(parts[:2]) or "under a minute"
