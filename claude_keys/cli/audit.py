"""`claude-api audit`: the trail of every change to keys and profiles."""
from __future__ import annotations

import click

from .options import KeyRef, Time, output_options


@click.command()
@click.option("--key", "key_ref", type=KeyRef(), help="Only changes to this key.")
@click.option("--since", type=Time(), help="From this date or time (inclusive).")
@click.option("--until", type=Time(), help="Up to this date (the whole day) or time.")
@output_options
@click.pass_context
def audit(ctx, key_ref, since, until, fmt) -> None:
    """Show who changed what, and when: key creations, permission changes, revocations,
    rotations, adopted tokens and edits of the standard agents. Never a secret."""
    from .. import audit as trail
    from .. import keys
    from ..values import parse_time

    conn = ctx.find_root().obj.conn
    key_id = keys.find(conn, key_ref)["id"] if key_ref is not None else None
    rows = trail.entries(conn, key_id=key_id, since_ms=parse_time(since) if since else None,
                         until_ms=parse_time(until, end=True) if until else None)
    from ..render import table

    if fmt != "json":
        rows = [{**r, "changes": _readable(r["changes"])} for r in rows]
    table(rows, fmt, ["id", "at", "actor", "action", "key_id", "changes"],
          headers={"key_id": "key"}, empty="no changes recorded")


def _readable(changes: dict) -> str:
    """field: before -> after; … (long values shortened)."""
    def short(value) -> str:
        text = "-" if value is None else str(value)
        return text if len(text) <= 60 else text[:57] + "…"

    return "; ".join(f"{k}: {short(b)} -> {short(a)}" for k, (b, a) in changes.items())
