"""`claude-api db …`: where the store is, whether it is sound, and a safe copy."""
from __future__ import annotations

import os
import sqlite3

import click

from .. import store
from ..errors import StoreError
from .options import FilePath, json_option


def _app(ctx):
    return ctx.find_root().obj


@click.group()
def db() -> None:
    """Inspect, check and back up the store."""


@db.command()
@click.pass_context
def path(ctx) -> None:
    """Print the path of the store (it need not exist yet)."""
    click.echo(os.path.abspath(store.resolve_path(_app(ctx).db)))


@db.command()
@json_option
@click.pass_context
def check(ctx, fmt) -> None:
    """Check the store's integrity and schema version (exit 1 if anything is wrong)."""
    conn = _app(ctx).conn
    problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    result = {
        "path": os.path.abspath(store.resolve_path(_app(ctx).db)),
        "integrity": "ok" if problems == ["ok"] else problems,
        **store.schema_status(conn),
    }
    ok = problems == ["ok"] and result["schema_version"] == result["expected_version"] == len(
        result["migrations"])
    result["ok"] = ok
    from ..render import record, write_json

    if fmt == "json":
        write_json(result)
    else:
        record({**result, "migrations": ", ".join(result["migrations"])}, "table")
    if not ok:
        ctx.exit(1)


@db.command()
@click.argument("file", type=FilePath(dir_okay=False, writable=True))
@click.pass_context
def backup(ctx, file) -> None:
    """Copy the store to FILE with SQLite's online backup (safe while others write)."""
    conn = _app(ctx).conn
    target_path = os.path.abspath(file)
    if target_path == os.path.abspath(store.resolve_path(_app(ctx).db)):
        raise StoreError("the backup file must not be the store itself")
    if os.path.exists(target_path):
        raise StoreError(f"{file} already exists; choose a new file name")
    if not os.path.isdir(os.path.dirname(target_path)):
        raise StoreError(f"the folder of {file} does not exist")
    store.create_private_file(target_path)
    try:
        target = sqlite3.connect(target_path)
        try:
            conn.backup(target)
        finally:
            target.close()
    except BaseException:
        os.unlink(target_path)
        raise
    click.echo(f"Backed up the store to {target_path}.", err=True)
