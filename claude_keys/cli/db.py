"""`claude-api db …`: where the store is, whether it is sound, a safe copy, and moving it
between backends."""
from __future__ import annotations

import os

import sys

import click

from .. import db as store
from ..errors import StoreDamaged, StoreError
from .options import FilePath, json_option, output_options


def _app(ctx):
    return ctx.find_root().obj


@click.group()
def db() -> None:
    """Inspect, check, back up and copy the store (SQLite or PostgreSQL)."""


@db.command()
@click.pass_context
def path(ctx) -> None:
    """Print where the store is: a file (it need not exist yet) or a PostgreSQL URI
    (its password masked)."""
    click.echo(store.display(_app(ctx).target))


@db.command()
@json_option
@click.pass_context
def check(ctx, fmt) -> None:
    """Check the store: SQLite's integrity check of every page (on SQLite), that every
    roll-up agrees with the recorded requests and every rate window with its slots, and
    the schema version (exit 1 if anything is wrong, a damaged store included)."""
    app = _app(ctx)
    target = app.target
    result = {"path": store.display(target),
              "backend": store.backend_name(target)}
    try:
        result.update(_examine(app.reader))
    except Exception as e:  # damage is the answer, reported like any other problem
        found = store.as_store_error(e)
        if not isinstance(found, StoreDamaged):
            raise  # no store, no server, no permission: one line, exit 1
        result.update({"integrity": [str(found)], "ok": False})
    from ..render import record, write_json

    if fmt == "json":
        write_json(result)
    else:
        shown = dict(result)
        if isinstance(shown.get("migrations"), list):
            shown["migrations"] = ", ".join(shown["migrations"])
        if isinstance(shown["integrity"], list):
            shown["integrity"] = "; ".join(shown["integrity"])
        record(shown, "table")
    if not result["ok"]:
        ctx.exit(1)


def _examine(conn) -> dict:
    """What `db check` finds in an open store. A damaged SQLite file's pages answer
    with errors, which the caller reports as the damage."""
    from ..db import transfer

    problems = conn.integrity_problems()
    if not problems:  # a damaged file cannot be trusted to sum itself
        problems += transfer.disagreements(conn)
    found = {
        **conn.details(),
        "integrity": problems or "ok",
        **store.schema_status(conn),
    }
    found["ok"] = not problems and found["schema_version"] == found["expected_version"] == len(
        found["migrations"])
    return found


@db.command()
@click.argument("file", type=FilePath(dir_okay=False, writable=True))
@click.pass_context
def backup(ctx, file) -> None:
    """Copy the store to a new SQLite FILE, consistent even while others write (SQLite's
    online backup; from PostgreSQL, a snapshot copied table by table)."""
    app = _app(ctx)
    target_path = os.path.abspath(file)
    if store.same_store(app.target, target_path):
        raise StoreError("the backup file must not be the store itself")
    if os.path.islink(target_path):
        raise StoreError(f"{file} is a symbolic link; a backup is only written to a new file")
    if os.path.lexists(target_path):
        raise StoreError(f"{file} already exists; choose a new file name")
    if not os.path.isdir(os.path.dirname(target_path)):
        raise StoreError(f"the folder of {file} does not exist")
    from ..db.transfer import backup as copy_to

    copy_to(app.reader, target_path, app.target)
    click.echo(f"Backed up the store to {target_path}.", err=True)


@db.command()
@click.argument("source", type=FilePath(dir_okay=False))
@click.argument("destination", type=FilePath(dir_okay=False))
@json_option
def copy(source, destination, fmt) -> None:
    """Copy the whole store SOURCE into DESTINATION (each a SQLite file or a PostgreSQL
    URI): keys, permissions, settings, audit, usage, roll-ups and rate windows, from one
    consistent moment of SOURCE, even while it is in use. DESTINATION must be new or
    empty; SOURCE is not changed.

    \b
    claude-api db copy ~/.config/claude-api/keys.db postgresql://claude@db.internal/claude
    claude-api db copy postgresql://claude@db.internal/claude local-copy.db"""
    from ..db import display
    from ..db.transfer import copy_store

    if fmt != "json" and sys.stderr.isatty() and store.local_folder(destination) is None:
        # A person copying onto a database server: say what is about to happen (it can take a while).
        click.echo(f"Copying {display(source)} into the store on a database server {display(destination)} "
                   "(it must be new or empty; the source is not changed)…", err=True)
    done = copy_store(source, destination)
    if fmt == "json":
        from ..render import write_json

        write_json(done.as_json())
        return
    parts = ", ".join(f"{n:,} {table}" for table, n in done.rows.items() if n)
    click.echo(f"Copied {done.source} to {done.destination}: {parts or 'an empty store'}.", err=True)


@db.command(epilog="""\b
Examples:
  claude-api db settings
  claude-api db settings budget-tz Europe/Berlin
  claude-api db settings expiry-warning 3d""")
@click.argument("name", required=False, metavar="[NAME")
@click.argument("value", required=False, metavar="[VALUE]]")
@output_options
@click.pass_context
def settings(ctx, name, value, fmt) -> None:
    """Show the store's settings, one of them, or set one: budget-tz (the time zone of
    daily, weekly and monthly budgets; default UTC) and expiry-warning (how long before
    a key expires `alerts` warns; default 7d). Changes are audited."""
    from .. import settings as lib
    from ..render import record, table

    app = _app(ctx)
    if value is not None:
        lib.change(app.conn, name, value)
    conn = app.reader
    rows = lib.listing(conn)
    if name is not None:
        lib.get(conn, name)  # an unknown name fails here, with the names it could be
        wanted = name.strip().lower().replace("_", "-")
        row = next(r for r in rows if r["name"] == wanted)
        if fmt == "json":
            record(row, fmt)
        elif value is None:
            click.echo(row["value"])
        else:
            click.echo(f"{row['name']} is now {row['value']}", err=True)
        return
    table(rows, fmt, ["name", "value", "default", "description"], empty="no settings")
