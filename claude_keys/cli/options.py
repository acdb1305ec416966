"""Parameter types and shared options for the commands.

Bad values fail here, before anything runs, with click's exit code 2 and one line.
The parsers themselves live in claude_keys.values so the Python API shares them.
"""
from __future__ import annotations

import functools

import click

from .. import values
from ..errors import InvalidInput
from ..profiles import NAMES as PROFILE_NAMES
from ..profiles import UNLIMITED

FOLLOW_PROFILE = object()  # `--rate-limit default`: drop the override, follow the profile


class _Parsed(click.ParamType):
    """A click type over one of the values parsers."""

    parser = staticmethod(lambda text: text)

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.parser(value)
        except InvalidInput as e:
            self.fail(str(e), param, ctx)


class Money(_Parsed):
    name = "USD"
    parser = staticmethod(values.parse_money)


class Cost(_Parsed):
    """The cost of one request: money, at most values.MAX_REQUEST_USD."""

    name = "USD"
    parser = staticmethod(values.parse_cost)


class Count(_Parsed):
    name = "N"

    def parser(self, text):
        return values.parse_count(text, "the value")


class Duration(_Parsed):
    name = "DURATION"
    parser = staticmethod(values.parse_duration)


class Seconds(_Parsed):
    """A timeout: whole seconds, or a duration such as 5m."""

    name = "SECONDS"

    def parser(self, text):
        if text.strip().isdigit():
            return values.parse_count(text, "the timeout")
        return values.parse_duration(text)


class Limit(click.ParamType):
    """A limit that can also be `unlimited` or `default` (follow the profile)."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = f"{inner.name}|unlimited|default"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() in ("unlimited", "none"):
            return UNLIMITED
        if isinstance(value, str) and value.strip().lower() == "default":
            return FOLLOW_PROFILE
        return self.inner.convert(value, param, ctx)


class Hold(click.ParamType):
    """A hold limit (claude_keys/inflight.py): a duration, or `default` (24 h)."""

    name = "DURATION|default"

    def __init__(self, default=FOLLOW_PROFILE):
        self.default = default  # what `default` stands for where the option is read

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "default":
            return self.default
        return Seconds().convert(value, param, ctx)


class AlertAt(click.ParamType):
    """Alert thresholds: whole percentages of each budget, "75,90"; `none` for no alerts,
    `default` for the default (50,80,95). Converted to the stored text."""

    name = "PERCENTS|none|default"

    def __init__(self, default=FOLLOW_PROFILE):
        self.default = default  # what `default` stands for where the option is read

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        word = value.strip().lower()
        if word == "default":
            return self.default
        if word == "none":
            return ""
        from ..profiles import alerts_text, parse_alerts

        try:
            thresholds = parse_alerts(value)
        except InvalidInput as e:
            self.fail(str(e), param, ctx)
        if not thresholds:
            self.fail("give whole percentages such as 75,90 (or none, or default)", param, ctx)
        return alerts_text(thresholds)


class ProjectLimit(click.ParamType):
    """A project limit: a value, or `unlimited` (none)."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = f"{inner.name}|unlimited"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() in ("unlimited", "none"):
            return UNLIMITED
        return self.inner.convert(value, param, ctx)


class FilePath(click.Path):
    """click.Path, refusing what no file name can hold (the OS would raise, not click)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "\x00" in value:
            self.fail("a file name cannot contain a NUL character", param, ctx)
        return super().convert(value, param, ctx)


class Profile(click.Choice):
    """A profile name in any case (`Pro`, as the seeds write it), given as its own."""

    def __init__(self):
        super().__init__(PROFILE_NAMES, case_sensitive=False)


def _store_completions(ctx, query: str, incomplete: str, *params):
    """Shell completion from the store (never creating one); silent on any failure."""
    try:
        from ..db import connect

        db = ctx.meta.get("claude_api.db") or ctx.find_root().params.get("db")
        conn = connect(db, create=False, readonly=True)
        try:
            return list(conn.execute(query, (incomplete + "%", *params)))
        finally:
            conn.close()
    except Exception:
        return []


class KeyRef(click.ParamType):
    """A key: its secret, id, a unique id prefix or a live key's name. Completes ids
    from the store; `live` ones only (not revoked or expired) where only they make
    sense (revoke, rotate, reveal)."""

    name = "KEY"

    def __init__(self, live: bool = False):
        self.live = live

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        from ..values import now_s

        live = " AND (revoked_at IS NULL OR revoked_at > ?) AND (expires_at IS NULL OR expires_at > ?)"
        rows = _store_completions(
            ctx,
            f"SELECT id, project_id, name FROM keys WHERE id LIKE ?{live if self.live else ''} "
            "ORDER BY created_at LIMIT 200",
            incomplete, *((now_s(), now_s()) if self.live else ()),
        )
        return [CompletionItem(i, help=f"{p}{' / ' + n if n else ''}") for i, p, n in rows]


class Text(click.ParamType):
    """Free text (names, ids, reasons, tools): printable, valid UTF-8, bounded."""

    name = "TEXT"

    def __init__(self, what: str = "the value", max_len: int = 256, allow_empty: bool = True):
        self.what, self.max_len, self.allow_empty = what, max_len, allow_empty

    def convert(self, value, param, ctx):
        try:
            return values.check_text(value, self.what, max_len=self.max_len, allow_empty=self.allow_empty)
        except InvalidInput as e:
            self.fail(str(e), param, ctx)


class Owner(Text):
    """Who answers for a key (claude_keys/labels.py); '' for none."""

    name = "TEXT"

    def __init__(self):
        from ..labels import MAX_OWNER

        super().__init__("the owner", max_len=MAX_OWNER)


class MetaEntry(click.ParamType):
    """`--meta KEY=VALUE` (`KEY=`: remove KEY, or in a filter: keys without it) ->
    (KEY, VALUE or None)."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from ..labels import parse_assignment

        try:
            return parse_assignment(value)
        except InvalidInput as e:
            self.fail(str(e), param, ctx)


class Time(Text):
    """Kept as text here: resolved once --tz is known (a date means a day in that zone)."""

    name = "TIME"

    def __init__(self):
        super().__init__("the time", max_len=64)


class Project(Text):
    name = "ID"

    def __init__(self):
        super().__init__("the project id", allow_empty=False)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        rows = _store_completions(
            ctx, "SELECT DISTINCT project_id FROM keys WHERE project_id LIKE ? LIMIT 200", incomplete
        )
        return [CompletionItem(r[0]) for r in rows]


class Format(click.ParamType):
    name = "FORMAT"

    def convert(self, value, param, ctx):
        from ..render import check_format

        try:
            return check_format(value)
        except InvalidInput as e:
            self.fail(str(e), param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        from ..render import BASIC_FORMATS, tabulate_formats

        names = list(BASIC_FORMATS) + [n for n in tabulate_formats() if n not in BASIC_FORMATS]
        return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def output_options(fn):
    """`--format F` and `--json` (= --format json); the command receives `fmt`."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON (same as --format json).")
    @click.option("--format", "fmt", type=Format(), default="table", show_default=True,
                  help="table, json, csv, tsv, or a tabulate format (plain, simple, github, …).")
    @functools.wraps(fn)
    def wrapper(*args, as_json: bool, fmt: str, **kwargs):
        return fn(*args, fmt="json" if as_json else fmt, **kwargs)

    return wrapper


def json_option(fn):
    """`--json` alone, for commands whose human output is not a table."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @functools.wraps(fn)
    def wrapper(*args, as_json: bool, **kwargs):
        return fn(*args, fmt="json" if as_json else "table", **kwargs)

    return wrapper


key_argument = click.argument("key", type=KeyRef())
live_key_argument = click.argument("key", type=KeyRef(live=True))  # completes live keys only


DEFAULT_LIMIT = 50


def limit_option(fn):
    """`--limit N` (as gh's): at most N rows, the latest, in every format; a line on
    stderr says how many more there are. 0 lists all."""
    return click.option("--limit", type=Count(), default=DEFAULT_LIMIT, show_default=True, metavar="N",
                        help="At most N rows, the latest (0: all).")(fn)


def limited(rows: list, limit: int, noun: str, nouns: str) -> list:
    """The latest `limit` rows (all with 0), and a line on stderr when some are left out."""
    if not limit or len(rows) <= limit:
        return rows
    from ..render import print_message

    print_message(f"(showing the latest {limit:,} of {len(rows):,} {nouns}; --limit 0 shows all)")
    return rows[-limit:]


MODEL_PATTERN = Text("the model pattern", max_len=128, allow_empty=False)


def model_options(fn):
    """--allow-model / --block-model (keys create, keys permissions, projects set)."""
    fn = click.option("--block-model", type=MODEL_PATTERN, multiple=True, metavar="PATTERN",
                      help="Block models matching a shell pattern, e.g. 'claude-opus-*' (a block wins).")(fn)
    return click.option("--allow-model", type=MODEL_PATTERN, multiple=True, metavar="PATTERN",
                        help="Allow only models matching shell patterns, e.g. 'claude-haiku-*' "
                             "(default: every model).")(fn)


clear_models_option = click.option(
    "--clear-models", is_flag=True,
    help="Empty both model lists (every model again), before any --allow-model/--block-model.")


def per_minute_options(fn):
    """--input-tokens-per-minute / --output-tokens-per-minute (keys create)."""
    fn = click.option("--output-tokens-per-minute", type=Count(), metavar="N",
                      help="Output tokens recorded in any 60 s.")(fn)
    return click.option("--input-tokens-per-minute", type=Count(), metavar="N",
                        help="Input tokens recorded (or declared in flight) in any 60 s.")(fn)
