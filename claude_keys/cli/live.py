"""The live view of `usage blocks --live` and `usage watch`: a screen redrawn every
`--interval` seconds, each time after importing what Claude Code appended to its logs
(claude_keys/watch.py says what is shown; this module draws it).

On a terminal it is a rich Live screen on the alternate screen, like `top`: Ctrl-C (or
SIGTERM) leaves it, the terminal as it was, the cursor shown, exit 0. Off a terminal
(a pipe, a file, cron) it prints one snapshot as plain text and exits.
"""
from __future__ import annotations

import signal
import sys
import time
from datetime import datetime

import click

BAR_WIDTH = 30


def run(app, *, interval: float, project_id=None, key_id=None, token_limit=None,
        cost_limit_nanos=None, refresh: bool = True) -> None:
    from .. import watch
    from ..values import now_ms

    conn = app.conn
    zone = watch.local_zone()

    def tick() -> list[str]:
        note = _import(conn, app.db_path) if refresh else None
        found = watch.snapshot(conn, now_ms(), project_id=project_id, key_id=key_id,
                               token_limit=token_limit, cost_limit_nanos=cost_limit_nanos)
        return screen(found, note, zone=zone, interval=interval, live=live)

    live = sys.stdout.isatty()
    if not live:
        click.echo("\n".join(tick()))
        return
    from rich.live import Live
    from rich.text import Text

    from ..render import console

    out = console()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` leaves the screen as Ctrl-C does
    try:
        with Live(Text("Reading…"), console=out, screen=True, auto_refresh=False,
                  redirect_stdout=False, redirect_stderr=False) as shown:
            while True:
                shown.update(Text("\n".join(tick()), no_wrap=True, overflow="ellipsis"), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        pass  # Live has left the alternate screen and shown the cursor again
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _import(conn, db_path: str) -> str | None:
    """Import new log lines; a line saying what came in, or why nothing could."""
    from .. import watch
    from ..errors import ClaudeKeysError
    from ..importers import ImportInterrupted

    try:
        got = watch.refresh_logs(conn, db_path)
    except ImportInterrupted:
        raise KeyboardInterrupt from None  # Ctrl-C during an import: leave, as anywhere else
    except ClaudeKeysError as e:  # busy, say: shown, and the next refresh tries again
        return f"Could not import the logs this time: {e}"
    if not got["folders"]:
        return "No Claude Code logs found (CLAUDE_CONFIG_DIR, ~/.claude): showing the store."
    if got["new"]:
        return f"Imported {got['new']:,} new request{'s' if got['new'] != 1 else ''}."
    return None


def screen(found: dict, note: str | None, *, zone, interval: float, live: bool) -> list[str]:
    """The view as lines of plain text (bars drawn only on a terminal)."""
    from ..render import shown_text
    from ..values import usd_text
    from ..watch import fraction, tokens

    now = found["now_ms"]
    when = _clock(now, zone, seconds=True)
    title = f"Usage, refreshed every {interval:g} s (Ctrl-C to quit)" if live else "Usage"
    lines = [f"{title}   {when}", ""]
    block = found["block"]
    if block is None:
        last = found["last_end_ms"]
        lines.append("No active 5-hour block" + (f": the last one ended at {_clock(last, zone)}." if last
                                                  else ": no usage yet."))
    else:
        counters = block["counters"]
        used_tokens, cost = tokens(counters), counters[5] or 0
        end = block["end_ms"]
        lines.append(f"Active block {_clock(block['start_ms'], zone)} to {_clock(end, zone)}, "
                     f"{_duration(end - now)} left")
        rate = block.get("cost_nanos_per_hour")
        projected_cost = block.get("projected_cost_nanos")
        projected_tokens = block.get("projected_tokens")
        lines.append(f"  cost        {usd_text(cost):>14}" +
                     (f"   projected {usd_text(projected_cost)} at the block's end" if projected_cost is not None else ""))
        lines.append(f"  tokens      {used_tokens:>14,}" +
                     (f"   projected {projected_tokens:,}" if projected_tokens is not None else ""))
        if rate is not None:
            lines.append(f"  burn rate   {usd_text(round(rate)) + '/h':>14}   "
                         f"{round(block['tokens_per_minute']):,} tokens/min")
        else:
            lines.append("  burn rate   " + "-".rjust(14) + "   (one request so far)")
        lines.append(f"  requests    {counters[0]:>14,}")
        limit = found["token_limit"]
        if limit:
            lines.append(_gauge("tokens", used_tokens, limit, projected_tokens, f"{limit:,} tokens", live))
        if found["cost_limit_nanos"]:
            lines.append(_gauge("cost", cost, found["cost_limit_nanos"], projected_cost,
                                usd_text(found["cost_limit_nanos"]), live))
    budgets = found["budgets"]
    if budgets:
        lines += ["", "Budgets closest to their limits"]
        for b in budgets:
            who = (f"key {shown_text(b['name'] or b['id'])} ({shown_text(b['project_id'])})"
                   if b["scope"] == "key" else f"project {shown_text(b['id'])}")
            share = fraction(b["used_nanos"], b["limit_nanos"])
            lines.append(f"  {who}, {b['period']}: {usd_text(b['used_nanos'])} of {usd_text(b['limit_nanos'])}"
                         f" ({_percent(share)})")
    if note:
        lines += ["", note]
    return lines


def _gauge(what: str, used: int, limit: int, projected, limit_text: str, live: bool) -> str:
    from ..render import bar

    share = used / limit
    drawn = ""
    if live:
        filled = bar(share, BAR_WIDTH)
        drawn = "[" + filled + " " * (BAR_WIDTH - len(filled)) + "] "
    text = f"  {what:<11} {drawn}{_percent(share)} of {limit_text}"
    if projected is not None:
        text += f", projected {_percent(projected / limit)}"
    return text + (" (over the limit)" if used > limit else "")


def _percent(share: float) -> str:
    return "over 999%" if share > 9.99 else f"{share * 100:.0f}%"


def _clock(ms: int, zone, seconds: bool = False) -> str:
    moment = datetime.fromtimestamp(ms / 1000, zone)
    today = datetime.now(zone).date()
    shown = moment.strftime("%H:%M:%S" if seconds else "%H:%M")
    return shown if moment.date() == today else moment.strftime("%Y-%m-%d ") + shown


def _duration(ms: int) -> str:
    from ..statusline import duration_text

    return duration_text(ms)
