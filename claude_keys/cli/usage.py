"""`claude-api usage …`: record usage, import it, and report it."""
from __future__ import annotations

import functools
import os
import sys

import click

from .. import usage as lib
from ..values import Usd, counted, usd_text
from . import warn
from .options import Count, FilePath, KeyRef, Money, Project, Text, Time, json_option, output_options

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
COLUMNS = ["requests", "input_tokens", "output_tokens", "cache_read_tokens",
           "cache_write_tokens", "total_tokens", "cost_usd"]
HEADERS = {"input_tokens": "input", "output_tokens": "output", "cache_read_tokens": "cache read",
           "cache_write_tokens": "cache write", "total_tokens": "total tokens", "cost_usd": "cost",
           "project_id": "project", "key_id": "key", "unpriced_requests": "unpriced",
           "session_id": "session", "tokens_per_minute": "tokens/min",
           "cost_usd_per_hour": "cost/hour", "projected_cost_usd": "projected cost",
           "projected_total_tokens": "projected tokens"}


def _app(ctx):
    return ctx.find_root().obj


def cost_mode_option(fn):
    return click.option(
        "--cost-mode", type=click.Choice(["auto", "calculate", "display"]), default="auto", show_default=True,
        help="auto: a cost the input states (costUSD, cost_usd, --cost) wins, others come from "
             "tokens; calculate: always from tokens; display: only stated costs (others unpriced). "
             "Costs are stored as computed: reports show what was stored.")(fn)


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
@click.option("--speed", type=click.Choice(["standard", "fast"]), default="standard", show_default=True,
              help="fast: priced at the model's fast-mode rates.")
@click.option("--web-search-requests", type=Count(), default=0,
              help="Server-side web searches the request made (priced per the table's web_search).")
@cost_mode_option
@json_option
@click.pass_context
def record(ctx, key_ref, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
           cache_write_1h_tokens, model, cost, at, request_id, speed, web_search_requests, cost_mode,
           fmt) -> None:
    """Record the usage of one request (give its --model to price it, or its --cost)."""
    from .. import keys, pricing
    from ..values import parse_time

    app = _app(ctx)
    app.request_path = True  # a gateway's call: the request path's wait bound
    row = keys.find(app.existing, key_ref, "--key")
    tokens = {"input_tokens": input_tokens, "output_tokens": output_tokens,
              "cache_read_tokens": cache_read_tokens, "cache_write_5m_tokens": cache_write_tokens,
              "cache_write_1h_tokens": cache_write_1h_tokens}
    pricer = pricing.Pricer(pricing.table(pricing.user_prices_path(app.db_path)).with_mode(cost_mode))
    done = lib.record(app.existing, row["id"], row["project_id"], row["lineage"], pricer=pricer, model=model,
                      tokens=tokens, cost_nanos=cost, request_id=request_id,
                      at_ms=None if at is None else parse_time(at), speed=speed,
                      web_searches=web_search_requests)
    if not done.priced:
        what = "fast-mode prices" if speed == "fast" else "price"
        warn(f"the model {model or '(none)'!r} has no {what} in the price table: recorded at $0 "
             "and marked unpriced (pass --cost, or add the model to a prices.json)")
    if done.warning:
        warn(done.warning)
    if fmt == "json":
        from ..render import write_json

        write_json({"recorded": done.recorded, "request_id": done.request_id, "key_id": row["id"],
                    "project_id": row["project_id"], "cost_usd": done.cost_usd, "priced": done.priced,
                    "warnings": [done.warning] if done.warning else []})
    elif done.recorded:
        click.echo(f"Recorded {done.request_id} for key {row['id']}: {usd_text(done.cost_nanos)}.",
                   err=True)
    else:
        click.echo(f"Request {done.request_id} was already recorded; nothing changed.", err=True)


class LastN(Count):
    """--last N: a whole number of periods, 1 to 100,000, in ASCII digits."""

    def parser(self, text):
        from ..errors import InvalidInput
        from ..values import parse_count

        n = parse_count(text, "--last")
        if not 1 <= n <= 100_000:
            raise InvalidInput("--last takes a number of periods from 1 to 100000")
        return n


def report_options(fn):
    """The filters every report and the export share."""

    @click.option("--period", type=click.Choice(["day", "week", "month", "all"]),
                  help="today, since Monday, since the 1st, or everything [default: month; "
                       "all when --since/--until are given].")
    @click.option("--since", type=Time(), help="From this date or time (inclusive).")
    @click.option("--until", type=Time(), help="Up to this date (the whole day) or time.")
    @click.option("--last", type=LastN(), metavar="N",
                  help="The last N days, weeks or months (as --by or --period day|week|month says; "
                       "days otherwise), the current one included.")
    @click.option("--tz", type=Text("the time zone", 64), metavar="ZONE",
                  help="Time zone for periods and dates: an IANA name, UTC or local [default: "
                       "CLAUDE_API_TZ, else the system's zone].")
    @click.option("--week-start", type=click.Choice(WEEKDAYS + [d[:3] for d in WEEKDAYS], case_sensitive=False), metavar="DAY",
                  help="The day weeks start on (monday … sunday) [default: monday].")
    @click.option("--project-id", type=Project(), help="Only this project.")
    @click.option("--key", "key_ref", type=KeyRef(), help="Only this key.")
    @click.option("--session", "session_id", type=Text("the session id", allow_empty=False), metavar="ID",
                  help="Only this Claude Code session.")
    @functools.wraps(fn)
    def wrapper(*args, period, since, until, last, tz, week_start, project_id, key_ref, session_id, **kwargs):
        ctx = click.get_current_context()
        from .. import keys, reports

        by = kwargs.get("by") or ()
        unit = next((v for v in by if v in reports.SERIES), None) or (period if period in reports.SERIES else None)
        if kwargs.get("active") or kwargs.get("recent"):  # blocks: a window of their own
            if period or since or until or last:
                raise click.UsageError("--active and --recent choose their own window: give no "
                                       "--period, --since, --until or --last with them")
            since = "5h" if kwargs.get("active") else "3d"
        # Bad input fails before the store opens.
        win = reports.window(period, since, until, tz, last=last, unit=unit,
                             week_start=reports.week_day(week_start))
        if kwargs.get("active") or kwargs.get("recent"):
            win = win._replace(since_ms=win.since_ms // reports.HOUR_MS * reports.HOUR_MS,  # blocks start on the hour
                               what="in the last 5 hours" if kwargs.get("active") else "in the last 3 days")
        conn = _app(ctx).reader
        key_id = keys.find(conn, key_ref, "--key")["id"] if key_ref is not None else None
        report = reports.Report(conn, win, project_id=project_id, key_id=key_id, session_id=session_id)
        return fn(*args, report=report, **kwargs)

    return wrapper


def order_option(fn):
    return click.option(
        "--order", type=click.Choice(["asc", "desc"]), default=None,
        help="asc: oldest (periods, blocks) or cheapest (groups) first; desc: the reverse "
             "[default: periods and blocks asc, groups desc].")(fn)


def _warn_unpriced(rows) -> None:
    count = sum(r.get("unpriced_requests", 0) for r in rows)
    if count:
        warn(f"{counted(count, 'request')} used a model with no price and {'counts' if count == 1 else 'count'} as $0 "
             "(see `usage summary --by model`; add the model to a prices.json)")


def _total(rows, label_columns):
    """The total row human tables end with (data formats stay one row per group)."""
    if len(rows) < 2:
        return None
    total = {**dict.fromkeys(label_columns, ""), label_columns[0]: "total"}
    for column in COLUMNS + ["unpriced_requests"]:
        total[column] = sum(r[column] for r in rows)
    total["cost_usd"] = Usd(sum(r["cost_usd"].nanos for r in rows))  # exact, not a float sum
    return total


def _show(rows, fmt, label_columns, bars=None, nested=False, columns=None, money=("cost_usd",),
          empty="no usage in this period"):
    from ..render import table

    columns = label_columns + (columns or COLUMNS)
    if any(r["unpriced_requests"] for r in rows) or fmt in ("json", "csv", "tsv"):
        columns = columns + ["unpriced_requests"]
    _warn_unpriced(rows)
    human = fmt not in ("json", "csv", "tsv")
    if human and "model" in label_columns:  # short names (sonnet-4.5): an id never breaks a column
        from ..pricing import short_model

        rows = [{**r, "model": short_model(r["model"]) if r["model"] else r["model"]} for r in rows]
    if not human and not rows and empty:
        print_empty(empty)  # data formats stay empty on stdout; the hint goes to stderr
    shown = _grouped_visually(rows, label_columns[0]) if nested and human else rows
    # (What a narrow terminal leaves out, and in which order, is render.DROP_ORDER's.)
    table(shown, fmt, columns, headers=HEADERS, money=money, bars=bars,
          empty=empty, total=_total(rows, label_columns))


def print_empty(message: str) -> None:
    from ..render import print_message

    print_message(message)


def empty_hint(report) -> str:
    """What an empty report says: that the window is empty, what the filters hold in
    all time, and how to see it (one query, only when the window is empty)."""
    from ..values import counted

    win = report.win
    if win.since_ms is None and win.until_ms is None:
        return ("no usage stored" + (" for these filters" if report.filters else "")
                + " — `claude-api usage import` reads Claude Code's logs")
    requests, first, last = report.stored()
    if not requests:
        return (f"no usage {win.what}, and none stored" + (" for these filters" if report.filters else "")
                + " — `claude-api usage import` reads Claude Code's logs")
    return (f"no usage {win.what}; {counted(requests, 'request')} from {_day(first, win.tz)} to "
            f"{_day(last, win.tz)} — try `--period all`")


def _day(ms: int, tz) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ms / 1000, tz).date().isoformat()


def _grouped_visually(rows, first):
    """Human tables of two levels: the first level's value only where it changes."""
    out, previous = [], object()
    for r in rows:
        value = r[first]
        out.append(r if value != previous else {**r, first: ""})
        previous = value
    return out


LEVELS = ("day", "week", "month", "project", "key", "model", "session", "owner", "meta.KEY")


class Grouping(click.ParamType):
    """--by: one level, or two separated by a comma (day,model; project,model; …);
    `owner` and `meta.KEY` group by a key's labels (claude_keys/labels.py)."""

    name = "BY"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from ..errors import InvalidInput
        from ..labels import check_level, is_level

        levels = tuple(v.strip() for v in str(value).split(","))
        unknown = [v for v in levels if v not in LEVELS[:-1] and not is_level(v)]
        if unknown or not 1 <= len(levels) <= 2:
            self.fail(f"{value[:80]!r}: give one or two of {', '.join(LEVELS)}, separated by a comma "
                      "(e.g. day,model or meta.team)", param, ctx)
        for level in levels:
            try:
                check_level(level)
            except InvalidInput as e:
                self.fail(f"{level[:80]!r}: {e}", param, ctx)
        if len(set(levels)) < len(levels) or sum(v in ("day", "week", "month") for v in levels) > 1:
            self.fail(f"{value!r}: two different levels, at most one of them a period", param, ctx)
        return levels

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        done, _, last = incomplete.rpartition(",")
        prefix = done + "," if done else ""
        return [CompletionItem(prefix + v) for v in LEVELS[:-1] + ("meta.",) if v.startswith(last)]


@usage.command(epilog="""\b
Examples:
  claude-api usage summary --period week
  claude-api usage summary --by day,model --since 7d
  claude-api usage summary --by project --period all --json""")
@report_options
@click.option("--by", type=Grouping(), metavar="LEVEL[,LEVEL]",
              help="A row per day, week, month, project, key, model, session, key owner or "
                   "key metadata entry (meta.KEY); two levels (e.g. day,model or owner,model) give "
                   "a row per pair.")
@order_option
@output_options
def summary(report, by, order, fmt) -> None:
    """Totals of requests, tokens and cost (or rows --by period, project, key, model,
    session, or two of them)."""
    from .. import reports

    if by is None:
        totals = report.totals().get((), reports.EMPTY)
        item = {**report.win.as_json(), **reports.row(totals)}
        _warn_unpriced([item])
        if not item["requests"]:
            print_empty(empty_hint(report))
        from ..render import record, write_json

        if fmt == "json":
            write_json(item)
        else:
            record({k: v for k, v in item.items() if v is not None or k in ("since", "until")},
                   fmt, money=("cost_usd",), headers=HEADERS)
    else:
        _grouped(report, by, fmt, order)


def _grouped(report, levels, fmt, order=None) -> None:
    """Rows per level (or pair of levels): periods in time order, groups most expensive
    first; with two levels, the second within the first."""
    from .. import reports

    labels = ["period" if v in reports.SERIES else reports.GROUPS.get(v, v) for v in levels]  # owner, meta.KEY: as given
    if levels == ("session",):
        labels.append("project_id")  # a session is in one project: show it
    groups = tuple(label for label in labels if label != "period")
    period = next((v for v in levels if v in reports.SERIES), None)
    if period:
        found = [(dict(zip(("period",) + groups, (label,) + g)), c)
                 for label, g, c in report.series(period, *groups)]
    else:
        found = [(dict(zip(groups, g)), c) for g, c in report.totals(*groups).items()]
    rows = [{**{label: values[label] for label in labels}, **reports.row(c)} for values, c in found]
    if labels[0] != "period":
        _rank(rows, labels, period is not None, ascending=order == "asc")
    elif order == "desc":
        rows.sort(key=lambda r: r["period"], reverse=True)  # stable: each period's groups keep their order
    if levels == ("key",):
        names = {}
        for key_id, name, project in report.conn.execute("SELECT id, name, project_id FROM keys"):
            names[key_id] = (name, project)
        for r in rows:
            r["name"], r["project_id"] = names.get(r["key_id"], (None, None))
        labels = ["key_id", "name", "project_id"]
    if fmt not in ("json", "csv", "tsv"):  # people read the group of no owner (no such entry) by name
        from ..labels import NONE_SHOWN, is_level

        for r in rows:
            r.update({label: NONE_SHOWN for label in labels if is_level(label) and r[label] is None})
    bars = "cost_usd" if labels == ["period"] and sys.stdout.isatty() else None
    _show(rows, fmt, labels, bars=bars, nested=len(levels) == 2,
          empty=empty_hint(report) if not rows else "")


def _rank(rows, labels, second_is_period, ascending=False) -> None:
    """Most expensive first (`ascending`: cheapest first); with two levels, first-level
    groups by their total, and within each the second level by cost (or in time order,
    for periods)."""
    first = labels[0]
    totals: dict = {}
    for r in rows:
        totals[r[first]] = totals.get(r[first], 0) + r["cost_usd"]
    sign = 1 if ascending else -1

    def key(r):
        head = (sign * totals[r[first]], r[first] or "")
        if len(labels) == 1 or labels[1] == "project_id":
            return head + (-r["total_tokens"],)
        if second_is_period:
            return head + (r["period"],)
        return head + (-r["cost_usd"], -r["total_tokens"], r[labels[1]] or "")

    rows.sort(key=key)


@usage.command("by-project")
@report_options
@order_option
@output_options
def by_project(report, order, fmt) -> None:
    """Requests, tokens and cost per project, most expensive first."""
    _grouped(report, ("project",), fmt, order)


@usage.command("by-key")
@report_options
@order_option
@output_options
def by_key(report, order, fmt) -> None:
    """Requests, tokens and cost per key, most expensive first."""
    _grouped(report, ("key",), fmt, order)


class TokenLimit(click.ParamType):
    """--token-limit: a number of tokens, or `max` (the most any earlier block used)."""

    name = "N|max"

    def convert(self, value, param, ctx):
        if not isinstance(value, str) or value.strip().lower() == "max":
            return "max" if isinstance(value, str) else value
        return Count().convert(value, param, ctx)


class Interval(click.ParamType):
    """--interval: seconds between refreshes, 0.1 to 3600, written in ASCII digits."""

    name = "SECONDS"

    def convert(self, value, param, ctx):
        from ..errors import InvalidInput
        from ..values import ascii_number

        if isinstance(value, (int, float)):
            return float(value)
        try:
            seconds = float(ascii_number(value, "the interval"))
        except InvalidInput as e:
            self.fail(str(e), param, ctx)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not 0.1 <= seconds <= 3600:  # (also refuses nan)
            self.fail(f"{value!r}: give between 0.1 and 3600 seconds", param, ctx)
        return seconds


def live_options(fn):
    """The live view's options (`usage watch`, `usage blocks --live`)."""
    fn = click.option("--no-import", "no_import", is_flag=True,
                      help="Do not import Claude Code's new log lines before each refresh.")(fn)
    fn = click.option("--cost-limit", type=Money(), help="Draw the block's cost against this limit, USD.")(fn)
    fn = click.option("--token-limit", type=TokenLimit(),
                      help="Draw the block's tokens against this limit (max: the most any earlier "
                           "block used).")(fn)
    fn = click.option("--interval", type=Interval(), default=5, show_default=True,
                      help="Seconds between refreshes (0.1 to 3600).")(fn)
    return fn


@usage.command(epilog="""\b
Examples:
  claude-api usage watch
  claude-api usage watch --token-limit max --cost-limit 20 --interval 2""")
@click.option("--project-id", type=Project(), help="Only this project.")
@click.option("--key", "key_ref", type=KeyRef(), help="Only this key.")
@live_options
@click.pass_context
def watch(ctx, project_id, key_ref, interval, token_limit, cost_limit, no_import) -> None:
    """A live view of the 5-hour block under way: its cost, tokens, burn rate, projected
    cost at its end and time left, bars against --token-limit/--cost-limit, and the
    budgets closest to their limits. Refreshed every --interval seconds, after importing
    what Claude Code appended to its logs; Ctrl-C quits. Off a terminal, one snapshot."""
    from .. import keys
    from . import live

    app = _app(ctx)
    key_id = keys.find(app.conn, key_ref, "--key")["id"] if key_ref is not None else None
    live.run(app, interval=interval, project_id=project_id, key_id=key_id, token_limit=token_limit,
             cost_limit_nanos=cost_limit, refresh=not no_import)


def live_view_option(fn):
    """`--live` on a report: the live view instead (with the live view's options), for
    the report's --project-id/--key. Outside the report's options, so that a missing
    store is made (the view imports logs) rather than refused as a report's would be."""

    @click.option("--live", is_flag=True,
                  help="A live view of the active block instead (as `usage watch`), refreshed "
                       "every --interval seconds.")
    @live_options
    @functools.wraps(fn)
    def wrapper(*args, live, interval, token_limit, cost_limit, no_import, **kwargs):
        if not live:
            return fn(*args, **kwargs)
        if kwargs.get("as_json") or kwargs.get("fmt", "table") != "table":
            raise click.UsageError("--live draws a screen: leave out --format/--json (or --live, for data)")
        from .. import keys
        from . import live as screen

        app = _app(click.get_current_context())
        key_ref = kwargs.get("key_ref")
        key_id = keys.find(app.conn, key_ref, "--key")["id"] if key_ref is not None else None
        screen.run(app, interval=interval, project_id=kwargs.get("project_id"), key_id=key_id,
                   token_limit=token_limit, cost_limit_nanos=cost_limit, refresh=not no_import)

    return wrapper


@usage.command()
@live_view_option
@report_options
@click.option("--active", is_flag=True, help="Only the active block (the one now is inside), if any.")
@click.option("--recent", is_flag=True, help="The blocks of the last 3 days (the active one included).")
@order_option
@output_options
def blocks(report, active, recent, order, fmt) -> None:
    """The 5-hour blocks Claude subscriptions count usage in, with the active block's
    burn rate and projected total."""
    from .. import reports
    from ..values import iso_ms

    if active and recent:
        raise click.UsageError("give --active or --recent, not both")
    found = report.blocks()
    if active:
        found = [b for b in found if b["active"]]
    if order == "desc":
        found.reverse()
    rows = []
    for b in found:
        rate = b.get("tokens_per_minute")
        rows.append({
            "start": iso_ms(b["start_ms"]), "end": iso_ms(b["end_ms"]), "active": b["active"],
            **reports.row(b["counters"]),
            "tokens_per_minute": None if rate is None else round(rate, 1),
            "cost_usd_per_hour": None if rate is None else Usd(round(b["cost_nanos_per_hour"])),
            "projected_total_tokens": b.get("projected_tokens"),
            "projected_cost_usd": None if rate is None else Usd(round(b["projected_cost_nanos"])),
        })
    if fmt not in ("json", "csv", "tsv"):
        for r in rows:  # people read the start in the report's zone, and whole tokens
            r["start"] = _local(r["start"], report.win.tz) + ("  (active)" if r["active"] else "")
            if r["tokens_per_minute"] is not None:
                r["tokens_per_minute"] = round(r["tokens_per_minute"])
    extra = ["tokens_per_minute", "cost_usd_per_hour", "projected_total_tokens", "projected_cost_usd"]
    if fmt not in ("json", "csv", "tsv") and not any(r["active"] for r in rows):
        extra = []
    columns = ["requests", "total_tokens", "cost_usd"] + extra
    if fmt in ("json", "csv", "tsv"):
        columns = ["end", "active"] + COLUMNS + extra
    # A narrow terminal keeps the projected cost longest: it is what the rate is for (DROP_ORDER).
    if rows:
        empty = ""
    elif active:
        empty = "no active block: " + ("the last one has ended" if _any_in(report) else
                                       "no usage in the last 5 hours")
    else:
        empty = empty_hint(report)
    _show(rows, fmt, ["start"], columns=columns,
          money=("cost_usd", "cost_usd_per_hour", "projected_cost_usd"), empty=empty)


def _any_in(report) -> bool:
    return bool(report.totals().get((), (0,))[0])


@usage.command(epilog="""\b
In ~/.claude/settings.json:
  "statusLine": {"type": "command", "command": "claude-api usage statusline"}""")
@click.pass_context
def statusline(ctx) -> None:
    """One line for Claude Code's status bar, from the JSON Claude Code gives on stdin:
    the model, this session's cost, today's, the 5-hour block's with its time left, and
    the burn rate. It imports what Claude Code appended to the session's transcript
    first. It never fails: on any problem it prints the model and "usage unavailable"."""
    from ..statusline import run

    click.echo(run(sys.stdin, _app(ctx).db))


def _local(iso: str, tz) -> str:
    from datetime import datetime

    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M") + ("" if moment.utcoffset().total_seconds() == 0 else
                                                moment.strftime(" %z"))


@usage.command("delete")
@click.argument("request_ids", nargs=-1, type=Text("the request id", allow_empty=False))
@click.option("--key", "key_ref", type=KeyRef(), help="The requests of this key…")
@click.option("--project-id", type=Project(), help="…or of this project…")
@click.option("--since", type=Time(), help="…from this time (inclusive)…")
@click.option("--until", type=Time(), help="…up to this date (the whole day) or time.")
@click.option("-y", "--yes", "--force", "force", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def delete(ctx, request_ids, key_ref, project_id, since, until, force, fmt) -> None:
    """Take recorded usage back: requests by id, or a key's or project's requests in a
    time range. Roll-ups, reports and budgets follow; the deletion is audited."""
    from .. import keys
    from ..values import parse_time, usd_text
    from .keys import _confirm

    if request_ids and (key_ref or project_id or since or until):
        raise click.UsageError("give request ids, or --key/--project-id with --since and --until, not both")
    conn = _app(ctx).existing
    key_id = keys.find(conn, key_ref, "--key")["id"] if key_ref is not None else None
    selection = lib.Selection(
        request_ids=tuple(dict.fromkeys(request_ids)), key_id=key_id, project_id=project_id,
        since_ms=parse_time(since) if since else None,
        until_ms=parse_time(until, end=True) if until else None)
    found = lib.deletion_totals(conn, selection)
    if not found["requests"]:
        if request_ids:
            from ..errors import ClaudeKeysError

            raise ClaudeKeysError("none of the given request ids is stored; nothing was deleted")
        click.echo("No stored request matches; nothing was deleted.", err=True)
        if fmt == "json":
            _write_deleted(found, [])
        return
    what = (f"{counted(found['requests'], 'request')} "
            f"({_tokens(found):,} tokens, {usd_text(found['cost_nanos'])})")
    if not force and not _confirm(f"Delete {what}? This cannot be undone."):
        raise click.Abort()
    done = lib.delete(conn, selection)
    if done["missing"]:
        warn(f"{len(done['missing']):,} of the request ids {'is' if len(done['missing']) == 1 else 'are'} not stored: "
             f"{', '.join(done['missing'][:5])}{' …' if len(done['missing']) > 5 else ''}")
    if fmt == "json":
        _write_deleted(done, done["missing"])
    else:
        click.echo(f"Deleted {counted(done['requests'], 'request')} "
                   f"({_tokens(done):,} tokens, {usd_text(done['cost_nanos'])}).", err=True)


def _tokens(totals: dict) -> int:
    return sum(totals[f] for f in ("input_tokens", "output_tokens", "cache_read_tokens",
                                   "cache_write_tokens"))


def _write_deleted(totals: dict, missing: list) -> None:
    from ..render import write_json

    write_json({"deleted": totals["requests"], "input_tokens": totals["input_tokens"],
                "output_tokens": totals["output_tokens"],
                "cache_read_tokens": totals["cache_read_tokens"],
                "cache_write_tokens": totals["cache_write_tokens"], "total_tokens": _tokens(totals),
                "cost_usd": Usd(totals["cost_nanos"]), "missing_request_ids": missing})


@usage.command("export")
@report_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), required=True,
              help="csv, or jsonl (one JSON object per line; `usage import` reads both back).")
@click.option("-o", "--output", type=FilePath(dir_okay=False), metavar="FILE",
              help="Write to FILE (a new file, created 0600) instead of standard output.")
def export(report, fmt, output) -> None:
    """Write every request in the range, oldest first, in the import record format."""
    rows = lib.export_rows(report.conn, since_ms=report.win.since_ms, until_ms=report.win.until_ms,
                           project_id=report.project_id, key_id=report.key_id,
                           session_id=report.session_id)
    if output is None:
        _write_export(rows, fmt, sys.stdout)
        return
    with _new_private_file(output) as out:
        _write_export(rows, fmt, out)
    click.echo(f"Wrote {counted(out.count, 'request')} to {output}.", err=True)


def _write_export(rows, fmt, out) -> None:
    from ..render import csv_value, json_text

    count = 0
    if fmt == "jsonl":
        for r in rows:
            out.write(json_text(r) + "\n")
            count += 1
    else:
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(lib.EXPORT_FIELDS)
        for r in rows:
            writer.writerow([csv_value(r[f]) for f in lib.EXPORT_FIELDS])
            count += 1
    out.count = count


class _new_private_file:
    """A new file, 0600 whatever the umask (usage names keys and projects); an existing
    file is refused, never overwritten; an export that fails leaves no file behind."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        import os

        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            from ..errors import ClaudeKeysError

            raise ClaudeKeysError(f"{self.path} exists; give a new file name (it is never "
                                  "overwritten)") from None
        os.fchmod(fd, 0o600)
        self.file = os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self.file

    def __exit__(self, kind, error, tb):
        import os

        self.file.close()
        if kind is not None:
            os.unlink(self.path)


@usage.command("import", epilog="""\b
Examples:
  claude-api usage import
  claude-api usage import ~/.claude --key laptop-key
  claude-api usage import records.jsonl --format jsonl""")
@click.argument("files", nargs=-1, type=FilePath(exists=True))
@click.option("--format", "input_format", type=click.Choice(["auto", "jsonl", "csv", "claude-code"]),
              default="auto", show_default=True,
              help="auto: folders are Claude Code logs, .csv is csv, a .jsonl file is a Claude Code "
                   "log if it has their shape, else jsonl records.")
@click.option("--key", "key_ref", type=KeyRef(), help="Attribute records that name no key to this key.")
@click.option("--full", is_flag=True,
              help="Read Claude Code logs from their start, not only what was appended since the "
                   "last import.")
@cost_mode_option
@json_option
@click.pass_context
def import_(ctx, files, input_format, key_ref, full, cost_mode, fmt) -> None:
    """Import usage: jsonl or csv records (as `usage export` writes them), or Claude Code
    session logs (a folder such as ~/.claude, or .jsonl files; with no FILE, the logs in
    CLAUDE_CONFIG_DIR, else ~/.claude and ~/.config/claude). Re-running adds nothing,
    and reads only what Claude Code appended since."""
    from .. import keys, pricing
    from ..importers import import_files

    app = _app(ctx)
    key = keys.find(app.conn, key_ref, "--key") if key_ref is not None else None
    if not files:
        files, input_format = _default_logs(input_format), "claude-code"
    prices = pricing.table(pricing.user_prices_path(app.db_path)).with_mode(cost_mode)
    with _terminate_as_interrupt(), _progress() as progress:
        result = import_files(app.conn, list(files), fmt=input_format, key=key, prices=prices,
                              progress=progress, db_path=app.db_path, full=full)
    for message in result.warnings:
        warn(message)
    if result.unpriced_models:
        warn(f"no price for model(s) {', '.join(sorted(result.unpriced_models))}: their requests "
             "count as $0 and are marked unpriced (add them to a prices.json)")
    if key is not None:
        _say_what_stays_without_a_key(app.conn, result, key, files)
    if fmt == "json":
        from ..render import write_json

        write_json(result.as_json())
        return
    click.echo(_summary_line(result), err=True)


def _say_what_stays_without_a_key(conn, result, key, files) -> None:
    """`usage import --key K` after a plain import of the same logs: their requests are
    stored already, without a key, and stay so (a stored request id changes nothing).
    Say so, and how to attribute them: delete them, then import again with --key --full."""
    import shlex

    from ..values import iso_ms

    found = lib.stored_without_key(conn, result.projects)
    if not found:
        return
    requests = sum(n for _, n, _, _ in found)
    deletes = "; ".join(
        f"claude-api usage delete --project-id={shlex.quote(project)} --since {iso_ms(first)} "
        f"--until {iso_ms(last + 1)}" for project, _, first, last in found)
    paths = " ".join(shlex.quote(str(f)) for f in files)
    warn(f"{counted(requests, 'request')} of these logs {'is' if requests == 1 else 'are'} already stored "
         f"without a key (imported before without --key); --key {key['id']} applies only to requests not "
         f"stored yet. To attribute them to it, delete them and import again: {deletes}; then "
         f"claude-api usage import {paths} --key {key['id']} --full")


class _terminate_as_interrupt:
    """While an import runs: SIGTERM (a `kill`, a service manager stopping us) ends it as
    Ctrl-C does, workers stopped and one line said, instead of killing the process where
    it stands."""

    def __enter__(self):
        import signal
        import threading

        self.saved = None
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGTERM, _raise_terminated)

    def __exit__(self, *exc):
        import signal

        if self.saved is not None:
            signal.signal(signal.SIGTERM, self.saved)


def _raise_terminated(signum, frame):
    from ..errors import Terminated

    raise Terminated()


def _default_logs(input_format: str) -> list[str]:
    """No FILE: the Claude config folders, as Claude Code finds them; say which."""
    from ..errors import ClaudeKeysError
    from ..importers.claude_code import default_folders

    if input_format not in ("auto", "claude-code"):
        raise click.UsageError("without FILE, usage import reads Claude Code logs: give the files "
                               f"to read as {input_format}")
    found, looked = default_folders()
    if not found:
        raise ClaudeKeysError(f"no Claude Code logs found in {' or '.join(looked)}: set "
                              "CLAUDE_CONFIG_DIR or give the logs' folder")
    for folder in looked:
        if folder not in found and os.environ.get("CLAUDE_CONFIG_DIR"):
            warn(f"{folder} (from CLAUDE_CONFIG_DIR) has no projects/ folder of Claude Code logs")
    click.echo(f"Reading Claude Code logs from {', '.join(found)}.", err=True)
    return found


def _plural(n: int, word: str) -> str:
    return counted(n, word)


# A skip's reason (its key in the JSON answer, unchanged) as a counted phrase: one and many.
_SKIPPED = {
    "file not read": ("file not read", "files not read"),
    "unreadable line": ("unreadable line", "unreadable lines"),
    "synthetic message": ("synthetic message", "synthetic messages"),
    "no usage": ("line without usage", "lines without usage"),
    "no timestamp": ("line without a timestamp", "lines without a timestamp"),
    "time in the future": ("line dated in the future", "lines dated in the future"),
    "implausible usage": ("line with implausible usage", "lines with implausible usage"),
    "bad text": ("line with bad text", "lines with bad text"),
    "unfinished last line": ("unfinished last line", "unfinished last lines"),
}


def _skipped(why: str, n: int) -> str:
    one, many = _SKIPPED.get(why, (why, why))
    return counted(n, one, many)


def _summary_line(result) -> str:
    unchanged = (f" ({_plural(result.unchanged_files, 'file')} unchanged since the last import)"
                 if result.unchanged_files else "")
    replaced = f", {result.replaced:,} replaced by bigger copies" if result.replaced else ""
    if result.relabelled:
        replaced += (f", {result.relabelled:,} moved to the new project of "
                     f"{_plural(result.moved_files, 'moved log')}")
    skipped = ", ".join(_skipped(why, n) for why, n in sorted(result.skipped.items()))
    return (f"Read {_plural(result.lines, 'line')} from "
            f"{_plural(result.files - result.unchanged_files, 'file')}{unchanged}: "
            f"{_plural(result.staged, 'request')}, {result.imported:,} new{replaced}, "
            f"{result.already_stored:,} already stored" + (f"; skipped {skipped}" if skipped else "") + ".")


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
