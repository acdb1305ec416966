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


def apply(conn: sqlite3.Connection) -> None:
    """Apply pending steps on a connection already inside a write transaction."""
    db = Database(conn, execute_plugins=False, recursive_triggers=False)
    migrations.apply(db)


def count() -> int:
    return len(migrations._migrations)
