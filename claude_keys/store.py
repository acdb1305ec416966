"""Opening the store: its path, file permissions, pragmas and schema version.

The fast path (every command, `KeyStore.check`) is: connect, set per-connection
pragmas, read `PRAGMA user_version`. Only when that is behind the program's schema
are the migrations (and sqlite-utils with them) imported, under a write lock so
that concurrent first opens migrate once.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager

from .errors import StoreError

# The number of migrations in claude_keys.migrations; PRAGMA user_version caches
# how many have been applied so the common case never imports sqlite-utils.
SCHEMA_VERSION = 3
BUSY_TIMEOUT_S = 60.0
# Small pages: a commit writes each page it dirtied to the WAL, and a recorded request
# dirties one page in each of four b-trees (usage and three roll-ups).
PAGE_SIZE = 1024
WAL_AUTOCHECKPOINT = 4000  # pages (4 MB): fewer, larger checkpoints; the WAL stays small
ENV_DB = "CLAUDE_API_DB"


def default_path() -> str:
    import click  # only when neither --db nor CLAUDE_API_DB says where

    return os.path.join(click.get_app_dir("claude-api"), "keys.db")


def resolve_path(path: str | os.PathLike | None = None) -> str:
    if path:
        return os.fspath(path)
    return os.environ.get(ENV_DB) or default_path()


def create_private_file(path: str) -> None:
    """Create the folder (0700) and an empty file (0600) whatever the umask."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return  # another process created it first
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def connect(path: str | os.PathLike | None = None) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the store and return a connection.

    The connection is in autocommit mode; writers use `write()` for BEGIN IMMEDIATE.
    """
    path = resolve_path(path)
    try:
        if not os.path.exists(path):
            create_private_file(path)
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as e:
        raise StoreError(f"cannot open the store {path}: {_reason(e)}") from None
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            _upgrade(conn, path, version)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise StoreError(f"cannot use the store {path}: {_reason(e)}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if "file is not a database" in text:
        return "the file is not a SQLite database (point --db or CLAUDE_API_DB elsewhere)"
    if "unable to open" in text or isinstance(e, PermissionError):
        return f"{text} (check the path and its permissions)"
    return text


def _upgrade(conn: sqlite3.Connection, path: str, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path} has schema version {version}, newer than this claude-api "
            f"understands ({SCHEMA_VERSION}); upgrade claude-api to use it"
        )
    if version == 0:
        _refuse_foreign(conn, path)  # before changing anything in someone else's file
        _use_wal(conn)
    from . import migrations

    with write(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
        if version == SCHEMA_VERSION:
            return  # another process migrated while we waited
        if version > SCHEMA_VERSION:
            raise StoreError(f"the store {path} was upgraded by a newer claude-api meanwhile")
        if version == 0:
            _refuse_foreign(conn, path)
        migrations.apply(conn)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _refuse_foreign(conn: sqlite3.Connection, path: str) -> None:
    """A version-0 file with tables was not made by claude-api (ours sets the version in
    the same transaction as its tables)."""
    foreign = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type='table' "
        "AND name NOT LIKE 'sqlite_%' AND name != '_sqlite_migrations'"
    ).fetchone()[0]
    if foreign:
        raise StoreError(f"{path} is a SQLite database but not a claude-api store; "
                         "point --db or CLAUDE_API_DB at a new file")


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch a new store to WAL (persistent). That needs the file to itself, and when
    several processes open a new store at once SQLite answers "locked" at once instead
    of waiting, so try again for as long as the busy timeout."""
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes effect on an empty file
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
        if time.monotonic() > deadline:
            raise StoreError("the new store stayed locked by other processes; try again")
        time.sleep(0.005)


@contextmanager
def write(conn: sqlite3.Connection):
    """A write transaction, taken at once (BEGIN IMMEDIATE) so it never deadlocks
    upgrading a read lock, and waits out other writers through the busy timeout."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_status(conn: sqlite3.Connection) -> dict:
    """For `db check`: the cached version and what the migrations table records."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name='_sqlite_migrations'"
    ).fetchone()
    applied = (
        [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set='claude_keys' ORDER BY id"
        )]
        if has_table
        else []
    )
    return {"schema_version": version, "expected_version": SCHEMA_VERSION, "migrations": applied}
