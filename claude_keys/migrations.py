"""The store's schema, as sqlite-utils migrations: one small named function per step.

Imported only when a store's PRAGMA user_version is behind store.SCHEMA_VERSION;
never on the hot path. Add a step by appending a function and bumping
SCHEMA_VERSION (a test checks the two agree). Never edit a step that has shipped.

Units: `*_at` columns are epoch seconds, `*_ms` epoch milliseconds, `*_nanos`
nano-dollars (1e-9 USD). Permission overrides are NULL when the key follows its
profile; -1 in a numeric override means "no limit".
"""
from __future__ import annotations

import sqlite3

from sqlite_utils import Database, Migrations

migrations = Migrations("claude_keys")


def _run(db: Database, script: str) -> None:
    """Execute a multi-statement script inside the caller's transaction
    (sqlite3's executescript would commit it)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement!r}")


@migrations()
def m001_keys(db: Database) -> None:
    _run(
        db,
        """
        CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            digest BLOB NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            project_id TEXT NOT NULL,
            name TEXT,
            profile TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT 'generated',
            in_keyring INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            last_used_at INTEGER,
            expires_at INTEGER,
            revoked_at INTEGER,
            revoked_reason TEXT,
            rotated_from TEXT REFERENCES keys(id),
            lineage TEXT NOT NULL,
            allowed_tools TEXT,
            blocked_tools TEXT,
            allowed_agents TEXT,
            allowed_skills TEXT,
            rate_limit INTEGER,
            tokens_per_day INTEGER,
            max_cost_nanos INTEGER,
            monthly_budget_nanos INTEGER,
            timeout INTEGER
        );
        CREATE INDEX keys_by_project ON keys(project_id);
        CREATE INDEX keys_by_lineage ON keys(lineage);
        CREATE INDEX keys_by_rotated_from ON keys(rotated_from);
        CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO settings VALUES ('standard_agents', '["code-reviewer", "security-auditor"]');
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            key_id TEXT,
            before TEXT,
            after TEXT
        );
        CREATE INDEX audit_by_key ON audit(key_id, at_ms);
        CREATE INDEX audit_by_time ON audit(at_ms);
        """,
    )


@migrations()
def m002_usage_and_rate_limits(db: Database) -> None:
    """Usage: one row per request, clustered on its request id (dedupe and storage in one
    b-tree, the cheapest insert on the request path). Two roll-ups kept by a trigger in
    the same statement: per key and UTC day (budgets; reports on whole days) and per
    hour (reports whose boundaries fall inside a UTC day, e.g. other time zones). The
    rate limiter's log of the last minute's requests per key lineage (n requests in
    each millisecond), with their total so that taking a slot costs the same whatever
    the limit."""
    counters = """
            requests INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_write_5m_tokens INTEGER NOT NULL,
            cache_write_1h_tokens INTEGER NOT NULL,
            cost_nanos INTEGER NOT NULL,
            unpriced INTEGER NOT NULL"""
    upsert = """
            ON CONFLICT DO UPDATE SET
                requests = requests + 1,
                input_tokens = input_tokens + excluded.input_tokens,
                output_tokens = output_tokens + excluded.output_tokens,
                cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
                cache_write_5m_tokens = cache_write_5m_tokens + excluded.cache_write_5m_tokens,
                cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
                cost_nanos = cost_nanos + excluded.cost_nanos,
                unpriced = unpriced + excluded.unpriced"""
    values = """NEW.project_id, coalesce(NEW.key_id, ''), NEW.model, 1,
                NEW.input_tokens, NEW.output_tokens, NEW.cache_read_tokens,
                NEW.cache_write_5m_tokens, NEW.cache_write_1h_tokens, NEW.cost_nanos,
                1 - NEW.priced"""
    _run(
        db,
        f"""
        CREATE TABLE usage (
            request_id TEXT PRIMARY KEY,
            key_id TEXT,
            project_id TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
            cost_nanos INTEGER NOT NULL DEFAULT 0,
            priced INTEGER NOT NULL DEFAULT 1
        ) WITHOUT ROWID;
        CREATE TABLE usage_daily (
            key_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            project_id TEXT NOT NULL,
            model TEXT NOT NULL,{counters},
            PRIMARY KEY (key_id, day, project_id, model)
        ) WITHOUT ROWID;
        CREATE TABLE usage_hourly (
            hour INTEGER NOT NULL,
            project_id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,{counters},
            PRIMARY KEY (hour, project_id, key_id, model)
        ) WITHOUT ROWID;
        CREATE TRIGGER usage_rollups AFTER INSERT ON usage BEGIN
            INSERT INTO usage_daily (day, project_id, key_id, model, requests, input_tokens,
                output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                cost_nanos, unpriced)
            VALUES (NEW.at_ms / 86400000, {values}){upsert};
            INSERT INTO usage_hourly (hour, project_id, key_id, model, requests, input_tokens,
                output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                cost_nanos, unpriced)
            VALUES (NEW.at_ms / 3600000, {values}){upsert};
        END;
        CREATE TABLE rate_slots (
            lineage TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (lineage, at_ms)
        ) WITHOUT ROWID;
        CREATE TABLE rate_windows (lineage TEXT PRIMARY KEY, used INTEGER NOT NULL) WITHOUT ROWID;
        """,
    )


_COUNTERS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens",
             "cache_write_1h_tokens", "cost_nanos")


def _rollup_upsert(table: str, keys: dict) -> str:
    """The trigger statement adding one new usage row to a roll-up: `keys` maps the
    roll-up's key columns to expressions over NEW."""
    columns = ", ".join(list(keys) + ["requests", *_COUNTERS, "unpriced"])
    values = ", ".join(list(keys.values()) + ["1", *(f"NEW.{c}" for c in _COUNTERS), "1 - NEW.priced"])
    adds = ", ".join(f"{c} = {c} + excluded.{c}" for c in ("requests", *_COUNTERS, "unpriced"))
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO UPDATE SET {adds};"


@migrations()
def m003_project_rollup_and_bulk_imports(db: Database) -> None:
    """A per-project daily roll-up: its size depends on days, projects and models, not on
    how many requests or keys there are, so reports that are not about keys cost the
    same on ten million requests as on a thousand.

    Bulk imports add to the roll-ups set-wise (one GROUP BY per batch) instead of through
    the per-row trigger: while an import's write transaction holds a row in bulk_mode
    the trigger stands aside. No other writer can see that row (writes are serialized
    and the row is deleted before commit), so every other insert still goes through it."""
    counters = ",\n".join(f"            {c} INTEGER NOT NULL"
                          for c in ("requests", *_COUNTERS, "unpriced"))
    _run(
        db,
        f"""
        CREATE TABLE usage_project_daily (
            day INTEGER NOT NULL,
            project_id TEXT NOT NULL,
            model TEXT NOT NULL,
{counters},
            PRIMARY KEY (day, project_id, model)
        ) WITHOUT ROWID;
        INSERT INTO usage_project_daily
            SELECT day, project_id, model, sum(requests), {", ".join(f"sum({c})" for c in _COUNTERS)},
                   sum(unpriced)
            FROM usage_daily GROUP BY day, project_id, model;
        CREATE TABLE bulk_mode (on_ INTEGER PRIMARY KEY CHECK (on_ = 1));
        DROP TRIGGER usage_rollups;
        CREATE TRIGGER usage_rollups AFTER INSERT ON usage
        WHEN NOT EXISTS (SELECT 1 FROM bulk_mode) BEGIN
            {_rollup_upsert("usage_daily", {"key_id": "coalesce(NEW.key_id, '')",
                                            "day": "NEW.at_ms / 86400000",
                                            "project_id": "NEW.project_id", "model": "NEW.model"})}
            {_rollup_upsert("usage_hourly", {"hour": "NEW.at_ms / 3600000",
                                             "project_id": "NEW.project_id",
                                             "key_id": "coalesce(NEW.key_id, '')", "model": "NEW.model"})}
            {_rollup_upsert("usage_project_daily", {"day": "NEW.at_ms / 86400000",
                                                    "project_id": "NEW.project_id",
                                                    "model": "NEW.model"})}
        END;
        """,
    )


def apply(conn: sqlite3.Connection) -> None:
    """Apply pending steps on a connection already inside a write transaction."""
    db = Database(conn, execute_plugins=False, recursive_triggers=False)
    migrations.apply(db)


def count() -> int:
    return len(migrations._migrations)
