"""`claude-api projects …`: limits shared by all of a project's keys, and what it uses."""
from __future__ import annotations

import click

from ..profiles import UNLIMITED
from .options import Count, Hold, Money, Project, ProjectLimit, model_options, output_options

MONEY = ("month_cost_usd", "total_cost_usd", "monthly_budget", "total_budget")
HEADERS = {"project_id": "project", "active_keys": "active", "retiring_keys": "retiring",
           "month_cost_usd": "this month",
           "total_cost_usd": "in total", "in_flight": "in flight", "monthly_budget": "monthly budget",
           "total_budget": "total budget", "rate_limit": "rate / min", "tokens_per_day": "tokens / day",
           "max_concurrent": "concurrent", "hold": "hold", "input_tokens_per_minute": "input tok / min",
           "output_tokens_per_minute": "output tok / min", "allowed_models": "models",
           "blocked_models": "blocked models"}

# What a narrow terminal leaves out first: counts `active` and `in flight` tell more than
# `keys`, and the budgets (beside the spend) more than the other limits.
# `retiring` (usually 0) goes right after `keys`.
OPTIONAL = ["blocked_models", "allowed_models", "output_tokens_per_minute", "input_tokens_per_minute", "hold", "keys", "retiring_keys", "tokens_per_day", "rate_limit", "max_concurrent", "in_flight",
            "total_budget"]


def _human_columns(fields) -> list:
    """People read `retiring` beside `active`; JSON and CSV keep it last (it came later)."""
    fields = [f for f in fields if f != "retiring_keys"]
    fields.insert(fields.index("active_keys") + 1, "retiring_keys")
    return fields


def _app(ctx):
    return ctx.find_root().obj


@click.group()
def projects() -> None:
    """Limits shared by all of a project's keys (budgets, rate, tokens, concurrency), and
    what each project uses."""


def _readable(row: dict) -> dict:
    from ..projects import SETTINGS

    return {k: (("default (24h)" if k == "hold" else "unlimited") if k in SETTINGS and row[k] is None
                else "all" if row[k] == ["*"] else row[k])
            for k in _human_columns(row)}


@projects.command("list")
@output_options
@click.pass_context
def list_(ctx, fmt) -> None:
    """Every project: keys, spend this month and in total, requests in flight, limits."""
    from .. import projects as lib
    from ..render import table

    rows = lib.rows(_app(ctx).reader)
    data = fmt in ("json", "csv", "tsv")
    table(rows if data else [_readable(r) for r in rows], fmt,
          list(lib.FIELDS) if data else _human_columns(lib.FIELDS),
          headers=HEADERS, money=MONEY, optional=OPTIONAL, whole=["project_id"],
          empty="no projects yet (a key, a limit or recorded usage makes one)")


@projects.command()
@click.argument("project_id", metavar="ID", type=Project())
@output_options
@click.pass_context
def show(ctx, project_id, fmt) -> None:
    """One project: its keys, spend, requests in flight and limits."""
    from .. import projects as lib
    from ..errors import ClaudeKeysError
    from ..render import record

    conn = _app(ctx).reader
    if not lib.known(conn, project_id):
        raise ClaudeKeysError(f"no key, limit or usage names the project {project_id!r} "
                              "(claude-api projects list shows them)")
    row = lib.rows(conn, project_id)[0]
    record(row if fmt in ("json", "csv", "tsv") else _readable(row), fmt, money=MONEY, headers=HEADERS)


@projects.command("set")
@click.argument("project_id", metavar="ID", type=Project())
@click.option("--monthly-budget", type=ProjectLimit(Money()), help="USD per calendar month (UTC), or unlimited.")
@click.option("--total-budget", type=ProjectLimit(Money()), help="USD over the project's whole life, or unlimited.")
@click.option("--rate-limit", type=ProjectLimit(Count()),
              help="Requests per minute, one window shared by all its keys, or unlimited.")
@click.option("--tokens-per-day", type=ProjectLimit(Count()), help="Tokens per UTC day, or unlimited.")
@click.option("--max-concurrent", type=ProjectLimit(Count()), help="Requests in flight at once, or unlimited.")
@click.option("--hold", type=Hold(default=UNLIMITED),
              help="How long an unsettled request's cost stays reserved for keys without their own (default 24h).")
@click.option("--input-tokens-per-minute", type=ProjectLimit(Count()),
              help="Input tokens recorded (or declared in flight) in any 60 s by all its keys, or unlimited.")
@click.option("--output-tokens-per-minute", type=ProjectLimit(Count()),
              help="Output tokens recorded in any 60 s by all its keys, or unlimited.")
@model_options
@click.option("--clear-models", is_flag=True,
              help="Empty both model lists (every model again), before any --allow-model/--block-model.")
@output_options
@click.pass_context
def set_(ctx, project_id, fmt, allow_model, block_model, clear_models, **options) -> None:
    """Set limits that all of a project's keys share (each also `unlimited`). A request
    must pass its key's limits and its project's, and its model both model lists.
    Changes are audited."""
    from .. import projects as lib
    from ..render import record

    changes = {lib.SETTINGS[name][0]: None if value == UNLIMITED else value
               for name, value in options.items() if value is not None}
    models = {f: list(patterns) for f, patterns in (("allowed_models", allow_model),
                                                    ("blocked_models", block_model)) if patterns}
    if not changes and not models and not clear_models:
        raise click.UsageError("nothing to set: give --monthly-budget, --total-budget, --rate-limit, "
                               "--tokens-per-day, --max-concurrent, --hold, --input-tokens-per-minute, "
                               "--output-tokens-per-minute, --allow-model, --block-model or --clear-models", ctx)
    conn = _app(ctx).conn
    lib.set_limits(conn, project_id, changes, models=models, clear_models=clear_models)
    row = lib.rows(conn, project_id)[0]
    record(row if fmt in ("json", "csv", "tsv") else _readable(row), fmt, money=MONEY, headers=HEADERS)
