"""`claude-api keys …`: thin commands over claude_keys.keys (and gate for verify).

Kept import-light: `keys verify` runs through this module on every request of a
shell gateway, so rich, tabulate and keyring are imported inside the commands
that print tables or touch the keyring.
"""
from __future__ import annotations

import click

from .. import keys as lib
from ..values import iso_s
from . import warn

MONEY = ("max_cost_per_task", "monthly_budget")
from .options import (
    FOLLOW_PROFILE, Count, Duration, Limit, Money, Profile, Project, Seconds, json_option,
    key_argument, output_options,
)

def _app(ctx: click.Context):
    return ctx.find_root().obj


@click.group()
def keys() -> None:
    """Create, list, inspect, re-permission, revoke, rotate and verify API keys."""


@keys.command()
@click.option("--project-id", required=True, type=Project(), help="The project the key belongs to.")
@click.option("--profile", type=Profile(), default="enterprise", show_default=True,
              help="Permission preset.")
@click.option("--name", help="A label to recognise the key by.")
@click.option("--rate-limit", type=Count(), help="Requests per minute (overrides the profile).")
@click.option("--max-cost", type=Money(), help="Maximum cost per task in USD.")
@click.option("--monthly-budget", type=Money(), help="Spending limit per calendar month (UTC), USD.")
@click.option("--expires-in", type=Duration(), help="Lifetime, e.g. 90s, 12h, 30d, 2w.")
@click.option("--no-keyring", is_flag=True, help="Do not store the secret in the OS keyring.")
@click.option("-q", "--quiet", is_flag=True, help="Print the secret only.")
@json_option
@click.pass_context
def create(ctx, project_id, profile, name, rate_limit, max_cost, monthly_budget, expires_in,
           no_keyring, quiet, fmt) -> None:
    """Create a key. Its secret is printed once, and kept in the OS keyring if there is one."""
    overrides = {"rate_limit": rate_limit, "max_cost_nanos": max_cost,
                 "monthly_budget_nanos": monthly_budget}
    created = lib.create(
        _app(ctx).conn, project_id, profile=profile, name=name,
        overrides={k: v for k, v in overrides.items() if v is not None},
        expires_in=expires_in, use_keyring=not no_keyring,
    )
    if created.warning:
        warn(created.warning)
    if fmt == "json":
        from ..render import write_json

        write_json(created.as_json())
    elif quiet:
        click.echo(created.secret)
    else:
        _print_created(created, "Created")


def _print_created(created: lib.Created, verb: str) -> None:
    row = created.row
    label = f" ({row['name']})" if row["name"] else ""
    click.echo(f"{verb} key {row['id']}{label} for project {row['project_id']}, "
               f"profile {row['profile']}.")
    click.echo("")
    click.echo(f"    {created.secret}")
    click.echo("")
    if created.stored_in_keyring:
        click.echo(f"Stored in the OS keyring; `claude-api keys reveal {row['id']}` shows it again.")
    else:
        click.echo("This is the only time the key is shown: store it somewhere safe now.")
    if row["expires_at"]:
        click.echo(f"Expires {iso_s(row['expires_at'])}.")


@keys.command("list")
@click.option("--project-id", type=Project(), help="Only keys of this project.")
@click.option("--profile", type=Profile(), help="Only keys with this profile.")
@click.option("--status", type=click.Choice(["active", "revoked", "expired", "all"]), default="all",
              show_default=True, help="Only keys in this state.")
@output_options
@click.pass_context
def list_(ctx, project_id, profile, status, fmt) -> None:
    """List keys (never their secrets)."""
    rows = lib.list_keys(_app(ctx).conn, project_id=project_id, profile=profile, status_filter=status)
    from ..render import table

    table(rows, fmt, list(lib.PUBLIC_FIELDS), headers={"project_id": "project"},
          empty="no keys (create one with: claude-api keys create --project-id ID)")


@keys.command()
@key_argument
@output_options
@click.pass_context
def show(ctx, key, fmt) -> None:
    """Show one key: its state, lineage and effective permissions."""
    conn = _app(ctx).conn
    detail = lib.show(conn, lib.find(conn, key))
    from ..render import readable_permissions, record

    if fmt == "json":
        record(detail, fmt)
        return
    flat = {k: v for k, v in detail.items() if k != "permissions"}
    flat.update({k: v for k, v in detail["permissions"].items() if k not in ("id", "profile")})
    record(readable_permissions(flat), fmt, money=MONEY)


_LIMIT_OPTIONS = {
    "max_cost": "max_cost_nanos",
    "rate_limit": "rate_limit",
    "timeout": "timeout",
    "monthly_budget": "monthly_budget_nanos",
    "tokens_per_day": "tokens_per_day",
}


@keys.command()
@key_argument
@click.option("--set-profile", type=Profile(), help="Switch to this preset (clears overrides).")
@click.option("--keep-overrides", is_flag=True, help="With --set-profile: keep the key's own overrides.")
@click.option("--reset", is_flag=True, help="Drop every override: follow the profile exactly.")
@click.option("--max-cost", type=Limit(Money()), help="Max cost per task in USD, unlimited, or default.")
@click.option("--rate-limit", type=Limit(Count()), help="Requests per minute, unlimited, or default.")
@click.option("--timeout", type=Limit(Seconds()), help="Seconds per task, unlimited, or default.")
@click.option("--monthly-budget", type=Limit(Money()), help="USD per calendar month, unlimited, or default.")
@click.option("--tokens-per-day", type=Limit(Count()), help="Tokens per UTC day, unlimited, or default.")
@click.option("--allow-tool", multiple=True, metavar="TOOL", help="Allow a tool ('*' for all).")
@click.option("--disallow-tool", multiple=True, metavar="TOOL", help="Take a tool off the allowed list.")
@click.option("--block-tool", multiple=True, metavar="TOOL", help="Block a tool (a block always wins).")
@click.option("--unblock-tool", multiple=True, metavar="TOOL", help="Lift a block.")
@click.option("--allow-agent", multiple=True, metavar="AGENT", help="Allow an agent ('*' for all).")
@click.option("--disallow-agent", multiple=True, metavar="AGENT", help="Take an agent off the allowed list.")
@click.option("--allow-skill", multiple=True, metavar="SKILL", help="Allow a skill ('*' for all).")
@click.option("--disallow-skill", multiple=True, metavar="SKILL", help="Take a skill off the allowed list.")
@output_options
@click.pass_context
def permissions(ctx, key, set_profile, keep_overrides, reset, fmt, **options) -> None:
    """Show a key's effective permissions, or change them."""
    conn = _app(ctx).conn
    row = lib.find(conn, key)
    changes = lib.PermissionChanges(profile=set_profile, keep_overrides=keep_overrides, reset=reset)
    for option, column in _LIMIT_OPTIONS.items():
        value = options[option]
        if value is not None:
            changes.limits[column] = None if value is FOLLOW_PROFILE else value
    lists = {
        "add": {"allowed_tools": "allow_tool", "blocked_tools": "block_tool",
                "allowed_agents": "allow_agent", "allowed_skills": "allow_skill"},
        "remove": {"allowed_tools": "disallow_tool", "blocked_tools": "unblock_tool",
                   "allowed_agents": "disallow_agent", "allowed_skills": "disallow_skill"},
    }
    for kind, fields in lists.items():
        for column, option in fields.items():
            if options[option]:
                getattr(changes, kind)[column] = list(options[option])
    if keep_overrides and not set_profile:
        raise click.UsageError("--keep-overrides only makes sense with --set-profile", ctx)
    if not changes.empty():
        row = lib.change_permissions(conn, row["id"], changes)
    perms = lib.permissions(conn, row).as_json(row["id"])
    from ..render import readable_permissions, record

    record(perms if fmt == "json" else readable_permissions(perms), fmt, money=MONEY)


@keys.command()
@key_argument
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--reason", help="Why; kept with the key and shown by `keys show`.")
@click.pass_context
def revoke(ctx, key, force, reason) -> None:
    """Revoke a key at once; its secret is removed from the keyring."""
    conn = _app(ctx).conn
    row = lib.find(conn, key)
    if not force:
        label = f" ({row['name']})" if row["name"] else ""
        click.confirm(f"Revoke key {row['id']}{label} of project {row['project_id']}?", abort=True,
                      err=True)
    row, changed, warning = lib.revoke(conn, row["id"], reason)
    if warning:
        warn(warning)
    if changed:
        click.echo(f"Revoked key {row['id']}.", err=True)
    else:
        click.echo(f"Key {row['id']} was already revoked; nothing changed.", err=True)


@keys.command()
@key_argument
@click.option("--grace", type=Duration(), default="0s", show_default=True,
              help="How long the old secret keeps working, e.g. 1h or 7d (0s: not at all).")
@click.option("--no-keyring", is_flag=True, help="Do not store the new secret in the OS keyring.")
@click.option("-q", "--quiet", is_flag=True, help="Print the new secret only.")
@json_option
@click.pass_context
def rotate(ctx, key, grace, no_keyring, quiet, fmt) -> None:
    """Replace a key's secret, keeping its project, name, profile and permissions."""
    conn = _app(ctx).conn
    old = lib.find(conn, key)
    created, old = lib.rotate(conn, old["id"], grace, use_keyring=not no_keyring)
    if created.warning:
        warn(created.warning)
    if fmt == "json":
        from ..render import write_json

        ends = min(t for t in (old["revoked_at"], old["expires_at"]) if t is not None)
        write_json({**created.as_json(), "rotated_from": old["id"], "old_key_valid_until": iso_s(ends)})
    elif quiet:
        click.echo(created.secret)
    else:
        _print_created(created, "Rotated: new")
        ends = "now" if grace == 0 else f"at {iso_s(old['revoked_at'])}"
        click.echo(f"The old key {old['id']} stops working {ends}.")


@keys.command()
@key_argument
@click.pass_context
def reveal(ctx, key) -> None:
    """Print a key's secret, read back from the OS keyring."""
    conn = _app(ctx).conn
    click.echo(lib.reveal(conn, lib.find(conn, key)))
