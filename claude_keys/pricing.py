"""Model prices as data, and the cost of a request from its tokens.

Prices are USD per million tokens, read from the bundled data/prices.json and then
from a user file that may override or add models: CLAUDE_API_PRICES if set, else
prices.json next to the store. They are converted once to integer nano-dollars per
token ($3/Mtok = 3000), so every cost is an exact integer. A model the table does not
know has no price: the caller records it as unpriced and says so, never as $0.

An entry may carry two more tiers, each in the same shape (USD per million tokens):
- "long_context": {"above": 200000, <rates>}: a request whose input plus cache tokens
  (reads and writes) exceed `above` is billed at these rates, all of its tokens;
- "fast": <rates, optionally with their own long_context>: fast mode (`speed: "fast"`).
A fast request of a model without fast rates has no price (unpriced, never standard).
And one more field: "regional_premium_percent": what a Bedrock regional endpoint (a
model id with a geography prefix such as `us.anthropic.…`, `eu.`, `apac.`) adds to the
token cost; the `global.` prefix and ids without a prefix pay the listed rates.

Beside the models, the table holds "_date" (the day the published prices were read)
and "web_search": {"per_1000": USD}, the price of server-side web searches
(`usage.server_tool_use.web_search_requests`), added to a request's token cost.

Where a request states its own cost (Claude Code's `costUSD`, a record's `cost_usd`,
`--cost`), the cost mode decides (COST_MODES): auto takes it and computes the others
from tokens, calculate always computes from tokens, display takes only stated costs
(the others are unpriced).
"""
from __future__ import annotations

import os
from functools import lru_cache

from .errors import InvalidInput
from .values import MAX_REQUEST_NANOS, MAX_REQUEST_USD, LazyPattern, json_value, parse_money, shown

FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
ENV_PRICES = "CLAUDE_API_PRICES"
COST_MODES = ("auto", "calculate", "display")
WEB_SEARCH = "web_search"  # the table's entry for web searches, beside the models
_SHORT = LazyPattern(r"^claude-(?:(opus|sonnet|haiku)-(\d+)(?:-(\d))?|(\d+)(?:-(\d))?-(opus|sonnet|haiku))$")
# What normalize and is_regional take off a model's name, in words (they are read with
# string methods: a regular expression would load `re`, ~6 ms of the status line's start):
# a provider prefix, Bedrock's `anthropic.` with an optional inference-profile geography
# (`us.`, `eu.`, `apac.`, `us-gov.`, `global.`), or a router's `anthropic/`; then, again
# and again, a suffix: `-v1`/`-v1:0` (Bedrock), `@20250929` (Vertex), `-20250929`, `-latest`.


def _geography(text: str) -> bool:
    """`us`, `apac`, `us-gov`: two to four ASCII lower-case letters, twice at most."""
    parts = text.split("-")
    return len(parts) <= 2 and all(2 <= len(p) <= 4 and p.isascii() and p.isalpha() and p.islower()
                                   for p in parts)


def _without_prefix(name: str) -> str:
    at = name.find("anthropic")  # (a geography has no room for it: this is the one)
    if at < 0 or name[at + 9:at + 10] not in (".", "/"):
        return name
    head = name[:at]
    if head and not (head.endswith(".") and (head == "global." or _geography(head[:-1]))):
        return name
    return name[at + 10:]


def _without_suffix(name: str) -> str:
    if name.endswith("-latest"):
        return name[:-7]
    if len(name) >= 9 and name[-9] in "-@" and name[-8:].isdecimal():
        return name[:-9]
    at = name.rfind("-v")
    if at >= 0:
        major, colon, minor = name[at + 2:].partition(":")
        if major.isdecimal() and (minor.isdecimal() if colon else True):
            return name[:at]
    return name


@lru_cache(maxsize=1024)
def normalize(model: str) -> str:
    """'anthropic/claude-sonnet-4-5-20250929' -> 'claude-sonnet-4-5'."""
    name = _without_prefix(model.strip().lower())
    while True:
        stripped = _without_suffix(name)
        if stripped == name:
            return name
        name = stripped


@lru_cache(maxsize=1024)
def canonical_model(model: str) -> str:
    """The one name reports show for a model however it was logged: its full id
    without date, version or provider prefix (`claude-sonnet-4-5`)."""
    return normalize(model) or model


@lru_cache(maxsize=1024)
def short_model(model: str) -> str:
    """A short name for human tables: 'claude-sonnet-4-5' -> 'sonnet-4.5',
    'claude-3-5-haiku' -> 'haiku-3.5'; other names as they are."""
    m = _SHORT.match(canonical_model(model))
    if m is None:
        return model
    family, major, minor = (m[1], m[2], m[3]) if m[1] else (m[6], m[4], m[5])
    return f"{family}-{major}" + (f".{minor}" if minor else "")


def is_regional(model: str) -> bool:
    """A Bedrock regional endpoint's id (`us.anthropic.…`, `eu.`, `apac.`, …; not `global.`)."""
    geography, dot, rest = model.strip().lower().partition(".")
    return bool(dot) and rest.startswith("anthropic.") and _geography(geography)


def _per_token_nanos(entry: dict, where: str, model: str) -> tuple[int, ...]:
    missing = [f for f in FIELDS if f not in entry]
    if missing:
        raise InvalidInput(f"{where}: model {model!r} lacks {', '.join(missing)}")
    # parse_money gives nanos per *million* tokens for a $/Mtok price; per token that
    # is /1e6, exact for any price with at most three decimals.
    out = []
    for f in FIELDS:
        try:
            per_million = parse_money(entry[f])
        except InvalidInput as e:
            raise InvalidInput(f"{where}: {model} {f}: {e}") from None
        if per_million % 1_000_000:
            raise InvalidInput(f"{where}: {model} {f} price {entry[f]} has more than 3 decimals")
        out.append(per_million // 1_000_000)
    return tuple(out)


def _rates(entry, where: str, model: str, fast_allowed: bool = True) -> tuple:
    """An entry as (rates, long-context threshold or None, long-context rates, fast
    tier or None); the fast tier has the same shape."""
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where}: prices of {model!r} must be an object")
    allowed = set(FIELDS) | {"long_context"} | ({"fast", "regional_premium_percent"} if fast_allowed else set())
    unknown = [k for k in entry if k not in allowed and not k.startswith("_")]
    if unknown:
        raise InvalidInput(f"{where}: {model}: unknown price field(s) {', '.join(sorted(unknown))}")
    base = _per_token_nanos(entry, where, model)
    above, long = None, None
    if "long_context" in entry:
        tier = entry["long_context"]
        if not isinstance(tier, dict) or type(tier.get("above")) is not int or tier["above"] < 0:
            raise InvalidInput(f"{where}: {model} long_context needs \"above\": a whole number of "
                               "tokens, and the rates")
        unknown = [k for k in tier if k not in FIELDS and k != "above" and not k.startswith("_")]
        if unknown:
            raise InvalidInput(f"{where}: {model} long_context: unknown price field(s) "
                               f"{', '.join(sorted(unknown))}")
        above, long = tier["above"], _per_token_nanos(tier, where, f"{model} long_context")
    fast = _rates(entry["fast"], where, f"{model} fast", False) if "fast" in entry else None
    premium = entry.get("regional_premium_percent", 0)
    if type(premium) is not int or not 0 <= premium <= 100:
        raise InvalidInput(f"{where}: {model} regional_premium_percent must be a whole number from 0 to 100")
    return base, above, long, fast, premium


class Prices(dict):
    """Normalized model name -> its tiers (see _rates), with what the table says beside
    the models: the date its prices were published, the price of a web search, the
    files read, and the cost mode its Pricer applies."""

    date: str | None = None
    web_search_nanos: int = 0  # per search
    sources: tuple = ()
    cost_mode: str = "auto"

    def with_mode(self, mode: str) -> "Prices":
        if mode not in COST_MODES:
            raise InvalidInput(f"unknown cost mode {shown(mode)}: use {', '.join(COST_MODES)}")
        copy = Prices(self)
        copy.__dict__.update(self.__dict__)
        copy.cost_mode = mode
        return copy


def _web_search(entry, where: str) -> int:
    if not isinstance(entry, dict) or set(entry) - {"per_1000"} - {k for k in entry if k.startswith("_")} \
            or "per_1000" not in entry:
        raise InvalidInput(f'{where}: web_search must be {{"per_1000": USD}}')
    try:
        per_thousand = parse_money(entry["per_1000"])
    except InvalidInput as e:
        raise InvalidInput(f"{where}: web_search per_1000: {e}") from None
    if per_thousand % 1000:
        raise InvalidInput(f"{where}: web_search per_1000 has more than 6 decimals")
    return per_thousand // 1000


def user_prices_path(store: str | None = None) -> str | None:
    """CLAUDE_API_PRICES, else prices.json next to a SQLite store, else (a PostgreSQL
    store has no folder) prices.json in the claude-api folder of the user config dir."""
    if os.environ.get(ENV_PRICES):
        return os.environ[ENV_PRICES]
    if not store:
        return None
    from .db import app_dir, local_folder

    folder = local_folder(store)
    if folder is None:
        folder = app_dir()
    return os.path.join(folder, "prices.json")


BUNDLED = os.path.join(os.path.dirname(__file__), "data", "prices.json")


@lru_cache(maxsize=8)
def table(user_path: str | None = None) -> Prices:
    """Normalized model name -> nano-dollars per token for FIELDS, in that order (and
    the other tiers): the bundled table, then the user's file over it."""
    prices = Prices()
    sources = [BUNDLED] + ([user_path] if user_path and os.path.exists(user_path) else [])
    prices.sources = tuple(sources)
    for path in sources:
        try:
            with open(path, encoding="utf-8") as f:
                data = json_value(f.read())
        except (OSError, ValueError) as e:
            raise InvalidInput(f"cannot read prices from {path}: {e}") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path}: expected an object of model -> prices")
        if isinstance(data.get("_date"), str):
            prices.date = data["_date"]
        for model, entry in data.items():
            if model.startswith("_"):
                continue
            if model == WEB_SEARCH:
                prices.web_search_nanos = _web_search(entry, path)
                continue
            prices[normalize(model)] = _rates(entry, path, model)
    return prices


class Pricer:
    """The exact cost of requests in nano-dollars (None for a model the table does not
    know, or a fast request of a model without fast rates), each model's rates looked
    up once: imports and the request path price the same few models over and over."""

    def __init__(self, prices: dict | None = None):
        self.prices = prices if prices is not None else table()
        self.mode = getattr(self.prices, "cost_mode", "auto")
        self.web_search = getattr(self.prices, "web_search_nanos", 0)
        self.rates: dict = {}

    def cost(self, given: int | None, model: str, inp: int, out: int, read: int, w5: int, w1: int,
             fast: bool = False, web_searches: int = 0) -> int | None:
        """A request's cost by the cost mode: `given` is the cost it states (None: none)."""
        if self.mode == "display" or (self.mode == "auto" and given is not None):
            return given
        return self(model, inp, out, read, w5, w1, fast, web_searches)

    def __call__(self, model: str, inp: int, out: int, read: int, w5: int, w1: int,
                 fast: bool = False, web_searches: int = 0) -> int | None:
        try:
            tiers, premium = self.rates[model]
        except KeyError:
            tiers = self.prices.get(normalize(model)) if model else None
            premium = tiers[4] if tiers is not None and is_regional(model) else 0
            self.rates[model] = tiers, premium
        if tiers is not None and fast:
            tiers = tiers[3]
        if tiers is None:
            return None
        rates, above, long = tiers[0], tiers[1], tiers[2]
        if above is not None and inp + read + w5 + w1 > above:
            rates = long  # the whole request, once its input passes the threshold
        cost = inp * rates[0] + out * rates[1] + read * rates[2] + w5 * rates[3] + w1 * rates[4]
        if premium:  # a regional endpoint: to the nearest nano-dollar (exact for listed rates)
            cost = (cost * (100 + premium) + 50) // 100
        cost += web_searches * self.web_search
        if cost > MAX_REQUEST_NANOS:
            raise InvalidInput(f"the tokens cost more than ${MAX_REQUEST_USD:,}: not one request's")
        return cost


SPEEDS = ("standard", "fast")


def is_fast(speed) -> bool:
    """A request's speed as given (None or "standard": False, "fast": True)."""
    if speed is None or speed == "standard":
        return False
    if speed == "fast":
        return True
    raise InvalidInput(f"speed must be standard or fast, not {shown(speed)}")
