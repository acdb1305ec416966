"""The PostgreSQL backend: one database shared by every host of a service.

Imported only when --db / CLAUDE_API_DB is a postgresql:// or postgres:// URI, so
psycopg (200+ ms to import) never loads for a SQLite store. The connection wraps
psycopg's in autocommit mode and speaks the same interface as the SQLite backend:
SQL is written once with `?` placeholders and translated here.

Exactness across hosts comes from the server, not from this process:
- `write()` transactions (key lifecycle, settings) take one transaction-level advisory
  lock, so they are serialized exactly as SQLite's single writer serializes them;
- the request path takes row locks only on what it decides about (a key lineage's
  rate window, see claude_take_slot), and reads the server's clock after the lock;
- usage and its roll-ups are written by single statements (upserts), which PostgreSQL
  makes safe against every concurrent writer.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

from ..errors import StoreError, StoreMissing
from ..store import SERVER_CLOCK_MS, masked

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.pq import TransactionStatus
except ImportError:  # pragma: no cover - exercised by a test with psycopg hidden
    raise StoreError("this store is a PostgreSQL URI, and PostgreSQL support is not installed: "
                     "pip install 'claude-api[postgres]'") from None

WRITE_LOCK = 0x636C61756465  # "claude": the advisory lock that serializes write() transactions
MIGRATION_LOCK = WRITE_LOCK + 1
CONNECT_TIMEOUT_S = 10


@lru_cache(maxsize=512)
def translate_sql(sql: str) -> str:
    """`?` placeholders -> `%s`, and a literal `%` -> `%%`, outside quoted text."""
    out, quote = [], None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=256)
def _row_class(names: tuple) -> type:
    """A tuple that also answers row["name"] and row.keys(), like sqlite3.Row."""
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
    names = tuple(c.name for c in cursor.description or ())
    return _row_class(names)


class _IntNumericLoader(psycopg.adapt.Loader):
    """sum() of bigint is numeric: exact, of any size; read it as a Python int (the store
    keeps no fractional numbers)."""

    def load(self, data):
        text = bytes(data).decode()
        if "." in text or "N" in text:  # NaN cannot happen: no numeric column holds one
            from decimal import Decimal

            return Decimal(text)
        return int(text)


class Connection:
    """A psycopg connection with the backend interface (see claude_keys.store)."""

    dialect = "postgres"
    for_update = " FOR UPDATE"
    IntegrityError = psycopg.IntegrityError

    def __init__(self, raw, location: str):
        self.raw = raw
        self.location = location
        raw.adapters.register_loader("numeric", _IntNumericLoader)

    def now_ms(self) -> int:
        """The store's clock, in epoch milliseconds: the server's, which every host shares
        (a revocation stamped by an admin's clock that runs ahead would start late)."""
        return self.execute(f"SELECT {SERVER_CLOCK_MS}").fetchone()[0]

    def now_s(self) -> int:
        return self.now_ms() // 1000

    # -- statements -------------------------------------------------------------------
    def execute(self, sql: str, params=()):
        try:
            return self.raw.execute(translate_sql(sql), params)
        except psycopg.Error as e:
            raise self._error(e) from None

    def executemany(self, sql: str, seq) -> None:
        try:
            with self.raw.cursor() as cur:
                cur.executemany(translate_sql(sql), seq)
        except psycopg.Error as e:
            raise self._error(e) from None

    def copy_in(self, table: str, columns, rows) -> None:
        """Insert many rows (an iterable of tuples) into `table` with COPY: one stream,
        not a round trip a row."""
        try:
            with self.raw.cursor() as cur, \
                    cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as e:
            raise self._error(e) from None

    def stream(self, sql: str, params=(), size: int = 10_000):
        """Rows of a big query, fetched `size` at a time by a server-side cursor (inside
        the caller's transaction), so memory stays flat."""
        try:
            with self.raw.cursor(name="claude_api_stream") as cur:
                cur.itersize = size
                cur.execute(translate_sql(sql), params)
                yield from cur
        except psycopg.Error as e:
            raise self._error(e) from None

    def rows(self, sql: str, params=()) -> list:
        try:
            with self.raw.cursor(row_factory=_named_rows) as cur:
                cur.execute(translate_sql(sql), params)
                return cur.fetchall()
        except psycopg.Error as e:
            raise self._error(e) from None

    def row(self, sql: str, params=()):
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    # -- transactions -----------------------------------------------------------------
    @contextmanager
    def transaction(self):
        """A plain transaction (READ COMMITTED): for writes that lock what they touch."""
        try:
            with self.raw.transaction():
                yield self
        except psycopg.Error as e:
            raise self._error(e) from None

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
            if self.in_transaction:
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

    def _error(self, e: BaseException) -> BaseException:
        if isinstance(e, psycopg.IntegrityError):
            return e  # the caller decides (e.g. "that token is already stored")
        return translate(e, self.location) or e


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


def _without_passwords(text: str, uri: str, given: dict) -> str:
    """A server's or libpq's message on one line, with no password of the URI in it: the
    ones libpq read, and whatever a password with an unencoded `@` or `/` left in the
    host name it quotes. A password too short to replace safely drops the message."""
    text = " ".join(text.split())
    where = uri.partition("://")[2].partition("?")[0]
    raw = where[:where.rfind("@")].partition(":")[2] if "@" in where else ""
    secrets = [given.get(name) for name in ("password", "sslpassword")] + [raw]
    secrets += [piece for s in list(secrets) if s for piece in s.replace("/", "@").split("@")]
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) < 4:
            return "the server refused the connection or could not be reached"
        text = text.replace(secret, "***")
    return text


def connect_raw(uri: str, location: str):
    """A bare psycopg connection (autocommit), with one clear error if there is none."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(uri)
    except psycopg.Error:  # (libpq's reason quotes the URI, password and all)
        raise StoreError(f"{location} is not a usable PostgreSQL URI") from None
    options = {"autocommit": True, "application_name": given.get("application_name", "claude-api")}
    if "connect_timeout" not in given:
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return psycopg.connect(uri, **options)
    except psycopg.Error as e:
        raise StoreError(f"cannot connect to the store {location}: {_without_passwords(str(e), uri, given)}") from None


def open_store(uri: str, schema_version: int, *, create: bool = True,
               readonly: bool = False) -> Connection:
    """Open the store, setting the database up on first use. With create=False a
    database claude-api has not set up is an error (a command that only reads never
    sets one up); readonly makes the session read-only (listings and reports)."""
    location = masked(uri)
    conn = Connection(connect_raw(uri, location), location)
    try:
        version = _version(conn)
        if version == 0 and not create:
            _refuse_foreign(conn)
            raise StoreMissing(f"the database {location} has no claude-api store yet: a command that "
                             "writes, such as `claude-api keys create`, sets it up")
        if version != schema_version:
            _upgrade(conn, version, schema_version)
        if readonly:
            conn.execute("SET default_transaction_read_only = on")
    except BaseException:
        conn.close()
        raise
    return conn


def _version(conn: Connection) -> int:
    """The schema version; 0 for a database claude-api has not set up yet."""
    try:
        row = conn.raw.execute("SELECT version FROM claude_api_schema").fetchone()
    except pg_errors.UndefinedTable:
        return 0
    except psycopg.Error as e:
        raise conn._error(e) from None
    return row[0] if row else 0


def _upgrade(conn: Connection, version: int, schema_version: int) -> None:
    if version > schema_version:
        raise StoreError(
            f"the store {conn.location} has schema version {version}, newer than this "
            f"claude-api understands ({schema_version}); upgrade claude-api to use it")
    from .. import migrations

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


def schema_version(conn: Connection) -> int:
    return _version(conn)


def applied_migrations(conn: Connection) -> list[str]:
    if conn.execute("SELECT to_regclass('claude_api_migrations')").fetchone()[0] is None:
        return []
    return [r[0] for r in conn.execute("SELECT name FROM claude_api_migrations ORDER BY id")]


def server_version(conn: Connection) -> str:
    return conn.execute("SHOW server_version").fetchone()[0]
