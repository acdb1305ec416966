"""The PostgreSQL backend: one database shared by every host of a service.

Imported only when --db / CLAUDE_API_DB names a PostgreSQL database, so psycopg (200+
ms to import) never loads for a SQLite store. The connection wraps psycopg's in
autocommit mode and speaks the same interface as the SQLite backend (claude_keys.db):
SQL is written once with `?` placeholders and translated here.

Every wait ends (db.base.timeout): the server gives up a lock wait (lock_timeout) and
ends a session left idle inside a transaction (so a stalled client's locks are freed);
a connection attempt has a connect timeout and TCP keepalives; and a statement the
server does not answer within the bound (a stopped or unreachable server) is ended by
this process's watchdog, which shuts the connection's socket. Nothing outlives a
transaction (no session advisory locks, temporary tables that drop at commit, no
server-side prepared statements where a pooler is detected: see RawConnection), so
PgBouncer's transaction pooling works in front.

Exactness across hosts comes from the server, not from this process:
- `write()` transactions (key lifecycle, settings) take one transaction-level advisory
  lock, so they are serialized exactly as SQLite's single writer serializes them;
- the request path takes row locks only on what it decides about (a key lineage's
  rate window, see claude_take_slot), and reads the server's clock after the lock;
- usage and its roll-ups are written by single statements (upserts), which PostgreSQL
  makes safe against every concurrent writer.
"""
from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from time import monotonic
import weakref
from contextlib import contextmanager
from functools import lru_cache

from .base import ADMIN_TIMEOUT_S, SERVER_CLOCK_MS, Wrote
from .location import masked
from ..errors import ConnectionLost, StoreError, StoreMissing, TryAgain

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import RawCursor
    from psycopg.pq import TransactionStatus
except ImportError:  # pragma: no cover - exercised by a test with psycopg hidden
    raise StoreError("this store is a PostgreSQL URI, and PostgreSQL support is not installed: "
                     "pip install 'claude-api[postgres]'") from None

# psycopg logs what it ignores while cleaning up after an error (a COPY it cannot end
# on a lost connection): without a handler of the service's, Python would print it on
# stderr beside the error itself, which says all there is to say.
logging.getLogger("psycopg").addHandler(logging.NullHandler())

WRITE_LOCK = 0x636C61756465  # "claude": the advisory lock that serializes write() transactions
MIGRATION_LOCK = WRITE_LOCK + 1
WATCH_EVERY_S = 0.1  # how often the watchdog looks at the calls under way
# How often the server checks, while a statement runs or waits for a lock, that its client
# is still there (PostgreSQL 14 on Linux, macOS, the BSDs): a killed client's work ends
# within this, and with it the locks it held or queued for.
CLIENT_CHECK, CLIENT_CHECK_MS = "client_connection_check_interval", 1000
_ASKING = f" -c {CLIENT_CHECK}={CLIENT_CHECK_MS}"  # how the startup options end (_parameters)


def _placeholders(sql: str, mark, escape_percent: bool) -> str:
    """`?` placeholders -> mark(n) for the n-th one, outside quoted text (and a literal
    `%` -> `%%` anywhere, for psycopg's `%s` queries)."""
    out, quote, n = [], None, 0
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            n += 1
            out.append(mark(n))
            continue
        if escape_percent and ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=512)
def translate_sql(sql: str) -> str:
    """`?` placeholders -> `%s`, and a literal `%` -> `%%`, outside quoted text."""
    return _placeholders(sql, lambda n: "%s", escape_percent=True)


@lru_cache(maxsize=512)
def translate_raw(sql: str) -> str:
    """`?` placeholders -> `$1`, `$2`, ... outside quoted text: the statement as the server
    takes it, for psycopg's RawCursor (which sends it as it is, where psycopg's own `%s`
    queries are parsed on every call once longer than 4 kB, as the record statement is)."""
    return _placeholders(sql, lambda n: f"${n}", escape_percent=False)


@lru_cache(maxsize=256)
def _row_class(fields: tuple, encoding: str = "utf-8") -> type:
    """A tuple that also answers row["name"] and row.keys(), like sqlite3.Row."""
    names = tuple(f.decode(encoding) if isinstance(f, bytes) else f for f in fields)
    index = {name: i for i, name in enumerate(names)}

    class Row(tuple):
        __slots__ = ()

        def __getitem__(self, key):
            if isinstance(key, str):
                key = index[key]
            return tuple.__getitem__(self, key)

        def keys(self):
            return list(names)

    return Row


def _named_rows(cursor):
    """psycopg's row factory for rows(): the names read from the result itself (cursor.description
    would make a Column object a column, on every call)."""
    res = cursor.pgresult
    if res is None:
        return _row_class(())
    fname = res.fname
    return _row_class(tuple(fname(i) for i in range(res.nfields)), cursor.connection.info.encoding)


class _Named:
    """The row factory of one statement: its row class made from its first result and
    kept (a statement's columns stay the same; a count that changed, after a migration
    under a `SELECT *`, makes it again). The key's lookup names 43 columns: reading and
    hashing them on every call cost ~5 µs."""

    __slots__ = ("made",)

    def __init__(self):
        self.made = (-1, None)  # (the result's column count, its row class): one attribute, swapped whole

    def __call__(self, cursor):
        res = cursor.pgresult
        count, row_class = self.made
        if res is None or res.nfields != count:
            row_class = _named_rows(cursor)
            self.made = (-1 if res is None else res.nfields, row_class)
        return row_class


@lru_cache(maxsize=512)
def named_rows(sql: str) -> _Named:
    """The row factory for `sql`'s rows (one per statement)."""
    return _Named()


class _IntNumericLoader(psycopg.adapt.Loader):
    """sum() of bigint is numeric: exact, of any size; read it as a Python int (the store
    keeps no fractional numbers)."""

    def load(self, data):
        text = bytes(data).decode()
        if "." in text or "N" in text:  # NaN cannot happen: no numeric column holds one
            from decimal import Decimal

            return Decimal(text)
        return int(text)


@functools.lru_cache(maxsize=1)
def _record_request_sql() -> str:
    from .rollups import USAGE_COLUMNS, rollup_ctes

    merges = ",\n" + rollup_ctes("changed", one=True)  # (one row at most: the insert of one)
    return (f"WITH held AS (SELECT lineage, reserved_nanos FROM in_flight WHERE request_id = ?),\n"
            f"changed AS (INSERT INTO usage ({', '.join(USAGE_COLUMNS)}) "
            f"SELECT {', '.join('?' * len(USAGE_COLUMNS))} "
            "WHERE NOT EXISTS (SELECT 1 FROM held WHERE lineage IS DISTINCT FROM ?) "
            "ON CONFLICT (request_id) DO NOTHING RETURNING *),\n"
            "settled AS (DELETE FROM in_flight WHERE request_id = ? AND EXISTS (SELECT 1 FROM changed))"
            f"{merges}\n"
            "SELECT (SELECT count(*) FROM changed), (SELECT lineage FROM held), (SELECT reserved_nanos FROM held)")


class Features:
    stages_in_place = False  # an import stages locally and sends batches to the server


class Connection:
    """A psycopg connection with the backend interface (see claude_keys.db)."""

    backend = "postgresql"
    features = Features
    for_update = " FOR UPDATE"
    IntegrityError = psycopg.IntegrityError

    def __init__(self, raw, location: str, wait: float = ADMIN_TIMEOUT_S):
        self.raw = raw
        self.location = location
        self.wait = wait
        raw.adapters.register_loader("numeric", _IntNumericLoader)

    # -- the clock ----------------------------------------------------------------------
    def now_ms(self) -> int:
        """The store's clock, in epoch milliseconds: the server's, which every host shares
        (a revocation stamped by an admin's clock that runs ahead would start late)."""
        return self.execute(f"SELECT {SERVER_CLOCK_MS}").fetchone()[0]

    def now_s(self) -> int:
        return self.now_ms() // 1000

    def row_with_clock(self, sql: str, params=()):
        """(the row of `sql`, whose select list ends in `{clock}`, and the store's time),
        in one round trip."""
        row = self.row(_with_clock(sql), params)
        return row, (row["now_ms"] if row is not None else None)

    def lock_scopes(self, scopes) -> int:
        """Inside an admission's transaction: lock the rate windows of `scopes` (always in
        the order given: a lineage, then its project, so two admissions never wait on each
        other in a cycle), and answer with the server's clock, read after the locks."""
        values = ", ".join("(?, 0)" for _ in scopes)
        rows = self.execute(f"INSERT INTO rate_windows AS w (lineage, used) VALUES {values} "
                            f"ON CONFLICT (lineage) DO UPDATE SET used = w.used RETURNING {SERVER_CLOCK_MS}",
                            scopes).fetchall()
        return max(r[0] for r in rows)

    def take_slot(self, lineage: str, limit: int, key_id: str, last_used_at=None):
        """A rate-limited key's slot in one round trip: claude_take_slot (db/windows.py)."""
        slot = self.execute("SELECT * FROM claude_take_slot(?, ?, ?)", (lineage, limit, key_id)).fetchone()
        self._wrote()  # (the window pruned, a slot taken, the key touched)
        return slot

    # -- statements -------------------------------------------------------------------
    def execute(self, sql: str, params=()):
        self.raw.deadline = time.monotonic() + self.wait
        try:
            return RawCursor(self.raw).execute(translate_raw(sql), params)
        except psycopg.Error as e:
            if self._unprepared(e):  # (nothing ran: run it once more, unprepared)
                return self.execute(sql, params)
            raise self._error(e) from None
        finally:
            self.raw.deadline = None

    def run_script(self, script: str) -> None:
        """Statements without parameters, sent in one round trip (the simple query
        protocol): a new store's schema is ~90 of them."""
        self.raw.deadline = time.monotonic() + self.wait
        try:
            with self.raw.cursor() as cur:
                cur.execute(script, prepare=False)
        except psycopg.Error as e:
            raise self._error(e) from None
        finally:
            self.raw.deadline = None

    def executemany(self, sql: str, seq) -> None:
        self.raw.deadline = time.monotonic() + self.wait
        try:
            with self.raw.cursor() as cur:
                cur.executemany(translate_sql(sql), seq)
        except psycopg.Error as e:
            raise self._error(e) from None
        finally:
            self.raw.deadline = None

    def copy_in(self, table: str, columns, rows) -> None:
        """Insert many rows (an iterable of tuples) into `table` with COPY: one stream,
        not a round trip a row."""
        self.raw.deadline = time.monotonic() + self.wait  # (COPY starts with a round trip)
        try:
            with self.raw.cursor() as cur, \
                    cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for n, row in enumerate(rows):
                    if not n % 1000:  # the server reads as we write: it is answering
                        self.raw.deadline = time.monotonic() + self.wait
                    copy.write_row(row)
                self.raw.deadline = time.monotonic() + self.wait
        except psycopg.Error as e:
            raise self._error(e) from None
        finally:
            self.raw.deadline = None

    def stream(self, sql: str, params=(), size: int = 10_000):
        """Rows of a big query, fetched `size` at a time by a server-side cursor (inside
        the caller's transaction), so memory stays flat."""
        try:
            with self.raw.cursor(name="claude_api_stream") as cur:
                cur.itersize = size
                self.raw.deadline = time.monotonic() + self.wait
                cur.execute(translate_sql(sql), params)
                for n, row in enumerate(cur):
                    if not n % size:
                        self.raw.deadline = time.monotonic() + self.wait
                    yield row
        except psycopg.Error as e:
            raise self._error(e) from None
        finally:
            self.raw.deadline = None

    def rows(self, sql: str, params=()) -> list:
        self.raw.deadline = time.monotonic() + self.wait
        try:
            with RawCursor(self.raw, row_factory=named_rows(sql)) as cur:
                cur.execute(translate_raw(sql), params)
                return cur.fetchall()
        except psycopg.Error as e:
            if self._unprepared(e):
                return self.rows(sql, params)
            raise self._error(e) from None
        finally:
            self.raw.deadline = None

    def row(self, sql: str, params=()):
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    # -- writes -------------------------------------------------------------------------
    def _wrote(self) -> None:
        """A statement that wrote: committed now outside a transaction (autocommit); inside
        one, transaction() says so if it commits."""
        if self.raw.info.transaction_status == TransactionStatus.IDLE:
            Wrote.changed = True

    def write_one(self, sql: str, params=()) -> int:
        """One statement as its own transaction (autocommit: one round trip); how many
        rows it changed."""
        changed = self.execute(sql, params).rowcount
        if changed > 0:
            self._wrote()
        return changed

    def write_usage(self, insert: str, params=(), one: bool = False) -> int:
        """An INSERT into usage and its roll-ups, as one statement (safe against every
        concurrent writer). How many rows it stored. `one`: it inserts one row at most."""
        stored = self.execute(_usage_sql(insert, one), params).fetchone()[0]
        if stored:
            self._wrote()
        return stored

    def record_request(self, row: tuple, lineage: str | None) -> tuple:
        """Store one request (a usage row, USAGE_COLUMNS) with its roll-ups for a key of
        `lineage`, and settle it if it is in flight there (claude_keys/inflight.py): one
        statement, one round trip. Nothing is written when another lineage holds that
        request id in flight. Returns (rows stored: 1 or 0, the lineage holding it in
        flight or None, the cost it reserved)."""
        done = self.execute(_record_request_sql(), (row[0], *row, lineage, row[0])).fetchone()
        if done[0]:
            self._wrote()
        return done

    def remove_usage(self, doomed: str) -> None:
        """Take the requests of the table `doomed` (usage rows) out of usage and every
        roll-up in one statement, like every other write of usage here: its roll-up rows
        are then locked in the same order as a concurrent write_usage()'s, so the two
        never deadlock."""
        from .rollups import with_rollups

        self.execute(with_rollups(f"DELETE FROM usage WHERE request_id IN (SELECT request_id FROM {doomed}) "
                                  "RETURNING *", -1))

    @contextmanager
    def bulk_load(self):
        """Inside a write transaction that writes rows with their roll-ups already summed
        (a copy): no trigger to set aside; afterwards the audit numbers on from the
        copied entries."""
        yield self
        self.execute("SELECT setval(pg_get_serial_sequence('audit', 'id'), "
                     "coalesce(max(id), 0) + 1, false) FROM audit")

    @contextmanager
    def scratch_table(self, name: str, columns: dict | None = None, rows=None, *, query: str = "",
                      params=()):
        """A temporary table for the caller's transaction (dropped at its end: nothing
        outlives it, as PgBouncer's transaction pooling needs): of `columns` (name ->
        "text" or "int") filled with `rows` by COPY, or made by `query`."""
        if query:
            self.execute(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {query}", params)
        else:
            types = {"text": 'TEXT COLLATE "C"', "int": "BIGINT"}
            self.execute(f"CREATE TEMP TABLE {name} ("
                         + ", ".join(f"{c} {types[t]}" for c, t in columns.items()) + ") ON COMMIT DROP")
            if rows is not None:
                self.copy_in(name, list(columns), rows)
        yield name

    def tune_for_import(self) -> None:
        pass

    # -- transactions -----------------------------------------------------------------
    @contextmanager
    def transaction(self):
        """A plain transaction (READ COMMITTED): for writes that lock what they touch."""
        try:
            self.raw.deadline = time.monotonic() + self.wait
            with self.raw.transaction():
                self.raw.deadline = None
                try:
                    yield self
                finally:
                    self.raw.deadline = time.monotonic() + self.wait  # the COMMIT or ROLLBACK
            self._wrote()  # (a transaction here is taken to write; an inner one is a savepoint)
        except psycopg.Error as e:
            raise self._error(e) from None
        finally:
            self.raw.deadline = None

    @contextmanager
    def write(self):
        """A transaction serialized against every other write() on any host, like
        SQLite's BEGIN IMMEDIATE: what it reads stays true until it commits."""
        with self.transaction():
            self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            yield self

    @contextmanager
    def snapshot(self):
        """A read-only transaction that sees one moment of the store throughout."""
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield self
        finally:
            if self.in_transaction and not self.broken:
                self.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        """True once the server went away: the caller opens a new connection."""
        return self.raw.closed or self.raw.broken

    def close(self) -> None:
        self.raw.close()

    # -- looking at the store -----------------------------------------------------------
    def table_names(self) -> list[str]:
        return [r[0] for r in self.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE 'pg_%'")]

    def column_names(self, table: str) -> list[str]:
        return [r[0] for r in self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position", (table,))]

    def integrity_problems(self) -> list[str]:
        return []  # the server keeps its own pages sound

    def details(self) -> dict:
        return {"server_version": self.execute("SHOW server_version").fetchone()[0]}

    def schema_version(self) -> int:
        return _version(self)

    def applied_migrations(self) -> list[str]:
        if self.execute("SELECT to_regclass('claude_api_migrations')").fetchone()[0] is None:
            return []
        return [r[0] for r in self.execute("SELECT name FROM claude_api_migrations ORDER BY id")]

    def backup_to(self, target_path: str) -> bool:
        return False  # no page copy from a server: db.transfer copies it table by table

    def _unprepared(self, e: BaseException) -> bool:
        """A prepared statement the server session does not know (or knows already): a
        pooler in transaction mode (PgBouncer before 1.21) hands each transaction another
        session. From now on this process prepares nothing on this store, and a statement
        outside a transaction (nothing of it ran) may run again."""
        if not isinstance(e, (pg_errors.InvalidSqlStatementName, pg_errors.DuplicatePreparedStatement)):
            return False
        RawConnection.unprepared.add(self.raw.info.dsn)
        self.raw.prepare_threshold = None
        return not self.in_transaction

    def _error(self, e: BaseException) -> BaseException:
        if isinstance(e, (pg_errors.InvalidSqlStatementName, pg_errors.DuplicatePreparedStatement)):
            return TryAgain(f"the store {self.location} is behind a connection pooler that does not keep "
                            "prepared statements; claude-api stopped preparing them: try again")
        if isinstance(e, psycopg.IntegrityError):
            return e  # the caller decides (e.g. "that token is already stored")
        if self.raw.timed_out:
            return StoreError(f"the store {self.location} did not answer within {self.wait:g} s "
                              "(CLAUDE_API_TIMEOUT sets the bound); it is unavailable, try again")
        if isinstance(e, pg_errors.LockNotAvailable):  # lock_timeout
            return StoreError(f"the store {self.location} stayed busy past the {self.wait:g} s wait bound "
                              "(another session holds what this needs; CLAUDE_API_TIMEOUT sets the bound); try again")
        if self.broken:
            return lost(e, self.location)
        return translate(e, self.location) or e


@lru_cache(maxsize=64)
def _usage_sql(insert: str, one: bool) -> str:
    """write_usage's statement: the insert with its roll-ups (made once per insert)."""
    from .rollups import with_rollups

    return with_rollups(insert + " RETURNING *", one=one)


@lru_cache(maxsize=64)
def _with_clock(sql: str) -> str:
    return sql.format(clock=f", {SERVER_CLOCK_MS} AS now_ms")


class _Watchdog:
    """One thread per process (started with the first connection, again after a fork)
    that ends every call still waiting on the server past its deadline."""

    def __init__(self):
        self.connections: "weakref.WeakSet[RawConnection]" = weakref.WeakSet()
        self.pid = None
        self.lock = threading.Lock()

    def watch(self, conn: "RawConnection") -> None:
        with self.lock:
            self.connections.add(conn)
            if self.pid != os.getpid():
                self.pid = os.getpid()
                thread = threading.Thread(target=self._run, name="claude-api-watchdog", daemon=True)
                # Started with Ctrl-C and SIGTERM blocked, so they reach the main thread
                # only: an import holds Ctrl-C back while it stores a batch.
                held = getattr(signal, "pthread_sigmask", None)
                saved = held(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}) if held else None
                try:
                    thread.start()
                finally:
                    if held:
                        held(signal.SIG_SETMASK, saved)

    def _run(self) -> None:
        while True:
            time.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            with self.lock:  # (another thread may be adding one)
                connections = list(self.connections)
            for conn in connections:
                deadline = conn.deadline
                if deadline is not None and now > deadline and not conn.timed_out:
                    conn.expire(deadline)


_watchdog = _Watchdog()
if hasattr(os, "register_at_fork"):
    # A forked child's copies of its parent's connections are never its to end: shutting
    # a shared socket would cut the parent's session.
    os.register_at_fork(after_in_child=lambda: _watchdog.__init__())


def lost(error: BaseException, location: str) -> ConnectionLost:
    """The connection broke under a call: one line, with the server's first reason."""
    diag = getattr(error, "diag", None)
    reason = (diag.message_primary if diag is not None else None) or str(error).strip().partition("\n")[0]
    reason = " ".join(reason.split())
    return ConnectionLost(f"the connection to the store {location} was lost"
                          f"{f' ({reason})' if reason else ''}; try again")


def translate(error: BaseException, location: str):
    """A psycopg error as the one line the user sees (None: not a store error)."""
    if not isinstance(error, psycopg.Error):
        return None
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, pg_errors.NumericValueOutOfRange):  # a BIGINT sum past 2**63
        from ..errors import TooLarge

        return TooLarge()
    if isinstance(error, (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)):
        return StoreError("the store was busy (a concurrent change got in the way); try again")
    if isinstance(error, psycopg.OperationalError):
        return StoreError(f"the store {location} is unavailable: {text}")
    return StoreError(f"the store {location} refused the change: {text}")


def one_line(text: str) -> str:
    """libpq's lines as one line of sentences: "Connection refused" and "Is the server
    running…?" on two lines read "Connection refused. Is the server running…?"."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    return " ".join(line if n == len(lines) - 1 or line[-1] in ".!?:;," else line + "."
                    for n, line in enumerate(lines))


def _without_passwords(text: str, uri: str, given: dict) -> str:
    """A server's or libpq's message on one line, with no password of the URI in it: the
    ones libpq read, and whatever a password with an unencoded `@` or `/` left in the
    host name it quotes. A password too short to replace safely drops the message."""
    text = one_line(text)
    where = uri.partition("://")[2].partition("?")[0]
    raw = where[:where.rfind("@")].partition(":")[2] if "@" in where else ""
    # Without an `@`, libpq reads `user:password/` as a host and a port, and quotes it.
    ports = [] if "@" in where else [h.partition(":")[2] for h in where.partition("/")[0].split(",")
                                     if not h.partition(":")[2].isdigit()]
    secrets = [given.get(name) for name in ("password", "sslpassword")] + [raw] + ports
    secrets += [piece for s in list(secrets) if s for piece in s.replace("/", "@").split("@")]
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) < 4:
            return "the server refused the connection or could not be reached"
        text = text.replace(secret, "***")
    return text


class RawConnection(psycopg.Connection):
    """psycopg's connection, as this backend opens it (directly or in a pool). A
    statement run 5 times on it is prepared on the server (psycopg's default: planning
    the request path's statements costs more than running them), except behind a pooler
    in transaction mode, where the next transaction may run in another server session:
    a pooler that refuses the startup `options` (PgBouncer's default), or one that
    answers a prepared statement with "does not exist", turns preparing off for the
    store in this process."""

    last_used = 0.0  # (monotonic) when it was opened or a pool last had it back: see _check
    wrapper = None  # its Connection, made once
    deadline = None  # while a call waits on the server: when the watchdog ends it
    timed_out = False
    failing: dict = {}  # location -> since when every attempt to connect failed (monotonic)
    unprepared: set = set()  # servers (libpq dsn) where statements are not prepared: see _unprepared
    unchecked: set = set()  # locations whose server refused CLIENT_CHECK: asked no more (see without_options)

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs):
        kwargs, pooler = cls.asking(conninfo, kwargs), False
        try:
            while True:  # (each refusal takes something away: see without_options)
                try:
                    conn = super().connect(conninfo, **kwargs)
                    break
                except psycopg.OperationalError as e:
                    kwargs, refused_by_a_pooler = cls.without_options(e, kwargs, conninfo)
                    pooler = pooler or refused_by_a_pooler
        except psycopg.Error:
            cls.failing.setdefault(conninfo, monotonic())
            raise
        if pooler:
            cls.unprepared.add(conn.info.dsn)
        cls.opened(conninfo, conn)
        _watchdog.watch(conn)
        return conn

    @classmethod
    def asking(cls, conninfo: str, kwargs: dict) -> dict:
        """The connection arguments, without CLIENT_CHECK where this location's server
        refused it before (a failed connection attempt, and a line in its log, saved)."""
        if conninfo in cls.unchecked and kwargs.get("options", "").endswith(_ASKING):
            return {**kwargs, "options": kwargs["options"][:-len(_ASKING)]}
        return kwargs

    @classmethod
    def without_options(cls, refused: psycopg.OperationalError, kwargs: dict,
                        conninfo: str) -> tuple[dict, bool]:
        """(the connection arguments to try again with, whether a pooler refused them).
        A server that cannot check on its clients (before PostgreSQL 14, or on a system
        without the kernel event it polls) refuses CLIENT_CHECK: the same without it, and
        the location (`conninfo`) is not asked again in this process (`asking`). A
        pooler that refuses the startup `options` (PgBouncer without
        ignore_startup_parameters = options): none of the server-side bounds (the
        watchdog still bounds every wait), and the caller marks the server unprepared
        (each transaction may get another server session). Any other refusal is raised
        again."""
        if CLIENT_CHECK in str(refused) and kwargs.get("options", "").endswith(_ASKING):
            cls.unchecked.add(conninfo)
            return cls.asking(conninfo, kwargs), False
        if "options" not in kwargs or "unsupported startup parameter" not in str(refused):
            raise refused
        return {k: v for k, v in kwargs.items() if k != "options"}, True

    @classmethod
    def opened(cls, conninfo: str, conn) -> None:
        """A connection made (sync or async): the location reachable again, and statements
        prepared only where no pooler was seen."""
        cls.failing.pop(conninfo, None)
        if conn.info.dsn in cls.unprepared:
            conn.prepare_threshold = None
        conn.last_used = monotonic()

    def expire(self, deadline: float) -> None:
        """The watchdog's: the call with this deadline waited past it. Shut the socket
        (the fd stays psycopg's), so the wait ends now with an error, whatever the
        server does; unless that call has ended meanwhile."""
        import socket

        if self.deadline is not deadline:
            return
        self.timed_out = True
        try:
            fd = self.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):
            pass


def _parameters(uri: str, location: str, wait: float, readonly: bool = False,
                prepare: bool = False) -> tuple[dict, dict]:
    """(what the location says, how to connect): autocommit; statements prepared only
    for a long-lived connection (`prepare`: a pool's); every wait bounded by `wait`
    seconds. The server-side bounds go in
    the startup packet (nothing is SET on a session: behind PgBouncer it would leak to
    other clients): lock waits end, a session idle inside a transaction (a stalled
    client) is ended, freeing its locks, and so is one whose client is gone while its
    statement runs or waits for a lock (a killed import would otherwise store a whole
    batch, holding the write lock, before the server noticed)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(uri)
    except psycopg.Error:  # (libpq's reason quotes the URI, password and all)
        raise StoreError(f"{location} is not a usable PostgreSQL location") from None
    ms = max(1, int(wait * 1000))
    settings = {"lock_timeout": max(1, ms - 100), "idle_in_transaction_session_timeout": max(1000, ms)}
    if readonly:
        settings["default_transaction_read_only"] = "on"
    settings[CLIENT_CHECK] = CLIENT_CHECK_MS  # (last: RawConnection.without_options may drop it)
    startup = " ".join(f"-c {name}={value}" for name, value in settings.items())
    kwargs = {"autocommit": True, **({} if prepare else {"prepare_threshold": None}),
              "application_name": given.get("application_name", "claude-api"),
              "options": f"{given['options']} {startup}" if given.get("options") else startup,
              # libpq's bound on a whole connection attempt: whole seconds, at least 2
              "connect_timeout": given.get("connect_timeout") or max(2, -int(-wait // 1)),
              "keepalives": 1, "keepalives_idle": max(1, int(wait)), "keepalives_interval": 1,
              "keepalives_count": 3, "tcp_user_timeout": ms}
    return given, kwargs


def connect_raw(uri: str, location: str, wait: float = ADMIN_TIMEOUT_S, readonly: bool = False):
    """A bare psycopg connection (see _parameters), with one clear error if there is none."""
    given, kwargs = _parameters(uri, location, wait, readonly)
    try:
        return RawConnection.connect(uri, **kwargs)
    except psycopg.Error as e:
        raise StoreError(f"cannot connect to the store {location}: {_without_passwords(str(e), uri, given)}") from None


def wrap(raw: RawConnection, location: str, wait: float) -> Connection:
    """The backend's Connection around a pool's psycopg connection (made once per one)."""
    conn = raw.wrapper
    if conn is None or conn.wait != wait:
        conn = raw.wrapper = Connection(raw, location, wait)
    return conn


def unavailable(error: BaseException | None, location: str, wait: float) -> StoreError:
    """No connection from the pool within `wait` seconds (0: none was tried, since the
    server was unreachable moments ago)."""
    if isinstance(error, StoreError):
        return error
    if not wait:
        return StoreError(f"the store {location} is unavailable: it could not be reached moments ago; try again")
    return StoreError(f"the store {location} is unavailable: no connection to it could be opened "
                      f"within {wait:g} s; try again")


IDLE_PROBE_S = 30.0  # a pooled connection idle this long is probed with a round trip
IDLE_PROBE_BOUND_S = 5.0  # how long a new or idle pooled connection's first round trip may take
# A pool keeps trying to reopen a lost connection (with backoff) for this long, then lets
# it go; the next call that needs one tries again at once. So once the server is back,
# the next call succeeds, and a server that stays down is not hammered.
RECONNECT_S = 2.0


def _check(raw: RawConnection, wait: float) -> None:
    """Before a pool hands out a connection: one the server has closed (it restarted, or
    ended an idle session) has something to read while idle, which costs no round trip
    to see; one idle for long is probed. A failed check makes the pool open another."""
    if RawConnection.unprepared and raw.prepare_threshold is not None and raw.info.dsn in RawConnection.unprepared:
        raw.prepare_threshold = None  # another connection to this store met a pooler
    if raw.broken or raw.closed or _readable(raw.pgconn.socket):
        raw.close()  # (closed, the pool lets it go and opens another)
        raise psycopg.OperationalError("the server closed this connection")
    if monotonic() - raw.last_used > IDLE_PROBE_S:
        raw.deadline = monotonic() + wait
        try:
            raw.execute("")
        finally:
            raw.deadline = None


def _readable(fd: int) -> bool:
    """Whether a socket has something to read now (poll: any descriptor number)."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _configure(raw: RawConnection) -> None:
    """A new pooled connection prepares statements only when it speaks to the server
    itself: behind a pooler in transaction mode (the server's port, address or socket
    folder is not the one connected to), another client's statement of the same name
    could run in its place. A proxy passing sessions through is treated the same way."""
    if raw.prepare_threshold is None:
        return
    raw.deadline = monotonic() + IDLE_PROBE_BOUND_S
    try:
        port, address, folders = raw.execute(
            "SELECT current_setting('port'), host(inet_server_addr()), current_setting('unix_socket_directories')"
        ).fetchone()
    finally:
        raw.deadline = None
    if not speaks_to_the_server(raw.info, port, address, folders):
        raw.prepare_threshold = None
        RawConnection.unprepared.add(raw.info.dsn)


def speaks_to_the_server(info, port: str, address, folders: str) -> bool:
    """Whether a connection (its `info`) reaches the server that answered with its
    `port`, address and socket folders itself, not through a pooler or proxy."""
    if info.host.startswith("/"):
        here = os.path.realpath(info.host)
        direct = address is None and here in [os.path.realpath(f.strip()) for f in folders.split(",")]
    else:
        direct = address is not None and info.hostaddr == address
    return direct and str(info.port) == port


class _Unmasked(logging.Filter):
    """The pool logs each failed connection attempt with libpq's reason, which may quote
    a host name that holds part of a password: each pool scrubs its own store's."""

    def __init__(self, uri: str, given: dict):
        super().__init__()
        self.uri, self.given = uri, given

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _without_passwords(record.getMessage(), self.uri, self.given), ()
        return True


def pool(uri: str, wait: float, size: int):
    pool_logging(uri, wait)
    return _pool(uri, wait, size)


def pool_logging(uri: str, wait: float) -> None:
    """A pool logs each failed reconnection: the service's logging decides where that
    goes (without any, it is not printed on its stderr), always without a password."""
    log = logging.getLogger("psycopg.pool")
    log.addHandler(logging.NullHandler())
    given, _ = _parameters(uri, masked(uri), wait)
    if not any(isinstance(f, _Unmasked) and f.uri == uri for f in log.filters):
        log.addFilter(_Unmasked(uri, given))


def _pool(uri: str, wait: float, size: int):
    """This process's pool of at most `size` connections to the store: connections
    checked before use (_check), replaced after 30 minutes, reopened with backoff
    when the server comes back. Waiting for a free connection is bounded too."""
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise StoreError("this store is a PostgreSQL database, and PostgreSQL support is not installed: "
                         "pip install 'claude-api[postgres]'") from None
    location = masked(uri)
    _, kwargs = _parameters(uri, location, wait, prepare=True)
    return ConnectionPool(uri, connection_class=RawConnection, kwargs=kwargs, min_size=1,
                          max_size=size, open=True, configure=_configure,
                          check=functools.partial(_check, wait=wait), timeout=wait, max_lifetime=1800,
                          max_idle=300, reconnect_timeout=RECONNECT_S, name="claude-api")


def open_store(uri: str, schema_version: int, *, create: bool = True, readonly: bool = False,
               wait: float = ADMIN_TIMEOUT_S) -> Connection:
    """Open the store, setting the database up on first use. With create=False a
    database claude-api has not set up is an error (a command that only reads never
    sets one up); readonly makes the session read-only (listings and reports)."""
    location = masked(uri)
    conn = Connection(connect_raw(uri, location, wait, readonly), location, wait)
    conn.raw.wrapper = conn
    try:
        ready(conn, schema_version, create=create)
    except BaseException:
        conn.close()
        raise
    return conn


def ready(conn: Connection, schema_version: int, *, create: bool) -> None:
    """Check (and with create, set up or upgrade) the schema of an open connection's store."""
    version = _version(conn)
    if version == 0 and not create:
        _refuse_foreign(conn)
        raise StoreMissing(f"the database {conn.location} has no claude-api store yet: a command that "
                           "writes, such as `claude-api keys create`, sets it up")
    if version != schema_version:
        _upgrade(conn, version, schema_version)


def _version(conn: Connection) -> int:
    """The schema version; 0 for a database claude-api has not set up yet."""
    conn.raw.deadline = time.monotonic() + conn.wait
    try:
        row = conn.raw.execute("SELECT version FROM claude_api_schema").fetchone()
    except pg_errors.UndefinedTable:
        return 0
    except psycopg.Error as e:
        raise conn._error(e) from None
    finally:
        conn.raw.deadline = None
    return row[0] if row else 0


def _upgrade(conn: Connection, version: int, schema_version: int) -> None:
    if version > schema_version:
        raise StoreError(
            f"the store {conn.location} has schema version {version}, newer than this "
            f"claude-api understands ({schema_version}); upgrade claude-api to use it")
    from . import migrations

    with conn.transaction():
        # Hosts starting together: one migrates, the others wait here and then find
        # the schema up to date. DDL is transactional, so a failed step leaves nothing.
        conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        version = _version(conn) if _has_schema_table(conn) else 0
        if version == schema_version:
            return
        if version > schema_version:
            raise StoreError(f"the store {conn.location} was upgraded by a newer claude-api meanwhile")
        if version == 0:
            _refuse_foreign(conn)
        migrations.apply_postgres(conn)


def _refuse_foreign(conn: Connection) -> None:
    """A database without our schema table but with a `keys` table is someone else's."""
    if conn.execute("SELECT to_regclass('keys')").fetchone()[0] is not None:
        raise StoreError(f"the database {conn.location} already has a table named keys that "
                         "claude-api did not make; point --db or CLAUDE_API_DB at a database of its own")


def _has_schema_table(conn: Connection) -> bool:
    return conn.execute("SELECT to_regclass('claude_api_schema')").fetchone()[0] is not None
