"""A request's life, in one place: what an in-flight request is, how it starts and how
it ends.

A request that a limit has to count (a budget or a concurrency limit, on its key or
its project) is *in flight* from the admission that allows it until it ends: a row of
`in_flight` (one per request id: an id has one owner), holding its lineage, its
project, its place and the cost it reserves. It is opened by `open_request_step`, inside the
gate's serialized admission (gate.py), and ends in one of three ways:

- **settled**: its usage is recorded with its request id under any key of its lineage
  (a rotation in between changes nothing): `settle_steps` (from usage.record) stores the
  usage and deletes the row in one step (conn.record_request); an import of records
  does the same per batch (db/staging.py). From then on its cost counts as spend.
- **released** (`release_steps`): its work failed; the row goes and nothing is spent.
- **held out**: nothing came back. At `expires_ms` (the key's timeout, else 10 min) it
  gives up its place, so a concurrency limit is not blocked by lost work; but its
  reservation keeps counting against budgets until `held_ms` (the hold limit: the
  key's, else its project's, else 24 h, never shorter than the timeout). An admission
  then clears the row. A settle that arrives after expiry still settles.

So a budget is a hard cap as long as every request costs at most what it reserved
(the cost given to the check, else the key's maximum per task) and is settled or
released within the hold limit. Spend above the reservation is recorded (it happened)
and flagged: a warning, an audit entry ("usage above reservation"), a count in
`keys show`. Usage recorded with a request id that another lineage holds in flight or
has stored is refused (RequestIdConflict), and nothing is written.

The ids a check mints say which kind of request they name: `req_…` for one it put in
flight, `req-…` (`new_id(False)`) for one it did not (a key and project without a
counted limit) and for usage recorded without an id. No in-flight row ever holds a
`req-` id, so recording one is the plain insert, one statement, with its owner looked
up only when the id was stored already (`settle_steps`).
"""
from __future__ import annotations

from .db.rollups import exact_sums
from .errors import RequestIdConflict
from .values import new_request_id, usd_exact

DEFAULT_TIMEOUT_S = 600  # a request's place, for a key without a timeout
DEFAULT_HOLD_S = 86_400  # a reservation, for a key and project without a hold limit
OVER_RESERVATION = "usage above reservation"  # the audit action of a flagged settle


IN_FLIGHT = "req_"  # the prefix of an id minted for a request put in flight
NEVER_IN_FLIGHT = "req-"  # the prefix of an id minted for a request that is not


def new_id(in_flight: bool) -> str:
    """A new request id: for a request put in flight (open_request_step), or not."""
    return new_request_id(IN_FLIGHT if in_flight else NEVER_IN_FLIGHT)


def open_request_step(row, request_id: str, now: int, *, timeout_s: int | None, hold_s: int | None,
                      reserved: int | None, model: str | None = None, input_tokens: int | None = None) -> tuple:
    """Put an admitted request in flight (inside the admission's transaction). `row`:
    the key's row; `reserved`: the cost it holds (None: nothing was promised);
    `model` and `input_tokens`: what the check named (the declared input counts against
    an input tokens-per-minute limit for 60 s from the start, until it is settled).
    The statement, as a step (db/steps.py)."""
    assert not request_id.startswith(NEVER_IN_FLIGHT), "a req- id is never in flight (settle_steps)"
    timeout_s = timeout_s or DEFAULT_TIMEOUT_S  # (a timeout of 0 would hold nothing)
    hold_s = max(hold_s if hold_s is not None else DEFAULT_HOLD_S, timeout_s)
    return ("run", "INSERT INTO in_flight (request_id, lineage, key_id, project_id, started_ms, expires_ms, "
                 "held_ms, reserved_nanos, model, input_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (request_id, row["lineage"], row["id"], row["project_id"], now, now + timeout_s * 1000,
                  now + hold_s * 1000, reserved, model, input_tokens))


def used_sql(column: str) -> str:
    """A scope's requests in flight, as part of limits' one-snapshot read: how many hold
    a place, the cost still held (exact), and how many rows are past their hold. Its
    parameters: now, now, now, the scope."""
    return ("(SELECT coalesce(sum(CASE WHEN placed THEN 1 ELSE 0 END), 0) AS live, "
            f"{exact_sums(['CASE WHEN held THEN reserved_nanos END'])}, "
            "coalesce(sum(CASE WHEN gone THEN 1 ELSE 0 END), 0) AS gone "
            "FROM (SELECT reserved_nanos, expires_ms > ? AS placed, held_ms > ? AS held, held_ms <= ? AS gone "
            f"FROM in_flight WHERE {column} = ?) AS r)")


CLEAR_AT = 4  # rows past their hold a lineage (or project) keeps before an admission clears them


def clear_step(column: str, subject: str, now_ms: int) -> tuple:
    """Inside an admission: delete a scope's rows past their hold. They count for
    nothing already; clearing CLEAR_AT at a time keeps the table small at a fraction of
    a write per request."""
    return ("run", f"DELETE FROM in_flight WHERE {column} = ? AND held_ms <= ?", (subject, now_ms))


def place_frees_steps(column: str, subject: str, now_ms: int, at_most: int):
    """Seconds (1 to `at_most`) until a scope's first request in flight gives up its
    place at its timeout: a Retry-After for a concurrency refusal (see gate.py)."""
    first = (yield ("one", f"SELECT min(expires_ms) FROM in_flight WHERE {column} = ? AND expires_ms > ?",
                    (subject, now_ms)))[0]
    if first is None:
        return 1
    return max(1, min(at_most, -(-(first - now_ms) // 1000)))


def release_steps(request_id: str):
    """End a request in flight without usage. False if it was not in flight (settled,
    released, or past its hold already)."""
    return (yield ("write_one", "DELETE FROM in_flight WHERE request_id = ?", (request_id,))) == 1


def settle_steps(row: tuple, lineage: str | None, cost: int, insert: str):
    """Store a usage row (USAGE_COLUMNS; its request id given by the caller) for a key
    of `lineage`, settling the request if it is in flight there. Returns (stored, the
    cost it reserved: None if nothing was reserved or it was not in flight). Raises
    RequestIdConflict, with nothing written, when another lineage owns the id.
    `insert`: the usage row's plain insert (ON CONFLICT DO NOTHING), enough for an id
    that is never in flight."""
    if row[0].startswith(NEVER_IN_FLIGHT):
        if (yield ("write_usage", insert, row, True)) == 1:
            return True, None
        stored, holder, reserved = 0, None, None
    else:
        stored, holder, reserved = yield ("record_request", row, lineage)
    if not stored:
        owner = holder
        if owner is None:  # stored already: by which lineage's key?
            found = yield ("one", _STORED_OWNER, (row[0],))
            owner = found[0] if found else lineage  # (not stored: deleted meanwhile)
        if owner != lineage:
            raise RequestIdConflict(f"the request id {row[0]!r} belongs to another key's request; "
                                    "nothing was recorded (record it with that key, or use another id)")
        return False, None
    if holder is None or reserved is None:
        return True, None
    if cost > reserved:
        from . import audit

        yield audit.record_step(OVER_RESERVATION, row[1], {"reserved_usd": usd_exact(reserved)},
                                {"cost_usd": usd_exact(cost), "request_id": row[0]})
    return True, reserved


# The lineage of the key that stored a request (None: stored without a key).
_STORED_OWNER = "SELECT k.lineage FROM usage u LEFT JOIN keys k ON k.id = u.key_id WHERE u.request_id = ?"


def over_reservations(conn, lineage: str) -> int:
    """How many settles of the lineage's requests cost more than they reserved."""
    return conn.execute("SELECT count(*) FROM audit WHERE action = ? AND key_id IN "
                        "(SELECT id FROM keys WHERE lineage = ?)", (OVER_RESERVATION, lineage)).fetchone()[0]
