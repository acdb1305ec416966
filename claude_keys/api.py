"""The Python API for the service: KeyStore, and the seed-compatible AuthManager and
PermissionManager. Thin over gate, usage and keys, against the same store as the CLI.

One object can be shared by a threaded server: each call takes a connection from
db.connections (one per thread on SQLite, a bounded pool per process on PostgreSQL),
and a forked child opens its own. Many processes (and, on PostgreSQL, many hosts) share
the store. Every wait on the store is bounded (`timeout`, else CLAUDE_API_TIMEOUT):
past it, and whenever the store is unavailable, `check` answers 503 (`api_error`) and
every other call raises StoreError; the next call after the store is back succeeds by
itself. Reads never create a store: only `generate_key`, `record_usage` and the other
writes set up a missing one. Every call raises only ClaudeKeysError subclasses.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping

from . import gate, inflight, keys, models, pricing, projects, usage
from .db import as_store_error, resolve, timeout as wait_bound
from .db.connections import Connections
from .db.steps import run
from .errors import ClaudeKeysError, InvalidInput, StoreError, TryAgain
from .profiles import LIST_FIELDS, UNLIMITED
from .values import check_flag, check_text, moment_ms, parse_cost, parse_count, parse_money, parse_seconds, shown

__all__ = ["KeyStore", "AsyncKeyStore", "AuthManager", "PermissionManager"]


def _store_call(*, writes: bool):
    """A call with a connection (`writes`: it may set up a missing store): a database
    driver's error leaves as a StoreError, and a connection the server dropped is let
    go so that the next call opens a new one."""

    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            connections = self._connections
            try:
                # SQLite: this thread's connection, without a context manager (the request
                # path's calls are a few tens of microseconds; a generator costs a few).
                conn = connections.local(create=writes)
                if conn is not None:
                    return method(self, conn, *args, **kwargs)
                try:
                    with connections.connection(create=writes) as conn:
                        return method(self, conn, *args, **kwargs)
                except TryAgain:  # nothing was done: once more
                    with connections.connection(create=writes) as conn:
                        return method(self, conn, *args, **kwargs)
            except ClaudeKeysError:
                self._connections.forget_broken()
                raise
            except Exception as e:
                found = as_store_error(e)
                if found is None:
                    raise
                self._connections.forget_broken()
                raise found from None

        call.__signature__ = _public(method)  # (not functools.wraps': it shows `conn`)
        return call

    return wrap


def _public(method):
    """A store call's signature as its caller sees it (help(), IDEs): without the
    connection the call is given. (inspect is loaded already: gate's dataclasses bring it.)"""
    import inspect

    signature = inspect.signature(method)
    self_, _conn, *rest = signature.parameters.values()
    return signature.replace(parameters=[self_, *rest])


_reads = _store_call(writes=False)
_writes = _store_call(writes=True)


class _StoreClient:
    _request_path = False  # KeyStore's calls wait a few seconds at most by default

    def __init__(self, db: str | os.PathLike | None = None, *, timeout=None, pool_size=None):
        self.path = resolve(db)  # a SQLite path or a PostgreSQL location
        self.timeout = wait_bound(timeout, request=self._request_path)
        self._connections = Connections(self.path, self.timeout, pool_size)

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        self._connections.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_NAMES_SEEN: set = set()  # names that passed check_text: the request path asks for the same few


def _check_names(tool, agent, skill) -> None:
    """The tool, agent and skill a request asks for: each None or text (values.check_text)."""
    for what, name in (("tool", tool), ("agent", agent), ("skill", skill)):
        if name is not None and (type(name) is not str or name not in _NAMES_SEEN):
            check_text(name, what, max_len=128)
            if type(name) is str and len(_NAMES_SEEN) < 4096:  # bounded: junk cannot grow it
                _NAMES_SEEN.add(name)


_COSTS_SEEN: dict = {}  # cost text -> nanos: the request path gives the same few costs


def _cost_nanos(cost) -> int:
    """parse_cost, remembered for text (a pure function of it; bounded)."""
    if type(cost) is str:
        nanos = _COSTS_SEEN.get(cost)
        if nanos is None:
            nanos = parse_cost(cost)
            if len(_COSTS_SEEN) < 4096:
                _COSTS_SEEN[cost] = nanos
        return nanos
    return parse_cost(cost)


class KeyStore(_StoreClient):
    """The service's calls: `check` a request, then `record_usage` for it (or `release`
    it when its work failed). `timeout`: the bound in seconds on any wait on the store
    (default CLAUDE_API_TIMEOUT, else 5); `pool_size`: on PostgreSQL, the most
    connections this process opens to the store (default CLAUDE_API_POOL_SIZE, else 10)."""

    _request_path = True

    def __init__(self, db: str | os.PathLike | None = None, *, timeout=None, pool_size=None):
        super().__init__(db, timeout=timeout, pool_size=pool_size)
        self._owners: dict[str, tuple] = {}  # key id -> (project id, lineage); never changes
        self._pricer = pricing.Pricer(pricing.table(pricing.user_prices_path(self.path)))

    def check(self, headers=None, key=None, tool=None, agent=None, skill=None, cost=None,
              dry_run=False, query=None, model=None, max_tokens=None, input_tokens=None) -> gate.Decision:
        """Authenticate, authorize, check budgets and concurrency and take a rate-limit
        slot. An allowed request is in flight (`decision.request_id`) until
        `record_usage(..., request_id=decision.request_id)` settles it, `release()` ends
        it, or the key's timeout passes; meanwhile it holds `cost` (else, given `model`
        and `max_tokens`, its worst case from the price table; else the key's max cost
        per task) against the budgets.

        `model` is checked against the key's and project's model lists; `input_tokens`
        (an estimate of the request's input) counts against an input tokens-per-minute
        limit and prices the worst case.

        The key comes from `key` (the secret) or from `headers` (`x-api-key`, then
        `Authorization: Bearer`) or `query` (`api_key`).
        """
        token, asked = self._asked(headers, key, tool, agent, skill, cost, dry_run, query, model, max_tokens,
                                   input_tokens)
        try:
            return self._decide(token, **asked)
        except StoreError as e:  # (a store that is missing, unreachable or stalled)
            return gate.unavailable(str(e))

    def _asked(self, headers=None, key=None, tool=None, agent=None, skill=None, cost=None,
               dry_run=False, query=None, model=None, max_tokens=None, input_tokens=None) -> tuple:
        """check's arguments, checked: (the token, gate.decide_steps' keyword arguments)."""
        token = gate.presented(key, "key") if key is not None else gate.token_from(headers, query)
        if tool is not None or agent is not None or skill is not None:
            _check_names(tool, agent, skill)
        if dry_run is not False:
            check_flag(dry_run, "dry_run")
        cost_nanos = None if cost is None else _cost_nanos(cost)
        if model is not None or max_tokens is not None or input_tokens is not None:
            model, max_tokens, input_tokens = models.check_request(model, max_tokens, input_tokens)
        return token, {"tool": tool, "agent": agent, "skill": skill, "cost_nanos": cost_nanos,
                       "dry_run": dry_run, "model": model, "max_tokens": max_tokens,
                       "input_tokens": input_tokens, "pricer": self._pricer}

    @_reads
    def _decide(self, conn, token, **asked) -> gate.Decision:
        return gate.decide(conn, token, **asked)

    @_writes
    def record_usage(self, conn, key_id, *args, **given) -> usage.Recorded:
        """Record one request. `cache_write_tokens` are 5-minute writes; a request id
        already stored changes nothing (`.recorded` is then False). Give the `model`
        (priced from the price table; `speed="fast"` at fast-mode rates, with
        `web_search_requests` server-side searches at the table's price) or the `cost`.
        The request id of a check settles that request: its reserved cost gives way to
        this one, whichever key of its lineage records it (a rotation in between
        changes nothing). Spend above what the check reserved is recorded and flagged
        (`.warning`); a request id that another key's lineage owns raises
        RequestIdConflict, and nothing is written. (Its arguments are _record_steps'.)"""
        return run(conn, self._record_steps(key_id, *args, **given))

    def _record_steps(self, key_id, model=None, input_tokens=0, output_tokens=0,
                      cache_read_tokens=0, cache_write_tokens=0, cost=None, request_id=None,
                      at=None, cache_write_1h_tokens=0, speed=None, web_search_requests=0):
        """record_usage as steps (db/steps.py): its one list of arguments."""
        owner = self._owners.get(key_id) if type(key_id) is str else None  # (found: checked already)
        if owner is None:
            check_text(key_id, "key_id", max_len=512)
            owner = self._owners[key_id] = yield from usage.owner_steps(key_id)
        tokens = usage.check_counts(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                                    cache_write_1h_tokens)
        if type(web_search_requests) is not int or web_search_requests != 0:
            web_search_requests = usage.check_tokens(web_search_requests=web_search_requests)["web_search_requests"]
        return (yield from usage.record_steps(key_id, *owner, pricer=self._pricer, model=model, tokens=tokens,
                                              cost_nanos=None if cost is None else _cost_nanos(cost),
                                              request_id=request_id, at_ms=None if at is None else moment_ms(at),
                                              speed=speed, web_searches=web_search_requests))

    @_reads
    def _carry_on_reading(self, conn, steps, step=None):
        """Steps (db/steps.py) played on this thread's connection from `step` on: an
        AsyncKeyStore call that would have waited on the event loop."""
        return run(conn, steps, step)

    @_writes
    def _carry_on_writing(self, conn, steps, step=None):
        """The same, for a call that may set up a missing store (record_usage)."""
        return run(conn, steps, step)

    @_reads
    def release(self, conn, request_id) -> bool:
        """End a request in flight without usage (its work failed): its place and its
        reserved cost are given back. False if it was not in flight any more."""
        return usage.release(conn, request_id)


class AsyncKeyStore:
    """KeyStore's calls, awaitable, for an `async def` service: `await check(...)`, then
    `await record_usage(...)` or `await release(...)`. They never wait on the event loop
    (db/async_connections.py): on SQLite they run on the loop over a connection that never
    waits, and carry on in a worker thread from a statement that would wait for another
    writer; on PostgreSQL each runs in a worker thread, or with `async_pool=True` on the
    loop itself over psycopg's async pool. Worker threads are bounded: at most as many
    calls in them at once as the connections this process may hold (`pool_size`). Same arguments, same answers, same
    errors as KeyStore's; `check` answers 503 when no place is free within `timeout`, as
    when the store does not answer (`record_usage` and `release` wait their turn: they
    end requests already served)."""

    def __init__(self, db: str | os.PathLike | None = None, *, timeout=None, pool_size=None,
                 async_pool: bool = False):
        from .db.async_connections import AsyncWay
        from .db.connections import pool_size as default_size

        check_flag(async_pool, "async_pool")
        self._store = KeyStore(db, timeout=timeout, pool_size=pool_size)
        self.path, self.timeout = self._store.path, self._store.timeout
        self._way = AsyncWay(self._store._connections, default_size(pool_size), async_pool)
        self._workers = self._way.workers

    async def check(self, headers=None, **asked) -> gate.Decision:
        """KeyStore.check, awaitable (the same keyword arguments: key, tool, agent, skill,
        cost, dry_run, query, and whatever KeyStore.check takes)."""
        try:
            if self._way.direct:
                token, checked = self._store._asked(headers, **asked)
                return await self._way.play(lambda: gate.decide_steps(token, **checked),
                                            self._store._carry_on_reading)
            return await self._workers.run(self._store.check, headers, **asked)
        except StoreError as e:  # no place was free within the bound, or the store did not answer
            return gate.unavailable(str(e))

    async def record_usage(self, key_id, *args, **usage_) -> usage.Recorded:
        """KeyStore.record_usage, awaitable (the same arguments)."""
        if self._way.direct:
            make = functools.partial(self._store._record_steps, key_id, *args, **usage_)
            return await self._way.play(make, self._store._carry_on_writing, bounded=False)
        return await self._workers.run(self._store.record_usage, key_id, *args, bounded=False, **usage_)

    async def release(self, request_id) -> bool:
        """KeyStore.release, awaitable."""
        if self._way.direct:
            checked = check_text(request_id, "request id")
            return await self._way.play(lambda: inflight.release_steps(checked), self._store._carry_on_reading,
                                        bounded=False)
        return await self._workers.run(self._store.release, request_id, bounded=False)

    def close(self) -> None:
        """Let the workers end; their connections close with them. (In a coroutine,
        `aclose` closes the event loop's pool at once too.)"""
        self._way.close()
        self._store.close()

    async def aclose(self) -> None:
        """close(), and the running event loop's connections (to PostgreSQL: its pool)."""
        await self._way.aclose()
        self._store.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


def _record_usage_signature():
    """record_usage's arguments, written once (on _record_steps), shown on both stores'."""
    import inspect

    return inspect.signature(KeyStore._record_steps).replace(return_annotation="usage.Recorded")


KeyStore.record_usage.__signature__ = AsyncKeyStore.record_usage.__signature__ = _record_usage_signature()


class AuthManager(_StoreClient):
    """Seed-compatible key management: generate, revoke, validate, authenticate."""

    @_writes
    def generate_key(self, conn, project_id: str, rate_limit=100, profile: str = "enterprise",
                     **opts) -> str:
        """Create a key and return its secret. Options: name, max_cost, daily_budget,
        weekly_budget, monthly_budget, total_budget (USD), max_concurrent, expires_in
        (seconds or "30d"), use_keyring (default True), owner (text), metadata (a dict of
        text to text)."""
        unknown = set(opts) - {"name", "max_cost", "monthly_budget", "total_budget", "max_concurrent",
                               "expires_in", "use_keyring", "daily_budget", "weekly_budget", "owner",
                               "metadata"}
        if unknown:
            raise InvalidInput(f"unknown options: {', '.join(sorted(unknown))}")
        check_flag(opts.get("use_keyring", True), "use_keyring")
        overrides = {}
        if rate_limit is not None:
            overrides["rate_limit"] = parse_count(rate_limit, "rate_limit")
        for option, column in (("max_cost", "max_cost_nanos"), ("monthly_budget", "monthly_budget_nanos"),
                               ("total_budget", "total_budget_nanos"), ("daily_budget", "daily_budget_nanos"),
                               ("weekly_budget", "weekly_budget_nanos")):
            if opts.get(option) is not None:
                overrides[column] = parse_money(opts[option])
        if opts.get("max_concurrent") is not None:
            overrides["max_concurrent"] = parse_count(opts["max_concurrent"], "max_concurrent")
        expires_in = opts.get("expires_in")
        if expires_in is not None:
            expires_in = parse_seconds(expires_in, "expires_in")
        created = keys.create(conn, project_id, profile=profile, name=opts.get("name"),
                              overrides=overrides, expires_in=expires_in,
                              use_keyring=opts.get("use_keyring", True), owner=opts.get("owner"),
                              metadata=opts.get("metadata"))
        return created.secret

    @_reads
    def revoke_key(self, conn, key: str, reason: str | None = None) -> bool:
        """Revoke a key (secret, id or id prefix), and with the current key of a lineage
        every older secret still in its grace period. False if it was already revoked."""
        return keys.revoke(conn, keys.find(conn, key)["id"], reason).changed

    @_reads
    def validate_key(self, conn, key: str) -> bool:
        """True for a well-formed, known, active key."""
        return gate.decide(conn, gate.presented(key, "key"), dry_run=True).status != 401

    @_reads
    def authenticate(self, conn, headers=None, query=None) -> dict | None:
        """The key of a request (`x-api-key`, then `Authorization: Bearer`, then the
        `api_key` query parameter) if it is valid: {"key_id", "project_id", "profile"}."""
        decision = gate.decide(conn, gate.token_from(headers, query), dry_run=True)
        if decision.status == 401:
            return None
        return {"key_id": decision.key_id, "project_id": decision.project_id,
                "profile": decision.profile}


_MONEY_SETTINGS = {"max_cost_per_task": "max_cost_nanos", "monthly_budget": "monthly_budget_nanos",
                   "total_budget": "total_budget_nanos", "daily_budget": "daily_budget_nanos",
                   "weekly_budget": "weekly_budget_nanos"}


def _alert_at(value) -> str | None:
    """Alert thresholds as the Python API takes them: [75, 90], "75,90", or None (the
    default) -> the stored text."""
    from .profiles import alerts_text, parse_alerts

    if value is None:
        return None
    if not isinstance(value, str):
        if not hasattr(value, "__iter__"):
            raise InvalidInput("alert_at must be a list of percentages such as [75, 90]")
        value = ",".join(str(parse_count(v, "alert_at")) for v in value)
    return alerts_text(parse_alerts(value))
_COUNT_SETTINGS = {"rate_limit": "rate_limit", "tokens_per_day": "tokens_per_day", "timeout": "timeout",
                   "max_concurrent": "max_concurrent", "hold": "hold",
                   "input_tokens_per_minute": "input_tokens_per_minute",
                   "output_tokens_per_minute": "output_tokens_per_minute"}
_MODEL_LISTS = ("allowed_models", "blocked_models")


class PermissionManager(_StoreClient):
    """Seed-compatible permission management."""

    @_reads
    def apply_default_profile(self, conn, key: str, profile: str) -> dict:
        """Switch a key to a preset: the preset's allowed tools, agents and skills; the
        key keeps its own limits and blocked tools."""
        return _change(conn, key, keys.PermissionChanges(profile=profile))

    @_reads
    def set_profile(self, conn, key: str, settings: dict) -> dict:
        """Set a key's permissions: lists replace the profile's; a limit of None
        means no limit. Keys as in the seed: allowed_tools, blocked_tools,
        allowed_agents, allowed_skills, max_cost_per_task, monthly_budget, rate_limit,
        tokens_per_day, timeout, total_budget, max_concurrent, input_tokens_per_minute,
        output_tokens_per_minute (and optionally profile); allowed_models and
        blocked_models (shell patterns) replace the key's model lists ([]: every model)."""
        if not isinstance(settings, Mapping):
            raise InvalidInput(f"settings must be a dict, not {type(settings).__name__}")
        changes = keys.PermissionChanges(profile=settings.get("profile"), keep_overrides=True)
        if any(name in _MODEL_LISTS for name in settings):
            changes.clear_models = True
            for name in _MODEL_LISTS:  # the list not given keeps its patterns
                if name not in settings:
                    settings = {**settings, name: get_model_list(conn, key, name)}
        for name, value in settings.items():
            if name in _MODEL_LISTS:
                if isinstance(value, str) or not hasattr(value, "__iter__"):
                    raise InvalidInput(f"{name} must be a list of model patterns")
                changes.models[name] = [p for p in value if p != "*" or name == "blocked_models"]
            elif name in LIST_FIELDS:
                if isinstance(value, str) or not hasattr(value, "__iter__"):
                    raise InvalidInput(f"{name} must be a list of names")
                changes.replace[name] = list(value)
            elif name in _MONEY_SETTINGS:
                changes.limits[_MONEY_SETTINGS[name]] = UNLIMITED if value is None else parse_money(value)
            elif name in _COUNT_SETTINGS:
                changes.limits[name] = UNLIMITED if value is None else parse_count(value, name)
            elif name == "alert_at":
                changes.limits[name] = _alert_at(value)
            elif name != "profile":
                raise InvalidInput(f"unknown permission {shown(name)}")
        return _change(conn, key, changes)

    @_reads
    def get_profile(self, conn, key: str) -> dict:
        """The key's effective permissions, as `keys permissions --json` prints them."""
        row = keys.find(conn, key)
        return keys.permissions(conn, row).as_json(row["id"])

    @_reads
    def get_project(self, conn, project_id: str) -> dict:
        """A project's limits and what it uses, as `projects show --json` prints them."""
        return projects.rows(conn, check_text(project_id, "project id"))[0]

    @_writes
    def set_project(self, conn, project_id: str, settings: dict) -> dict:
        """Set limits shared by all of a project's keys: monthly_budget, total_budget
        (USD), rate_limit, tokens_per_day, max_concurrent, input_tokens_per_minute,
        output_tokens_per_minute; None means no limit. allowed_models and blocked_models
        (shell patterns) replace the project's model lists ([] or None: every model)."""
        check_text(project_id, "project id")
        if not isinstance(settings, Mapping):
            raise InvalidInput(f"settings must be a dict, not {type(settings).__name__}")
        changes, models_given = {}, {}
        for name, value in settings.items():
            if name in _MODEL_LISTS:
                if value is not None and (isinstance(value, str) or not hasattr(value, "__iter__")):
                    raise InvalidInput(f"{name} must be a list of model patterns")
                models_given[name] = [p for p in value or () if p != "*" or name == "blocked_models"]
                continue
            if name not in projects.SETTINGS:
                raise InvalidInput(f"unknown project limit {shown(name)}")
            column, money = projects.SETTINGS[name]
            if name == "alert_at":
                changes[column] = _alert_at(value)
                continue
            changes[column] = None if value is None else (parse_money(value) if money else parse_count(value, name))
        if models_given:
            kept = dict(zip(_MODEL_LISTS, projects.get_limits(conn, project_id).models()))
            for name in _MODEL_LISTS:  # the list not given keeps its patterns
                models_given.setdefault(name, [p for p in kept[name] if p != "*"])
        projects.set_limits(conn, project_id, changes, models=models_given, clear_models=bool(models_given))
        return projects.rows(conn, project_id)[0]


def get_model_list(conn, key, name: str) -> list:
    """A key's allowed or blocked model patterns as stored ("*" left out: every model)."""
    row = keys.find(conn, key)
    return [p for p in getattr(keys.permissions(conn, row), name) if p != "*"]


def _change(conn, key, changes) -> dict:
    row = keys.change_permissions(conn, keys.find(conn, key)["id"], changes).row
    return keys.permissions(conn, row).as_json(row["id"])

