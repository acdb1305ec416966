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
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _cell(value, column: str, money: frozenset, human: bool):
    if value is None:
        return "" if not human else "-"
    if isinstance(value, bool):
        return ("yes" if value else "no") if human else str(value).lower()
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value else ("none" if human else "")
    if human and column in money and isinstance(value, (int, float)):
        return _usd(value)
    if human and isinstance(value, int):
        return f"{value:,}"
    return value


def _usd(value: float) -> str:
    text = f"{value:,.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def table(rows: list[dict], fmt: str, columns: list[str] | None = None, *,
          headers: dict | None = None, money=(), bars: str | None = None,
          empty: str = "nothing to show") -> None:
    """Render a list of rows. `bars` names a numeric column drawn as a bar on a terminal."""
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
    money = frozenset(money)
    titles = [(headers or {}).get(c, c.replace("_", " ")) for c in columns]
    body = [[_cell(row.get(c), c, money, human=True) for c in columns] for row in rows]
    if not rows:
        print_message(empty)
        return
    if fmt == "table" and sys.stdout.isatty():
        _rich_table(rows, columns, titles, body, bars)
        return
    from tabulate import tabulate

    sys.stdout.write(
        tabulate(body, titles, tablefmt="simple" if fmt == "table" else fmt, disable_numparse=True)
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
    rows = [{"field": (headers or {}).get(k, k.replace("_", " ")), "value": _cell(v, k, frozenset(money), True)}
            for k, v in item.items() if not isinstance(v, dict)]
    if fmt == "table" and sys.stdout.isatty():
        _rich_table(rows, ["field", "value"], ["", ""], [[r["field"], str(r["value"])] for r in rows],
                    None, show_header=False)
        return
    from tabulate import tabulate

    sys.stdout.write(tabulate([[r["field"], r["value"]] for r in rows], tablefmt="plain" if fmt == "table" else fmt,
                              disable_numparse=True) + "\n")


def console(stderr: bool = False):
    """One factory for rich consoles: rich reads NO_COLOR, width and tty-ness here."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _rich_table(rows, columns, titles, body, bars, show_header=True) -> None:
    from rich import box
    from rich.table import Table

    grid = Table(box=box.SIMPLE_HEAD, show_header=show_header, header_style="bold")
    numeric = [bool(rows) and isinstance(rows[0].get(c), (int, float)) and not isinstance(rows[0].get(c), bool)
               for c in columns]
    for title, is_num in zip(titles, numeric):
        grid.add_column(title, justify="right" if is_num else "left", overflow="fold")
    if bars:
        grid.add_column("", justify="left", no_wrap=True)
        peak = max((r.get(bars) or 0) for r in rows) or 1
    for row, cells in zip(rows, body):
        cells = [str(c) for c in cells]
        if bars:
            cells.append(bar((row.get(bars) or 0) / peak))
        grid.add_row(*cells)
    console().print(grid)


_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int = 24) -> str:
    """A proportional bar in eighth-blocks, so small differences still show."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


LIMITS = ("rate_limit", "tokens_per_day", "max_cost_per_task", "monthly_budget", "timeout",
          "total_budget", "max_concurrent")


def readable_permissions(item: dict) -> dict:
    """For human formats: no limit reads "unlimited", a list of just "*" reads "all"."""
    out = dict(item)
    for k, v in item.items():
        if k in LIMITS and v is None:
            out[k] = "unlimited"
        elif isinstance(v, list) and v == ["*"]:
            out[k] = "all"
    return out


def print_message(text: str) -> None:
    """A human message: stderr, so stdout stays data."""
    sys.stderr.write(text + "\n")
