"""`claude-api audit`: the trail of every change to keys and profiles."""
from __future__ import annotations

import click

from .options import KeyRef, Project, Text, Time, limit_option, limited, output_options


@click.command(epilog="""\b
Examples:
  claude-api audit --since 7d
  claude-api audit --action revoke --project-id webshop
  claude-api audit --key laptop-key --limit 0 --json""")
@click.option("--key", "key_ref", type=KeyRef(), help="Only changes to this key.")
@click.option("--action", type=Text("the action", 64), metavar="ACTION",
              help="Only this kind of change (create, revoke, rotate, disable, enable, edit, "
                   "permissions, project, import, usage delete, …).")
@click.option("--project-id", type=Project(), help="Only changes to this project or its keys.")
@click.option("--since", type=Time(), help="From this date or time (inclusive).")
@click.option("--until", type=Time(), help="Up to this date (the whole day) or time.")
@limit_option
@output_options
@click.pass_context
def audit(ctx, key_ref, action, project_id, since, until, limit, fmt) -> None:
    """Show who changed what, and when: key creations, permission changes, revocations,
    rotations, adopted tokens and edits of the standard agents. Never a secret."""
    from .. import audit as trail
    from .. import keys
    from ..values import parse_time

    conn = ctx.find_root().obj.reader
    key_id = keys.find(conn, key_ref, "--key")["id"] if key_ref is not None else None
    rows = trail.entries(conn, key_id=key_id, since_ms=parse_time(since) if since else None,
                         until_ms=parse_time(until, end=True) if until else None, action=action,
                         project_id=project_id)
    rows = limited(rows, limit, "change", "changes")
    from ..render import table

    if fmt != "json":
        rows = [{**r, "changes": _readable(r, exact=fmt in ("csv", "tsv"))} for r in rows]
    # People read an entry's number as a row number ("entry": the first a narrow terminal leaves out).
    human = fmt not in ("json", "csv", "tsv")
    rows = [{**r, "entry": r["id"]} for r in rows] if human else rows
    table(rows, fmt, ["entry" if human else "id", "at", "actor", "action", "key_id", "changes"],
          headers={"key_id": "key", "entry": "id"}, empty=_empty(key_id, since, until, action, project_id))


def _empty(key_id, since, until, action=None, project_id=None) -> str:
    """With a filter, nothing listed says only that nothing matched it (as `keys list`);
    the key by its id, since the reference given may have been its secret."""
    given = [f"{opt} {value}" for opt, value in (("--key", key_id), ("--action", action),
                                                  ("--project-id", project_id), ("--since", since),
                                                  ("--until", until))
             if value is not None]
    return f"no change matches {' '.join(given)}" if given else "no changes recorded"


def _readable(row: dict, exact: bool = False) -> str:
    """A line per change, `field: before -> after`, in the units a person reads (USD,
    lists; long values shortened). A new key's id and creation time are the row's own.
    `exact`: money with every digit ($2.7955665), as CSV and TSV carry it; else in cents."""
    from ..audit import is_money
    from ..render import Shown, human_value
    from ..values import Usd, usd_exact

    def short(field, value) -> str:
        if exact and is_money(field) and isinstance(value, (int, float)) and not isinstance(value, bool):
            text = usd_exact(value.nanos if isinstance(value, Usd) else round(value * 1_000_000_000))
        else:
            text = str(human_value(value, money=is_money(field)))
        return text if len(text) <= 60 else text[:57] + "…"

    repeated = {"id", "created_at"} | ({"lineage"} if row["changes"].get("lineage", [0, 0])[1] == row["key_id"] else set())
    lines = [f"{k}: {short(k, b)} -> {short(k, a)}" for k, (b, a) in row["changes"].items()
             if not (row["action"] in ("create", "import") and k in repeated)]
    if row.get("project_id") is not None:  # a project's limits: which project
        lines.insert(0, f"project: {short('project_id', row['project_id'])}")
    return Shown("\n".join(lines))
