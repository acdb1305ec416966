"""What the live view (`usage blocks --live`, `usage watch`) shows, as data: the 5-hour
block under way with its burn rate and where that rate takes it by the block's end,
against optional token and cost limits, and the budgets closest to their limits. Each
refresh first imports what Claude Code appended to its logs (the incremental import:
only new bytes are read). cli/live.py draws it.
"""
from __future__ import annotations

import os

BUDGETS_SHOWN = 5


def refresh_logs(conn, db_path: str) -> dict:
    """Import what Claude Code appended to its logs since the last import (CLAUDE_CONFIG_DIR,
    else ~/.claude and ~/.config/claude): {"folders": […], "new": requests stored}.
    No log folder: nothing to import, and the store is shown as it is."""
    from .importers import import_files
    from .importers.claude_code import default_folders
    from .pricing import table, user_prices_path

    folders, _ = default_folders()
    if not folders:
        return {"folders": [], "new": 0}
    result = import_files(conn, folders, fmt="claude-code", prices=table(user_prices_path(db_path)),
                          db_path=db_path)
    return {"folders": folders, "new": result.imported + result.replaced}


def snapshot(conn, now_ms: int, *, project_id=None, key_id=None, token_limit=None,
             cost_limit_nanos=None) -> dict:
    """The active block (None when there is none; then `last_end_ms` says when the last
    one ended), the limits given, and the budgets closest to their limits.
    `token_limit` may be "max": the most tokens any earlier block used."""
    from . import reports

    block = reports.active_block(conn, now_ms, project_id=project_id, key_id=key_id)
    found = {"now_ms": now_ms, "block": block, "last_end_ms": None,
             "token_limit": token_limit, "cost_limit_nanos": cost_limit_nanos}
    if block is None or token_limit == "max":
        report = reports.Report(conn, reports.Window(None, None, None), project_id=project_id, key_id=key_id)
        earlier = [b for b in report.blocks(now_ms) if not b["active"]]
        if block is None and earlier:
            found["last_end_ms"] = earlier[-1]["end_ms"]
        if token_limit == "max":
            found["token_limit"] = max((tokens(b["counters"]) for b in earlier), default=None)
    found["budgets"] = closest_budgets(conn, now_ms)
    return found


def tokens(counters) -> int:
    return sum(counters[1:5])


def closest_budgets(conn, now_ms: int, limit: int = BUDGETS_SHOWN) -> list[dict]:
    """Every budget (daily, weekly, monthly, total: calendar periods in the store's budget
    time zone) of live keys (one per lineage: a rotated key shares its budget with its
    successor) and of projects, the most used first: {"scope": "key" or "project", "id",
    "name", "project_id", "period": "daily" … "total", "used_nanos", "limit_nanos"}."""
    from . import keys, limits, settings
    from .periods import ADJECTIVE, periods
    from .projects import get_limits

    calendar = periods(now_ms, settings.budget_tz(conn))
    now_s = now_ms // 1000
    found, lineages = [], set()

    def add(scope, kind, subject, budgets, **who):
        used = limits.read(conn, kind, subject, now_ms, calendar, total="total" in budgets, tracked=False)
        for name, nanos in budgets.items():
            spent = used.total_nanos if name == "total" else used.spent.get(name, 0)
            found.append({"scope": scope, **who, "period": ADJECTIVE[name], "limit_nanos": nanos,
                          "used_nanos": spent or 0})

    for row in conn.rows("SELECT * FROM keys ORDER BY seq DESC"):  # a lineage's newest key first
        if row["lineage"] in lineages or keys.status(row, now_s) not in ("active", "retiring"):
            continue
        budgets = keys.permissions(conn, row).budgets()
        if budgets:
            lineages.add(row["lineage"])
            add("key", "lineage", row["lineage"], budgets, id=row["id"], name=row["name"],
                project_id=row["project_id"])
    for (project_id,) in conn.execute("SELECT project_id FROM projects").fetchall():
        budgets = get_limits(conn, project_id).budgets()
        if budgets:
            add("project", "project", project_id, budgets, id=project_id, name=None, project_id=project_id)
    found.sort(key=lambda b: (-fraction(b["used_nanos"], b["limit_nanos"]), b["scope"], b["id"], b["period"]))
    return found[:limit]


def fraction(used: int, limit: int) -> float:
    if limit <= 0:
        return float("inf") if used > 0 else 1.0
    return used / limit


def local_zone():
    """Where times are shown: CLAUDE_API_TZ, else the system's zone."""
    name = os.environ.get("CLAUDE_API_TZ")
    if name:
        from .reports import zone

        return zone(name)
    from datetime import datetime

    return datetime.now().astimezone().tzinfo
