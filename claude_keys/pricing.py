"""Model prices as data, and the cost of a request from its tokens.

Prices are USD per million tokens, read from the bundled data/prices.json and then
from a user file that may override or add models: CLAUDE_API_PRICES if set, else
prices.json next to the store. They are converted once to integer nano-dollars per
token ($3/Mtok = 3000), so every cost is an exact integer. A model the table does not
know has no price: the caller records it as unpriced and says so, never as $0.
"""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache

from .errors import InvalidInput
from .values import MAX_REQUEST_NANOS, MAX_REQUEST_USD, parse_money

FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
ENV_PRICES = "CLAUDE_API_PRICES"
_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic[./])")
_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|@\d{8}|-\d{8}|-latest)$")


@lru_cache(maxsize=1024)
def normalize(model: str) -> str:
    """'anthropic/claude-sonnet-4-5-20250929' -> 'claude-sonnet-4-5'."""
    name = model.strip().lower()
    name = _PREFIX.sub("", name)
    while True:
        stripped = _SUFFIX.sub("", name)
        if stripped == name:
            return name
        name = stripped


def _per_token_nanos(entry: dict, where: str, model: str) -> tuple[int, ...]:
    missing = [f for f in FIELDS if f not in entry]
    if missing:
        raise InvalidInput(f"{where}: model {model!r} lacks {', '.join(missing)}")
    # parse_money gives nanos per *million* tokens for a $/Mtok price; per token that
    # is /1e6, exact for any price with at most three decimals.
    out = []
    for f in FIELDS:
        per_million = parse_money(entry[f])
        if per_million % 1_000_000:
            raise InvalidInput(f"{where}: {model} {f} price {entry[f]} has more than 3 decimals")
        out.append(per_million // 1_000_000)
    return tuple(out)


def user_prices_path(store: str | None = None) -> str | None:
    """CLAUDE_API_PRICES, else prices.json next to a SQLite store, else (a PostgreSQL
    store has no folder) prices.json in the claude-api folder of the user config dir."""
    if os.environ.get(ENV_PRICES):
        return os.environ[ENV_PRICES]
    if not store:
        return None
    from .store import is_postgres

    if is_postgres(store):
        import click

        return os.path.join(click.get_app_dir("claude-api"), "prices.json")
    return os.path.join(os.path.dirname(os.path.abspath(store)), "prices.json")


@lru_cache(maxsize=8)
def table(user_path: str | None = None) -> dict[str, tuple[int, ...]]:
    """Normalized model name -> nano-dollars per token for FIELDS, in that order."""
    bundled = os.path.join(os.path.dirname(__file__), "data", "prices.json")
    prices = {}
    sources = [bundled] + ([user_path] if user_path and os.path.exists(user_path) else [])
    for path in sources:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise InvalidInput(f"cannot read prices from {path}: {e}") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path}: expected an object of model -> prices")
        for model, entry in data.items():
            if model.startswith("_"):
                continue
            if not isinstance(entry, dict):
                raise InvalidInput(f"{path}: prices of {model!r} must be an object")
            prices[normalize(model)] = _per_token_nanos(entry, path, model)
    return prices


class Pricer:
    """The exact cost of requests in nano-dollars (None for a model the table does not
    know), each model's rates looked up once: imports and the request path price
    the same few models over and over."""

    def __init__(self, prices: dict | None = None):
        self.prices = prices if prices is not None else table()
        self.rates: dict = {}

    def __call__(self, model: str, inp: int, out: int, read: int, w5: int, w1: int) -> int | None:
        try:
            rates = self.rates[model]
        except KeyError:
            rates = self.rates[model] = self.prices.get(normalize(model)) if model else None
        if rates is None:
            return None
        cost = inp * rates[0] + out * rates[1] + read * rates[2] + w5 * rates[3] + w1 * rates[4]
        if cost > MAX_REQUEST_NANOS:
            raise InvalidInput(f"the tokens cost more than ${MAX_REQUEST_USD:,}: not one request's")
        return cost
