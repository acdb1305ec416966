"""The store's schema: one list of small named steps, each saying what it does on SQLite
and on PostgreSQL.

Imported only when a store's schema version is behind db.base.SCHEMA_VERSION; never on
the hot path. Add a step by appending a function decorated with @step and bumping
SCHEMA_VERSION (a test checks the two agree). Never edit a step that has shipped.

On SQLite the steps run through sqlite-utils' Migrations (applied names are kept in
`_sqlite_migrations`; `PRAGMA user_version` caches their count). On PostgreSQL they run
in one transaction under an advisory lock (so hosts starting together migrate once),
recorded in `claude_api_migrations`, their count cached in `claude_api_schema`.

After the steps, the derived objects are installed from the code that defines them:
the roll-up trigger on SQLite (db.rollups), the request-path functions on
PostgreSQL. They hold no data, so they are simply replaced.

Units: `*_at` columns are epoch seconds, `*_ms` epoch milliseconds, `*_nanos`
nano-dollars (1e-9 USD). Permission overrides are NULL when the key follows its
profile; -1 in a numeric override means "no limit". On PostgreSQL every integer is a
BIGINT and text compares by code point (COLLATE "C"), as in SQLite, so both backends
sort and report alike.
"""
from __future__ import annotations

from . import rollups, windows

STEPS: list = []
T = 'TEXT COLLATE "C"'  # PostgreSQL text that sorts like SQLite's (by code point)


class Step:
    """What a step function receives: run(sqlite=..., postgres=...) executes the script
    for the store's backend, inside the migration's transaction."""

    def __init__(self, conn):
        self.conn = conn
        self.dialect = conn.backend

    def run(self, *, sqlite: str = "", postgres: str = "") -> None:
        if self.dialect != "sqlite":
            self.conn.run_script(postgres)  # PostgreSQL: one round trip for the whole step
            return
        for statement in _sqlite_statements(sqlite):
            self.conn.execute(statement)


def _sqlite_statements(script: str) -> list[str]:
    """A SQLite script's statements, each run on its own inside the caller's transaction
    (sqlite3's executescript would commit it). SQLite's own parser says where one ends
    (a trigger's body holds `;`)."""
    import sqlite3

    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip().rstrip(";").strip():
                out.append(current.strip().rstrip(";"))
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current!r}")
    return out


def step(fn):
    STEPS.append(fn)
    return fn


def _counters(indent: str = "            ") -> str:
    return ",\n".join(f"{indent}{c} BIGINT NOT NULL" for c in rollups.COUNTERS)


@step
def m001_keys(m: Step) -> None:
    m.run(
        sqlite="""
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
        postgres=f"""
        CREATE TABLE keys (
            id {T} PRIMARY KEY,
            digest BYTEA NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            project_id {T} NOT NULL,
            name {T},
            profile {T} NOT NULL,
            source TEXT NOT NULL DEFAULT 'generated',
            in_keyring BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            last_used_at BIGINT,
            expires_at BIGINT,
            revoked_at BIGINT,
            revoked_reason TEXT,
            rotated_from {T} REFERENCES keys(id) DEFERRABLE INITIALLY DEFERRED,
            lineage {T} NOT NULL,
            allowed_tools TEXT,
            blocked_tools TEXT,
            allowed_agents TEXT,
            allowed_skills TEXT,
            rate_limit BIGINT,
            tokens_per_day BIGINT,
            max_cost_nanos BIGINT,
            monthly_budget_nanos BIGINT,
            timeout BIGINT
        );
        CREATE INDEX keys_by_project ON keys(project_id);
        CREATE INDEX keys_by_lineage ON keys(lineage);
        CREATE INDEX keys_by_rotated_from ON keys(rotated_from);
        CREATE TABLE settings (name {T} PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO settings VALUES ('standard_agents', '["code-reviewer", "security-auditor"]');
        CREATE TABLE audit (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            at_ms BIGINT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            key_id {T},
            before TEXT,
            after TEXT
        );
        CREATE INDEX audit_by_key ON audit(key_id, at_ms);
        CREATE INDEX audit_by_time ON audit(at_ms);
        """,
    )


@step
def m002_usage_and_rate_limits(m: Step) -> None:
    """Usage: one row per request, keyed by its request id (clustered on it in SQLite:
    dedupe and storage in one b-tree, the cheapest insert on the request path). Two
    roll-ups, per key and UTC day and per hour (see claude_keys.rollups). The rate
    limiter's log of the last minute's requests per key lineage (n requests in each
    millisecond), with their total so that taking a slot costs the same whatever the
    limit. (This step's SQLite trigger was replaced by m003's, then by the derived one.)"""
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
    m.run(
        sqlite=f"""
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
        postgres=f"""
        CREATE TABLE usage (
            request_id {T} PRIMARY KEY,
            key_id {T},
            project_id {T} NOT NULL,
            at_ms BIGINT NOT NULL,
            model {T} NOT NULL DEFAULT '',
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_tokens BIGINT NOT NULL DEFAULT 0,
            cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
            cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
            cost_nanos BIGINT NOT NULL DEFAULT 0,
            priced BIGINT NOT NULL DEFAULT 1
        );
        CREATE INDEX usage_by_time ON usage(at_ms);
        CREATE TABLE usage_daily (
            key_id {T} NOT NULL,
            day BIGINT NOT NULL,
            project_id {T} NOT NULL,
            model {T} NOT NULL,
{_counters()},
            PRIMARY KEY (key_id, day, project_id, model)
        );
        CREATE TABLE usage_hourly (
            hour BIGINT NOT NULL,
            project_id {T} NOT NULL,
            key_id {T} NOT NULL,
            model {T} NOT NULL,
{_counters()},
            PRIMARY KEY (hour, project_id, key_id, model)
        );
        CREATE TABLE rate_slots (
            lineage {T} NOT NULL,
            at_ms BIGINT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (lineage, at_ms)
        );
        CREATE TABLE rate_windows (lineage {T} PRIMARY KEY, used BIGINT NOT NULL);
        """,
    )


@step
def m003_project_rollup_and_bulk_imports(m: Step) -> None:
    """A per-project daily roll-up: its size depends on days, projects and models, not on
    how many requests or keys there are, so reports that are not about keys cost the
    same on ten million requests as on a thousand.

    SQLite: bulk imports add to the roll-ups set-wise (one GROUP BY per batch) instead
    of through the per-row trigger: while an import's write transaction holds a row in
    bulk_mode the trigger stands aside. No other writer can see that row (writes are
    serialized and the row is deleted before commit), so every other insert still goes
    through it. PostgreSQL has no trigger: every write adds to the roll-ups itself."""
    counters = ",\n".join(f"            {c} INTEGER NOT NULL" for c in rollups.COUNTERS)
    sums = ", ".join(f"sum({c})" for c in rollups.COUNTERS[1:-1])
    m.run(
        sqlite=f"""
        CREATE TABLE usage_project_daily (
            day INTEGER NOT NULL,
            project_id TEXT NOT NULL,
            model TEXT NOT NULL,
{counters},
            PRIMARY KEY (day, project_id, model)
        ) WITHOUT ROWID;
        INSERT INTO usage_project_daily
            SELECT day, project_id, model, sum(requests), {sums}, sum(unpriced)
            FROM usage_daily GROUP BY day, project_id, model;
        CREATE TABLE bulk_mode (on_ INTEGER PRIMARY KEY CHECK (on_ = 1));
        DROP TRIGGER usage_rollups;
        """,
        postgres=f"""
        CREATE TABLE usage_project_daily (
            day BIGINT NOT NULL,
            project_id {T} NOT NULL,
            model {T} NOT NULL,
{_counters()},
            PRIMARY KEY (day, project_id, model)
        );
        """,
    )


@step
def m004_key_order(m: Step) -> None:
    """Keys listed in the order they were made, the same on every backend: SQLite's
    rowid has no PostgreSQL twin, so each key gets its place (`seq`) when it is made."""
    m.run(
        sqlite="""
        ALTER TABLE keys ADD COLUMN seq INTEGER;
        UPDATE keys SET seq = rowid;
        CREATE UNIQUE INDEX keys_by_seq ON keys(seq);
        """,
        postgres="""
        ALTER TABLE keys ADD COLUMN seq BIGINT;
        CREATE UNIQUE INDEX keys_by_seq ON keys(seq);
        """,
    )


_OVERRIDES = ("profile", "allowed_tools", "blocked_tools", "allowed_agents", "allowed_skills",
              "rate_limit", "tokens_per_day", "max_cost_nanos", "monthly_budget_nanos", "timeout")


# SQLite turns an integer sum past 2**63 into an inexact REAL without a word: a roll-up
# row that would hold one is refused (the whole write with it).
_FITS_EXACTLY = f"max({', '.join(rollups.COUNTERS)}) <= 9223372036854775807"


def _rollup_table_sqlite(table: str, keys: str, primary: str) -> str:
    """A roll-up table whose counters must stay exact: SQLite turns an integer sum past
    2**63 into an inexact REAL (at least 2**63) without a word, so a row that would hold
    one is refused (the whole write with it). One max() is the cheapest such check on
    the request path (~0.5 us a request less than a typeof() per counter)."""
    counters = ",\n".join(f"            {c} INTEGER NOT NULL" for c in rollups.COUNTERS)
    return f"""
        CREATE TABLE {table}_exact (
            {keys},
{counters},
            PRIMARY KEY ({primary}),
            CONSTRAINT fits_exactly CHECK ({_FITS_EXACTLY})
        ) WITHOUT ROWID;
        INSERT INTO {table}_exact SELECT * FROM {table};
        DROP TABLE {table};
        ALTER TABLE {table}_exact RENAME TO {table};
        """


@step
def m005_spend_control(m: Step) -> None:
    """Spend that holds under concurrency (issue 10):
    - keys get a lifetime budget and a concurrency limit (overrides, like the others),
      and a reversible suspension (disabled_at / disabled_reason);
    - permissions belong to a key's lineage: the keys a rotation retired take the
      current key's permissions (from now on every change is made to the whole lineage);
    - projects: limits shared by all of a project's keys (NULL: no limit);
    - in_flight: requests admitted, each holding its place and reserved cost until its
      usage is recorded (a usage row with its request id: recording stays one insert),
      it is released, or it expires; settled and expired rows are cleared by the next
      admission of their lineage. Keyed by lineage, the way admissions read it (on
      SQLite no other index: each is a page a commit writes on the request path; a
      project's requests are found by a scan of this small table);
    - the roll-ups refuse a sum they could not hold exactly (SQLite; PostgreSQL's BIGINT
      refuses by itself), and project totals are found without a scan."""
    sync = (f"UPDATE keys SET ({', '.join(_OVERRIDES)}) = "
            f"(SELECT {', '.join('h.' + c for c in _OVERRIDES)} FROM keys h WHERE h.lineage = keys.lineage "
            "AND NOT EXISTS (SELECT 1 FROM keys s WHERE s.rotated_from = h.id)) "
            "WHERE EXISTS (SELECT 1 FROM keys s WHERE s.rotated_from = keys.id);")
    rollup_keys = {
        "usage_daily": ("key_id TEXT NOT NULL, day INTEGER NOT NULL, project_id TEXT NOT NULL, model TEXT NOT NULL",
                        "key_id, day, project_id, model"),
        "usage_hourly": ("hour INTEGER NOT NULL, project_id TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL",
                         "hour, project_id, key_id, model"),
        "usage_project_daily": ("day INTEGER NOT NULL, project_id TEXT NOT NULL, model TEXT NOT NULL",
                                "day, project_id, model"),
    }
    rebuild = "".join(_rollup_table_sqlite(t, k, p) for t, (k, p) in rollup_keys.items())
    m.run(
        sqlite=f"""
        DROP TRIGGER IF EXISTS usage_rollups;
        ALTER TABLE keys ADD COLUMN total_budget_nanos INTEGER;
        ALTER TABLE keys ADD COLUMN max_concurrent INTEGER;
        ALTER TABLE keys ADD COLUMN disabled_at INTEGER;
        ALTER TABLE keys ADD COLUMN disabled_reason TEXT;
        {sync}
        CREATE TABLE projects (
            project_id TEXT PRIMARY KEY,
            monthly_budget_nanos INTEGER,
            total_budget_nanos INTEGER,
            rate_limit INTEGER,
            tokens_per_day INTEGER,
            max_concurrent INTEGER
        ) WITHOUT ROWID;
        CREATE TABLE in_flight (
            lineage TEXT NOT NULL,
            request_id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            started_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            reserved_nanos INTEGER NOT NULL,
            PRIMARY KEY (lineage, request_id)
        ) WITHOUT ROWID;
        {rebuild}
        CREATE INDEX usage_project_daily_by_project ON usage_project_daily(project_id, day);
        """,
        postgres=f"""
        ALTER TABLE keys ADD COLUMN total_budget_nanos BIGINT;
        ALTER TABLE keys ADD COLUMN max_concurrent BIGINT;
        ALTER TABLE keys ADD COLUMN disabled_at BIGINT;
        ALTER TABLE keys ADD COLUMN disabled_reason TEXT;
        {sync}
        CREATE TABLE projects (
            project_id {T} PRIMARY KEY,
            monthly_budget_nanos BIGINT,
            total_budget_nanos BIGINT,
            rate_limit BIGINT,
            tokens_per_day BIGINT,
            max_concurrent BIGINT
        );
        CREATE TABLE in_flight (
            lineage {T} NOT NULL,
            request_id {T} NOT NULL,
            key_id {T} NOT NULL,
            project_id {T} NOT NULL,
            started_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL,
            reserved_nanos BIGINT NOT NULL,
            PRIMARY KEY (lineage, request_id)
        );
        CREATE INDEX in_flight_by_project ON in_flight(project_id, expires_ms);
        CREATE INDEX usage_project_daily_by_project ON usage_project_daily(project_id, day);
        """,
    )

@step
def m006_sessions_time_index_and_import_offsets(m: Step) -> None:
    """Claude Code sessions, reports by time on SQLite, and incremental imports.

    - usage.session_id: the Claude Code session of a request (NULL for others), and the
      roll-up usage_sessions (per hour, session, project, key and model; only requests
      that have a session), so `--by session` reads a roll-up, never every request.
    - SQLite: usage by time (PostgreSQL had it from m002). A report's edge inside an
      hour (`--since 12h`), the active 5-hour block and `usage delete --since` read
      requests by time; without it each of them scanned the whole table.
    - import_files: what each Claude Code log has been read up to, per host and path,
      with what identifies the file (device, inode, size and modification time when
      read, a fingerprint of its first and last bytes read), so a re-run reads only
      what was appended."""
    m.run(
        sqlite=f"""
        ALTER TABLE usage ADD COLUMN session_id TEXT;
        CREATE INDEX usage_by_time ON usage(at_ms);
        CREATE TABLE usage_sessions (
            hour INTEGER NOT NULL,
            session_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
{_counters().replace("BIGINT", "INTEGER")},
            PRIMARY KEY (hour, session_id, project_id, key_id, model),
            CONSTRAINT fits_exactly CHECK ({_FITS_EXACTLY})
        ) WITHOUT ROWID;
        CREATE TABLE import_files (
            host TEXT NOT NULL,
            path TEXT NOT NULL,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            read_to INTEGER NOT NULL,
            fingerprint TEXT NOT NULL,
            read_at_ms INTEGER NOT NULL,
            PRIMARY KEY (host, path)
        ) WITHOUT ROWID;
        """,
        postgres=f"""
        ALTER TABLE usage ADD COLUMN session_id {T};
        CREATE TABLE usage_sessions (
            hour BIGINT NOT NULL,
            session_id {T} NOT NULL,
            project_id {T} NOT NULL,
            key_id {T} NOT NULL,
            model {T} NOT NULL,
{_counters()},
            PRIMARY KEY (hour, session_id, project_id, key_id, model)
        );
        CREATE TABLE import_files (
            host {T} NOT NULL,
            path {T} NOT NULL,
            device BIGINT NOT NULL,
            inode BIGINT NOT NULL,
            size BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL,
            read_to BIGINT NOT NULL,
            fingerprint TEXT NOT NULL,
            read_at_ms BIGINT NOT NULL,
            PRIMARY KEY (host, path)
        );
        """,
    )

@step
def m007_a_requests_life(m: Step) -> None:
    """A request's life in one place (issue 16; claude_keys/inflight.py says what it is):

    - in_flight: a request is settled by deleting its row when its usage is recorded
      under any key of its lineage, so admissions read only rows still counting. Keyed
      by request id on PostgreSQL (a request id has one owner; a lineage index for
      admissions); on SQLite by (lineage, request id) with no other index, as before:
      each index is a page every commit of the request path writes, and an id looked
      for without its lineage is found by a scan of this small table. `expires_ms` ends its place (concurrency);
      `held_ms` ends its reservation (the hold limit, at least the timeout): until then
      its reserved cost counts against budgets, settled or not. `reserved_nanos` is NULL
      when the check promised nothing (no cost given, no maximum per task). Rows of the
      old design already settled (usage with their id from their key) are dropped; the
      others keep their place and are held 24 hours from their start.
    - keys.disabled_by: the key whose `disable` suspended this one, so `enable` undoes
      exactly that disable. Keys disabled before this step were disabled with their whole
      lineage: they are marked as disabled by their lineage's current key.
    - keys.hold / projects.hold: the hold limit in seconds (NULL: the default)."""
    settled = ("EXISTS (SELECT 1 FROM usage WHERE usage.request_id = old.request_id "
               "AND usage.key_id = old.key_id)")
    copy = ("INSERT INTO in_flight (request_id, lineage, key_id, project_id, started_ms, expires_ms, held_ms, "
            "reserved_nanos) SELECT old.request_id, old.lineage, old.key_id, old.project_id, old.started_ms, "
            "old.expires_ms, max(old.expires_ms, old.started_ms + 86400000), nullif(old.reserved_nanos, 0) "
            f"FROM in_flight_old old WHERE NOT {settled} ON CONFLICT (request_id) DO NOTHING;")
    current = ("UPDATE keys SET disabled_by = (SELECT c.id FROM keys c WHERE c.lineage = keys.lineage "
               "AND NOT EXISTS (SELECT 1 FROM keys s WHERE s.rotated_from = c.id)) WHERE disabled_at IS NOT NULL;")
    m.run(
        sqlite=f"""
        ALTER TABLE in_flight RENAME TO in_flight_old;
        CREATE TABLE in_flight (
            request_id TEXT NOT NULL,
            lineage TEXT NOT NULL,
            key_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            started_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            held_ms INTEGER NOT NULL,
            reserved_nanos INTEGER,
            PRIMARY KEY (lineage, request_id)
        ) WITHOUT ROWID;
        {copy.replace("ON CONFLICT (request_id)", "ON CONFLICT (lineage, request_id)")}
        DROP TABLE in_flight_old;
        ALTER TABLE keys ADD COLUMN disabled_by TEXT;
        ALTER TABLE keys ADD COLUMN hold INTEGER;
        ALTER TABLE projects ADD COLUMN hold INTEGER;
        {current}
        """,
        postgres=f"""
        ALTER TABLE in_flight RENAME TO in_flight_old;
        ALTER INDEX in_flight_by_project RENAME TO in_flight_old_by_project;
        ALTER TABLE in_flight_old RENAME CONSTRAINT in_flight_pkey TO in_flight_old_pkey;
        CREATE TABLE in_flight (
            request_id {T} PRIMARY KEY,
            lineage {T} NOT NULL,
            key_id {T} NOT NULL,
            project_id {T} NOT NULL,
            started_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL,
            held_ms BIGINT NOT NULL,
            reserved_nanos BIGINT
        );
        {copy.replace("max(old.expires_ms", "greatest(old.expires_ms")}
        DROP TABLE in_flight_old;
        CREATE INDEX in_flight_by_lineage ON in_flight(lineage);
        CREATE INDEX in_flight_by_project ON in_flight(project_id);
        ALTER TABLE keys ADD COLUMN disabled_by {T};
        ALTER TABLE keys ADD COLUMN hold BIGINT;
        ALTER TABLE projects ADD COLUMN hold BIGINT;
        {current}
        """,
    )


@step
def m008_owners_and_metadata(m: Step) -> None:
    """A key's owner and metadata (claude_keys/labels.py): `owner` is free text (NULL:
    none), `metadata` a JSON object of text values, keys sorted (NULL: none). Both belong
    to the lineage: every key of it holds the same. `keys list --owner` reads the index."""
    m.run(
        sqlite="""
        ALTER TABLE keys ADD COLUMN owner TEXT;
        ALTER TABLE keys ADD COLUMN metadata TEXT;
        CREATE INDEX keys_by_owner ON keys(owner);
        """,
        postgres=f"""
        ALTER TABLE keys ADD COLUMN owner {T};
        ALTER TABLE keys ADD COLUMN metadata TEXT;
        CREATE INDEX keys_by_owner ON keys(owner);
        """,
    )


@step
def m009_sessions_by_id(m: Step) -> None:
    """A session's usage by its id (issue 18): `usage statusline` reads this session's
    cost on every update of Claude Code's status bar; the session roll-up's key begins
    with the hour, so without this index each call read the whole roll-up."""
    m.run(
        sqlite="CREATE INDEX usage_sessions_by_session ON usage_sessions(session_id, hour);",
        postgres="CREATE INDEX usage_sessions_by_session ON usage_sessions(session_id, hour);",
    )


@step
def m010_budget_periods_and_alerts(m: Step) -> None:
    """Budget periods and alerts (issue 17):
    - keys and projects: a daily and a weekly budget (calendar periods in the store's
      budget time zone: the setting `budget_tz` in `settings`, absent = UTC), and the
      alert thresholds (text "50,80,95"; NULL: the default). Spend of a period is read
      from the existing roll-ups (claude_keys/limits.py says how), so nothing is re-keyed
      when the zone changes.
    - alert_notices: one row per alert and period that `claude-api alerts --notify` has
      taken on (its primary key makes "once" hold across processes and hosts): `sent`
      once the command succeeded; a claim whose command failed is deleted, so the next
      run tries again; a claim left by a process that died is taken over after
      `claimed_ms` is old (claude_keys/alerts.py)."""
    m.run(
        sqlite="""
        ALTER TABLE keys ADD COLUMN daily_budget_nanos INTEGER;
        ALTER TABLE keys ADD COLUMN weekly_budget_nanos INTEGER;
        ALTER TABLE keys ADD COLUMN alert_at TEXT;
        ALTER TABLE projects ADD COLUMN daily_budget_nanos INTEGER;
        ALTER TABLE projects ADD COLUMN weekly_budget_nanos INTEGER;
        ALTER TABLE projects ADD COLUMN alert_at TEXT;
        CREATE TABLE alert_notices (
            alert TEXT NOT NULL,
            period TEXT NOT NULL,
            state TEXT NOT NULL,
            claimed_ms INTEGER NOT NULL,
            sent_ms INTEGER,
            PRIMARY KEY (alert, period)
        ) WITHOUT ROWID;
        """,
        postgres=f"""
        ALTER TABLE keys ADD COLUMN daily_budget_nanos BIGINT;
        ALTER TABLE keys ADD COLUMN weekly_budget_nanos BIGINT;
        ALTER TABLE keys ADD COLUMN alert_at TEXT;
        ALTER TABLE projects ADD COLUMN daily_budget_nanos BIGINT;
        ALTER TABLE projects ADD COLUMN weekly_budget_nanos BIGINT;
        ALTER TABLE projects ADD COLUMN alert_at TEXT;
        CREATE TABLE alert_notices (
            alert {T} NOT NULL,
            period {T} NOT NULL,
            state {T} NOT NULL,
            claimed_ms BIGINT NOT NULL,
            sent_ms BIGINT,
            PRIMARY KEY (alert, period)
        );
        """,
    )


@step
def m011_model_limits(m: Step) -> None:
    """Model-aware limits (issue 17; claude_keys/models.py, gate.py):

    - keys and projects: allowed_models / blocked_models (JSON lists of lowercased shell
      patterns; NULL: the profile's, every model, for a key; none for a project) and
      input_tokens_per_minute / output_tokens_per_minute (NULL: the profile's / no limit;
      -1 on a key: no limit);
    - in_flight: the model a request named and the input tokens it declared: until it is
      settled, those count against an input tokens-per-minute limit for 60 s from its
      start (its usage row counts from then on);
    - usage_by_project_time: a project's usage by time, with the key and the tokens, so
      a tokens-per-minute check reads only its project's last minute, from the index
      alone. (By time alone, usage_by_time, it read every project's last minute, a row
      lookup each: 20 ms at 10,000 requests a minute, inside the serialized admission.)
      One more index entry per recorded request (BENCHMARKS.md: what it costs)."""
    columns = [("keys", "input_tokens_per_minute", "INTEGER"), ("keys", "output_tokens_per_minute", "INTEGER"),
               ("keys", "allowed_models", "TEXT"), ("keys", "blocked_models", "TEXT"),
               ("projects", "input_tokens_per_minute", "INTEGER"), ("projects", "output_tokens_per_minute", "INTEGER"),
               ("projects", "allowed_models", "TEXT"), ("projects", "blocked_models", "TEXT"),
               ("in_flight", "model", "TEXT"), ("in_flight", "input_tokens", "INTEGER")]
    index = ("CREATE INDEX usage_by_project_time ON usage(project_id, at_ms, key_id, input_tokens, "
             "output_tokens);")
    m.run(
        sqlite="\n".join([f"ALTER TABLE {t} ADD COLUMN {c} {kind};" for t, c, kind in columns] + [index]),
        postgres="\n".join([f"ALTER TABLE {t} ADD COLUMN {c} {'BIGINT' if kind == 'INTEGER' else T};"
                            for t, c, kind in columns] + [index]),
    )


# -- derived objects: replaced after every upgrade ---------------------------------------

def _install_sqlite(conn) -> None:
    conn.execute("DROP TRIGGER IF EXISTS usage_rollups")
    conn.execute(rollups.trigger_sql())




def _install_postgres(conn) -> None:
    conn.run_script(windows.TAKE_SLOT_FUNCTION)


# -- running them ---------------------------------------------------------------------

def sqlite_migrations(conn):
    """The steps as sqlite-utils Migrations, and the Database to apply them to."""
    from sqlite_utils import Database, Migrations

    found = Migrations("claude_keys")
    for fn in STEPS:
        found(name=fn.__name__)(lambda db, fn=fn: fn(Step(conn)))
    return found, Database(conn, execute_plugins=False, recursive_triggers=False)


def apply_sqlite(conn) -> None:
    """Apply pending steps on a connection already inside a write transaction."""
    found, db = sqlite_migrations(conn)
    found.apply(db)
    _install_sqlite(conn)


def apply_postgres(conn) -> None:
    """Apply pending steps on a connection inside the migration's transaction (which
    holds the advisory lock)."""
    conn.execute("CREATE TABLE IF NOT EXISTS claude_api_migrations (id BIGINT PRIMARY KEY, "
                 "name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS claude_api_schema (version BIGINT NOT NULL)")
    applied = {r[0] for r in conn.execute("SELECT name FROM claude_api_migrations")}
    for number, fn in enumerate(STEPS, 1):
        if fn.__name__ not in applied:
            fn(Step(conn))
            conn.execute("INSERT INTO claude_api_migrations VALUES (?, ?, clock_timestamp()::text)",
                         (number, fn.__name__))
    _install_postgres(conn)
    conn.execute("DELETE FROM claude_api_schema")
    conn.execute("INSERT INTO claude_api_schema VALUES (?)", (len(STEPS),))


def count() -> int:
    return len(STEPS)
