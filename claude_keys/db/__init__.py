"""The storage package: where the store is, opening it, and everything that differs
between its two backends. It is the only place that imports a database driver or names
a vendor (a test checks); the rest of claude_keys speaks to the connection it hands out.

`--db` / CLAUDE_API_DB name the store (db.locate): a SQLite file (the default) or a
PostgreSQL database (for several hosts). Both backends (db/sqlite.py, db/postgres.py)
hand the library a connection with one interface, so the library is written once:

- `execute(sql, params)` / `executemany`, with `?` placeholders; `rows()` / `row()`
  return rows that answer both `row[0]` and `row["name"]`; `stream()` for big reads;
- `write()`: a write transaction serialized against every other one, on any host
  (SQLite's BEGIN IMMEDIATE; an advisory lock on PostgreSQL); `transaction()`: a plain
  write transaction, for writes that are safe concurrently; `write_one(sql)`: a single
  statement as its own transaction; `snapshot()`: a read transaction that sees one moment;
- operations where the backends differ: `now_ms()` and `row_with_clock()` (the store's
  clock), `lock_scopes()` (an admission's rate windows), `take_slot()` (a key's rate
  slot, db/windows.py), `write_usage()` / `remove_usage()` (usage with its roll-ups),
  `record_request()` (one request stored, settling its in-flight row), `bulk_load()`, `scratch_table()`,
  `copy_in()`, `tune_for_import()`, `table_names()` / `column_names()`,
  `integrity_problems()`, `details()`;
- capabilities, as `features`: whether an import can stage its rows inside the store itself;
- `location` (for messages: a PostgreSQL password is masked), `IntegrityError`, `broken`.

The fast path (every command, `KeyStore.check`) is: connect, read the schema version.
Only when that is behind the program's schema are the migrations imported. Every wait
on the store is bounded (db.base.timeout).
"""
from __future__ import annotations

import os

from ..errors import ClaudeKeysError, InvalidInput
from .base import SCHEMA_VERSION, timeout
from .location import POSTGRES, is_server, locate, masked

__all__ = ["SCHEMA_VERSION", "ENV_DB", "resolve", "display", "backend_name", "local_folder",
           "same_store", "connect", "write", "schema_status", "as_store_error", "timeout", "is_server",
           "masked"]

ENV_DB = "CLAUDE_API_DB"


def default_path() -> str:
    return os.path.join(app_dir(), "keys.db")


def app_dir() -> str:
    """click.get_app_dir("claude-api"), without loading Click: `usage statusline` runs
    without it (a test checks that the two agree)."""
    if os.name == "nt":
        import click

        return click.get_app_dir("claude-api")
    import sys

    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~/Library/Application Support"), "claude-api")
    return os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")), "claude-api")


def resolve(db: str | os.PathLike | None = None) -> str:
    """The store named by `db`, else CLAUDE_API_DB, else the default file. A value that
    names no store (a URI of another kind, NUL, text no file name can hold) is
    InvalidInput, whichever way it came."""
    if db is not None and not isinstance(db, (str, os.PathLike)):
        raise InvalidInput(f"db must be a path or a PostgreSQL URI, not {type(db).__name__}")
    target = os.fspath(db) if db else (os.environ.get(ENV_DB) or default_path())
    if not isinstance(target, str):
        raise InvalidInput("db must be a path or a PostgreSQL URI given as text")
    if "\x00" in target:
        raise InvalidInput("the store's location must not contain NUL characters")
    try:
        os.fsencode(target)
    except UnicodeError:
        raise InvalidInput("the store's location holds characters no file name or URI can hold") from None
    locate(target)  # refuses a URI of another kind
    return target


resolve_path = resolve


def display(target: str) -> str:
    """How to name a store to a person: an absolute path, or a location without its password."""
    kind, where = locate(target)
    return masked(where) if kind == POSTGRES else os.path.abspath(where)


def backend_name(target: str) -> str:
    return locate(target)[0]


def local_folder(target: str) -> str | None:
    """The folder of a SQLite store; None for a database server's."""
    kind, where = locate(target)
    return None if kind == POSTGRES else os.path.dirname(os.path.abspath(where))


def same_store(a: str, b: str) -> bool:
    (kind_a, where_a), (kind_b, where_b) = locate(a), locate(b)
    if POSTGRES in (kind_a, kind_b):
        return (kind_a, where_a) == (kind_b, where_b)
    return os.path.realpath(where_a) == os.path.realpath(where_b)


def connect(db: str | os.PathLike | None = None, *, create: bool = True, readonly: bool = False,
            wait: float | None = None, request: bool = False):
    """Open (creating and migrating if needed) the store and return a connection.

    create=False: a store that does not exist (or that claude-api has not set up) is a
    StoreMissing, and nothing is created. readonly: the connection never writes (a store
    behind this program's schema is still upgraded first). `wait`: the bound on any
    wait, in seconds (default: db.base.timeout, for the request path or not)."""
    kind, target = locate(resolve(db))
    bound = timeout(wait, request=request)
    if kind == POSTGRES:
        from . import postgres

        return postgres.open_store(target, SCHEMA_VERSION, create=create, readonly=readonly, wait=bound)
    from . import sqlite

    return sqlite.open_store(target, SCHEMA_VERSION, create=create, readonly=readonly, wait=bound)


def write(conn):
    """A write transaction serialized against all others (see the module docstring)."""
    return conn.write()


def schema_status(conn) -> dict:
    """For `db check`: the cached version and what the migrations table records."""
    return {"schema_version": conn.schema_version(), "expected_version": SCHEMA_VERSION,
            "migrations": conn.applied_migrations()}


def as_store_error(error: BaseException, location: str = "") -> ClaudeKeysError | None:
    """A database driver's error as a StoreError (None when it is not one): the Python
    API raises only ClaudeKeysError, and the CLI prints one line."""
    if isinstance(error, ClaudeKeysError):
        return error
    import sys

    if "sqlite3" in sys.modules:
        from . import sqlite

        found = sqlite.translate(error, location)
        if found is not None:
            return found
    if "psycopg" in sys.modules:
        from . import postgres

        return postgres.translate(error, location)
    return None
