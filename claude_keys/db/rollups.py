"""The usage roll-ups: defined once here, their SQL for both backends generated from it.

A roll-up sums the same counters over a grouping of the usage rows. Its key columns
are expressions over a request's canonical fields (below): the key ('' for none), the
project, the model and the UTC hour. From that one definition come:

- `trigger_sql()`: SQLite's trigger adding each new request to every roll-up in the
  same statement (per row: the cheapest write on SQLite's request path);
- `merge_sql(table, source, sign)`: one statement adding (sign 1) or taking away
  (sign -1) a whole set of requests, grouped: bulk imports and deletions on SQLite,
  and every write on PostgreSQL, where `with_rollups()` makes the write and its
  roll-ups one statement (data-modifying CTEs), safe against any concurrent writer.
"""
from __future__ import annotations

from functools import lru_cache

from ..values import LazyPattern

# The usage table's columns (one row per request), and its token counts.
USAGE_COLUMNS = ("request_id", "key_id", "project_id", "at_ms", "model", "input_tokens",
                 "output_tokens", "cache_read_tokens", "cache_write_5m_tokens",
                 "cache_write_1h_tokens", "cost_nanos", "priced", "session_id")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens",
                "cache_write_1h_tokens")
COUNTERS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens",
            "cache_write_5m_tokens", "cache_write_1h_tokens", "cost_nanos", "unpriced")

# A request's canonical fields, as expressions over a usage row ({r} is its qualifier).
CANONICAL = {
    "key_id": "coalesce({r}key_id, '')",
    "project_id": "{r}project_id",
    "model": "{r}model",
    "hour": "{r}at_ms / 3600000",
    "session_id": "coalesce({r}session_id, '')",
    "requests": "1",
    **{c: f"{{r}}{c}" for c in COUNTERS[1:-1]},
    "unpriced": "1 - {r}priced",
}

# Each roll-up: its key columns (the primary key, in order) over the canonical fields.
ROLLUPS = {
    # Per key and UTC day: budgets and token limits; reports about keys on whole days.
    "usage_daily": {"key_id": "key_id", "day": "hour / 24", "project_id": "project_id",
                    "model": "model"},
    # Per hour: reports whose bounds fall inside a UTC day (other time zones, --since 10:17).
    "usage_hourly": {"hour": "hour", "project_id": "project_id", "key_id": "key_id",
                     "model": "model"},
    # Per project and day: reports not about keys, at a size set by days x projects x models.
    "usage_project_daily": {"day": "hour / 24", "project_id": "project_id", "model": "model"},
    # Per hour and Claude Code session: reports by session (requests without one stay out).
    "usage_sessions": {"hour": "hour", "session_id": "session_id", "project_id": "project_id",
                       "key_id": "key_id", "model": "model"},
}
# Roll-ups that hold only some requests: a condition over the canonical fields.
ONLY = {"usage_sessions": "session_id <> ''"}
GRAIN = ("key_id", "project_id", "model", "hour", "session_id")  # the finest grouping: every roll-up's keys derive from it

_NAME = LazyPattern(r"\b(" + "|".join(CANONICAL) + r")\b")


def _over_row(expression: str, qualifier: str) -> str:
    """A key expression over the canonical fields, rewritten over one usage row."""
    return _NAME.sub(lambda m: "(" + CANONICAL[m.group(1)].format(r=qualifier) + ")", expression)


def canonical_select(source: str) -> str:
    """The canonical fields of every request in `source` (a table or CTE of usage rows)."""
    fields = ", ".join(f"{expr.format(r='')} AS {name}" for name, expr in CANONICAL.items())
    return f"SELECT {fields} FROM {source}"


def _upsert_tail(table: str) -> str:
    keys = ", ".join(ROLLUPS[table])
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTERS)
    return f"ON CONFLICT ({keys}) DO UPDATE SET {adds}"


def merge_sql(table: str, source: str, sign: int = 1, *, canonical: bool = False) -> str:
    """Add (sign 1) or take away (sign -1) the requests of `source`, grouped, to `table`.

    `source` holds usage rows, or with canonical=True rows already in the canonical
    fields (such as a grouping at the GRAIN). Rows are upserted in key order, so two
    writers never lock one table's roll-up rows in opposite orders (and on PostgreSQL
    every write of usage is one with_rollups statement, so tables go in one order too)."""
    keys = ROLLUPS[table]
    group = ", ".join(str(i) for i in range(1, len(keys) + 1))
    return (f"INSERT INTO {table} ({', '.join(keys)}, {', '.join(COUNTERS)}) "
            f"{grouped_sql(table, source, sign, canonical=canonical)} ORDER BY {group} {_upsert_tail(table)}")


def grouped_sql(table: str, source: str, sign: int = 1, *, canonical: bool = False, extra: str = "") -> str:
    """The rows of roll-up `table` that the requests of `source` make (times sign), with
    `extra` columns after them."""
    keys = ROLLUPS[table]
    rows = source if canonical else f"({canonical_select(source)}) AS c"
    minus = "-" if sign < 0 else ""
    group = ", ".join(str(i) for i in range(1, len(keys) + 1))
    sums = ", ".join(f"{minus}sum({c})" for c in COUNTERS)
    return (f"SELECT {', '.join(keys.values())}, {sums}{extra} FROM {rows} WHERE {ONLY.get(table, 'true')} "
            f"GROUP BY {group}")


def grain_sql(source: str) -> str:
    """The requests of `source` grouped at the GRAIN, in the canonical fields: a small
    table from which every roll-up can be merged (canonical=True)."""
    keys = ", ".join(GRAIN)
    sums = ", ".join(f"sum({c}) AS {c}" for c in COUNTERS)
    return f"SELECT {keys}, {sums} FROM ({canonical_select(source)}) AS c GROUP BY {keys}"


def only_sql(table: str, qualifier: str = "") -> str:
    """Which usage rows a roll-up holds, as a condition over the usage table ('true': all)."""
    return _over_row(ONLY[table], qualifier) if table in ONLY else "true"


def prune_sql(table: str, source: str | None = None) -> str:
    """After taking requests away: drop the roll-up rows left with none (only those the
    usage rows of `source` belong to, when given: a prune need not read a whole roll-up)."""
    if source is None:
        return f"DELETE FROM {table} WHERE requests = 0"
    keys = ROLLUPS[table]
    return (f"DELETE FROM {table} WHERE requests = 0 AND ({', '.join(keys)}) IN "
            f"(SELECT {', '.join(keys.values())} FROM ({canonical_select(source)}) AS c)")


def trigger_sql() -> str:
    """SQLite: add each new usage row to every roll-up, unless a bulk write (an import
    or a copy) is adding them set-wise itself (a row in bulk_mode, which only that
    transaction can see)."""
    statements = []
    for table, keys in ROLLUPS.items():
        values = [_over_row(expr, "NEW.") for expr in keys.values()]
        values += [CANONICAL[c].format(r="NEW.") for c in COUNTERS]
        rows = (f"SELECT {', '.join(values)} WHERE {only_sql(table, 'NEW.')}" if table in ONLY
                else f"VALUES ({', '.join(values)})")
        statements.append(f"INSERT INTO {table} ({', '.join(keys)}, {', '.join(COUNTERS)}) "
                          f"{rows} {_upsert_tail(table)};")
    body = "\n    ".join(statements)
    return ("CREATE TRIGGER usage_rollups AFTER INSERT ON usage\n"
            f"WHEN NOT EXISTS (SELECT 1 FROM bulk_mode) BEGIN\n    {body}\nEND")


def add_one_sql(table: str, source: str) -> str:
    """Add the one request of `source` (usage rows: at most one) to `table`: merge_sql
    without the grouping and sorting, which one row does not need (the request path's
    write on PostgreSQL: a shorter statement, less work for the server)."""
    keys = ROLLUPS[table]
    values = [_over_row(expr, "") for expr in keys.values()] + [CANONICAL[c].format(r="") for c in COUNTERS]
    return (f"INSERT INTO {table} ({', '.join(keys)}, {', '.join(COUNTERS)}) SELECT {', '.join(values)} "
            f"FROM {source} WHERE {only_sql(table)} {_upsert_tail(table)}")


def rollup_ctes(source: str, sign: int = 1, *, one: bool = False) -> str:
    """The CTEs r0, r1, ... adding (or taking away) the requests of `source` to every
    roll-up, in one order (`one`: `source` holds at most one request)."""
    return ",\n".join(f"r{i} AS ({add_one_sql(table, source) if one else merge_sql(table, source, sign)})"
                       for i, table in enumerate(ROLLUPS))


@lru_cache(maxsize=64)
def with_rollups(write: str, sign: int = 1, *, one: bool = False) -> str:
    """PostgreSQL: `write` (an INSERT or DELETE on usage ending in RETURNING *) and its
    roll-ups as one statement, answering how many requests it wrote or removed (`one`:
    the write touches at most one request)."""
    merges = rollup_ctes("changed", sign, one=one)
    return f"WITH changed AS ({write}),\n{merges}\nSELECT count(*) FROM changed"


def remove_requests(conn, doomed: str) -> int:
    """Take the requests copied into the table `doomed` (usage rows) out of the store:
    out of every roll-up (sign -1, then the emptied roll-up rows pruned) and out of
    usage, inside the caller's write transaction. Returns how many."""
    count = conn.execute(f"SELECT count(*) FROM {doomed}").fetchone()[0]
    if not count:
        return 0
    conn.remove_usage(doomed)
    for table in ROLLUPS:
        conn.execute(prune_sql(table, doomed))
    return count


def exact_sums(expressions) -> str:
    """SQL summing each (non-negative, 64-bit) expression without overflow on either
    backend: SQLite's sum() fails past 2**63, so each value is summed as its high and
    low 32 bits (every partial sum stays far inside 64 bits). `combine` puts them back.
    Each expression is written twice: it must not hold a `?` placeholder."""
    parts = []
    for e in expressions:
        parts += [f"sum(({e}) / 4294967296)", f"sum(({e}) % 4294967296)"]
    return ", ".join(parts)


def combine(row) -> tuple:
    """Exact Python ints from a row of exact_sums (0 where nothing was summed)."""
    values = [v or 0 for v in row]
    return tuple([(values[i] << 32) + values[i + 1] for i in range(0, len(values), 2)])
