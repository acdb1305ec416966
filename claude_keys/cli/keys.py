"""`claude-api keys …`: thin commands over claude_keys.keys (and gate for verify).

Kept import-light: `keys verify` runs through this module on every request of a
shell gateway, so each command imports what it needs (the key lifecycle, rich,
tabulate, keyring) itself.
"""
from __future__ import annotations

import sys

import click

from ..values import counted, iso_s
from . import warn
from .options import (
    FOLLOW_PROFILE, AlertAt, Cost, Count, Duration, Hold, Limit, MetaEntry, Money, Owner, Profile, Project, Seconds,
    Text, clear_models_option, json_option, key_argument, limit_option, limited, live_key_argument, model_options,
    output_options, per_minute_options,
)

MONEY = ("max_cost_per_task", "monthly_budget", "total_budget", "month_cost_usd", "total_cost_usd",
         "reserved_usd", "daily_budget", "weekly_budget")
NAME = Text("the name", max_len=128)  # tools, agents, skills


def _app(ctx: click.Context):
    return ctx.find_root().obj


@click.group()
def keys() -> None:
    """Create, list, inspect, re-permission, revoke, rotate and verify API keys."""


@keys.command(epilog="""\b
Examples:
  claude-api keys create --project-id webshop --profile pro --name ci
  claude-api keys create --project-id ci --monthly-budget 50 --expires-in 90d
  claude-api keys create --project-id search --owner ana --meta team=search
  claude-api keys create --project-id webshop --no-keyring -q > key.txt""")
@click.option("--project-id", required=True, type=Project(), help="The project the key belongs to.")
@click.option("--profile", type=Profile(), default="enterprise", show_default=True,
              help="Permission preset.")
@click.option("--name", type=Text("the name"), help="A label to recognise the key by.")
@click.option("--rate-limit", type=Count(), help="Requests per minute (overrides the profile).")
@click.option("--max-cost", type=Money(), help="Maximum cost per task in USD.")
@click.option("--daily-budget", type=Money(), help="Spending limit per calendar day (budget time zone), USD.")
@click.option("--weekly-budget", type=Money(), help="Spending limit per calendar week from Monday (budget time zone), USD.")
@click.option("--monthly-budget", type=Money(), help="Spending limit per calendar month (budget time zone), USD.")
@click.option("--total-budget", type=Money(), help="Spending limit over the key's whole life, USD.")
@click.option("--alert-at", type=AlertAt(default=None), metavar="PERCENTS",
              help="When `claude-api alerts` reports a budget: percentages, e.g. 75,90 (default 50,80,95).")
@click.option("--max-concurrent", type=Count(), help="Requests in flight at once.")
@per_minute_options
@model_options
@click.option("--expires-in", type=Duration(), help="Lifetime, e.g. 90s, 12h, 30d, 2w.")
@click.option("--owner", type=Owner(), help="Who answers for the key (a person, team or service).")
@click.option("--meta", type=MetaEntry(), multiple=True, metavar="KEY=VALUE",
              help="A metadata entry (e.g. team=search); repeatable.")
@click.option("--no-keyring", is_flag=True, help="Do not store the secret in the OS keyring.")
@click.option("-q", "--quiet", is_flag=True, help="Print the secret only.")
@json_option
@click.pass_context
def create(ctx, project_id, profile, name, rate_limit, max_cost, daily_budget, weekly_budget, monthly_budget,
           total_budget, alert_at, max_concurrent, input_tokens_per_minute, output_tokens_per_minute, allow_model,
           block_model, expires_in, owner, meta, no_keyring, quiet, fmt) -> None:
    """Create a key. Its secret is printed once, and kept in the OS keyring if there is one."""
    from .. import keys as lib

    overrides = {"rate_limit": rate_limit, "max_cost_nanos": max_cost,
                 "daily_budget_nanos": daily_budget, "weekly_budget_nanos": weekly_budget,
                 "monthly_budget_nanos": monthly_budget, "total_budget_nanos": total_budget,
                 "max_concurrent": max_concurrent, "alert_at": alert_at,
                 "input_tokens_per_minute": input_tokens_per_minute,
                 "output_tokens_per_minute": output_tokens_per_minute,
                 "allowed_models": list(allow_model) or None, "blocked_models": list(block_model) or None}
    created = lib.create(
        _app(ctx).conn, project_id, profile=profile, name=name,
        overrides={k: v for k, v in overrides.items() if v is not None},
        expires_in=expires_in, use_keyring=not no_keyring, owner=owner, metadata=_new_metadata(meta),
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


def _new_metadata(entries) -> dict:
    """A new key's metadata from its --meta entries (a later entry for a key wins)."""
    from ..errors import InvalidInput
    from ..labels import apply

    try:
        return apply({}, entries)
    except InvalidInput as e:  # too many entries: bad input, before anything is made
        raise click.BadParameter(str(e), param_hint="--meta") from None


def _confirm(question: str) -> bool:
    """Ask once on stderr; only "y" or "yes" goes ahead. Off a terminal the answer is
    read from standard input (`echo y | …`); no answer there at all is refused in one
    line after the question, saying that -y goes ahead."""
    from ..errors import ClaudeKeysError

    click.echo(f"{question} [y/N]: ", nl=False, err=True)
    try:
        answer = sys.stdin.readline(MAX_ANSWER)  # bounded: `< /dev/zero` is no answer, not a hang
    except UnicodeDecodeError:
        answer = ""
    if not sys.stdin.isatty():
        click.echo(err=True)  # the answer was not echoed: end the question's line
        if not answer.strip():
            raise ClaudeKeysError("not confirmed: no terminal to ask on and no answer on standard input "
                                  "(pass -y to go ahead); nothing was changed")
    return answer.strip().lower() in ("y", "yes")


def confirmed(question: str, yes: bool) -> None:
    """Go ahead with -y, or when the user says yes; otherwise stop (exit 1, nothing changed)."""
    if not yes and not _confirm(question):
        raise click.Abort()


def confirmed_on_a_terminal(question: str, yes: bool) -> None:
    """A question only a person at a terminal is asked: off a terminal it goes ahead, as
    it did before the question existed, so the contract's command lines (which have no
    -y for it: `keys rotate`, `keys disable`, `projects set`) keep working in scripts."""
    if sys.stdin.isatty():
        confirmed(question, yes)


# Bounds on what is read from standard input, so `< /dev/zero` is refused at once rather
# than growing until memory runs out (README: keys verify, keys import).
MAX_ANSWER = 256  # characters of a y/N answer
MAX_SECRET_INPUT = 4 * 1024  # bytes: the line of `keys verify -` (a key is under 100 characters)
MAX_IMPORT_INPUT = 10 * 1024 * 1024  # bytes: the tokens of `keys import`


def _stdin(limit: int, what: str, *, line: bool = False) -> str:
    """At most `limit` bytes of standard input (its first line, with `line`), as text;
    more is refused after reading one byte beyond the limit, never buffered whole."""
    stream = sys.stdin.buffer
    data = stream.readline(limit + 1) if line else stream.read(limit + 1)
    if len(data) > limit:
        raise click.BadParameter(f"standard input is over {limit:,} bytes: too long for {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.BadParameter("standard input is not UTF-8 text") from None


def _secret_from_stdin() -> str:
    """The key of `keys verify -`: piped in, or typed at a prompt that does not echo it."""
    if not sys.stdin.isatty():
        return _stdin(MAX_SECRET_INPUT, "a key", line=True).strip()
    return _hidden("API key: ").strip()


def _hidden(prompt: str) -> str:
    """A line typed at the terminal without echoing it (the prompt on stderr)."""
    import getpass

    try:
        return getpass.getpass(prompt, stream=sys.stderr)
    except EOFError:
        return ""


def _label(row) -> str:
    """A key's id, with its name when it has one."""
    return f"{row['id']} ({row['name']})" if row["name"] else row["id"]


def _print_created(created, verb: str) -> None:
    """The human answer of create and rotate (claude_keys.keys.Created)."""
    row = created.row
    click.echo(f"{verb} key {_label(row)} for project {row['project_id']}, "
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
@click.option("--status", type=click.Choice(["live", "active", "retiring", "disabled", "revoked", "expired", "all"]),
              default="live", show_default=True,
              help="Only keys in this state. live: active, retiring (rotated, in their grace "
                   "period) and disabled; all: revoked and expired too.")
@click.option("--owner", type=Owner(), help="Only keys with this owner ('' for keys without one).")
@click.option("--meta", type=MetaEntry(), multiple=True, metavar="KEY=VALUE",
              help="Only keys with this metadata entry (KEY= for keys without KEY); repeatable: all must match.")
@limit_option
@output_options
@click.pass_context
def list_(ctx, project_id, profile, status, owner, meta, limit, fmt) -> None:
    """List keys (never their secrets): live ones unless --status says otherwise."""
    from .. import keys as lib

    rows = lib.list_keys(_app(ctx).reader, project_id=project_id, profile=profile, status_filter=status,
                         owner=owner, metadata=meta)
    from ..render import table

    # With a filter, an empty list says nothing about whether keys exist: say what matched nothing.
    given = [f"{opt} {value}" for opt, value in (("--project-id", project_id), ("--profile", profile),
                                                  ("--status", None if status == "live" else status)) if value]
    given += [f"--owner {owner!r}"] if owner is not None else []
    given += [f"--meta {k}={v or ''}" for k, v in meta]
    empty = (f"no key matches {' '.join(given)} (claude-api keys list --status all shows every key)" if given
             else "no live keys (create one with: claude-api keys create --project-id ID; "
                  "--status all lists revoked and expired ones too)")
    rows = limited(rows, limit, "key", "keys")
    columns = list(lib.PUBLIC_FIELDS)
    if fmt in ("csv", "tsv"):  # a fixed header for scripts; metadata as one JSON object
        columns += ["owner", "metadata"]
        rows = [{**r, "metadata": _json_cell(r["metadata"])} for r in rows]
    elif fmt != "json":  # people see owners and metadata when some key has them
        from ..labels import text

        columns += [c for c in ("owner", "metadata") if any(r[c] for r in rows)]
        rows = [{**r, "metadata": text(r["metadata"]) or None} for r in rows]
    table(rows, fmt, columns, headers={"project_id": "project"}, empty=empty)


def _json_cell(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@keys.command()
@key_argument
@output_options
@click.pass_context
def show(ctx, key, fmt) -> None:
    """Show one key: its state, lineage and effective permissions."""
    from .. import keys as lib

    conn = _app(ctx).reader
    detail = lib.show(conn, lib.find(conn, key))
    from ..render import readable_permissions, record

    if fmt == "json":
        record(detail, fmt)
        return
    flat = {k: v for k, v in detail.items() if k not in ("permissions", "current", "metadata")}
    # A row per metadata entry (`meta.team  search`), or one saying there is none.
    flat.update({f"meta.{k}": v for k, v in detail["metadata"].items()} or {"metadata": "none"})
    flat.update({k: v for k, v in detail["permissions"].items() if k not in ("id", "profile")})
    flat.update(_current_lines(detail["current"]))
    record(readable_permissions(flat), fmt, money=MONEY,
           headers={k: k for k in flat if k.startswith("meta.")})  # a metadata key as it is spelled


def _current_lines(now: dict) -> dict:
    """Current use beside each limit, for people: `$3.20 of $10.00`, `2 of 4`."""
    from ..render import usd as money  # cents, as every human table shows money

    def of(used: str, limit) -> str:
        return used if limit is None else f"{used} of {limit}"

    from ..values import Usd, usd_pair

    def spent(usd, limit) -> str:  # a spend above its budget never reads as equal to it
        if limit is None:
            return money(usd)
        nanos = lambda v: v.nanos if isinstance(v, Usd) else round(v * 1_000_000_000)  # noqa: E731
        return " of ".join(usd_pair(nanos(usd), nanos(limit)))

    window = now["requests_last_minute"]
    from ..render import budget_lines

    return {
        "budget time zone": now["budget_tz"],
        **budget_lines(now["budgets"], now["budget_tz"]),
        "cost this month": spent(now["month_cost_usd"], now["monthly_budget"]),
        "cost in total": spent(now["total_cost_usd"], now["total_budget"]),
        "tokens today": of(f"{now['tokens_today']:,}", None if now["tokens_per_day"] is None
                           else f"{now['tokens_per_day']:,}"),
        "in flight": of(f"{now['in_flight']:,}", now["max_concurrent"])
                     + (f" (reserving {money(now['reserved_usd'])})" if now["reserved_usd"] else ""),
        "requests last minute": "-" if window is None and now["rate_limit"] is None
                                else of(f"{window or 0:,}", now["rate_limit"]),
        **{f"{which} tokens last minute": of(f"{now[f'{which}_tokens_last_minute']:,}",
                                             f"{now[f'{which}_tokens_per_minute']:,}")
           for which in ("input", "output") if now[f"{which}_tokens_per_minute"] is not None},
        **({"above reservation": f"{counted(now['settled_above_reservation'], 'request')} cost more than "
                                 "its check reserved (see `claude-api audit`)"}
           if now["settled_above_reservation"] else {}),
    }


_LIMIT_OPTIONS = {
    "max_cost": "max_cost_nanos",
    "rate_limit": "rate_limit",
    "timeout": "timeout",
    "monthly_budget": "monthly_budget_nanos",
    "tokens_per_day": "tokens_per_day",
    "total_budget": "total_budget_nanos",
    "max_concurrent": "max_concurrent",
    "hold": "hold",
    "daily_budget": "daily_budget_nanos",
    "weekly_budget": "weekly_budget_nanos",
    "alert_at": "alert_at",
    "input_tokens_per_minute": "input_tokens_per_minute",
    "output_tokens_per_minute": "output_tokens_per_minute",
}


@keys.command(epilog="""\b
Examples:
  claude-api keys permissions ci
  claude-api keys permissions ci --allow-tool Bash --max-cost 0.50
  claude-api keys permissions ci --clear-models --allow-model 'claude-haiku-*'
  claude-api keys permissions ci --set-profile enterprise --reset""")
@key_argument
@click.option("--set-profile", type=Profile(),
              help="Switch to this preset: its allowed tools, agents and skills; the key keeps its own "
                   "limits and blocked tools.")
@click.option("--keep-overrides", is_flag=True,
              help="With --set-profile: keep the key's own allowed tools, agents and skills too.")
@click.option("--reset", is_flag=True, help="Drop every override: follow the profile exactly.")
@click.option("--max-cost", type=Limit(Money()), help="Max cost per task in USD, unlimited, or default.")
@click.option("--rate-limit", type=Limit(Count()), help="Requests per minute, unlimited, or default.")
@click.option("--timeout", type=Limit(Seconds()), help="Seconds per task, unlimited, or default.")
@click.option("--daily-budget", type=Limit(Money()),
              help="USD per calendar day (budget time zone), unlimited, or default.")
@click.option("--weekly-budget", type=Limit(Money()),
              help="USD per calendar week from Monday (budget time zone), unlimited, or default.")
@click.option("--monthly-budget", type=Limit(Money()),
              help="USD per calendar month (budget time zone), unlimited, or default.")
@click.option("--alert-at", type=AlertAt(), metavar="PERCENTS",
              help="Alert thresholds of every budget, e.g. 75,90; none; or default (50,80,95).")
@click.option("--tokens-per-day", type=Limit(Count()),
              help="Tokens per calendar day (budget time zone), unlimited, or default.")
@click.option("--total-budget", type=Limit(Money()), help="USD over the key's whole life, unlimited, or default.")
@click.option("--max-concurrent", type=Limit(Count()), help="Requests in flight at once, unlimited, or default.")
@click.option("--hold", type=Hold(),
              help="How long an unsettled request's cost stays reserved (default 24h; at least the timeout).")
@click.option("--input-tokens-per-minute", type=Limit(Count()),
              help="Input tokens recorded (or declared in flight) in any 60 s, unlimited, or default.")
@click.option("--output-tokens-per-minute", type=Limit(Count()),
              help="Output tokens recorded in any 60 s, unlimited, or default.")
@model_options
@clear_models_option
@click.option("--allow-tool", type=NAME, multiple=True, metavar="TOOL", help="Allow a tool ('*' for all).")
@click.option("--disallow-tool", type=NAME, multiple=True, metavar="TOOL", help="Take a tool off the allowed list.")
@click.option("--block-tool", type=NAME, multiple=True, metavar="TOOL", help="Block a tool (a block always wins).")
@click.option("--unblock-tool", type=NAME, multiple=True, metavar="TOOL", help="Lift a block.")
@click.option("--allow-agent", type=NAME, multiple=True, metavar="AGENT", help="Allow an agent ('*' for all).")
@click.option("--disallow-agent", type=NAME, multiple=True, metavar="AGENT", help="Take an agent off the allowed list.")
@click.option("--allow-skill", type=NAME, multiple=True, metavar="SKILL", help="Allow a skill ('*' for all).")
@click.option("--disallow-skill", type=NAME, multiple=True, metavar="SKILL", help="Take a skill off the allowed list.")
@output_options
@click.pass_context
def permissions(ctx, key, set_profile, keep_overrides, reset, fmt, **options) -> None:
    """Show a key's effective permissions, or change them."""
    from .. import keys as lib

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
    changes.clear_models = options["clear_models"]
    for column, option in (("allowed_models", "allow_model"), ("blocked_models", "block_model")):
        if options[option]:
            changes.models[column] = list(options[option])
    if keep_overrides and not set_profile:
        raise click.UsageError("--keep-overrides only makes sense with --set-profile", ctx)
    conn = _app(ctx).reader if changes.empty() else _app(ctx).existing
    row = lib.find(conn, key)
    kept = []
    if not changes.empty():
        changed = lib.change_permissions(conn, row["id"], changes)
        row, kept = changed.row, changed.kept
    perms = lib.permissions(conn, row).as_json(row["id"])
    if set_profile and not reset and not keep_overrides:
        perms["kept"] = kept  # what the switch kept of the key's own settings
        if fmt != "json":
            click.echo(f"Switched to {set_profile}; kept the key's own "
                       f"{', '.join(k.replace('_', ' ') for k in kept) or 'nothing (it had no limits or blocks)'}"
                       " (--reset drops them).", err=True)
    from ..render import readable_permissions, record

    record(perms if fmt == "json" else readable_permissions(perms), fmt, money=MONEY)


@keys.command()
@live_key_argument
@click.option("--force", "-y", "--yes", "force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--reason", type=Text("the reason", max_len=1000), help="Why; kept with the key and shown by `keys show`.")
@click.pass_context
def revoke(ctx, key, force, reason) -> None:
    """Revoke a key at once; its secret is removed from the keyring."""
    from .. import keys as lib

    conn = _app(ctx).existing
    row = lib.find(conn, key)
    confirmed(f"Revoke key {_label(row)} of project {row['project_id']}?", force)
    done = lib.revoke(conn, row["id"], reason)
    if done.warning:
        warn(done.warning)
    if not done.changed:
        click.echo(f"Key {row['id']} was already revoked; nothing changed.", err=True)
    elif done.ended_grace:
        click.echo(f"Ended the grace period of the old key {row['id']}: it stops now. Its "
                   f"successor keeps working (revoke that one to stop them all).", err=True)
    elif done.also:
        click.echo(f"Revoked key {row['id']}, and the older secrets of its lineage still in their "
                   f"grace period: {', '.join(done.also)}.", err=True)
    else:
        click.echo(f"Revoked key {row['id']}.", err=True)


@keys.command()
@key_argument
@click.option("--reason", type=Text("the reason", max_len=1000), help="Why; shown by `keys show`.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask, when the key's rotated secrets would be suspended too.")
@click.pass_context
def disable(ctx, key, reason, yes) -> None:
    """Suspend a key: it is refused as an invalid key until `keys enable`. The current
    key suspends its whole lineage (asking first when that is more than this key); a
    retiring key (after a rotation) only itself and the older secrets. Unlike revoke,
    this can be undone."""
    from .. import keys as lib

    conn = _app(ctx).existing
    found = lib.find(conn, key)
    now = conn.now_s()
    others = [k for k in lib.disable_targets(conn, found["id"])
              if k != found["id"] and lib.status(lib.get(conn, k), now) in lib.LIVE]
    if others:  # secrets still working besides the one named: say so first
        confirmed_on_a_terminal(f"Disable key {_label(found)} and the "
                                f"{counted(len(others), 'other working secret')} of its lineage "
                                f"({', '.join(others)})?", yes)
    row, changed = lib.disable(conn, found["id"], reason)
    click.echo(f"Disabled {_listed(changed)}." if changed else f"Key {row['id']} was already disabled.",
               err=True)


@keys.command()
@key_argument
@click.pass_context
def enable(ctx, key) -> None:
    """Lift a suspension: re-enables exactly the keys that the `keys disable` which
    suspended this one did."""
    from .. import keys as lib

    conn = _app(ctx).existing
    row, changed = lib.enable(conn, lib.find(conn, key)["id"])
    click.echo(f"Enabled {_listed(changed)}." if changed else f"Key {row['id']} was not disabled.", err=True)


def _listed(ids: list) -> str:
    return f"key {ids[0]}" if len(ids) == 1 else f"{len(ids)} keys: {', '.join(ids)}"


@keys.command()
@key_argument
@click.option("--name", type=Text("the name"), help="A new name ('' for none).")
@click.option("--expires-in", type=Duration(), help="Expire this long from now, e.g. 30d.")
@click.option("--no-expiry", is_flag=True, help="Never expire.")
@click.option("--owner", type=Owner(), help="Who answers for the key ('' for none).")
@click.option("--meta", type=MetaEntry(), multiple=True, metavar="KEY=VALUE",
              help="Set a metadata entry (KEY= removes KEY); repeatable.")
@json_option
@click.pass_context
def edit(ctx, key, name, expires_in, no_expiry, owner, meta, fmt) -> None:
    """Rename a key, change when it expires (for the older secrets of its lineage too),
    or set its owner and metadata (for its whole lineage)."""
    from .. import keys as lib

    if expires_in is not None and no_expiry:
        raise click.UsageError("give --expires-in or --no-expiry, not both", ctx)
    if name is None and expires_in is None and not no_expiry and owner is None and not meta:
        raise click.UsageError("nothing to change: give --name, --expires-in, --no-expiry, --owner or --meta", ctx)
    conn = _app(ctx).existing
    row, changed = lib.edit(conn, lib.find(conn, key)["id"], name=name,
                            expires_in=lib.NO_EXPIRY if no_expiry else expires_in, owner=owner, metadata=meta)
    if fmt == "json":
        from ..render import write_json

        write_json(lib.public(row, conn.now_s()))
        return
    expiry = iso_s(row["expires_at"]) or "never"
    click.echo(f"{'Changed' if changed else 'Nothing to change for'} key {_label(row)}; it expires: {expiry}.",
               err=True)


@keys.command()
@click.argument("request_id", metavar="REQUEST_ID", type=Text("the request id", allow_empty=False))
@click.pass_context
def release(ctx, request_id) -> None:
    """End a request in flight without usage (its work failed): its place and reserved
    cost are given back at once instead of when the key's timeout passes."""
    from ..usage import release as end

    if end(_app(ctx).existing, request_id):
        click.echo(f"Released {request_id}.", err=True)
    else:
        click.echo(f"{request_id} was not in flight (already settled, released or expired); nothing "
                   "changed.", err=True)


@keys.command()
@live_key_argument
@click.option("--grace", type=Duration(), default="0s", show_default=True,
              help="How long the old secret keeps working, e.g. 1h or 7d (0s: not at all).")
@click.option("--no-keyring", is_flag=True, help="Do not store the new secret in the OS keyring.")
@click.option("-q", "--quiet", is_flag=True, help="Print the new secret only.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask when --grace is 0s (the old secret stops at once).")
@json_option
@click.pass_context
def rotate(ctx, key, grace, no_keyring, quiet, yes, fmt) -> None:
    """Replace a key's secret, keeping its project, name, profile and permissions. With
    no --grace the old secret stops at once: it asks first, unless -y."""
    from .. import keys as lib

    conn = _app(ctx).existing
    old = lib.find(conn, key)
    if grace == 0 and lib.status(old, conn.now_s()) == "active":  # (anything else is refused below)
        confirmed_on_a_terminal(f"Rotate key {_label(old)} of project {old['project_id']}, stopping its current "
                                "secret at once (--grace 1h would keep it working an hour)?", yes)
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
@live_key_argument
@click.pass_context
def reveal(ctx, key) -> None:
    """Print a key's secret, read back from the OS keyring."""
    from .. import keys as lib

    conn = _app(ctx).reader
    click.echo(lib.reveal(conn, lib.find(conn, key)))


@keys.command(epilog="""\b
Examples:
  claude-api keys verify "$KEY" --tool Bash --json
  claude-api keys verify ci --cost 0.25 --dry-run
  claude-api keys verify "$KEY" --model claude-sonnet-4-5 --max-tokens 1024
  printf %s "$KEY" | claude-api keys verify - --tool Read""")
@click.argument("key", required=False, metavar="[KEY|-]")
@click.option("--tool", type=NAME, help="The tool the request wants to use.")
@click.option("--agent", type=NAME, help="The agent the request wants to run.")
@click.option("--skill", type=NAME, help="The skill the request wants to invoke.")
@click.option("--cost", type=Cost(), help="The request's (estimated) cost in USD: reserved against the "
              "budgets until `usage record --request-id` or `keys release`.")
@click.option("--model", type=Text("the model", max_len=256, allow_empty=False), help="The model the request asks for "
              "(checked against the model lists).")
@click.option("--max-tokens", type=Count(), help="The request's max_tokens: without --cost, its worst case "
              "from the price table is reserved (needs --model).")
@click.option("--input-tokens", type=Count(), help="The request's input tokens (an estimate): priced into "
              "the worst case, counted against an input tokens-per-minute limit.")
@click.option("--dry-run", is_flag=True, help="Decide without taking a rate-limit slot or marking the key used.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON, whatever it is.")
@click.pass_context
def verify(ctx, key, tool, agent, skill, cost, model, max_tokens, input_tokens, dry_run, as_json) -> None:
    """Decide whether a request may go ahead (exit 0), or why not: 3 invalid key (401),
    4 not permitted (403), 5 rate limit or budget (429). KEY "-" reads it from stdin."""
    from .. import gate
    from ..errors import StoreError

    if max_tokens is not None and model is None:
        raise click.UsageError("--max-tokens needs --model: its price makes the request's worst case", ctx)
    if key == "-":
        key = _secret_from_stdin()
    app = _app(ctx)
    app.request_path = True  # a gateway waits a few seconds at most, then fails closed
    pricer = None
    if max_tokens is not None and cost is None:
        from .. import pricing

        pricer = pricing.Pricer(pricing.table(pricing.user_prices_path(app.db_path)))
    try:
        decision = gate.decide(app.existing, key, tool=tool, agent=agent, skill=skill,
                               cost_nanos=cost, dry_run=dry_run, model=model, max_tokens=max_tokens,
                               input_tokens=input_tokens, pricer=pricer)
    except Exception as e:
        from ..db import as_store_error

        found = as_store_error(e)
        if not isinstance(found, StoreError):
            raise
        if as_json:  # the 503 body, as for every other outcome; the reason on stderr
            import json

            click.echo(json.dumps(gate.unavailable().as_json()))
        raise found from None
    if as_json:
        import json

        click.echo(json.dumps(decision.as_json()))
    elif decision.allowed:
        held = f", request {decision.request_id}" if decision.request_id else ""
        click.echo(f"allowed: key {decision.key_id} (project {decision.project_id}{held})")
    else:
        click.echo(f"denied ({decision.status} {decision.body['error']['type']}): "
                   f"{decision.message}", err=True)
    for line in decision.warnings:
        warn(line)
    ctx.exit(decision.exit_code)


@keys.command("import")
@click.option("--project-id", required=True, type=Project(), help="The project the tokens belong to.")
@click.option("--profile", type=Profile(), default="enterprise", show_default=True, help="Permission preset.")
@click.option("--name", type=Text("the name"), help="A label for the adopted keys.")
@click.option("--from-env", type=Text("the variable name", allow_empty=False), metavar="VAR", help="Read the tokens from this environment variable "
              "(e.g. API_KEYS or AUTH_TOKEN) instead of stdin.")
@click.option("--allow-weak", is_flag=True, help="Adopt tokens shorter than 20 characters too (with a warning).")
@click.option("--owner", type=Owner(), help="Who answers for the adopted keys.")
@click.option("--meta", type=MetaEntry(), multiple=True, metavar="KEY=VALUE",
              help="A metadata entry for the adopted keys; repeatable.")
@output_options
@click.pass_context
def import_(ctx, project_id, profile, name, from_env, allow_weak, owner, meta, fmt) -> None:
    """Adopt existing plaintext tokens as keys, storing only their digests.

    Tokens are read from stdin (one per line or comma-separated, as in API_KEYS=k1,k2)
    or from an environment variable, so they never appear in the process list."""
    from .. import keys as lib

    import os

    if from_env:
        if from_env not in os.environ:
            raise click.BadParameter(f"the environment variable {from_env!r} is not set",
                                     param_hint="--from-env")
        text = os.environ[from_env]
    elif sys.stdin.isatty():  # typed or pasted: asked for one at a time, never echoed
        click.echo("Paste each token and press Enter (nothing is shown); an empty line ends.", err=True)
        text = "\n".join(iter(lambda: _hidden("token: ").strip(), ""))
    else:
        text = _stdin(MAX_IMPORT_INPUT, "one import (import the tokens in parts)")
    conn = _app(ctx).conn
    adopted, warnings = lib.import_tokens(conn, lib.split_tokens(text), project_id,
                                          profile=profile, name=name, allow_weak=allow_weak,
                                          owner=owner, metadata=_new_metadata(meta))
    for line in warnings:
        warn(line)
    now = conn.now_s()
    rows = [{**lib.public(a.row, now), "imported": a.new} for a in adopted]
    from ..render import table

    table(rows, fmt, ["id", "project_id", "profile", "hint", "imported"], headers={"project_id": "project"})
    fresh = sum(a.new for a in adopted)
    known = len(adopted) - fresh
    click.echo(f"Adopted {_count(fresh, 'token')}"
               + (f"; {_count(known, 'was', 'were')} already stored." if known else "."), err=True)


def _count(n: int, one: str, many: str | None = None) -> str:
    """`1 token`, `2 tokens`; with `many`, the verb alone agrees (`1 was`, `2 were`)."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"
