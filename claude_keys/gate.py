"""How one request is decided: authenticate, authorize, budgets, concurrency, rate limits.

The order is the contract's: authenticate (401) -> blocked tools, then allowed tools,
agents and skills (403) -> the model against the key's, then the project's model lists
(403, models.py) -> cost against the max cost per task (403; a worst case too) -> budgets
and tokens per day (429) -> requests in flight (429) -> tokens per minute (429) -> rate
limits (429). Every limit is checked for the key (over its whole rotation lineage) and
then for its project (shared by all the project's keys); a refusal says which.

An allowed request that a budget or a concurrency limit must count is put *in flight*
(inflight.py: what that is and how it ends), reserving its cost (the cost given to the
check, else its worst case when the check names the model and max_tokens, else the
key's max cost per task); every budget check counts recorded spend plus
held reservations plus its own, inside the same serialized transaction that admits it:
so with a budget, N processes can never together admit more than the budget holds.
Otherwise nothing is stored and the request path stays one read and, for a
rate-limited key, one slot (db/windows.py); a model with no model lists to pass costs
nothing more (the lists come with the key's row).

Tokens per minute are read from the usage of the last 60 s (by time) in the same
statement as the rest of a scope's use, plus, for input, what requests still in
flight declared (input_tokens) when they started in it: so admissions that declare
their input never together pass an input limit. Output cannot be declared before it
is produced: it counts once recorded.

Admission is written once for both backends. It runs in one transaction that is
serialized where it matters: the connection locks the lineage's (and project's) rate
windows and reads the store's clock after the locks (conn.lock_scopes), so hosts whose
clocks disagree share one window. A key whose only limit is its rate limit takes its
slot in one call (conn.take_slot: one round trip on PostgreSQL). With limit N, never
N+1 in any 60 s. A dry run decides without writing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import inflight, limits, periods, profiles
from . import secret as fmt
from .db import windows
from .db.steps import run
from .db.windows import WINDOW_MS
from .errors import InvalidInput
from .values import usd_pair, usd_text

_EXIT = {200: 0, 401: 3, 403: 4, 429: 5, 503: 1}
_TYPE = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error", 503: "api_error"}
UNAVAILABLE = "the key store is unavailable"
_STATE = ("id", "project_id", "profile", "lineage", "expires_at", "revoked_at", "last_used_at",
          "disabled_at")
_KEY_COLUMNS = ", ".join([f"k.{c}" for c in _STATE + profiles.OVERRIDE_FIELDS]
                         + [f"p.{c} AS project_{c}" for c in limits.ProjectLimits.FIELDS]
                         # the budget time zone (periods.py) in the same round trip: a seek in a tiny table
                         + ["(SELECT value FROM settings WHERE name = 'budget_tz') AS budget_tz"])
_OVERRIDES = slice(len(_STATE), len(_STATE) + len(profiles.OVERRIDE_FIELDS))
_PROJECT = slice(_OVERRIDES.stop, _OVERRIDES.stop + len(limits.ProjectLimits.FIELDS))
# The key of a presented token (with its project's limits), and the store's clock.
_LOOKUP = f"SELECT {_KEY_COLUMNS}{{clock}} FROM keys k LEFT JOIN projects p ON p.project_id = k.project_id WHERE k.digest = ?"
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
    request_id: str | None = None  # the request in flight (None on a denial or a dry run)

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


def unavailable(reason: str = "") -> Decision:
    """The answer when the store cannot decide (missing, unreachable, or past its wait
    bound): 503, so the service fails closed and says it is unavailable, not that the
    key is bad. The reason stays in `warnings` for the service's log (no secret in it)."""
    decision = _deny(503, UNAVAILABLE)
    if reason:
        decision.warnings.append(reason)
    return decision


def token_from(headers=None, query=None) -> str | None:
    """The API key of a request: `x-api-key`, then `Authorization: Bearer`, then the
    `api_key` query parameter. Header names are matched case-insensitively; headers are
    a mapping or (name, value) pairs, as text or bytes (raw ASGI); a query value may be
    a list (as parse_qs gives it). Anything else is InvalidInput."""
    bearer = None
    if headers:
        try:
            for name, value in (headers.items() if hasattr(headers, "items") else headers):
                # (text, the common case, without a call: this runs for every header)
                lname = (name if type(name) is str else presented(name, "a header name") or "").lower()
                if lname == "x-api-key":
                    if type(value) is not str:
                        value = presented(value, "the x-api-key header")
                    if value:
                        return value.strip()
                elif lname == "authorization" and bearer is None:
                    if type(value) is not str:
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


def lookup_steps(token: str | None):
    """(the key's row, or None, and the time now in ms) for a presented token."""
    digest = fmt.lookup_digest(token)
    if digest is None:
        return None, None
    return (yield ("row_with_clock", _LOOKUP, (digest,)))


def usable(row, now_ms: int) -> bool:
    """keys.status's rule, inline: the verify path does not load the key lifecycle."""
    now_s = now_ms // 1000
    return not (row["revoked_at"] is not None and row["revoked_at"] <= now_s
                or row["expires_at"] is not None and row["expires_at"] <= now_s
                or row["disabled_at"] is not None)


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


def decide(conn, token: str | None, **asked) -> Decision:
    """The decision for one request (decide_steps, run on `conn`)."""
    return run(conn, decide_steps(token, **asked))


def decide_steps(token: str | None, *, tool=None, agent=None, skill=None,
                 cost_nanos: int | None = None, dry_run: bool = False, standard_agents=None,
                 model: str | None = None, max_tokens: int | None = None, input_tokens: int | None = None,
                 pricer=None):
    """The decision for one request, as steps (db/steps.py: run on a connection of
    either kind). `model`, `max_tokens` and `input_tokens` (already
    checked) are what the request will ask the model for: the model is matched against
    the key's and project's model lists; with no `cost_nanos`, a model and max_tokens
    reserve the request's worst case (`pricer`: a pricing.Pricer, else the bundled and
    CLAUDE_API_PRICES table); input_tokens count against an input tokens-per-minute
    limit."""
    if token:
        token = token.strip()  # a pasted key keeps no surrounding whitespace
    if not token:
        return _deny(401, "Missing Authorization header")
    row, now = yield from lookup_steps(token)
    if row is None or not usable(row, now):
        # The caller learns nothing more; `keys show` tells the operator why.
        return _deny(401, "Invalid API key")
    values = tuple(row)
    perms = profiles.resolve_overrides(row["profile"], *values[_OVERRIDES])
    project = limits.project_limits(row["project_id"], *values[_PROJECT])
    standard = standard_agents
    if standard is None and agent is not None and not perms.allows_agent(agent):
        # (read only when the key's agents name the standard ones and not this agent)
        found = yield ("one", profiles.STANDARD_AGENTS, ())
        agents = profiles.standard_agents_of(found)
        standard = lambda: agents  # noqa: E731

    refusal = _refusal(perms, tool, agent, skill, cost_nanos, standard)
    if refusal is None and model is not None and (perms.model_lists or project.model_lists):
        from .models import refusal as model_refusal  # (loaded already: the lists were made by it)

        refusal = model_refusal(model, perms.model_lists, project.model_lists)
    worst = None
    if (refusal is None and cost_nanos is None and max_tokens is not None
            and (perms.max_cost_nanos is not None or perms.tracks_requests or project.tracks_requests)):
        worst, refusal = _worst_case(pricer, model, input_tokens, max_tokens, perms, project)
    if refusal:
        return _deny(403, refusal, (yield from _peek(row, perms, project, now)), row)
    if not project.any and not perms.counts_usage:
        # Nothing to count but (maybe) the key's own rate: the request path's fast lane.
        return (yield from _rate_only(row, perms, now, dry_run))
    request = _Request(row, perms, project, cost_nanos, worst, model, input_tokens)
    if dry_run:
        return (yield from request.decide(now, write=False))
    return (yield ("transaction", request.admit()))


def _refusal(perms: profiles.Permissions, tool, agent, skill, cost_nanos, standard) -> str | None:
    if tool is not None and not perms.allows_tool(tool):
        return f"Tool '{tool}' is not allowed for this API key"
    if agent is not None and not perms.allows_agent(agent, standard):
        return f"Agent '{agent}' is not allowed for this API key"
    if skill is not None and not perms.allows_skill(skill):
        return f"Skill '{skill}' is not allowed for this API key"
    if cost_nanos is not None and perms.max_cost_nanos is not None and cost_nanos > perms.max_cost_nanos:
        cost, most = usd_pair(cost_nanos, perms.max_cost_nanos)
        return (f"Cost {cost} is over the maximum of {most} "
                "per task for this API key")
    return None


def _worst_case(pricer, model: str, input_tokens, max_tokens: int, perms, project) -> tuple:
    """(the request's worst case in nanos or None, a 403 message or None): its input
    estimate at the input rate (the long-context tier past its threshold) plus
    max_tokens at the output rate. A model without a price cannot be reserved: refused
    when a budget needs the reservation, else it reserves as before (no worst case)."""
    if pricer is None:
        from . import pricing

        pricer = pricing.Pricer(pricing.table(pricing.user_prices_path()))
    worst = pricer(model, input_tokens or 0, max_tokens, 0, 0, 0)
    if worst is None:
        whose = "this API key" if perms.has_budget else "this project" if project.has_budget else None
        if whose is None:
            return None, None
        return None, (f"Model '{model}' has no price, so its cost cannot be reserved against the budget "
                      f"of {whose} (give the cost, or add the model to the price table)")
    if perms.max_cost_nanos is not None and worst > perms.max_cost_nanos:
        cost, most = usd_pair(worst, perms.max_cost_nanos)
        return worst, (f"Cost up to {cost} ({model}, max_tokens {max_tokens:,}) is over the maximum of "
                       f"{most} per task for this API key")
    return worst, None


def _allowed(row, perms, now: int, headers: dict, warnings: list, request_id: str | None) -> Decision:
    body = {"allowed": True, "status": 200, "key_id": row["id"], "project_id": row["project_id"],
            "profile": row["profile"], "timeout": perms.timeout, "request_id": request_id,
            "headers": headers, "warnings": warnings}
    return Decision(True, 200, body, headers, row["id"], row["project_id"], row["profile"],
                    perms.timeout, warnings, request_id)


# -- the fast lane: no budget, no concurrency, no project limits ------------------------

def _rate_only(row, perms, now: int, dry_run: bool):
    limit = perms.rate_limit
    now_s = now // 1000
    if limit is None:
        headers = {}
        if not dry_run and (row["last_used_at"] or 0) < now_s:
            yield ("write_one", windows.TOUCH, (now_s, row["id"], now_s))  # one statement, its own transaction
    elif dry_run:
        count, oldest = yield from windows.window_steps(row["lineage"], now)
        if count >= limit:
            return _rate_limited(row, limit, count, oldest, now, "")
        headers = _headers(limit, count, oldest, now)
    else:
        count, oldest, now = yield ("take_slot", row["lineage"], limit, row["id"], row["last_used_at"])
        if count >= limit:
            return _rate_limited(row, limit, count, oldest, now, "")
        headers = _headers(limit, count + 1, oldest, now)
    return _allowed(row, perms, now, headers, [], None if dry_run else inflight.new_id(False))


def _headers(limit: int, used: int, oldest: int | None, now: int) -> dict:
    """Reset: when the oldest request in the window leaves it (a slot frees up)."""
    reset_ms = (oldest + WINDOW_MS) if oldest is not None and used else now
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": str(-(-reset_ms // 1000))}


def _header_scope(row, perms, project) -> tuple[str | None, int | None]:
    """The rate limit the headers describe: the key's, else its project's."""
    if perms.rate_limit is not None:
        return row["lineage"], perms.rate_limit
    if project.rate_limit is not None:
        return limits.project_scope(row["project_id"]), project.rate_limit
    return None, None


def _peek(row, perms, project, now: int):
    scope, limit = _header_scope(row, perms, project)
    if limit is None:
        return {}
    count, oldest = yield from windows.window_steps(scope, now)
    return _headers(limit, count, oldest, now)


def _rate_limited(row, limit: int, count: int, oldest: int | None, now: int, whose: str,
                  headers: dict | None = None) -> Decision:
    headers = headers if headers is not None else _headers(limit, count, oldest, now)
    prefix = "Project rate limit" if whose == "project" else "Rate limit"
    if limit == 0:
        subject = "This project" if whose == "project" else "This API key"
        return _deny(429, f"{prefix} exceeded. {subject} allows no requests.", headers, row)
    oldest = oldest if oldest is not None else now  # (no slot to wait for: a whole window)
    wait = max(1, -(-(oldest + WINDOW_MS - now) // 1000))
    return _deny(429, f"{prefix} exceeded. Reset in {wait} seconds.", {**headers, "Retry-After": str(wait)}, row)


# -- the full admission: budgets, concurrency and rate limits of a key and its project ---

class _Request:
    """One request against its key's and its project's limits."""

    def __init__(self, row, perms, project, cost_nanos: int | None, worst: int | None = None,
                 model: str | None = None, input_tokens: int | None = None):
        self.row, self.perms, self.project = row, perms, project
        self.cost_nanos, self.worst = cost_nanos, worst
        self.model, self.input_tokens = model, input_tokens
        # What it reserves: the cost given, else its worst case (model and max_tokens),
        # else the key's maximum per task, else nothing (None: nothing was promised, so
        # no settle can be "above" it).
        self.reserved = (cost_nanos if cost_nanos is not None else worst if worst is not None
                         else perms.max_cost_nanos)
        self.reserve = self.reserved or 0
        # Declared input counts against an input tokens-per-minute limit while in flight.
        declares = bool(input_tokens) and (perms.input_tokens_per_minute is not None
                                           or project.input_tokens_per_minute is not None)
        self.tracked = perms.tracks_requests or project.tracks_requests or declares
        self.project_scope = limits.project_scope(row["project_id"])
        self.scopes = [row["lineage"], self.project_scope] if project.any else [row["lineage"]]
        self.retry_after: int | None = None  # set by a refusal for requests in flight or tokens per minute

    def admit(self):
        """The admission, as steps inside a transaction: lock the lineage's rate window,
        then the project's (always in that order, so two admissions never wait on each
        other in a cycle), then read the clock, then decide and write."""
        now = yield ("lock_scopes", self.scopes)
        return (yield from self.decide(now, write=True))

    def decide(self, now: int, *, write: bool):
        row, perms, project = self.row, self.perms, self.project
        calendar = periods.periods(now, row["budget_tz"] or periods.UTC)
        key = yield from limits.read_steps("lineage", row["lineage"], now, _spans(calendar, perms),
                                           total=perms.total_budget_nanos is not None, tracked=self.tracked,
                                           minute=row["project_id"] if _per_minute(perms) else None)
        shared = None
        if project.any:
            shared = yield from limits.read_steps("project", row["project_id"], now, _spans(calendar, project),
                                                  total=project.total_budget_nanos is not None,
                                                  tracked=self.tracked,
                                                  minute=row["project_id"] if _per_minute(project) else None)
        if write:
            for column, subject, used in (("lineage", row["lineage"], key), ("project_id", row["project_id"], shared)):
                if used is not None and used.stale >= inflight.CLEAR_AT:
                    yield inflight.clear_step(column, subject, now)
        warnings: list[str] = []
        over = (self._spend(key, perms, calendar, now, "", warnings)
                or (shared and self._spend(shared, project, calendar, now, "project", warnings)))
        for scope_used, scope_limits, column, subject, whose in (
                (key, perms, "lineage", row["lineage"], ""),
                (shared, project, "project_id", row["project_id"], "project")):
            if over or scope_used is None:
                break
            over = _concurrency(scope_used, scope_limits.max_concurrent, whose)
            if over:
                # A place frees when one of them ends, which no one can foresee; at the
                # latest when the first gives its place up at its timeout: Retry-After
                # says the seconds until then, at most CONCURRENCY_RETRY_S (read only
                # for a refusal).
                self.retry_after = yield from inflight.place_frees_steps(column, subject, now,
                                                                         CONCURRENCY_RETRY_S)
        for scope_used, scope_limits, kind, subject, whose in (
                (key, perms, "lineage", row["lineage"], ""),
                (shared, project, "project", row["project_id"], "project")):
            if over or scope_used is None:
                break
            over = yield from self._per_minute(scope_used, scope_limits, kind, subject, now, whose)
        if over:
            # (a budget's refusal carries its period's reset; a refusal for requests in
            # flight or tokens per minute sets self.retry_after)
            message, retry_after = over if isinstance(over, tuple) else (over, self.retry_after)
            headers = yield from _peek(row, perms, project, now)
            if retry_after is not None:
                headers = {**headers, "Retry-After": str(retry_after)}
            return _deny(429, message, headers, row)

        taken_windows = []  # (scope, limit, count, whose, slots pruned): every rate limit that applies
        for scope, limit, whose in ((row["lineage"], perms.rate_limit, ""),
                                    (self.project_scope, project.rate_limit, "project")):
            if limit is None:
                continue
            if write:
                count, pruned = yield from windows.prune_steps(scope, now)
            else:
                count, pruned = (yield from windows.window_steps(scope, now))[0], 0
            taken_windows.append((scope, limit, count, whose, pruned))
        header_scope, _ = _header_scope(row, perms, project)
        for scope, limit, count, whose, _ in taken_windows:
            if count >= limit:
                # A refusal commits too: every window pruned keeps its count true.
                for other, _, left, _, pruned in taken_windows:
                    if pruned:
                        yield windows.set_count_step(other, left)
                oldest = ((yield from windows.oldest_steps(scope)) if write
                          else (yield from windows.window_steps(scope, now))[1])
                return _rate_limited(row, limit, count, oldest, now, whose,
                                     (yield from self._headers(taken_windows, header_scope, now, taken=False)))
        request_id = None
        if write:
            for scope, _, count, _, _ in taken_windows:
                yield from windows.add_steps(scope, now, count)
            request_id = inflight.new_id(self.tracked)
            if self.tracked:
                yield inflight.open_request_step(row, request_id, now, timeout_s=perms.timeout,
                                                 hold_s=perms.hold if perms.hold is not None else project.hold,
                                                 reserved=self.reserved, model=self.model,
                                                 input_tokens=self.input_tokens)
            yield from windows.touch_steps(row["id"], row["last_used_at"], now // 1000)
        headers = yield from self._headers(taken_windows, header_scope, now, taken=write)
        return _allowed(row, perms, now, headers, warnings, request_id)

    def _per_minute(self, used: limits.Used, limits_of, kind: str, subject: str, now: int,
                    whose: str):
        """A refusal for tokens per minute, or None. A request needs room for its
        declared input (at least one token: a window that has reached its limit admits
        nothing); output cannot be declared before it is produced, so it counts once
        recorded."""
        for which, limit, tokens, need in (
                ("input", limits_of.input_tokens_per_minute, used.minute_input, max(self.input_tokens or 0, 1)),
                ("output", limits_of.output_tokens_per_minute, used.minute_output, 1)):
            if limit is None or tokens + need <= limit:
                continue
            label = f"{'Project ' if whose else ''}{which} tokens per minute limit exceeded"
            label = label[0].upper() + label[1:]
            subject_text = "this project" if whose else "this API key"
            if need > limit:  # no wait makes room: say so, with no reset time
                if limit == 0:
                    return f"{label}: {subject_text} allows no {which} tokens."
                return (f"{label}: this request's {need:,} input tokens are over the limit of {limit:,} per "
                        f"minute for {subject_text}.")
            self.retry_after = yield from limits.minute_frees_steps(kind, subject, self.row["project_id"], now,
                                                                    which, tokens + need - limit)
            this = f", and this request declares {need:,}" if which == "input" and self.input_tokens else ""
            return (f"{label}: {tokens:,} of {limit:,} {which} tokens in the last minute for {subject_text}"
                    f"{this}. Reset in {self.retry_after} seconds.")
        return None

    def _headers(self, taken_windows, header_scope, now: int, *, taken: bool):
        for scope, limit, count, _, _ in taken_windows:
            if scope == header_scope:
                oldest = ((yield from windows.oldest_steps(scope)) if taken
                          else (yield from windows.window_steps(scope, now))[1])
                return _headers(limit, count + taken, oldest, now)
        return {}

    def _spend(self, used: limits.Used, limits_of, calendar: dict, now: int, whose: str,
               warnings: list) -> tuple[str, int | None] | None:
        """A refusal for spend or tokens, with the seconds until the budget that refused
        resets (None: never), or None (adding 80% warnings on the way). Of several budgets
        passed, the one that lasts longest refuses: its Retry-After is honest."""
        label = "project " if whose else ""  # "the project monthly budget"
        subject = "this project" if whose else "this API key"
        refusals = []
        for name, budget in limits_of.budgets().items():
            period = calendar.get(name)
            spent = used.total_nanos or 0 if period is None else used.spent[name]
            when = "in total" if period is None else _WHEN[name]
            what = f"{label}{periods.ADJECTIVE[name]} budget exceeded"
            resets = ((lambda: f" The total budget of {subject} never resets.") if period is None
                      else (lambda p=period: f" Resets at {p.resets}."))
            message = _over(spent, used.reserved_nanos, used.in_flight, self.reserve, budget, self.cost_nanos,
                            what[0].upper() + what[1:], when, resets, self.worst is not None)
            if message:
                refusals.append((period.end_ms if period else float("inf"), message,
                                 period.seconds_left(now) if period else None))
                continue
            committed = spent + used.reserved_nanos
            if budget and committed * 5 >= budget * 4:
                tail = f"; it resets at {period.resets}" if period else ""
                warnings.append(f"{committed * 100 // budget}% of the {label}{periods.ADJECTIVE[name]} budget is "
                                f"spent or reserved ({' of '.join(usd_pair(committed, budget))}){tail}")
        if refusals:
            _, message, retry_after = max(refusals, key=lambda r: r[0])
            return message, retry_after
        tokens_per_day = limits_of.tokens_per_day
        if tokens_per_day is not None:
            day = calendar["day"]
            if used.tokens_today >= tokens_per_day:
                return (f"{'Project daily' if whose else 'Daily'} token limit exceeded: {used.tokens_today:,} "
                        f"of {tokens_per_day:,} tokens used today. Resets at {day.resets}."), day.seconds_left(now)
            if used.tokens_today * 5 >= tokens_per_day * 4 and tokens_per_day:
                warnings.append(f"{used.tokens_today * 100 // tokens_per_day}% of the {label}daily "
                                f"token limit is used ({used.tokens_today:,} of {tokens_per_day:,}); "
                                f"it resets at {day.resets}")
        return None


CONCURRENCY_RETRY_S = 5  # the most a refusal for requests in flight tells the client to wait
_WHEN = {"day": "today", "week": "this week", "month": "this month"}


def _spans(calendar: dict, limits_of) -> dict:
    """The calendar periods whose spend (or, for the day, tokens) a key or project needs."""
    wanted = {name: calendar[name] for name in limits_of.budgets() if name in calendar}
    if limits_of.tokens_per_day is not None:
        wanted.setdefault("day", calendar["day"])
    return wanted


def _over(spent: int, reserved: int, in_flight: int, reserve: int, budget: int, cost_nanos,
          what: str, when: str, resets, worst: bool = False) -> str | None:
    """The refusal when spent + reserved (+ this request's reservation) passes a budget
    (`resets`: the message's last sentence, made only for a refusal)."""
    committed = spent + reserved
    if committed < budget and committed + reserve <= budget:
        return None
    held = (f" and {usd_text(reserved)} reserved by {in_flight} request{'s' * (in_flight != 1)} in flight"
            if reserved else "")
    this = ""
    if committed < budget:
        verb = ("would cost" if cost_nanos is not None else "may cost up to" if worst
                else "may cost (its key's maximum per task)")
        this = f", and this request {verb} {usd_text(reserve)}"
    return f"{what}: {' of '.join(usd_pair(spent, budget))} spent {when}{held}{this}.{resets()}"


def _per_minute(limits_of) -> bool:
    """Whether a key's permissions (or a project's limits) limit tokens per minute."""
    return limits_of.input_tokens_per_minute is not None or limits_of.output_tokens_per_minute is not None


def _concurrency(used: limits.Used, limit: int | None, whose: str) -> str | None:
    if limit is None or used.in_flight < limit:
        return None
    subject = "this project" if whose else "this API key"
    label = "Project concurrency" if whose else "Concurrency"
    return (f"{label} limit reached: {used.in_flight} of {limit} request{'s' * (limit != 1)} in flight "
            f"for {subject}. Try again when one finishes.")
