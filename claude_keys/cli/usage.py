"""`claude-api usage …`: record usage, import it, and report it."""
from __future__ import annotations

import functools
import sys

import click

from .. import usage as lib
from ..render import BAR
from ..values import usd_text
from . import warn
from .options import Count, FilePath, KeyRef, Money, Project, Text, Time, json_option, output_options

COLUMNS = ["requests", "input_tokens", "output_tokens", "cache_read_tokens",
           "cache_write_tokens", "total_tokens", "cost_usd"]
HEADERS = {"input_tokens": "input", "output_tokens": "output", "cache_read_tokens": "cache read",
           "cache_write_tokens": "cache write", "total_tokens": "total tokens", "cost_usd": "cost",
           "project_id": "project", "key_id": "key", "unpriced_requests": "unpriced"}


def _app(ctx):
    return ctx.find_root().obj


@click.group()
def usage() -> None:
    """Record, import, export and report usage and spend."""


@usage.command()
@click.option("--key", "key_ref", required=True, type=KeyRef(), help="The key that made the request.")
@click.option("--input-tokens", type=Count(), default=0)
@click.option("--output-tokens", type=Count(), default=0)
@click.option("--cache-read-tokens", type=Count(), default=0)
@click.option("--cache-write-tokens", type=Count(), default=0, help="5-minute cache writes.")
@click.option("--cache-write-1h-tokens", type=Count(), default=0, help="1-hour cache writes.")
@click.option("--model", type=Text("the model"), help="The model, to price the request (e.g. claude-sonnet-4-5).")
@click.option("--cost", type=Money(), help="The cost in USD (otherwise computed from the price table).")
@click.option("--at", type=Time(), help="When (ISO-8601; default now).")
@click.option("--request-id", type=Text("the request id", allow_empty=False), help="A unique id: recording the same id again changes nothing.")
@json_option
@click.pass_context
def record(ctx, key_ref, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
           cache_write_1h_tokens, model, cost, at, request_id, fmt) -> None:
    """Record the usage of one request."""
    from .. import keys, pricing
    from ..values import parse_time

    app = _app(ctx)
    row = keys.find(app.existing, key_ref)
    tokens = {"input_tokens": input_tokens, "output_tokens": output_tokens,
              "cache_read_tokens": cache_read_tokens, "cache_write_5m_tokens": cache_write_tokens,
              "cache_write_1h_tokens": cache_write_1h_tokens}
    pricer = pricing.Pricer(pricing.table(pricing.user_prices_path(app.db_path)))
    done = lib.record(app.existing, row["id"], row["project_id"], pricer=pricer, model=model,
                      tokens=tokens, cost_nanos=cost, request_id=request_id,
                      at_ms=None if at is None else parse_time(at))
    if not done.priced:
        warn(f"the model {model or '(none)'!r} is not in the price table: recorded at $0 and "
             "marked unpriced (pass --cost, or add the model to a prices.json)")
    if fmt == "json":
        from ..render import write_json

        write_json({"recorded": done.recorded, "request_id": done.request_id, "key_id": row["id"],
                    "project_id": row["project_id"], "cost_usd": done.cost_usd, "priced": done.priced})
    elif done.recorded:
        click.echo(f"Recorded {done.request_id} for key {row['id']}: {usd_text(done.cost_nanos)}.",
                   err=True)
    else:
        click.echo(f"Request {done.request_id} was already recorded; nothing changed.", err=True)


def report_options(fn):
    """The filters every report and the export share."""

    @click.option("--period", type=click.Choice(["day", "week", "month", "all"]),
                  help="today, since Monday, since the 1st, or everything [default: month; "
                       "all when --since/--until are given].")
    @click.option("--since", type=Time(), help="From this date or time (inclusive).")
    @click.option("--until", type=Time(), help="Up to this date (the whole day) or time.")
    @click.option("--tz", type=Text("the time zone", 64), metavar="ZONE", help="Time zone for periods and dates (IANA name; default UTC).")
    @click.option("--project-id", type=Project(), help="Only this project.")
    @click.option("--key", "key_ref", type=KeyRef(), help="Only this key.")
    @functools.wraps(fn)
    def wrapper(*args, period, since, until, tz, project_id, key_ref, **kwargs):
        ctx = click.get_current_context()
        from .. import keys, reports

        win = reports.window(period, since, until, tz)  # bad input fails before the store opens
        conn = _app(ctx).reader
        key_id = keys.find(conn, key_ref)["id"] if key_ref is not None else None
        report = reports.Report(conn, win, project_id=project_id, key_id=key_id)
        return fn(*args, report=report, **kwargs)

    return wrapper


def _warn_unpriced(rows) -> None:
    count = sum(r.get("unpriced_requests", 0) for r in rows)
    if count:
        warn(f"{count:,} request(s) used a model with no price and count as $0 "
             "(see `usage summary --by model`; add the model to a prices.json)")


def _total(rows, label_column):
    """The total row human tables end with (data formats stay one row per group)."""
    if len(rows) < 2:
        return None
    total = {label_column: "total"}
    for column in COLUMNS + ["unpriced_requests"]:
        total[column] = sum(r[column] for r in rows)
    total["cost_usd"] = round(total["cost_usd"], 9)
    return total


# What a narrow terminal leaves out first: the token details (total tokens stay), then
# a series' bar, then the request count.
OPTIONAL = ["cache_write_tokens", "cache_read_tokens", "input_tokens", "output_tokens", BAR, "requests"]


def _show(rows, fmt, label_columns, bars=None):
    from ..render import table

    columns = label_columns + COLUMNS
    if any(r["unpriced_requests"] for r in rows) or fmt in ("json", "csv", "tsv"):
        columns = columns + ["unpriced_requests"]
    _warn_unpriced(rows)
    table(rows, fmt, columns, headers=HEADERS, money=("cost_usd",), bars=bars,
          empty="no usage in this period", total=_total(rows, label_columns[0]),
          optional=OPTIONAL + label_columns[2:] + label_columns[1:2])


@usage.command()
@report_options
@click.option("--by", type=click.Choice(["day", "week", "month", "project", "key", "model"]),
              help="A row per period, project, key or model instead of one total.")
@output_options
def summary(report, by, fmt) -> None:
    """Totals of requests, tokens and cost (or a series --by period, project, key, model)."""
    from .. import reports

    if by is None:
        totals = report.totals().get(None, reports.EMPTY)
        item = {**report.win.as_json(), **reports.row(totals)}
        _warn_unpriced([item])
        from ..render import record, write_json

        if fmt == "json":
            write_json(item)
        else:
            record({k: v for k, v in item.items() if v is not None or k in ("since", "until")},
                   fmt, money=("cost_usd",), headers=HEADERS)
    elif by in reports.SERIES:
        rows = [{"period": label, **reports.row(c)} for label, c in report.series(by)]
        _show(rows, fmt, ["period"], bars="cost_usd" if sys.stdout.isatty() else None)
    else:
        _grouped(report, by, fmt)


def _grouped(report, by, fmt) -> None:
    from .. import reports

    column = reports.GROUPS[by]
    rows = [{column: group, **reports.row(c)} for group, c in report.totals(column).items()]
    rows.sort(key=lambda r: (-r["cost_usd"], -r["total_tokens"], r[column] or ""))
    labels = [column]
    if by == "key":
        names = {}
        for key_id, name, project in report.conn.execute("SELECT id, name, project_id FROM keys"):
            names[key_id] = (name, project)
        for r in rows:
            r["name"], r["project_id"] = names.get(r["key_id"], (None, None))
        labels = ["key_id", "name", "project_id"]
    _show(rows, fmt, labels)


@usage.command("by-project")
@report_options
@output_options
def by_project(report, fmt) -> None:
    """Requests, tokens and cost per project, most expensive first."""
    _grouped(report, "project", fmt)


@usage.command("by-key")
@report_options
@output_options
def by_key(report, fmt) -> None:
    """Requests, tokens and cost per key, most expensive first."""
    _grouped(report, "key", fmt)


@usage.command("export")
@report_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), required=True,
              help="csv, or jsonl (one JSON object per line; `usage import` reads both back).")
def export(report, fmt) -> None:
    """Write every request in the range, oldest first, in the import record format."""
    import json

    rows = lib.export_rows(report.conn, since_ms=report.win.since_ms, until_ms=report.win.until_ms,
                           project_id=report.project_id, key_id=report.key_id)
    out = sys.stdout
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
    else:
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(lib.EXPORT_FIELDS)
        for r in rows:
            writer.writerow(["" if r[f] is None else r[f] for f in lib.EXPORT_FIELDS])


@usage.command("import")
@click.argument("files", nargs=-1, required=True, type=FilePath(exists=True))
@click.option("--format", "input_format", type=click.Choice(["auto", "jsonl", "csv", "claude-code"]),
              default="auto", show_default=True,
              help="auto: folders are Claude Code logs, .csv is csv, .jsonl is told apart by content.")
@click.option("--key", "key_ref", type=KeyRef(), help="Attribute records that name no key to this key.")
@json_option
@click.pass_context
def import_(ctx, files, input_format, key_ref, fmt) -> None:
    """Import usage: jsonl or csv records (as `usage export` writes them), or Claude Code
    session logs (a folder such as ~/.claude, or .jsonl files). Re-running adds nothing."""
    from .. import keys, pricing
    from ..importers import import_files

    app = _app(ctx)
    key = keys.find(app.conn, key_ref) if key_ref is not None else None
    prices = pricing.table(pricing.user_prices_path(app.db_path))
    with _progress() as progress:
        result = import_files(app.conn, list(files), fmt=input_format, key=key, prices=prices,
                              progress=progress, db_path=app.db_path)
    if result.unpriced_models:
        warn(f"no price for model(s) {', '.join(sorted(result.unpriced_models))}: their requests "
             "count as $0 and are marked unpriced (add them to a prices.json)")
    if fmt == "json":
        from ..render import write_json

        write_json(result.as_json())
        return
    skipped = ", ".join(f"{n:,} {why}" for why, n in sorted(result.skipped.items()))
    click.echo(f"Read {result.lines:,} lines from {result.files:,} file(s): {result.staged:,} "
               f"requests, {result.imported:,} new, {result.already_stored:,} already stored"
               + (f"; skipped {skipped}" if skipped else "") + ".", err=True)


class _progress:
    """A rich progress bar on stderr, only on a terminal and only once an import has
    taken more than a moment; otherwise nothing."""

    def __init__(self):
        import time

        self.start = time.monotonic()
        self.bar = None
        self.total = 0
        self.done = 0
        self.task = None

    def __enter__(self):
        return self if sys.stderr.isatty() else None

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, advance_bytes=0, total_bytes=None, phase=None, done=None, total=None):
        import time

        if total_bytes is not None:
            self.total = total_bytes
        self.done += advance_bytes
        if self.bar is None and time.monotonic() - self.start > 0.5:
            from rich.progress import Progress

            from ..render import console

            self.bar = Progress(console=console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(_described("reading"), total=self.total or None,
                                          completed=self.done)
        if self.bar is not None:
            if phase == "storing":
                self.bar.update(self.task, description=_described("storing"), total=total, completed=done)
            else:
                self.bar.update(self.task, completed=self.done)


def _described(text: str) -> str:
    """A progress description: rich reads it as markup, and data (a file or folder name)
    must never be markup."""
    from rich.markup import escape

    return escape(text)
