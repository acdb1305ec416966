"""`claude-api profiles …`: the permission presets and the standard-agents list."""
from __future__ import annotations

import click

from .. import keys as lib
from .. import profiles as presets
from .options import Profile, Text, output_options

_MONEY = ("max_cost_per_task", "monthly_budget")


def _app(ctx):
    return ctx.find_root().obj


def _standard_agents(ctx) -> list[str]:
    """The store's standard agents. The presets need no store: without one (nothing is
    created to read them) they are shown with the default list, and a note says so."""
    from ..errors import StoreMissing

    try:
        return lib.standard_agents(_app(ctx).reader)
    except StoreMissing as e:
        from . import warn

        warn(f"{e}; showing the default standard agents")
        return list(presets.DEFAULT_STANDARD_AGENTS)


@click.group()
def profiles() -> None:
    """Show the permission presets (free, pro, enterprise) and the standard agents."""


@profiles.command("list")
@output_options
@click.pass_context
def list_(ctx, fmt) -> None:
    """List the presets."""
    from ..render import readable_permissions, table

    standard = _standard_agents(ctx)
    rows = [presets.describe(name, standard) for name in presets.NAMES]
    if fmt != "json":
        rows = [readable_permissions(r) for r in rows]
    table(rows, fmt, ["name", "allowed_tools", "allowed_agents", "allowed_skills", "rate_limit",
                      "max_cost_per_task", "timeout"],
          headers={"allowed_tools": "tools", "allowed_agents": "agents", "allowed_skills": "skills",
                   "max_cost_per_task": "max cost / task", "rate_limit": "rate limit / min"},
          money=_MONEY)


@profiles.command()
@click.argument("profile", type=Profile())
@output_options
@click.pass_context
def show(ctx, profile, fmt) -> None:
    """Show one preset in full."""
    from ..render import readable_permissions, record

    item = presets.describe(profile, _standard_agents(ctx))
    record(item if fmt == "json" else readable_permissions(item), fmt, money=_MONEY)


@profiles.command("standard-agents")
@click.option("--add", type=Text("the agent", 128), multiple=True, metavar="AGENT", help="Add an agent to the list.")
@click.option("--remove", type=Text("the agent", 128), multiple=True, metavar="AGENT", help="Remove an agent from the list.")
@click.option("--set", "replace", type=Text("the list", 10_000), metavar="A,B,…", help="Replace the whole list (comma-separated).")
@output_options
@click.pass_context
def standard_agents(ctx, add, remove, replace, fmt) -> None:
    """Show or change the "standard agents" that the pro profile allows."""
    if add or remove or replace is not None:
        names = None if replace is None else [a.strip() for a in replace.split(",") if a.strip()]
        agents = lib.set_standard_agents(_app(ctx).conn, add=add, remove=remove, replace=names)
    else:
        agents = _standard_agents(ctx)
    from ..render import table

    table([{"agent": a} for a in agents], fmt, ["agent"], empty="the standard agents list is empty")
