"""`claude-api alerts`: budgets past their thresholds and keys about to expire, for a
person or for cron (exit 1 when anything is crossed), and `--notify CMD` to tell
someone once per alert and period (claude_keys/alerts.py)."""
from __future__ import annotations

import click

from .options import Seconds, Text, output_options

MONEY = ("spent_usd", "reserved_usd", "limit_usd")
HEADERS = {"key_id": "key", "project_id": "project", "threshold": "at %", "percent": "%",
           "spent_usd": "spent", "reserved_usd": "reserved", "limit_usd": "limit", "period_end": "period end"}


@click.command(epilog="""\b
Examples:
  claude-api alerts
  claude-api alerts --json
  claude-api alerts --notify 'mail -s "claude-api alert" ops@example.com'
  */10 * * * * claude-api alerts --notify /usr/local/bin/page-ops   (crontab)""")
@click.option("--notify", "command", type=Text("the command", max_len=4000), metavar="CMD",
              help="Run CMD (through the shell) once per alert and period, the alert's JSON on its stdin; "
                   "a failed CMD is tried again on the next run.")
@click.option("--timeout", "timeout_s", type=Seconds(), default="60", show_default=True,
              help="With --notify: seconds CMD may take before it counts as failed.")
@output_options
@click.pass_context
def alerts(ctx, command, timeout_s, fmt) -> None:
    """List budgets past an alert threshold and keys about to expire; exit 1 when there
    is any (for cron), 0 when there is none."""
    from .. import alerts as lib
    from ..render import print_message, table

    app = ctx.find_root().obj
    conn = app.reader
    found = lib.crossed(conn)
    if command is not None and found:
        results = lib.notify(app.existing, found, command, timeout_s=float(timeout_s or 60))
        for alert, result in zip(found, results):
            alert["notice"] = result["result"]
            if result["error"]:
                print_message(f"alert {alert['alert']}: {result['error']}; it will be tried again on the next run")
    columns = list(lib.FIELDS) + (["notice"] if command is not None else [])
    if fmt == "json":
        from ..render import write_json

        write_json([{k: a.get(k) for k in columns + ["alert", "period"]} for a in found])
    else:
        table([{k: a.get(k) for k in columns} for a in found], fmt, columns, headers=HEADERS, money=MONEY,
              optional=["period_start", "reserved_usd", "project_id", "threshold"],
              empty="no alerts: no budget has reached a threshold and no key expires soon")
    ctx.exit(1 if found else 0)
