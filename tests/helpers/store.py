"""Reading the test's store back (either backend): rows, every row, and whether it is
consistent."""
import os
from contextlib import contextmanager

USAGE_TABLES = ("usage", "usage_daily", "usage_hourly", "usage_project_daily")
NANOS = 1_000_000_000  # nano-dollars in a dollar
LIVE = ("SELECT count(*) FROM in_flight WHERE NOT EXISTS "
        "(SELECT 1 FROM usage WHERE usage.request_id = in_flight.request_id)")  # unsettled


def sql(query: str, params=(), db=None) -> list[tuple]:
    """Rows of a query on the test's store (either backend), as plain tuples; a
    statement that returns none ([]) is committed."""
    from claude_keys import db as store

    conn = store.connect(db)
    try:
        cur = conn.execute(query, params)
        return [] if cur.description is None else [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def change_marker(conn) -> int:
    """A number that moves whenever anyone commits a write to the store of `conn` (it may
    move without a change, never the other way): PostgreSQL's next transaction id (every
    write takes one), SQLite's data_version (the commits of other connections). Lets a
    test that checks a store after thousands of refused calls skip the check when
    nothing was written."""
    if conn.backend == "postgresql":
        return next(iter(conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")))[0]
    return conn.execute("PRAGMA data_version").fetchone()[0]


def dump(db=None) -> str:
    """Every row of every table of the store, as text (to search for what must not be there)."""
    from claude_keys import db as store
    from claude_keys.db import transfer

    conn = store.connect(db)
    try:
        return "\n".join(repr(tuple(r)) for t in transfer.tables(conn)
                         for r in conn.execute(f"SELECT * FROM {t}"))
    finally:
        conn.close()


def assert_consistent(db=None) -> tuple:
    """The store passes its integrity checks (SQLite's own on SQLite), every roll-up
    agrees with the usage rows, and every rate-limit window count agrees with its slots.
    Returns the usage sums."""
    from claude_keys import db as store
    from claude_keys.db import transfer

    conn = store.connect(db)
    try:
        if conn.backend == "sqlite":
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("SELECT count(*) FROM bulk_mode").fetchone() == (0,)
        assert transfer.disagreements(conn) == []
        windows = dict(conn.execute("SELECT lineage, used FROM rate_windows WHERE used > 0").fetchall())
        slots = dict(conn.execute("SELECT lineage, sum(n) FROM rate_slots GROUP BY lineage").fetchall())
        assert windows == slots
        from claude_keys.db.rollups import combine, exact_sums

        sums = exact_sums(["1", "input_tokens", "output_tokens", "cost_nanos"])  # exact past 2**63
        return combine(conn.execute(f"SELECT {sums} FROM usage").fetchone())
    finally:
        conn.close()


def connection_of(api_object):
    """The connection a Python API object's next call on this thread uses."""
    with api_object._connections.connection(create=False) as conn:
        return conn


def empty_usage():
    """Take every request out of the store, roll-ups included."""
    from claude_keys import db as store

    conn = store.connect()
    with conn.transaction():
        for table in USAGE_TABLES:
            conn.execute(f"DELETE FROM {table}")
    conn.close()


def store_is_absent(store_backend, target) -> bool:
    """No store at `target`: no file (nor its folder), or a database claude-api has not set up."""
    if store_backend == "sqlite":
        return not os.path.lexists(target) and not os.path.lexists(os.path.dirname(target))
    from claude_keys import db as store
    from claude_keys.errors import StoreMissing

    try:
        store.connect(target, create=False).close()
    except StoreMissing:
        return True
    return False


@contextmanager
def store_held_busy(store_backend, target, table: str = "rate_windows"):
    """Another connection holding what a rate-limited key's slot writes to (on
    PostgreSQL; `table`: another table instead; on SQLite, the whole store)."""
    if store_backend == "sqlite":
        import sqlite3

        other = sqlite3.connect(target, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    import psycopg

    with psycopg.connect(target) as other:
        other.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield
        other.rollback()
