"""How one request is decided: authenticate, authorize, budget, rate limit.

The order is the contract's: authenticate (401) -> blocked tools, then allowed tools,
agents and skills (403) -> cost against the max cost per task (403) -> monthly budget
and tokens per day (429) -> rate limit (429). A dry run decides without taking a
rate-limit slot or touching last_used_at.

Rate limits are a sliding log of the last minute's requests in the store, shared by
every process and host. Taking a slot is one serialized step (count, insert, prune):
a BEGIN IMMEDIATE transaction on SQLite, whose write lock makes admission exact; on
PostgreSQL one call of claude_take_slot (one round trip), which locks the lineage's
window row and reads the server's clock, so hosts whose clocks disagree share one
window. With limit N, never N+1 in any 60 s. Slots and budgets belong to the key's
lineage, so rotating a key neither doubles its rate nor resets its spend.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import profiles
from . import secret as fmt
from .errors import InvalidInput
from .store import write
from .values import usd_text

WINDOW_MS = 60_000
DAY_MS = 86_400_000
_EXIT = {200: 0, 401: 3, 403: 4, 429: 5}
_TYPE = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_KEY_COLUMNS = ("id, project_id, profile, lineage, expires_at, revoked_at, last_used_at, "
                + ", ".join(profiles.OVERRIDE_FIELDS))
_OVERRIDES = slice(7, 7 + len(profiles.OVERRIDE_FIELDS))  # the override columns' place in _KEY_COLUMNS
# The key of a presented token, and the time now: the server's clock on PostgreSQL (one
# clock for every host), this machine's on SQLite (the only machine).
_BY_DIGEST = {
    "sqlite": f"SELECT {_KEY_COLUMNS} FROM keys WHERE digest = ?",
    "postgres": f"SELECT {_KEY_COLUMNS}, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint "
                "AS now_ms FROM keys WHERE digest = ?",
}
_MALFORMED = "\x00"  # an Authorization header that is not "Bearer …": an invalid key, not a missing one


@dataclass
class Decision:
    """The answer for one request. `body` is what the service sends back: the seed's
    error JSON on a denial, the success object otherwise."""

    allowed: bool
    status: int
    body: dict
    headers: dict = field(default_factory=dict)
    key_id: str | None = None
    project_id: str | None = None
    profile: str | None = None
    timeout: int | None = None
    warnings: list = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return _EXIT[self.status]

    @property
    def message(self) -> str | None:
        return None if self.allowed else self.body["error"]["message"]

    def as_json(self) -> dict:
        """The `keys verify --json` answer: status, error or key, and headers, always."""
        if self.allowed:
            return self.body
        return {"allowed": False, "status": self.status, **self.body, "headers": self.headers}


def _deny(status: int, message: str, headers: dict | None = None, row=None) -> Decision:
    return Decision(False, status, {"error": {"type": _TYPE[status], "message": message}},
                    headers or {}, key_id=row["id"] if row else None,
                    project_id=row["project_id"] if row else None,
                    profile=row["profile"] if row else None)


def token_from(headers=None, query=None) -> str | None:
    """The API key of a request: `x-api-key`, then `Authorization: Bearer`, then the
    `api_key` query parameter. Header names are matched case-insensitively; headers are
    a mapping or (name, value) pairs, as text or bytes (raw ASGI); a query value may be
    a list (as parse_qs gives it). Anything else is InvalidInput."""
    bearer = None
    if headers:
        try:
            for name, value in (headers.items() if hasattr(headers, "items") else headers):
                lname = presented(name, "a header name")
                lname = lname.lower() if lname else ""
                if lname == "x-api-key":
                    value = presented(value, "the x-api-key header")
                    if value:
                        return value.strip()
                elif lname == "authorization" and bearer is None:
                    value = presented(value, "the Authorization header")
                    if value:
                        scheme, _, credentials = value.strip().partition(" ")
                        bearer = credentials.strip() if scheme.lower() == "bearer" else ""
                        bearer = bearer or _MALFORMED  # present but unusable: invalid, not missing
        except InvalidInput:
            raise
        except (TypeError, ValueError):
            raise InvalidInput("headers must be a mapping or a list of (name, value) pairs") from None
    if bearer is not None:
        return bearer
    if query:
        try:
            value = query.get("api_key") if hasattr(query, "get") else dict(query).get("api_key")
        except (TypeError, ValueError):
            raise InvalidInput("query must be a mapping of parameter names to values") from None
        value = presented(value, "the api_key query parameter")
        if value:
            return value.strip()
    return None


def presented(value, what: str = "the key") -> str | None:
    """A credential (or header name) as a request carries it: text, bytes (raw ASGI,
    UTF-8 or else Latin-1), or a list of them (the first; a parsed query string).
    None when absent; any other type is InvalidInput."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None or type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    raise InvalidInput(f"{what} must be text or bytes, not {type(value).__name__}")


def decide(conn, token: str | None, *, tool=None, agent=None, skill=None,
           cost_nanos: int | None = None, dry_run: bool = False, standard_agents=None) -> Decision:
    if token:
        token = token.strip()  # a pasted key keeps no surrounding whitespace
    if not token:
        return _deny(401, "Missing Authorization header")
    digest = fmt.lookup_digest(token)
    if digest is None:
        return _deny(401, "Invalid API key")
    row = conn.row(_BY_DIGEST[conn.dialect], (digest,))
    now = row["now_ms"] if row is not None and conn.dialect == "postgres" else time.time_ns() // 1_000_000
    now_s = now // 1000
    if row is None or (row["revoked_at"] is not None and row["revoked_at"] <= now_s) or (
        row["expires_at"] is not None and row["expires_at"] <= now_s
    ):
        # keys.status's rule, inline: the verify path does not load the key lifecycle.
        # The caller learns nothing more; `keys show` tells the operator why.
        return _deny(401, "Invalid API key")
    perms = profiles.resolve_overrides(row["profile"], *tuple(row)[_OVERRIDES])
    standard = standard_agents or (lambda: profiles.standard_agents(conn))

    refusal = _refusal(perms, tool, agent, skill, cost_nanos, standard)
    if refusal:
        return _deny(403, refusal, _peek(conn, row, perms.rate_limit, now), row)

    warnings = []
    if perms.monthly_budget_nanos is not None or perms.tokens_per_day is not None:
        over, warnings = _budgets(conn, row, perms, cost_nanos, now)
        if over:
            return _deny(429, over, _peek(conn, row, perms.rate_limit, now), row)

    limit = perms.rate_limit
    if limit is None:
        headers = {}
        if not dry_run and (row["last_used_at"] or 0) < now_s:
            if conn.dialect == "postgres":
                _touch(conn, row, now_s)  # one statement, its own transaction: one round trip
            else:
                with conn.transaction():  # BEGIN IMMEDIATE: never a stale snapshot in WAL
                    _touch(conn, row, now_s)
    elif dry_run:
        count, oldest = _window(conn, row["lineage"], now)
        if count >= limit:
            return _rate_limited(row, limit, count, oldest, now)
        headers = _headers(limit, count, oldest, now)
    else:
        count, oldest, now = _take_slot(conn, row, limit)
        if count >= limit:
            return _rate_limited(row, limit, count, oldest, now)
        headers = _headers(limit, count + 1, oldest, now)

    body = {"allowed": True, "status": 200, "key_id": row["id"], "project_id": row["project_id"],
            "profile": row["profile"], "timeout": perms.timeout, "headers": headers,
            "warnings": warnings}
    return Decision(True, 200, body, headers, row["id"], row["project_id"], row["profile"],
                    perms.timeout, warnings)


def _refusal(perms: profiles.Permissions, tool, agent, skill, cost_nanos, standard) -> str | None:
    if tool is not None and not perms.allows_tool(tool):
        return f"Tool '{tool}' is not allowed for this API key"
    if agent is not None and not perms.allows_agent(agent, standard):
        return f"Agent '{agent}' is not allowed for this API key"
    if skill is not None and not perms.allows_skill(skill):
        return f"Skill '{skill}' is not allowed for this API key"
    if cost_nanos is not None and perms.max_cost_nanos is not None and cost_nanos > perms.max_cost_nanos:
        return (f"Cost {usd_text(cost_nanos)} is over the maximum of {usd_text(perms.max_cost_nanos)} "
                "per task for this API key")
    return None


def _touch(conn, row, now_s: int) -> None:
    """last_used_at, to the second: at most one write per key per second."""
    if (row["last_used_at"] or 0) < now_s:
        conn.execute("UPDATE keys SET last_used_at = ? WHERE id = ? AND "
                     "(last_used_at IS NULL OR last_used_at < ?)", (now_s, row["id"], now_s))


def _take_slot(conn, row, limit: int) -> tuple[int, int | None, int]:
    """Take a rate-limit slot for the key's lineage if fewer than `limit` are in the
    window. Returns (slots in the window before this request, the oldest slot's time,
    the time of the decision)."""
    if conn.dialect == "postgres":
        return conn.execute("SELECT * FROM claude_take_slot(?, ?, ?)",
                            (row["lineage"], limit, row["id"])).fetchone()
    with write(conn):
        # The window is measured from when the lock was ours: a request that waited
        # must not be counted as earlier than it was admitted.
        now = time.time_ns() // 1_000_000
        count, oldest = _take_slot_sqlite(conn, row["lineage"], limit, now)
        if count < limit:
            _touch(conn, row, now // 1000)
    return count, oldest, now


def _take_slot_sqlite(conn, lineage: str, limit: int, now: int) -> tuple[int, int | None]:
    """Inside a write transaction: prune the slots that left the window, then take one
    if fewer than `limit` remain. Returns (slots in the window before this request,
    the oldest slot's time). The count in rate_windows always equals the lineage's
    rows in rate_slots, and every prune happens here, so after it all are in the
    window: no scan of the window, whatever its size. claude_take_slot (migrations.py)
    is the same on PostgreSQL."""
    pruned = sum(n for (n,) in conn.execute(
        "DELETE FROM rate_slots WHERE lineage = ? AND at_ms <= ? RETURNING n",
        (lineage, now - WINDOW_MS)))
    stored = conn.execute("SELECT used FROM rate_windows WHERE lineage = ?", (lineage,)).fetchone()
    count = (stored[0] if stored else 0) - pruned
    if count < limit:
        conn.execute("INSERT INTO rate_slots VALUES (?, ?, 1) ON CONFLICT DO UPDATE SET n = n + 1",
                     (lineage, now))
    if count < limit or pruned:
        conn.execute("INSERT INTO rate_windows VALUES (?, ?) ON CONFLICT (lineage) DO UPDATE "
                     "SET used = excluded.used", (lineage, count + (count < limit)))
    oldest = conn.execute("SELECT min(at_ms) FROM rate_slots WHERE lineage = ?", (lineage,)).fetchone()[0]
    return count, oldest


def _window(conn, lineage: str, now: int) -> tuple[int, int | None]:
    """Slots in the window without taking one (dry runs, refusals): a read."""
    return conn.execute("SELECT coalesce(sum(n), 0), min(at_ms) FROM rate_slots WHERE lineage = ? AND at_ms > ?",
                        (lineage, now - WINDOW_MS)).fetchone()


def _headers(limit: int, used: int, oldest: int | None, now: int) -> dict:
    """Reset: when the oldest request in the window leaves it (a slot frees up)."""
    reset_ms = (oldest + WINDOW_MS) if oldest is not None and used else now
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": str(-(-reset_ms // 1000))}


def _peek(conn, row, limit: int | None, now: int) -> dict:
    if limit is None:
        return {}
    count, oldest = _window(conn, row["lineage"], now)
    return _headers(limit, count, oldest, now)


def _rate_limited(row, limit: int, count: int, oldest: int | None, now: int) -> Decision:
    headers = _headers(limit, count, oldest, now)
    if limit == 0:
        return _deny(429, "Rate limit exceeded. This API key allows no requests.", headers, row)
    wait = max(1, -(-(oldest + WINDOW_MS - now) // 1000))
    return _deny(429, f"Rate limit exceeded. Reset in {wait} seconds.", headers, row)


def _budgets(conn, row, perms, cost_nanos, now: int) -> tuple[str | None, list[str]]:
    """Spend this calendar month and tokens today (UTC), over the key's whole lineage."""
    import datetime as dt

    today = now // DAY_MS
    moment = dt.datetime.fromtimestamp(now / 1000, dt.timezone.utc)
    month_start = dt.datetime(moment.year, moment.month, 1, tzinfo=dt.timezone.utc)
    next_month = dt.datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1,
                             tzinfo=dt.timezone.utc)
    spent, tokens_today = conn.execute(
        "SELECT coalesce(sum(cost_nanos), 0), coalesce(sum(CASE WHEN day = ? THEN input_tokens + "
        "output_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens END), 0) "
        "FROM usage_daily WHERE key_id IN (SELECT id FROM keys WHERE lineage = ?) "
        "AND day >= ? AND day < ?",
        (today, row["lineage"], int(month_start.timestamp()) // 86400,
         int(next_month.timestamp()) // 86400),
    ).fetchone()
    warnings = []
    budget = perms.monthly_budget_nanos
    if budget is not None:
        resets = next_month.strftime("%Y-%m-%dT%H:%M:%SZ")
        if spent >= budget or (cost_nanos is not None and spent + cost_nanos > budget):
            this = f", and this request would cost {usd_text(cost_nanos)}" if spent < budget else ""
            return (f"Monthly budget exceeded: {usd_text(spent)} of {usd_text(budget)} spent this month"
                    f"{this}. Resets at {resets}."), []
        if spent * 5 >= budget * 4:
            warnings.append(f"{spent * 100 // budget}% of the monthly budget is spent "
                            f"({usd_text(spent)} of {usd_text(budget)}); it resets at {resets}")
    limit = perms.tokens_per_day
    if limit is not None:
        resets = dt.datetime.fromtimestamp((today + 1) * 86400, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if tokens_today >= limit:
            return (f"Daily token limit exceeded: {tokens_today:,} of {limit:,} tokens used today. "
                    f"Resets at {resets}."), []
        if tokens_today * 5 >= limit * 4:
            warnings.append(f"{tokens_today * 100 // limit}% of the daily token limit is used "
                            f"({tokens_today:,} of {limit:,}); it resets at {resets}")
    return None, warnings

