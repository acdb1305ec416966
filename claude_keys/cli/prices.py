"""`claude-api prices`: the price table costs are computed from, its date, and where the
user's override file is (and whether it exists)."""
from __future__ import annotations

import os

import click

from .options import output_options

HEADERS = {"cache_read": "cache read", "cache_write_5m": "5m write", "cache_write_1h": "1h write"}


@click.command(epilog="""\b
Examples:
  claude-api prices
  claude-api prices --json""")
@output_options
@click.pass_context
def prices(ctx, fmt) -> None:
    """The price table (USD per million tokens), its date, and the override file."""
    from .. import pricing
    from ..values import Usd

    override = pricing.user_prices_path(ctx.find_root().obj.db_path)
    found = pricing.table(override)
    models = [_model(name, tiers) for name, tiers in sorted(found.items())]
    answer = {
        "date": found.date,
        "bundled": pricing.BUNDLED,
        "override": {"path": override, "exists": bool(override) and os.path.exists(override)},
        "web_search_usd_per_1000": Usd(found.web_search_nanos * 1000),
        "models": models,
    }
    if fmt == "json":
        from ..render import write_json

        write_json(answer)
        return
    from ..render import table

    rows = [{**{k: m[k] for k in ("model", *pricing.FIELDS)}, "tiers": _tiers(m)} for m in models]
    table(rows, fmt, ["model", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "tiers"],
          headers=HEADERS, money=pricing.FIELDS)
    if fmt in ("csv", "tsv"):
        return
    where = override or "(none)"
    state = "in use" if answer["override"]["exists"] else "not present"
    from ..values import usd_text

    click.echo(f"\nUSD per million tokens, as published on {found.date or '(no date)'}; web search "
               f"{usd_text(found.web_search_nanos * 1000)} per 1,000.\nOverride file: {where} ({state}).")


def _rates(nanos_per_token) -> dict:
    from ..pricing import FIELDS
    from ..values import Usd

    return {f: Usd(n * 1_000_000) for f, n in zip(FIELDS, nanos_per_token)}


def _tier(tiers) -> dict:
    rates, above, long = tiers[0], tiers[1], tiers[2]
    out = _rates(rates)
    out["long_context"] = None if above is None else {"above": above, **_rates(long)}
    return out


def _model(name: str, tiers) -> dict:
    return {"model": name, **_tier(tiers), "fast": None if tiers[3] is None else _tier(tiers[3]),
            "regional_premium_percent": tiers[4]}


def _tiers(m: dict) -> str:
    """The tiers beyond the base rates, in a few words."""
    from ..values import usd_text

    def pair(rates):
        return f"{usd_text(rates['input'].nanos)}/{usd_text(rates['output'].nanos)}"

    words = []
    if m["long_context"]:
        words.append(f"over {m['long_context']['above']:,}: {pair(m['long_context'])}")
    if m["fast"]:
        words.append(f"fast: {pair(m['fast'])}")
        if m["fast"]["long_context"]:
            words.append(f"fast over {m['fast']['long_context']['above']:,}: {pair(m['fast']['long_context'])}")
    if m["regional_premium_percent"]:
        words.append(f"Bedrock regional +{m['regional_premium_percent']}%")
    return "; ".join(words)
