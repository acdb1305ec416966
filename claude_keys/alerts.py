"""Alerts: budgets past their thresholds, and keys about to expire (`claude-api alerts`).

An alert is *crossed now*: a budget (a key lineage's or a project's; daily, weekly,
monthly or total) whose recorded spend in its current period has reached one of its
thresholds (the key's or project's `alert_at`, default 50, 80 and 95 %: the highest one
reached is the alert), or a live key that expires within the expiry warning (the store
setting `expiry-warning`, default 7 days). Reservations of requests in flight are shown
beside the spend but do not raise an alert: they may still be released.

Each alert has an identity (`alert`: what, for whom, which threshold) and a `period`
(the budget period's start; for an expiry, the expiry time), so "once per alert per
period" is one row of `alert_notices` with that primary key. `notify` claims the row
(an insert that only one process or host can make) before it runs the command, marks
it sent when the command succeeds, and deletes the claim when it fails, so the next
run tries again. A claim left by a process that died while running the command is
taken over after CLAIM_EXPIRES_MS. Every sent and failed notice is audited.

Reading is done scope by scope, each one short statement outside any write
transaction: a long alerts run never holds the write lock a request needs. The
command runs outside any transaction too.
"""
from __future__ import annotations

from . import audit, keys, limits, periods, profiles, settings
from .values import iso_s

CLAIM_EXPIRES_MS = 15 * 60 * 1000  # a claim older than this, never marked sent, is taken over
SENT, CLAIMED = "sent", "claimed"
FIELDS = ("kind", "key_id", "project_id", "budget", "threshold", "percent", "spent_usd", "reserved_usd",
          "limit_usd", "period_start", "period_end")


def crossed(conn) -> list[dict]:
    """Every alert crossed now: budgets of current keys (one per lineage) and of projects,
    then keys about to expire. Each a dict of FIELDS plus `alert` and `period`."""
    now = conn.now_ms()
    tz = settings.budget_tz(conn)
    calendar = periods.periods(now, tz)
    out = []
    # The current key of each lineage (no key was rotated from it); its budgets are the lineage's.
    rows = conn.rows("SELECT * FROM keys k WHERE NOT EXISTS (SELECT 1 FROM keys s WHERE s.rotated_from = k.id) "
                     "ORDER BY seq")
    for row in rows:
        if keys.status(row, now // 1000) in ("revoked", "expired"):
            continue
        perms = profiles.resolve(row)
        out += _budget_alerts(conn, "lineage", row["lineage"], perms.budgets(), perms.alert_at, calendar, now,
                              key_id=row["id"], project_id=row["project_id"])
    columns = ", ".join(limits.ProjectLimits.FIELDS)
    for row in conn.rows(f"SELECT project_id, {columns} FROM projects ORDER BY project_id"):
        own = limits.ProjectLimits(*row)
        thresholds = profiles.parse_alerts(own.alert_at) if own.alert_at is not None else profiles.DEFAULT_ALERTS
        out += _budget_alerts(conn, "project", own.project_id, own.budgets(), thresholds, calendar, now,
                              key_id=None, project_id=own.project_id)
    out += _expiring(conn, rows, now, settings.expiry_warning_s(conn))
    return out


def _budget_alerts(conn, kind: str, subject: str, budgets: dict, thresholds, calendar: dict, now: int, *,
                   key_id, project_id) -> list[dict]:
    if not budgets or not thresholds:
        return []
    spans = {name: calendar[name] for name in budgets if name in calendar}
    used = limits.read(conn, kind, subject, now, spans, total="total" in budgets, tracked=True)
    found = []
    for name, item in zip(budgets, limits.standing(used, budgets, calendar, now)):
        budget, spent = budgets[name], item["spent_usd"].nanos
        reached = [t for t in thresholds if spent * 100 >= t * budget]
        if not reached:
            continue
        threshold = reached[-1]
        whose = "key" if kind == "lineage" else "project"
        found.append({
            "kind": "budget", "key_id": key_id, "project_id": project_id, "budget": item["budget"],
            "threshold": threshold,
            "percent": round(spent * 100 / budget, 1) if budget else 100.0,
            "spent_usd": item["spent_usd"], "reserved_usd": item["reserved_usd"], "limit_usd": item["limit_usd"],
            "period_start": item["period_start"], "period_end": item["resets_at"],
            "alert": f"budget:{whose}:{subject}:{item['budget']}:{threshold}",
            "period": item["period_start"] or "total",
        })
    return found


def _expiring(conn, rows, now_ms: int, warn_s: int) -> list[dict]:
    now = now_ms // 1000
    found = []
    for row in rows:
        expires = row["expires_at"]
        if expires is None or keys.status(row, now) not in ("active", "disabled") or expires - now > warn_s:
            continue
        found.append({
            "kind": "expiry", "key_id": row["id"], "project_id": row["project_id"], "budget": None,
            "threshold": None, "percent": None, "spent_usd": None, "reserved_usd": None, "limit_usd": None,
            "period_start": None, "period_end": iso_s(expires), "expires_in_s": expires - now,
            "alert": f"expiry:key:{row['id']}", "period": iso_s(expires),
        })
    return found


def message(alert: dict) -> dict:
    """What a notice carries: the alert as `alerts --json` lists it."""
    return dict(alert)


# -- notices: once per alert and period, across processes and hosts -----------------

def claim(conn, alert: dict) -> bool:
    """Take this alert's notice for its period: True for exactly one caller (an insert
    on the primary key; or the takeover of a claim whose process died)."""
    now = conn.now_ms()
    if conn.write_one("INSERT INTO alert_notices (alert, period, state, claimed_ms) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (alert, period) DO NOTHING", (alert["alert"], alert["period"], CLAIMED, now)):
        return True
    return conn.write_one("UPDATE alert_notices SET claimed_ms = ? WHERE alert = ? AND period = ? AND state = ? "
                          "AND claimed_ms < ?",
                          (now, alert["alert"], alert["period"], CLAIMED, now - CLAIM_EXPIRES_MS)) == 1


def sent(conn, alert: dict) -> None:
    with conn.write():
        conn.execute("UPDATE alert_notices SET state = ?, sent_ms = ? WHERE alert = ? AND period = ?",
                     (SENT, conn.now_ms(), alert["alert"], alert["period"]))
        audit.record(conn, "alert sent", alert["key_id"], None, _audited(alert))


def failed(conn, alert: dict, why: str) -> None:
    """The command failed: give the claim up, so the next run tries again."""
    with conn.write():
        conn.execute("DELETE FROM alert_notices WHERE alert = ? AND period = ? AND state = ?",
                     (alert["alert"], alert["period"], CLAIMED))
        audit.record(conn, "alert failed", alert["key_id"], None, {**_audited(alert), "error": why})


def _audited(alert: dict) -> dict:
    return {k: (v.literal if hasattr(v, "literal") else v) for k, v in alert.items() if v is not None}


def run_command(command: str, alert: dict, timeout_s: float) -> str | None:
    """Run the operator's command with the alert's JSON on stdin (through the shell, as
    cron would). None when it succeeded, else why not. The command dies with this
    process (Linux's parent-death signal) and is stopped past `timeout_s`."""
    import subprocess
    import sys

    from .render import json_text

    preexec = None
    if sys.platform.startswith("linux"):
        import ctypes
        import os
        import signal

        parent = os.getpid()

        def preexec():
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:
                os._exit(1)
    try:
        done = subprocess.run(command, shell=True, input=json_text(message(alert)) + "\n", text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout_s,
                              preexec_fn=preexec)
    except subprocess.TimeoutExpired:
        return f"the command did not finish within {timeout_s:g} s"
    except OSError as e:
        return f"the command could not start: {e.strerror or e}"
    if done.returncode != 0:
        last = (done.stderr or "").strip().splitlines()[-1:] or [""]
        return f"the command exited with {done.returncode}" + (f": {last[0][:200]}" if last[0] else "")
    return None


def notify(conn, alerts: list[dict], command: str, *, timeout_s: float = 60.0) -> list[dict]:
    """Run `command` once per alert and period (see the module docstring). Returns, per
    alert, {"alert", "period", "result": "sent" | "failed" | "already sent", "error"}."""
    results = []
    for alert in alerts:
        if not claim(conn, alert):
            results.append({"alert": alert["alert"], "period": alert["period"], "result": "already sent",
                            "error": None})
            continue
        why = run_command(command, alert, timeout_s)
        if why is None:
            sent(conn, alert)
        else:
            failed(conn, alert, why)
        results.append({"alert": alert["alert"], "period": alert["period"],
                        "result": "sent" if why is None else "failed", "error": why})
    return results
