"""`claude-api projects …`: limits shared by all of a project's keys, and what it uses."""
from __future__ import annotations

import click

from ..profiles import UNLIMITED
from .options import (
    AlertAt, Count, Hold, Money, Project, ProjectLimit, clear_models_option, model_options, output_options,
)

MONEY = ("month_cost_usd", "total_cost_usd", "monthly_budget", "total_budget", "daily_budget", "weekly_budget",
         "day_cost_usd", "week_cost_usd")
HEADERS = {"project_id": "project", "active_keys": "active", "retiring_keys": "retiring",
           "month_cost_usd": "this month",
           "total_cost_usd": "in total", "in_flight": "in flight", "monthly_budget": "monthly budget",
           "total_budget": "total budget", "rate_limit": "rate / min", "tokens_per_day": "tokens / day",
           "max_concurrent": "concurrent", "hold": "hold", "daily_budget": "daily budget",
           "weekly_budget": "weekly budget", "alert_at": "alerts at",
           "input_tokens_per_minute": "input tok / min", "output_tokens_per_minute": "output tok / min",
           "allowed_models": "models", "blocked_models": "blocked models"}

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

    default = {"hold": "default (24h)", "alert_at": "default (50,80,95)"}
    return {k: (default.get(k, "unlimited") if k in SETTINGS and row[k] is None
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
          headers=HEADERS, money=MONEY,
          empty="no projects yet (a key, a limit or recorded usage makes one)")


@projects.command()
@click.argument("project_id", metavar="ID", type=Project())
@output_options
@click.pass_context
def show(ctx, project_id, fmt) -> None:
    """One project: its keys, spend, requests in flight and limits."""
    from .. import projects as lib
    from ..errors import ClaudeKeysError

    conn = _app(ctx).reader
    if not lib.known(conn, project_id):
        raise ClaudeKeysError(f"no key, limit or usage names the project {project_id!r} "
                              "(claude-api projects list shows them)")
    _show(conn, project_id, fmt)


def _show(conn, project_id: str, fmt: str) -> None:
    """A project's row and, beside it, each budget's spend, reservations, what is left
    and when it resets (JSON: `budget_tz`, `budgets`; CSV keeps the row alone)."""
    from .. import projects as lib
    from ..render import budget_lines, record

    row = lib.rows(conn, project_id)[0]
    if fmt in ("csv", "tsv"):
        record(row, fmt, money=MONEY, headers=HEADERS)
        return
    standing = lib.budgets(conn, project_id)
    if fmt == "json":
        record({**row, **standing}, fmt)
        return
    shown = {**_readable(row), "budget_tz": standing["budget_tz"],
             **budget_lines(standing["budgets"], standing["budget_tz"])}
    record(shown, fmt, money=MONEY, headers={**HEADERS, "budget_tz": "budget time zone"})


_SPEND_OF = {"day": "today's spend", "week": "this week's spend", "month": "this month's spend",
             "total": "its total spend"}


def _ask_below_spend(conn, project_id, changes, yes) -> None:
    """A budget lowered below the spend it limits (in its period of the budget time zone)
    stops every key of the project at once: say so, and ask (or go ahead with -y)."""
    from .. import limits, periods, settings
    from ..values import usd_pair
    from .keys import confirmed_on_a_terminal

    lowered = {name: changes[column] for name, column in limits.ProjectLimits.BUDGETS.items()
               if changes.get(column) is not None}
    if not lowered:
        return
    now = conn.now_ms()
    calendar = periods.periods(now, settings.budget_tz(conn))
    used = limits.read(conn, "project", project_id, now, calendar, total="total" in lowered, tracked=False)
    below = []
    for name, budget in lowered.items():
        spent = (used.total_nanos or 0) if name == "total" else used.spent[name]
        if budget < spent:
            shown_budget, shown_spent = usd_pair(budget, spent)
            below.append(f"the {periods.ADJECTIVE[name]} budget to {shown_budget}, below {_SPEND_OF[name]} "
                         f"({shown_spent})")
    if below:
        confirmed_on_a_terminal(f"Set {' and '.join(below)} of project {project_id}, so that its keys are "
                                "refused from now on?", yes)


@projects.command("set")
@click.argument("project_id", metavar="ID", type=Project())
@click.option("--daily-budget", type=ProjectLimit(Money()),
              help="USD per calendar day (budget time zone), or unlimited.")
@click.option("--weekly-budget", type=ProjectLimit(Money()),
              help="USD per calendar week from Monday (budget time zone), or unlimited.")
@click.option("--monthly-budget", type=ProjectLimit(Money()),
              help="USD per calendar month (budget time zone), or unlimited.")
@click.option("--total-budget", type=ProjectLimit(Money()), help="USD over the project's whole life, or unlimited.")
@click.option("--rate-limit", type=ProjectLimit(Count()),
              help="Requests per minute, one window shared by all its keys, or unlimited.")
@click.option("--tokens-per-day", type=ProjectLimit(Count()),
              help="Tokens per calendar day (budget time zone), or unlimited.")
@click.option("--max-concurrent", type=ProjectLimit(Count()), help="Requests in flight at once, or unlimited.")
@click.option("--hold", type=Hold(default=UNLIMITED),
              help="How long an unsettled request's cost stays reserved for keys without their own (default 24h).")
@click.option("--alert-at", type=AlertAt(default=UNLIMITED), metavar="PERCENTS",
              help="Alert thresholds of every budget, e.g. 75,90; none; or default (50,80,95).")
@click.option("--input-tokens-per-minute", type=ProjectLimit(Count()),
              help="Input tokens recorded (or declared in flight) in any 60 s by all its keys, or unlimited.")
@click.option("--output-tokens-per-minute", type=ProjectLimit(Count()),
              help="Output tokens recorded in any 60 s by all its keys, or unlimited.")
@model_options
@clear_models_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask when a budget is set below what the project has spent.")
@output_options
@click.pass_context
def set_(ctx, project_id, fmt, yes, allow_model, block_model, clear_models, **options) -> None:
    """Set limits that all of a project's keys share (each also `unlimited`). A request
    must pass its key's limits and its project's, and its model both model lists. A
    budget below what the project has already spent (its keys are refused at once) is
    asked about first, unless -y.
    Changes are audited."""
    from .. import projects as lib

    changes = {lib.SETTINGS[name][0]: None if value == UNLIMITED else value
               for name, value in options.items() if value is not None}
    models = {f: list(patterns) for f, patterns in (("allowed_models", allow_model),
                                                    ("blocked_models", block_model)) if patterns}
    if not changes and not models and not clear_models:
        raise click.UsageError("nothing to set: give --daily-budget, --weekly-budget, --monthly-budget, "
                               "--total-budget, --rate-limit, --tokens-per-day, --max-concurrent, --hold, "
                               "--alert-at, --input-tokens-per-minute, --output-tokens-per-minute, "
                               "--allow-model, --block-model or --clear-models", ctx)
    conn = _app(ctx).conn
    _ask_below_spend(conn, project_id, changes, yes)
    lib.set_limits(conn, project_id, changes, models=models, clear_models=clear_models)
    _show(conn, project_id, fmt)
