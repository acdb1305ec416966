"""`claude-api usage …`: record usage, import it, and report it."""
from __future__ import annotations

import click

from .. import usage as lib
from . import warn
from .options import Count, KeyRef, Money, Time, json_option


def _app(ctx):
    return ctx.find_root().obj


@click.group()
def usage() -> None:
    """Record, import, export and report usage and spend."""


@usage.command()
@click.option("--key", "key_ref", required=True, type=KeyRef(), help="The key that made the request.")
@click.option("--input-tokens", type=Count(), default=0)
@click.option("--output-tokens", type=Count(), default=0)
@click.option("--cache-read-tokens", type=Count(), default=0)
@click.option("--cache-write-tokens", type=Count(), default=0, help="5-minute cache writes.")
@click.option("--cache-write-1h-tokens", type=Count(), default=0, help="1-hour cache writes.")
@click.option("--model", help="The model, to price the request (e.g. claude-sonnet-4-5).")
@click.option("--cost", type=Money(), help="The cost in USD (otherwise computed from the price table).")
@click.option("--at", type=Time(), help="When (ISO-8601; default now).")
@click.option("--request-id", help="A unique id: recording the same id again changes nothing.")
@json_option
@click.pass_context
def record(ctx, key_ref, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
           cache_write_1h_tokens, model, cost, at, request_id, fmt) -> None:
    """Record the usage of one request."""
    from .. import keys, pricing
    from ..values import parse_time

    app = _app(ctx)
    row = keys.find(app.conn, key_ref)
    tokens = {"input_tokens": input_tokens, "output_tokens": output_tokens,
              "cache_read_tokens": cache_read_tokens, "cache_write_5m_tokens": cache_write_tokens,
              "cache_write_1h_tokens": cache_write_1h_tokens}
    prices = pricing.table(pricing.user_prices_path(app.db_path))
    done = lib.record(app.conn, row["id"], row["project_id"], model=model, tokens=tokens,
                      cost_nanos=cost, request_id=request_id,
                      at_ms=None if at is None else parse_time(at), prices=prices)
    if not done.priced:
        warn(f"the model {model or '(none)'!r} is not in the price table: recorded at $0 and "
             "marked unpriced (pass --cost, or add the model to a prices.json)")
    if fmt == "json":
        from ..render import write_json

        write_json({"recorded": done.recorded, "request_id": done.request_id, "key_id": row["id"],
                    "project_id": row["project_id"], "cost_usd": done.cost_usd, "priced": done.priced})
    elif done.recorded:
        click.echo(f"Recorded {done.request_id} for key {row['id']}: {_usd(done.cost_nanos)}.", err=True)
    else:
        click.echo(f"Request {done.request_id} was already recorded; nothing changed.", err=True)


def _usd(nanos):
    from ..values import usd_text

    return usd_text(nanos)
