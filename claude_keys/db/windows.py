"""Rate windows: a sliding log of the last minute's requests per scope (a key lineage,
or `project:<id>`), everything about them in one place.

Two tables: `rate_slots` (scope, at_ms, n: n requests admitted at that millisecond) and
`rate_windows` (scope, used: how many slots of the scope are stored). The count in
rate_windows always equals the scope's rows in rate_slots, and every prune happens
inside a serialized admission, so after it every stored slot is in the window: taking
a slot costs the same whatever the limit. With limit N, never N+1 in any 60 s.

A key whose only limit is its rate limit takes its slot in one call: `take_slot`, the
library's steps on SQLite (under its single writer) and their twin `claude_take_slot`
below on PostgreSQL (one round trip), each reached through `conn.take_slot()`. The full
admission (gate._Request) uses the single steps inside its own transaction.
"""
from __future__ import annotations

from .base import SERVER_CLOCK_MS

WINDOW_MS = 60_000
TOUCH = "UPDATE keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)"


_WINDOW = "SELECT coalesce(sum(n), 0), min(at_ms) FROM rate_slots WHERE lineage = ? AND at_ms > ?"


def window_steps(scope: str, now_ms: int):
    """Requests in the window of a scope, and the oldest one's time (a read: no prune).
    (Steps: db/steps.py.)"""
    count, oldest = yield ("one", _WINDOW, (scope, now_ms - WINDOW_MS))
    return count, oldest


def prune_steps(scope: str, now: int):
    """Drop the slots that left the window; (slots left in it, slots dropped)."""
    gone = yield ("all", "DELETE FROM rate_slots WHERE lineage = ? AND at_ms <= ? RETURNING n",
                  (scope, now - WINDOW_MS))
    pruned = sum(n for (n,) in gone)
    stored = yield ("one", "SELECT used FROM rate_windows WHERE lineage = ?", (scope,))
    return (stored[0] if stored else 0) - pruned, pruned


def add_steps(scope: str, now: int, count: int):
    """Take a slot at `now` in a window holding `count` (after prune)."""
    yield ("run", "INSERT INTO rate_slots VALUES (?, ?, 1) ON CONFLICT (lineage, at_ms) "
                  "DO UPDATE SET n = rate_slots.n + 1", (scope, now))
    yield set_count_step(scope, count + 1)


def set_count_step(scope: str, count: int) -> tuple:
    return ("run", "INSERT INTO rate_windows VALUES (?, ?) ON CONFLICT (lineage) DO UPDATE "
                   "SET used = excluded.used", (scope, count))


_OLDEST = "SELECT min(at_ms) FROM rate_slots WHERE lineage = ?"


def oldest_steps(scope: str):
    found = yield ("one", _OLDEST, (scope,))
    return found[0]


def touch_steps(key_id: str, last_used_at, now_s: int):
    """last_used_at, to the second: at most one write per key per second."""
    if (last_used_at or 0) < now_s:
        yield ("run", TOUCH, (now_s, key_id, now_s))


def iter_step(op: tuple):
    """One operation as steps."""
    yield op


def take_slot_steps(conn, lineage: str, limit: int, key_id: str,
                    last_used_at=None) -> tuple[int, int | None, int]:
    """A key's slot as the library's own steps, in one write transaction (SQLite's
    `take_slot`). Returns (slots in the window before this request, the oldest slot's
    time, the time of the decision)."""
    from .steps import run

    with conn.write():
        # The window is measured from when the lock was ours: a request that waited
        # must not be counted as earlier than it was admitted.
        now = conn.lock_scopes([lineage])
        count, pruned = run(conn, prune_steps(lineage, now))
        if count < limit:
            run(conn, add_steps(lineage, now, count))
            run(conn, touch_steps(key_id, last_used_at, now // 1000))
        elif pruned:
            run(conn, iter_step(set_count_step(lineage, count)))
        first = conn.execute(_OLDEST, (lineage,)).fetchone()[0]
    return count, first, now


# The same steps as take_slot_steps, in one round trip (installed by migrations after
# every upgrade: it holds no data).
TAKE_SLOT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION claude_take_slot(p_lineage text, p_limit bigint, p_key text)
RETURNS TABLE (used bigint, oldest bigint, now_ms bigint) LANGUAGE plpgsql AS $$
-- One request's rate-limit slot, in one round trip: lock the lineage's window, read the
-- server's clock (after the lock: a request that waited is not counted as earlier than
-- it was admitted), prune what left the window, and take a slot if fewer than the limit
-- remain. The same steps as take_slot_steps (claude_keys/db/windows.py).
DECLARE
    v_now bigint;
    v_used bigint;
    v_pruned bigint;
BEGIN
    INSERT INTO rate_windows AS w (lineage, used) VALUES (p_lineage, 0)
        ON CONFLICT (lineage) DO UPDATE SET used = w.used
        RETURNING w.used INTO v_used;
    v_now := {SERVER_CLOCK_MS};
    WITH gone AS (DELETE FROM rate_slots WHERE lineage = p_lineage AND at_ms <= v_now - {WINDOW_MS}
                  RETURNING n)
        SELECT coalesce(sum(n), 0) INTO v_pruned FROM gone;
    v_used := v_used - v_pruned;
    IF v_used < p_limit THEN
        INSERT INTO rate_slots AS s (lineage, at_ms, n) VALUES (p_lineage, v_now, 1)
            ON CONFLICT (lineage, at_ms) DO UPDATE SET n = s.n + 1;
        UPDATE rate_windows SET used = v_used + 1 WHERE lineage = p_lineage;
        UPDATE keys SET last_used_at = v_now / 1000
            WHERE id = p_key AND (last_used_at IS NULL OR last_used_at < v_now / 1000);
    ELSIF v_pruned > 0 THEN
        UPDATE rate_windows SET used = v_used WHERE lineage = p_lineage;
    END IF;
    RETURN QUERY SELECT v_used, (SELECT min(at_ms) FROM rate_slots WHERE lineage = p_lineage), v_now;
END $$;
"""
