"""The life of a key: create, find, list, show, re-permission, disable, edit, revoke, rotate.

Functions take an open store connection (see store.connect) and work in internal
units (seconds, nano-dollars); the CLI and the Python API parse user values first.
Every change runs in one write transaction together with its audit record.

A key and the keys it replaced by rotation form a lineage. Permissions, limits,
suspension and expiry belong to the lineage: a change made through any of its keys is
made to all of them, so an old secret in its grace period is decided exactly like the
current one. Revoking the current key stops the whole lineage; revoking an old secret
in its grace period just ends its grace.
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import audit, labels, profiles, vault
from . import secret as fmt
from .errors import AmbiguousKey, ClaudeKeysError, InvalidInput, KeyNotFound
from .db import write
from .values import LazyPattern, check_text, in_usd, iso_s

MIN_PREFIX = 4
_ID_LIKE = LazyPattern(r"[0-9a-f]{1,12}")
PUBLIC_FIELDS = (
    "id", "name", "project_id", "profile", "status", "hint",
    "created_at", "last_used_at", "expires_at",
)


def looks_like_id(text) -> bool:
    """Safe to repeat in a message: shaped like a key id, so never a secret."""
    return isinstance(text, str) and bool(_ID_LIKE.fullmatch(text))


STATUSES = ("active", "retiring", "disabled", "revoked", "expired")
LIVE = ("active", "retiring", "disabled")  # `keys list`'s default


def status(row, now: int) -> str:
    """Derived from timestamps, so an expired key reads as expired with no job run. A
    revocation in the future is a rotation's grace period: the key is retiring. `now` is
    the store's clock, conn.now_s(): the server's on PostgreSQL, the one the gate decides
    by (never this machine's, which may run ahead or behind)."""
    if row["revoked_at"] is not None and row["revoked_at"] <= now:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    if row["disabled_at"] is not None:
        return "disabled"
    if row["revoked_at"] is not None:
        return "retiring"
    return "active"


def stops_at(row) -> int | None:
    """When the key stops working by itself: its expiry, or the end of its grace."""
    ends = [t for t in (row["revoked_at"], row["expires_at"]) if t is not None]
    return min(ends) if ends else None


def public(row, now: int) -> dict:
    """The fields any listing may show: never the secret, never the digest. A retiring
    key's expiry is when its grace ends. `now` as for status()."""
    state = status(row, now)
    return {
        "id": row["id"],
        "name": row["name"],
        "project_id": row["project_id"],
        "profile": row["profile"],
        "status": state,
        "hint": row["hint"],
        "created_at": iso_s(row["created_at"]),
        "last_used_at": iso_s(row["last_used_at"]),
        "expires_at": iso_s(stops_at(row) if state == "retiring" else row["expires_at"]),
        "owner": row["owner"],
        "metadata": labels.decode(row["metadata"]),
    }


def _rows(conn, sql: str, params=()) -> list:
    return conn.rows(sql, params)


def get(conn, key_id: str):
    rows = _rows(conn, "SELECT * FROM keys WHERE id = ?", (key_id,))
    if not rows:
        raise KeyNotFound(f"no key has the id {key_id}")
    return rows[0]


def find(conn, ref: str, given_as: str | None = None):
    """A KEY reference -> its row: the full secret (surrounding whitespace ignored, as
    pasted), the id, a unique id prefix, or a name unique among live keys.
    `given_as` names where the user gave it (`--key`), for the error.

    Never guesses, and never repeats a reference that could be a secret.
    """
    if not isinstance(ref, str):
        raise InvalidInput(f"a key reference must be text, not {type(ref).__name__}")
    ref = ref.strip()
    if not ref:
        raise KeyNotFound("the key reference is empty: give a key id, an id prefix, a name or the secret")
    try:
        check_text(ref, "the key reference", max_len=fmt.MAX_TOKEN_LEN)
    except InvalidInput:  # no key, name or secret holds such text
        raise KeyNotFound(_no_match(None, given_as)) from None
    if ref.startswith(fmt.PREFIX) and len(ref) == fmt.SECRET_LEN:
        if not (fmt.is_own_format(ref) and fmt.checksum_ok(ref)):
            raise KeyNotFound("that is not a valid key: its checksum does not match (mistyped?)")
        return _by_digest(conn, ref, given_as)
    if _ID_LIKE.fullmatch(ref):
        rows = _rows(conn, "SELECT * FROM keys WHERE id = ?", (ref,))
        if rows:
            return rows[0]
    if fmt.is_plausible_token(ref):  # an adopted token of another shape
        rows = _rows(conn, "SELECT * FROM keys WHERE digest = ?", (fmt.digest(ref),))
        if rows:
            return rows[0]
    matches = {r["id"]: r for r in _by_name(conn, ref)}
    prefix = _ID_LIKE.fullmatch(ref) and len(ref) >= MIN_PREFIX
    if prefix:
        matches.update((r["id"], r) for r in _rows(
            conn, "SELECT * FROM keys WHERE id >= ? AND id < ? ORDER BY id LIMIT 6",
            (ref, ref + "\U0010ffff")))
    if len(matches) == 1:
        return next(iter(matches.values()))
    if matches:
        ids = sorted(matches)
        shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
        what = "an id prefix or a name" if prefix else "a name"
        raise AmbiguousKey(f"{ref!r} is {what} of more than one key ({shown}); give the key's id")
    if _ID_LIKE.fullmatch(ref) and len(ref) < MIN_PREFIX:
        raise KeyNotFound(f"{ref!r} is too short: give at least {MIN_PREFIX} characters of a key id")
    if _ID_LIKE.fullmatch(ref) and len(ref) == 12:
        raise KeyNotFound(f"no key has the id {ref}{f' (given to {given_as})' if given_as else ''}")
    raise KeyNotFound(_no_match(ref, given_as))


def _no_match(ref: str | None, given_as: str | None) -> str:
    """Names the reference when it cannot be a secret: shorter than any secret worth a
    key (MIN_TOKEN_LEN) and not in our secret's shape, i.e. a mistyped name or id."""
    shown = ref is not None and len(ref) < MIN_TOKEN_LEN and not ref.startswith(fmt.PREFIX)
    what = f"{given_as} {ref!r}" if shown and given_as else repr(ref) if shown else \
        f"the {given_as} reference" if given_as else "that reference"
    return (f"no key matches {what}: give a key id, a unique id prefix, the name of a "
            "live key or the full secret (claude-api keys list shows them)")


def _by_name(conn, name: str) -> list:
    """Live keys (not revoked, retiring or expired) with this name: a name is a reference
    only among the keys that still work, so a rotated or retired key's name is free again."""
    now = conn.now_s()
    return _rows(conn, "SELECT * FROM keys WHERE name = ? AND revoked_at IS NULL AND "
                       "(expires_at IS NULL OR expires_at > ?) ORDER BY id LIMIT 6", (name, now))


def _by_digest(conn, token: str, given_as: str | None = None):
    rows = _rows(conn, "SELECT * FROM keys WHERE digest = ?", (fmt.digest(token),))
    if not rows:
        raise KeyNotFound(_no_match(None, given_as))
    return rows[0]


def _new_id(conn) -> str:
    import secrets

    while True:
        key_id = secrets.token_hex(6)
        if not conn.execute("SELECT 1 FROM keys WHERE id = ?", (key_id,)).fetchone():
            return key_id


@dataclass
class Created:
    secret: str
    row: object  # a keys row
    stored_in_keyring: bool
    warning: str | None = None

    def as_json(self) -> dict:
        return {
            "key": self.secret,
            "id": self.row["id"],
            "project_id": self.row["project_id"],
            "name": self.row["name"],
            "profile": self.row["profile"],
            "created_at": iso_s(self.row["created_at"]),
            "expires_at": iso_s(self.row["expires_at"]),
            "stored_in_keyring": self.stored_in_keyring,
        }


NO_KEYRING_WARNING = (
    "no OS keyring is available: this key is shown only once, so store it now "
    "(use --no-keyring or CLAUDE_API_NO_KEYRING=1 to skip the keyring)"
)


def _keep_secret(key_id: str, secret: str, use_keyring: bool) -> tuple[bool, str | None]:
    """Store a new secret in the keyring before its row exists, so a refusing keyring
    (locked, erroring) leaves nothing half-created. No backend is not an error."""
    if not use_keyring or vault.disabled():
        return False, None
    try:
        vault.store(key_id, secret)
    except vault.NoBackend:
        return False, NO_KEYRING_WARNING
    return True, None


def create(
    conn,
    project_id: str,
    *,
    profile: str = "enterprise",
    name: str | None = None,
    overrides: dict | None = None,
    expires_in: int | None = None,
    use_keyring: bool = True,
    owner: str | None = None,
    metadata: dict | None = None,
) -> Created:
    """Create a key: generate the secret, keep it in the keyring, store its digest.

    `overrides` maps override columns (profiles.OVERRIDE_FIELDS) to values; `owner`
    and `metadata` (text to text) label it (claude_keys/labels.py).
    """
    check_text(project_id, "project id")
    if name is not None:
        check_text(name, "name", allow_empty=True)
    labelled = _labels(owner, metadata)
    profile = profiles.check_profile(profile)
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(profiles.OVERRIDE_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown permission settings: {', '.join(sorted(unknown))}")
    for f in profiles.MODEL_FIELDS:  # patterns to add to the profile's (every model)
        overrides[f] = model_list(f, profiles.preset_list(profile, f), overrides[f]) if overrides.get(f) else None
    secret = fmt.new_secret()
    key_id = _new_id(conn)
    in_keyring, warning = _keep_secret(key_id, secret, use_keyring)
    try:
        with write(conn):
            now = conn.now_s()
            row = _insert(conn, key_id, secret, project_id, name, profile, overrides,
                          created_at=now, expires_at=None if expires_in is None else now + expires_in,
                          in_keyring=in_keyring, lineage=key_id, rotated_from=None, **labelled)
            audit.record(conn, "create", key_id, None, _audited(row))
    except BaseException:
        if in_keyring:
            vault.delete(key_id)
        raise
    return Created(secret, row, in_keyring, warning)


def _labels(owner, metadata) -> dict:
    """A new key's owner and metadata columns, checked (None: none)."""
    return {"owner": None if owner is None else labels.check_owner(owner),
            "metadata": labels.encode(labels.check_metadata(metadata))}


def _insert(conn, key_id, token, project_id, name, profile, overrides, *, created_at,
            expires_at, in_keyring, lineage, rotated_from, source="generated", owner=None,
            metadata=None):
    columns = {
        "id": key_id,
        "digest": fmt.digest(token),
        "hint": fmt.hint(token),
        "project_id": project_id,
        "name": name,
        "profile": profile,
        "source": source,
        "in_keyring": int(in_keyring),
        "created_at": created_at,
        "expires_at": expires_at,
        "lineage": lineage,
        "rotated_from": rotated_from,
        "owner": owner,
        "metadata": metadata,  # as stored: labels.encode
        # Its place in the order keys were made (the caller holds the write lock).
        "seq": conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM keys").fetchone()[0],
        **{f: overrides.get(f) for f in profiles.OVERRIDE_FIELDS},
    }
    for f in profiles.LIST_FIELDS + profiles.MODEL_FIELDS:
        if isinstance(columns[f], (list, tuple)):
            columns[f] = json.dumps(list(columns[f]))
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    try:
        conn.execute(f"INSERT INTO keys ({names}) VALUES ({marks})", tuple(columns.values()))
    except conn.IntegrityError:
        raise ClaudeKeysError("that token is already stored as a key") from None
    return get(conn, key_id)


def _audited(row) -> dict:
    """What the audit log keeps of a key: everything but the digest."""
    return {k: row[k] for k in row.keys() if k not in ("digest", "seq")}


def list_keys(conn, *, project_id=None, profile=None, status_filter="all", owner=None,
              metadata=()) -> list[dict]:
    """Keys in the order they were made; `status_filter` is one of STATUSES, "live"
    (LIVE: what can still be used or brought back) or "all". `owner`: only keys with
    this owner ('': keys without one); `metadata`: (key, value) pairs that must all
    match (a value of None: keys without that key). Metadata is matched here, not in
    SQL: a list of keys is small, and JSON in SQL is not one language on both backends."""
    want_meta = [(labels.check_key(k), v) for k, v in metadata]
    where, params = [], []
    if owner is not None:
        owner = labels.check_owner(owner)  # '' -> None
        where.append("owner IS NULL" if owner is None else "owner = ?")
        params += [] if owner is None else [owner]
    if project_id is not None:
        where.append("project_id = ?")
        params.append(project_id)
    if profile is not None:
        where.append("profile = ?")
        params.append(profile)
    sql = "SELECT * FROM keys" + (" WHERE " + " AND ".join(where) if where else "")
    now = conn.now_s()
    out = [public(r, now) for r in _rows(conn, sql + " ORDER BY seq", params)]
    if want_meta:
        out = [k for k in out if labels.has_entries(k["metadata"], want_meta)]
    if status_filter == "live":
        out = [k for k in out if k["status"] in LIVE]
    elif status_filter != "all":
        out = [k for k in out if k["status"] == status_filter]
    return out


standard_agents = profiles.standard_agents


def set_standard_agents(conn, add=(), remove=(), replace=None) -> list[str]:
    with write(conn):
        before = standard_agents(conn)
        after = list(before) if replace is None else []
        for name in (replace or []) + list(add):
            check_text(name, "agent name", max_len=128)
            if name not in after:
                after.append(name)
        after = [a for a in after if a not in set(remove)]
        if after != before:
            conn.execute("INSERT INTO settings VALUES ('standard_agents', ?) ON CONFLICT (name) "
                         "DO UPDATE SET value = excluded.value", (json.dumps(after),))
            audit.record(conn, "standard-agents", None, {"standard_agents": before},
                         {"standard_agents": after})
    return after


def permissions(conn, row) -> profiles.Permissions:
    return profiles.resolve(row, lambda: standard_agents(conn))


def successor(conn, key_id: str) -> str | None:
    """The key a rotation replaced this one with, if any."""
    found = conn.execute("SELECT id FROM keys WHERE rotated_from = ? ORDER BY seq LIMIT 1",
                         (key_id,)).fetchone()
    return found[0] if found else None


def show(conn, row) -> dict:
    now_ms = conn.now_ms()
    now = now_ms // 1000
    perms = permissions(conn, row)
    revoked = row["revoked_at"] is not None and row["revoked_at"] <= now
    return {
        **public(row, now),
        "source": row["source"],
        "stored_in_keyring": bool(row["in_keyring"]),
        "disabled_at": iso_s(row["disabled_at"]),
        "disabled_reason": row["disabled_reason"],
        "revoked_at": iso_s(row["revoked_at"]) if revoked else None,
        "revoked_reason": row["revoked_reason"] if revoked else None,
        "rotated_from": row["rotated_from"],
        "rotated_to": successor(conn, row["id"]),
        "permissions": perms.as_json(row["id"]),
        "current": current(conn, row, perms, now_ms),
    }


def current(conn, row, perms, now: int) -> dict:
    """What the key's lineage uses now, beside its limits (seed 000's "requests this
    month, tokens used, cost to date, rate limit status") at `now`, in ms by the store's
    clock (the one the gate wrote the windows and requests in flight by)."""
    from . import limits, periods, settings
    from .inflight import over_reservations

    scope = row["lineage"] if perms.rate_limit is not None else None  # unlimited keys keep no window
    tz = settings.budget_tz(conn)
    calendar = periods.periods(now, tz)
    per_minute = perms.input_tokens_per_minute is not None or perms.output_tokens_per_minute is not None
    used = limits.read(conn, "lineage", row["lineage"], now, calendar, scope=scope,
                       minute=row["project_id"] if per_minute else None)
    return {
        "month_cost_usd": in_usd(used.month_nanos), "monthly_budget": in_usd(perms.monthly_budget_nanos),
        "total_cost_usd": in_usd(used.total_nanos), "total_budget": in_usd(perms.total_budget_nanos),
        "tokens_today": used.tokens_today, "tokens_per_day": perms.tokens_per_day,
        "in_flight": used.in_flight, "reserved_usd": in_usd(used.reserved_nanos),
        "max_concurrent": perms.max_concurrent,
        "requests_last_minute": used.window, "rate_limit": perms.rate_limit,
        "settled_above_reservation": over_reservations(conn, row["lineage"]),
        "day_cost_usd": in_usd(used.spent["day"]), "week_cost_usd": in_usd(used.spent["week"]),
        "budget_tz": tz,
        "budgets": limits.standing(used, perms.budgets(), calendar, now),
        # (null without a tokens-per-minute limit: not read)
        "input_tokens_last_minute": used.minute_input, "input_tokens_per_minute": perms.input_tokens_per_minute,
        "output_tokens_last_minute": used.minute_output, "output_tokens_per_minute": perms.output_tokens_per_minute,
    }


@dataclass
class PermissionChanges:
    """What `keys permissions` asks for, applied in this order: profile, reset,
    replacements, removals, additions, limits. `limits` values: an int, -1 for no
    limit, None for "back to the profile's value"."""

    profile: str | None = None
    keep_overrides: bool = False
    reset: bool = False
    replace: dict = field(default_factory=dict)
    add: dict = field(default_factory=dict)
    remove: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # allowed_models / blocked_models -> patterns to add
    clear_models: bool = False  # both model lists back to every model, before `models`

    def empty(self) -> bool:
        return not (self.profile or self.reset or self.replace or self.add or self.remove
                    or self.limits or self.models or self.clear_models)


_WHAT = {"allowed_tools": "tools", "allowed_agents": "agents", "allowed_skills": "skills",
         "blocked_tools": "blocked tools"}


# What switching profile keeps of a key's own settings: its limits and its blocked tools.
# The new preset's allow-lists replace the key's (that is what switching tier means).
# Model lists are the operator's restrictions, not a tier's: kept too.
KEPT_ON_SWITCH = ("blocked_tools",) + profiles.LIMIT_FIELDS + profiles.MODEL_FIELDS + (profiles.ALERT_FIELD,)
ALLOW_LISTS = ("allowed_tools", "allowed_agents", "allowed_skills")
JSON_NAMES = {"max_cost_nanos": "max_cost_per_task", "monthly_budget_nanos": "monthly_budget",
              "total_budget_nanos": "total_budget", "daily_budget_nanos": "daily_budget",
              "weekly_budget_nanos": "weekly_budget"}  # column -> `keys permissions --json` name


@dataclass
class Changed:
    row: object  # the key's row after the change
    kept: list = field(default_factory=list)  # its own settings a profile switch kept (JSON names)


def change_permissions(conn, key_id: str, changes: PermissionChanges) -> Changed:
    """Change the permissions of a key's whole lineage (see the module docstring)."""
    if changes.profile is not None:
        changes.profile = profiles.check_profile(changes.profile)
    with write(conn):
        row = get(conn, key_id)
        profile = changes.profile or row["profile"]
        current = {f: row[f] for f in profiles.OVERRIDE_FIELDS}
        new = dict(current)
        kept = []
        if changes.reset:
            new = dict.fromkeys(profiles.OVERRIDE_FIELDS)
        elif changes.profile and not changes.keep_overrides:
            new.update(dict.fromkeys(ALLOW_LISTS))
            kept = [JSON_NAMES.get(f, f) for f in KEPT_ON_SWITCH if new[f] not in (None, "[]")]
        lists = {}

        def items(f):
            if f not in lists:
                raw = new[f]
                lists[f] = json.loads(raw) if raw is not None else profiles.preset_list(profile, f)
            return lists[f]

        for f, names in changes.replace.items():
            lists[f] = []
            for n in names:
                _add(lists[f], check_text(n, _WHAT[f], max_len=128))
        for f, names in changes.remove.items():
            for n in names:
                _remove(items(f), n, f, lambda: standard_agents(conn))
        for f, names in changes.add.items():
            for n in names:
                _add(items(f), check_text(n, _WHAT[f], max_len=128))
        for f, value in lists.items():
            new[f] = json.dumps(value)
        if changes.clear_models:
            new.update(dict.fromkeys(profiles.MODEL_FIELDS))
        for f, patterns in changes.models.items():
            current_list = json.loads(new[f]) if new[f] is not None else profiles.preset_list(profile, f)
            new[f] = json.dumps(model_list(f, current_list, patterns))
        new.update(changes.limits)
        if profile == row["profile"] and new == current:
            return Changed(row, kept)
        sets = ", ".join(f"{f} = ?" for f in new)
        conn.execute(f"UPDATE keys SET profile = ?, {sets} WHERE lineage = ?",
                     (profile, *new.values(), row["lineage"]))
        audit.record(conn, "permissions", key_id,
                     {"profile": row["profile"], **current}, {"profile": profile, **new})
        return Changed(get(conn, key_id), kept)


def model_list(field: str, items: list, patterns) -> list:
    """A model list (allowed_models / blocked_models) with `patterns` added (models.add)."""
    from . import models

    if isinstance(patterns, str) or not hasattr(patterns, "__iter__"):
        raise InvalidInput(f"{field} must be a list of model patterns")
    items = list(items)
    for pattern in patterns:
        models.add(items, pattern, allowed=field == "allowed_models")
    return items


def _add(items: list, name: str) -> None:
    if name == profiles.ALL:
        items[:] = [profiles.ALL]
    elif profiles.ALL not in items and name not in items:
        items.append(name)


def _remove(items: list, name: str, f: str, standard) -> None:
    if name == profiles.ALL:
        items.clear()
        return
    if profiles.STANDARD in items:
        agents = standard()
        if name in agents:
            items[:] = profiles.expand(items, agents)  # from now on an explicit list
    if name in items:
        items.remove(name)
    elif profiles.ALL in items:
        hint = (f"use --block-tool {name} to forbid it" if f == "allowed_tools"
                else "remove '*' first, then allow the ones you want")
        raise InvalidInput(f"this key allows all {_WHAT[f]}, so {name!r} cannot be taken out: {hint}")


@dataclass
class Revoked:
    row: object  # the key named, after the change
    changed: bool  # False: it was revoked already
    ended_grace: bool = False  # an old secret in its grace period: only its grace ended
    also: list = field(default_factory=list)  # other keys of the lineage stopped with it
    warning: str | None = None  # the keyring could not forget a secret


@contextmanager
def _changing(conn, key_id: str):
    """A write transaction over one key: (its row, the store's clock, its status)."""
    with write(conn):
        row = get(conn, key_id)
        now = conn.now_s()
        yield row, now, status(row, now)


def revoke(conn, key_id: str, reason: str | None = None) -> Revoked:
    """Revoke at once. Revoking a lineage's current key stops every secret of it (an
    old one still in its grace period too); revoking an old secret in its grace period
    ends its grace. Revoking a revoked key changes nothing."""
    if reason is not None:
        check_text(reason, "reason", max_len=1000, allow_empty=True)
    with _changing(conn, key_id) as (row, now, state):
        if state == "revoked":
            return Revoked(row, False)
        targets = [row] if state == "retiring" else _rows(
            conn, "SELECT * FROM keys WHERE lineage = ? AND (revoked_at IS NULL OR revoked_at > ?) ORDER BY seq",
            (row["lineage"], now))
        for target in targets:
            reasons = _join_reasons(target["revoked_reason"], reason)
            conn.execute("UPDATE keys SET revoked_at = ?, revoked_reason = ?, in_keyring = 0 WHERE id = ?",
                         (now, reasons, target["id"]))
            audit.record(conn, "revoke", target["id"],
                         {"revoked_at": target["revoked_at"], "revoked_reason": target["revoked_reason"]},
                         {"revoked_at": now, "revoked_reason": reasons})
        done = Revoked(get(conn, key_id), True, ended_grace=state == "retiring",
                       also=[t["id"] for t in targets if t["id"] != key_id])
    for target in targets:
        done.warning = _forget_secret(target["id"], bool(target["in_keyring"])) or done.warning
    return done


def disable(conn, key_id: str, reason: str | None = None) -> tuple:
    """Suspend a key (reversible: `enable`). The current key of a lineage suspends the
    whole lineage; a retiring key suspends itself and the older secrets only, never a
    newer one. Returns (row, the ids of the keys it suspended: none if already)."""
    if reason is not None:
        check_text(reason, "reason", max_len=1000, allow_empty=True)
    with _changing(conn, key_id) as (row, now, state):
        if state in ("revoked", "expired"):
            raise ClaudeKeysError(f"key {key_id} is {state}; there is nothing to disable")
        if state == "disabled":
            return row, []
        targets = _disable_reach(conn, row)
        marks = ", ".join("?" * len(targets))
        conn.execute(f"UPDATE keys SET disabled_at = ?, disabled_reason = ?, disabled_by = ? WHERE id IN ({marks})",
                     (now, reason or None, key_id, *targets))
        audit.record(conn, "disable", key_id, {"disabled_at": None},
                     {"disabled_at": now, "disabled_reason": reason or None, "keys": targets})
        return get(conn, key_id), targets


def disable_targets(conn, key_id: str) -> list[str]:
    """The ids `disable(key_id)` would suspend now (for a question before it does)."""
    return _disable_reach(conn, get(conn, key_id))


def _disable_reach(conn, row) -> list[str]:
    key_id = row["id"]
    family = {r["id"]: r for r in conn.rows("SELECT id, rotated_from, disabled_at FROM keys "
                                            "WHERE lineage = ?", (row["lineage"],))}
    if successor(conn, key_id) is None:
        reach = list(family)
    else:  # itself and its ancestors: the secrets it replaced
        reach, at = [], key_id
        while at is not None and at in family:
            reach.append(at)
            at = family[at]["rotated_from"]
    return sorted(k for k in reach if family[k]["disabled_at"] is None)


def enable(conn, key_id: str) -> tuple:
    """Undo exactly the `disable` that suspended this key: every key it suspended, and
    no other (a secret disabled on its own stays disabled). Returns (row, the ids of the
    keys it re-enabled: none if the key was not disabled)."""
    with _changing(conn, key_id) as (row, _, state):
        if state in ("revoked", "expired") and row["disabled_at"] is None:
            raise ClaudeKeysError(f"key {key_id} is {state}; only a disabled key can be enabled")
        if row["disabled_at"] is None:
            return row, []
        by = row["disabled_by"] or key_id
        targets = sorted(r[0] for r in conn.execute(
            "SELECT id FROM keys WHERE disabled_by = ? OR id = ?", (by, key_id)).fetchall())
        marks = ", ".join("?" * len(targets))
        conn.execute(f"UPDATE keys SET disabled_at = NULL, disabled_reason = NULL, disabled_by = NULL "
                     f"WHERE id IN ({marks})", targets)
        audit.record(conn, "enable", key_id,
                     {"disabled_at": row["disabled_at"], "disabled_reason": row["disabled_reason"]},
                     {"disabled_at": None, "disabled_reason": None, "keys": targets})
        return get(conn, key_id), targets


NO_EXPIRY = -1  # edit(expires_in=NO_EXPIRY): the key never expires


def edit(conn, key_id: str, *, name=None, expires_in: int | None = None, owner=None,
         metadata=()) -> tuple:
    """Rename a key, or set when it expires (seconds from now, or NO_EXPIRY), for the
    live keys of its lineage; set its owner ('' clears it) or change its metadata
    ((key, value) pairs in order, a value of None or '' removing the key), for every key
    of its lineage (labels are the lineage's, so reports attribute all its usage
    alike). Returns (row, changed). A revoked key stays as it is."""
    if name is not None:
        check_text(name, "name", allow_empty=True)
    if owner is not None:
        owner = labels.check_owner(owner) or ""
    metadata = [(labels.check_key(k), v) for k, v in metadata]
    with _changing(conn, key_id) as (row, now, state):
        if state == "revoked":
            raise ClaudeKeysError(f"key {key_id} is revoked; revocation is final")
        before, after = {}, {}
        if name is not None and (name or None) != row["name"]:
            before["name"], after["name"] = row["name"], name or None
        if expires_in is not None:
            expires_at = None if expires_in == NO_EXPIRY else now + expires_in
            if expires_at != row["expires_at"]:
                before["expires_at"], after["expires_at"] = row["expires_at"], expires_at
        live = dict(after)
        if owner is not None and (owner or None) != row["owner"]:
            before["owner"], after["owner"] = row["owner"], owner or None
        was = labels.decode(row["metadata"])
        meta = labels.apply(was, metadata)
        if meta != was:
            before["metadata"], after["metadata"] = was, meta
        if not after:
            return row, False
        if live:
            sets = ", ".join(f"{f} = ?" for f in live)
            conn.execute(f"UPDATE keys SET {sets} WHERE lineage = ? AND (revoked_at IS NULL OR revoked_at > ?)",
                         (*live.values(), row["lineage"], now))
        if "owner" in after or "metadata" in after:
            conn.execute("UPDATE keys SET owner = ?, metadata = ? WHERE lineage = ?",
                         (after.get("owner", row["owner"]), labels.encode(meta), row["lineage"]))
        audit.record(conn, "edit", key_id, before, after)
        return get(conn, key_id), True


def _forget_secret(key_id: str, was_in_keyring: bool) -> str | None:
    """Remove a retired key's secret from the keyring; a warning if that could not be done."""
    if vault.disabled():
        return ("the keyring is disabled (CLAUDE_API_NO_KEYRING), so the retired key's secret "
                "may still be in it") if was_in_keyring else None
    return vault.delete(key_id)


def _join_reasons(earlier: str | None, reason: str | None) -> str | None:
    return "; ".join(r for r in (earlier, reason) if r) or None


def rotate(conn, key_id: str, grace: int, *, use_keyring: bool = True) -> tuple:
    """A new secret with the same project, name, profile, overrides, expiry, owner and
    metadata. The
    old key keeps working for `grace` seconds (never past its own expiry)."""
    secret = fmt.new_secret()
    new_id = _new_id(conn)
    in_keyring, warning = _keep_secret(new_id, secret, use_keyring)
    try:
        with write(conn):
            old = get(conn, key_id)
            now = conn.now_s()
            state = status(old, now)
            if state == "retiring":
                raise ClaudeKeysError(
                    f"key {key_id} is already being retired (rotated); rotate its successor instead"
                )
            if state != "active":
                raise ClaudeKeysError(f"key {key_id} is {state}; only an active key can be rotated")
            overrides = {f: old[f] for f in profiles.OVERRIDE_FIELDS}
            row = _insert(conn, new_id, secret, old["project_id"], old["name"], old["profile"],
                          overrides, created_at=now, expires_at=old["expires_at"],
                          in_keyring=in_keyring, lineage=old["lineage"], rotated_from=key_id,
                          owner=old["owner"], metadata=old["metadata"])  # the lineage's labels
            ends = now + grace
            conn.execute(
                "UPDATE keys SET revoked_at = ?, revoked_reason = ?, in_keyring = 0 WHERE id = ?",
                (ends, f"rotated to {new_id}", key_id),
            )
            audit.record(conn, "rotate", key_id, {"revoked_at": None},
                         {"revoked_at": ends, "rotated_to": new_id})
            audit.record(conn, "create", new_id, None, _audited(row))
            old_in_keyring = bool(old["in_keyring"])
            old = get(conn, key_id)
    except BaseException:
        if in_keyring:
            vault.delete(new_id)
        raise
    # Clients already hold the old secret; the keyring need not keep it through the grace.
    warning = warning or _forget_secret(key_id, old_in_keyring)
    return Created(secret, row, in_keyring, warning), old


def split_tokens(text: str) -> list[str]:
    """Tokens as operators hold them: `API_KEYS=k1,k2`, one per line, or both."""
    return [t for t in re.split(r"[\s,]+", text) if t]


@dataclass
class Adopted:
    row: object  # a keys row
    new: bool  # False: the token was already stored (as this key)


MIN_TOKEN_LEN = 20  # shorter "tokens" are passwords or typos, not secrets worth a key
MAX_IMPORT_TOKENS = 100_000  # one import: far more than any service's keys, and one transaction


def import_tokens(conn, tokens: list[str], project_id: str, *, profile: str = "enterprise",
                  name: str | None = None, allow_weak: bool = False, owner: str | None = None,
                  metadata: dict | None = None) -> tuple[list[Adopted], list[str]]:
    """Adopt existing plaintext tokens (from `API_KEYS`, `AUTH_TOKEN`, …) as keys.

    Only their digests are stored, so clients keep working while the tokens themselves
    never reach the store. A token under MIN_TOKEN_LEN characters is refused unless
    `allow_weak`. `owner` and `metadata` label the keys it makes (a token already stored
    keeps its own). Returns the keys and warnings (never naming a token)."""
    check_text(project_id, "project id")
    if name is not None:
        check_text(name, "name", allow_empty=True)
    labelled = _labels(owner, metadata)
    profile = profiles.check_profile(profile)
    if not tokens:
        raise InvalidInput("no tokens given: pipe them in, one per line or comma-separated, "
                           "or name an environment variable with --from-env")
    if len(tokens) > MAX_IMPORT_TOKENS:
        raise InvalidInput(f"{len(tokens):,} tokens given: at most {MAX_IMPORT_TOKENS:,} at a time "
                           "(import them in parts)")
    warnings = []
    for n, token in enumerate(tokens, 1):
        if len(token) > fmt.MAX_TOKEN_LEN or not token.isprintable():
            raise InvalidInput(f"token {n} is not usable: at most {fmt.MAX_TOKEN_LEN} printable characters")
        if token.startswith(fmt.PREFIX) and len(token) == fmt.SECRET_LEN and not fmt.is_plausible_token(token):
            raise InvalidInput(f"token {n} looks like a claude-api key with a wrong checksum (mistyped?)")
        if len(token) < MIN_TOKEN_LEN:
            if not allow_weak:
                raise InvalidInput(f"token {n} has only {len(token)} characters, too few for a secret "
                                   f"(at least {MIN_TOKEN_LEN}); pass --allow-weak to adopt it anyway")
            warnings.append(f"token {n} has only {len(token)} characters: rotate it to a generated "
                            "key soon (claude-api keys rotate)")
    adopted: dict[bytes, Adopted] = {}
    with write(conn):
        now = conn.now_s()
        for token in tokens:
            d = fmt.digest(token)
            if d in adopted:
                continue
            existing = _rows(conn, "SELECT * FROM keys WHERE digest = ?", (d,))
            if existing:
                adopted[d] = Adopted(existing[0], False)
                continue
            key_id = _new_id(conn)
            row = _insert(conn, key_id, token, project_id, name, profile, {}, created_at=now,
                          expires_at=None, in_keyring=False, lineage=key_id, rotated_from=None,
                          source="imported", **labelled)
            audit.record(conn, "import", key_id, None, _audited(row))
            adopted[d] = Adopted(row, True)
    return list(adopted.values()), warnings


def reveal(conn, row) -> str:
    if vault.disabled():
        raise ClaudeKeysError("the keyring is disabled (CLAUDE_API_NO_KEYRING), so no secret can be read back")
    import hmac

    state = status(row, conn.now_s())
    if state != "active":
        raise ClaudeKeysError(f"key {row['id']} is {state}: its secret no longer works, so it is "
                              "not shown (create or rotate a key for a new one)")
    secret = vault.read(row["id"])
    if secret is None or not hmac.compare_digest(fmt.digest(secret), row["digest"]):
        why = ("it was created without the keyring" if not row["in_keyring"]
               else "the keyring has no entry for it")
        raise ClaudeKeysError(f"the secret of key {row['id']} is not in the OS keyring ({why}); "
                              "rotate the key to get a new one")
    return secret
