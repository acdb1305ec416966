"""Store-wide settings the operator chooses (`claude-api db settings`), kept in the
store's `settings` table so every process and host reads the same ones and `db copy`
carries them along. Changes are audited.

- `budget-tz`: the time zone of the calendar budgets (daily, weekly, monthly) and of
  tokens per day: "today" is the operator's today. Default UTC.
- `expiry-warning`: how long before a key expires `claude-api alerts` warns. Default 7d.
"""
from __future__ import annotations

from . import audit, periods
from .errors import InvalidInput
from .values import parse_duration, shown

BUDGET_TZ = "budget_tz"
EXPIRY_WARNING = "expiry_warning"


def _duration(text) -> str:
    if not isinstance(text, str):
        raise InvalidInput("the expiry warning must be a duration such as 7d")
    parse_duration(text)
    return text.strip().lower()


# CLI name -> (stored name, default, check (returns the value to store), what it is)
KNOWN = {
    "budget-tz": (BUDGET_TZ, periods.UTC, periods.check_zone,
                  "time zone of daily, weekly and monthly budgets and tokens per day"),
    "expiry-warning": (EXPIRY_WARNING, "7d", _duration, "how long before a key expires `alerts` warns"),
}


def _stored(name: str) -> tuple:
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else name
    if key not in KNOWN:
        raise InvalidInput(f"unknown setting {shown(name)}: choose one of {', '.join(KNOWN)}")
    return key, KNOWN[key]


def get(conn, name: str) -> str:
    _, (stored, default, _, _) = _stored(name)
    row = conn.execute("SELECT value FROM settings WHERE name = ?", (stored,)).fetchone()
    return row[0] if row else default


def budget_tz(conn) -> str:
    row = conn.execute("SELECT value FROM settings WHERE name = ?", (BUDGET_TZ,)).fetchone()
    return row[0] if row else periods.UTC


def expiry_warning_s(conn) -> int:
    return parse_duration(get(conn, "expiry-warning"))


def listing(conn) -> list[dict]:
    """Every setting: name, value, whether it is the default, and what it is."""
    stored = dict(conn.execute("SELECT name, value FROM settings").fetchall())
    return [{"name": key, "value": stored.get(column, default), "default": column not in stored,
             "description": what} for key, (column, default, _, what) in KNOWN.items()]


def change(conn, name: str, value) -> str:
    """Set a setting (checked first: a bad value changes nothing); returns what is stored."""
    key, (stored, default, check, _) = _stored(name)
    value = check(value)
    with conn.write():
        row = conn.execute("SELECT value FROM settings WHERE name = ?", (stored,)).fetchone()
        before = row[0] if row else default
        if row is not None and before == value:
            return value
        conn.execute("INSERT INTO settings (name, value) VALUES (?, ?) "
                     "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (stored, value))
        if before != value:
            audit.record(conn, "setting", None, {key: before}, {key: value})
    return value
