"""Projects: the limits that all of a project's keys share, and what each project uses.

A project exists as soon as a key, a limit or a recorded request names it. Its limits
(daily, weekly, monthly and total budgets, a rate limit shared by all its keys, tokens per day,
requests in flight at once) are checked on every request beside the key's own (see
claude_keys.gate). A limit of None is no limit; changes are audited.
"""
from __future__ import annotations

import json

from . import audit, keys, limits, periods, settings
from .errors import InvalidInput
from .db.rollups import combine, exact_sums
from .values import check_text, in_usd

# Setting name (as the CLI and JSON name it) -> (column, is money)
SETTINGS = {
    "monthly_budget": ("monthly_budget_nanos", True),
    "total_budget": ("total_budget_nanos", True),
    "rate_limit": ("rate_limit", False),
    "tokens_per_day": ("tokens_per_day", False),
    "max_concurrent": ("max_concurrent", False),
    "hold": ("hold", False),  # not a limit: how long an unsettled request's reservation counts (inflight.py)
    "daily_budget": ("daily_budget_nanos", True),
    "weekly_budget": ("weekly_budget_nanos", True),
    "alert_at": ("alert_at", False),  # not a limit: `claude-api alerts`' thresholds, "50,80,95" (None: default)
    "input_tokens_per_minute": ("input_tokens_per_minute", False),
    "output_tokens_per_minute": ("output_tokens_per_minute", False),
}
MODEL_LISTS = ("allowed_models", "blocked_models")  # JSON lists of patterns (models.py); NULL: every model
# Later fields go last, so CSV columns keep their places.
FIELDS = ("project_id", "keys", "active_keys", "month_cost_usd", "total_cost_usd", "in_flight",
          "monthly_budget", "total_budget", "rate_limit", "tokens_per_day", "max_concurrent", "hold",
          "retiring_keys", "daily_budget", "weekly_budget", "alert_at", "input_tokens_per_minute",
          "output_tokens_per_minute", *MODEL_LISTS)


def get_limits(conn, project_id: str) -> limits.ProjectLimits:
    return limits.of_project(conn, project_id)


def set_limits(conn, project_id: str, changes: dict, *, models: dict | None = None,
               clear_models: bool = False) -> limits.ProjectLimits:
    """Change some of a project's limits: `changes` maps column -> value (None: no limit);
    `models` maps allowed_models / blocked_models to patterns to add, after
    `clear_models` (both lists back to every model)."""
    check_text(project_id, "project id")
    unknown = set(changes) - set(limits.ProjectLimits.FIELDS) | set(changes) & set(MODEL_LISTS)
    if unknown:
        raise InvalidInput(f"unknown project limits: {', '.join(sorted(unknown))}")
    with conn.write():
        before = get_limits(conn, project_id)
        old = {f: getattr(before, f) for f in limits.ProjectLimits.FIELDS}
        new = {**old, **changes}
        if clear_models:
            new.update(dict.fromkeys(MODEL_LISTS))
        for f, patterns in (models or {}).items():
            items = json.loads(new[f]) if new[f] is not None else (["*"] if f == "allowed_models" else [])
            new[f] = json.dumps(keys.model_list(f, items, patterns))
        if new == old:
            return before
        columns = ", ".join(new)
        updates = ", ".join(f"{c} = excluded.{c}" for c in new)
        conn.execute(f"INSERT INTO projects (project_id, {columns}) VALUES (?{', ?' * len(new)}) "
                     f"ON CONFLICT (project_id) DO UPDATE SET {updates}", (project_id, *new.values()))
        audit.record(conn, "project", None, {"project_id": project_id, **old},
                     {"project_id": project_id, **new})
        return get_limits(conn, project_id)


def rows(conn, project_id: str | None = None) -> list[dict]:
    """Every project (or the one named, even if nothing names it yet), with its keys, its
    spend this month and in total, its requests in flight and its limits: the
    `projects list --json` rows."""
    now = conn.now_ms()  # the store's: the clock the gate writes requests in flight by
    month = periods.periods(now, settings.budget_tz(conn))["month"]
    only, params = (" WHERE project_id = ?", (project_id,)) if project_id is not None else ("", ())
    found: dict[str, dict] = {}

    def entry(pid):
        return found.setdefault(pid, {"project_id": pid, "keys": 0, "active_keys": 0, "month_cost_usd": in_usd(0),
                                      "total_cost_usd": in_usd(0), "in_flight": 0, **dict.fromkeys(SETTINGS),
                                      "retiring_keys": 0, "allowed_models": ["*"], "blocked_models": []})

    if project_id is not None:
        entry(project_id)
    now_s = now // 1000
    for row in conn.rows(f"SELECT project_id, revoked_at, expires_at, disabled_at FROM keys{only}", params):
        item = entry(row["project_id"])
        item["keys"] += 1
        # Apart: a retiring key (rotated, in its grace) still works, but only until its grace ends.
        status = keys.status(row, now_s)
        item["active_keys"] += status == "active"
        item["retiring_keys"] += status == "retiring"
    days, plus, minus, edges = limits.pieces(month.start_ms, month.end_ms)
    first_day, next_first_day = days if days else (0, 0)
    this_month = f"CASE WHEN day >= {int(first_day)} AND day < {int(next_first_day)} THEN cost_nanos END"
    sums = exact_sums([this_month, "cost_nanos"])  # (days written into the SQL: each sum is repeated)
    for row in conn.execute(f"SELECT project_id, {sums} FROM usage_project_daily{only} GROUP BY project_id",
                            params).fetchall():
        item = entry(row[0])
        month_nanos, total_nanos = combine(row[1:])
        if plus or minus or edges or not days:  # a month in a zone other than UTC: its hours at either end too
            month_nanos = limits.read(conn, "project", row[0], now, {"month": month}, total=False,
                                      tracked=False).spent["month"]
        item["month_cost_usd"], item["total_cost_usd"] = in_usd(month_nanos), in_usd(total_nanos)
    flight_where = " AND project_id = ?" if project_id is not None else ""
    for pid, count in conn.execute(f"SELECT project_id, count(*) FROM in_flight WHERE expires_ms > ?"
                                   f"{flight_where} GROUP BY project_id",
                                   (now, *params)).fetchall():
        entry(pid)["in_flight"] = count
    columns = ", ".join([column for column, _ in SETTINGS.values()] + list(MODEL_LISTS))
    for row in conn.execute(f"SELECT project_id, {columns} FROM projects{only}", params).fetchall():
        item = entry(row[0])
        for (name, (_, money)), value in zip(SETTINGS.items(), row[1:]):
            item[name] = in_usd(value) if money else value
        for name, value in zip(MODEL_LISTS, row[1 + len(SETTINGS):]):
            if value is not None:
                item[name] = json.loads(value)
    return [found[pid] for pid in sorted(found)]


def budgets(conn, project_id: str) -> dict:
    """The project's budgets with what each has spent, reserved and left, and when it
    resets (limits.standing), in the store's budget time zone."""
    now = conn.now_ms()
    tz = settings.budget_tz(conn)
    calendar = periods.periods(now, tz)
    own = get_limits(conn, project_id)
    used = limits.read(conn, "project", project_id, now, calendar, total=True, tracked=True)
    return {"budget_tz": tz, "day_cost_usd": in_usd(used.spent["day"]), "week_cost_usd": in_usd(used.spent["week"]),
            "budgets": limits.standing(used, own.budgets(), calendar, now)}


def known(conn, project_id: str) -> bool:
    """Whether a key, a limit or a recorded request names the project."""
    return any(conn.execute(f"SELECT 1 FROM {table} WHERE project_id = ? LIMIT 1", (project_id,)).fetchone()
               for table in ("keys", "projects", "usage_project_daily"))
