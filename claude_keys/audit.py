"""The audit trail: every change to keys and profiles, with when, who and what.

Written inside the same transaction as the change it describes, so the trail and
the store never disagree. Never holds a secret or a digest.
"""
from __future__ import annotations

import json
import os

from . import labels
from .values import Usd, iso_ms, iso_s, now_ms

_actor: str | None = None


def actor() -> str:
    """The OS user of this process, from its user id: not from USER or LOGNAME, which
    anyone can set. A uid without a passwd entry (containers) is `uid:N`."""
    global _actor
    if _actor is None:
        if hasattr(os, "getuid"):
            try:
                import pwd

                _actor = pwd.getpwuid(os.getuid()).pw_name
            except (ImportError, KeyError):
                _actor = f"uid:{os.getuid()}"
        else:  # Windows: the account name the system reports
            import getpass

            try:
                _actor = getpass.getuser()
            except Exception:
                _actor = "unknown"
    return _actor


def record(conn, action: str, key_id: str | None, before, after) -> None:
    _, sql, params = record_step(action, key_id, before, after)
    conn.execute(sql, params)


def record_step(action: str, key_id: str | None, before, after) -> tuple:
    """`record` as a step (db/steps.py)."""
    return ("run", "INSERT INTO audit (at_ms, actor, action, key_id, before, after) VALUES (?, ?, ?, ?, ?, ?)",
            (now_ms(), actor(), action, key_id, _json(before), _json(after)))


def _json(value: dict | None) -> str | None:
    """Stored as JSON, with times (`*_at` epoch seconds) as ISO-8601 for people."""
    if value is None:
        return None
    value = {k: iso_s(v) if k.endswith("_at") and isinstance(v, int) else v for k, v in value.items()}
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def entries(conn, *, key_id: str | None = None, since_ms: int | None = None,
            until_ms: int | None = None, action: str | None = None,
            project_id: str | None = None) -> list[dict]:
    """The trail, oldest first; `project_id`: changes of that project's limits and of
    its keys (by the key's project now)."""
    where, params = [], []
    if key_id is not None:
        where.append("key_id = ?")
        params.append(key_id)
    if action is not None:
        where.append("action = ?")
        params.append(action)
    if project_id is not None:
        where.append("(action = 'project' OR key_id IN (SELECT id FROM keys WHERE project_id = ?))")
        params.append(project_id)
    if since_ms is not None:
        where.append("at_ms >= ?")
        params.append(since_ms)
    if until_ms is not None:
        where.append("at_ms < ?")
        params.append(until_ms)
    sql = "SELECT id, at_ms, actor, action, key_id, before, after FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    out = []
    for id_, at, who, action, kid, before, after in conn.execute(sql + " ORDER BY id", params):
        before = json.loads(before) if before else None
        after = json.loads(after) if after else None
        out.append({
            "id": id_, "at": iso_ms(at), "actor": who, "action": action, "key_id": kid,
            # a change of a project's limits names its project (unchanged, so not in changes)
            "project_id": (after or before or {}).get("project_id") if action == "project" else None,
            "changes": _diff(present(before), present(after)),
        })
    if project_id is not None:  # a project's own changes name it in their values
        out = [e for e in out if e["action"] != "project" or e["project_id"] == project_id]
    return out


# Storage names -> the names the CLI and `keys permissions --json` use.
_NAMES = {"max_cost_nanos": "max_cost_per_task", "in_keyring": "stored_in_keyring", "cost_nanos": "cost_usd"}
_LISTS = ("allowed_tools", "blocked_tools", "allowed_agents", "allowed_skills", "standard_agents")
UNLIMITED = -1


def present(stored: dict | None) -> dict | None:
    """A stored audit snapshot as a person reads it: fields named as the CLI names them,
    money in USD (`*_nanos`), lists as lists, yes/no as booleans, -1 as "unlimited".
    Done when read, so trails written by any version read the same."""
    if stored is None:
        return None
    out = {}
    for name, value in stored.items():
        if name == "metadata":  # an entry per metadata key, so a change names the keys it touched
            for key, text in _metadata(value).items():
                out[f"meta.{key}"] = text
            continue
        if name in _LISTS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if name.endswith("_nanos"):
            name = _NAMES.get(name, name[:-len("_nanos")])
            if isinstance(value, int) and value != UNLIMITED:
                value = Usd(value)
        elif name in _NAMES:
            name = _NAMES[name]
            value = bool(value) if value is not None else None
        if value == UNLIMITED and not isinstance(value, bool):
            value = "unlimited"
        out[name] = value
    return out


def _metadata(value) -> dict:
    """Metadata as a snapshot holds it: a dict (edits), or the stored JSON text (a key's row)."""
    if isinstance(value, dict):
        return value
    try:
        return labels.decode(value)
    except ValueError:
        return {}


def is_money(field: str) -> bool:
    return field.startswith("max_cost") or field.endswith(("_budget", "_usd"))


def _diff(before: dict | None, after: dict | None) -> dict:
    """Only what changed: {field: [before, after]}."""
    before, after = before or {}, after or {}
    return {
        k: [before.get(k), after.get(k)]
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    }
