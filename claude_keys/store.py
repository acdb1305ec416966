"""Where the store is, and opening it: a SQLite file (the default) or a PostgreSQL database.

`--db` / CLAUDE_API_DB name the store: a `postgresql://` or `postgres://` URI is a
PostgreSQL database (for several hosts); anything else is the path of a SQLite file.
Both backends (claude_keys/backends/) hand the library a connection with one small
interface, so the library is written once:

- `execute(sql, params)` / `executemany`, with `?` placeholders; `rows()` / `row()`
  return rows that answer both `row[0]` and `row["name"]`;
- `write()`: a write transaction serialized against every other one, on any host
  (SQLite's BEGIN IMMEDIATE; an advisory lock on PostgreSQL);
- `transaction()`: a plain write transaction, for writes that are safe concurrently;
- `snapshot()`: a read transaction that sees one moment throughout;
- `dialect` ("sqlite" / "postgres"), `for_update` (the row-lock clause), `location`
  (for messages: a PostgreSQL password is masked), `IntegrityError`, `broken`.

The fast path (every command, `KeyStore.check`) is: connect, read the schema version.
Only when that is behind the program's schema are the migrations imported.
"""
from __future__ import annotations

import os

from .errors import ClaudeKeysError

# The number of steps in claude_keys.migrations (a test checks the two agree). Kept
# here so that opening an up-to-date store never imports the migrations.
SCHEMA_VERSION = 6
ENV_DB = "CLAUDE_API_DB"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# PostgreSQL's clock, in epoch milliseconds, as SQL: every host shares one time line
# (the gate's lookup and admissions, claude_take_slot, Connection.now_s).
SERVER_CLOCK_MS = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


def default_path() -> str:
    import click  # only when neither --db nor CLAUDE_API_DB says where

    return os.path.join(click.get_app_dir("claude-api"), "keys.db")


def resolve(db: str | os.PathLike | None = None) -> str:
    """The store named by `db`, else CLAUDE_API_DB, else the default file."""
    if db:
        return os.fspath(db)
    return os.environ.get(ENV_DB) or default_path()


resolve_path = resolve


def is_postgres(target: str) -> bool:
    return target.startswith(POSTGRES_SCHEMES)


def display(target: str) -> str:
    """How to name a store to a person: an absolute path, or a URI without its password."""
    return masked(target) if is_postgres(target) else os.path.abspath(target)


_SECRET_PARAMETERS = ("password", "sslpassword")


def masked(uri: str) -> str:
    """A PostgreSQL URI with every password replaced by `***`: the `password=` and
    `sslpassword=` parameters (however their names are percent-encoded), and the
    userinfo's. A password may hold what a URI should not (`?`, `#`, `@`, `/`, unencoded:
    libpq takes some of them), so everything from the first `:` after the scheme to the
    last `@` is masked: more than the password at worst, never less. For messages,
    `db path` and the audit trail."""
    import re
    from urllib.parse import unquote

    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri

    def parameter(m):
        secret = unquote(m.group(2)).strip().lower() in _SECRET_PARAMETERS
        return f"{m.group(1)}{m.group(2)}=***" if secret else m.group(0)

    rest = re.sub(r"([?&])([^=&]*)=([^&]*)", parameter, rest)
    at = rest.rfind("@")
    name, colon, _ = rest[:max(at, 0)].partition(":")
    if colon:
        rest = f"{name}:***{rest[at:]}"
    return f"{scheme}://{rest}"


def connect(db: str | os.PathLike | None = None, *, create: bool = True, readonly: bool = False):
    """Open (creating and migrating if needed) the store and return a connection.

    create=False: a store that does not exist (or that claude-api has not set up) is a
    StoreError, and nothing is created. readonly: the connection never writes (a store
    behind this program's schema is still upgraded first)."""
    target = resolve(db)
    if is_postgres(target):
        from .backends import postgres

        return postgres.open_store(target, SCHEMA_VERSION, create=create, readonly=readonly)
    from .backends import sqlite

    return sqlite.open_store(target, SCHEMA_VERSION, create=create, readonly=readonly)


def write(conn):
    """A write transaction serialized against all others (see the module docstring)."""
    return conn.write()


def backend_of(conn):
    """The backend module of an open connection."""
    if conn.dialect == "postgres":
        from .backends import postgres

        return postgres
    from .backends import sqlite

    return sqlite


def schema_status(conn) -> dict:
    """For `db check`: the cached version and what the migrations table records."""
    backend = backend_of(conn)
    return {"schema_version": backend.schema_version(conn), "expected_version": SCHEMA_VERSION,
            "migrations": backend.applied_migrations(conn)}


def as_store_error(error: BaseException, location: str = "") -> ClaudeKeysError | None:
    """A database driver's error as a StoreError (None when it is not one): the Python
    API raises only ClaudeKeysError, and the CLI prints one line."""
    if isinstance(error, ClaudeKeysError):
        return error
    import sys

    if "sqlite3" in sys.modules:
        from .backends import sqlite

        found = sqlite.translate(error, location)
        if found is not None:
            return found
    if "psycopg" in sys.modules:
        from .backends import postgres

        return postgres.translate(error, location)
    return None
