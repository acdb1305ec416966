"""The SQLite backend: one local file, shared by every process on this machine.

The connection is sqlite3's own (a subclass adding the backend interface, see
claude_keys.db), so the request path calls SQLite's C code directly. Opening an
up-to-date store is: connect, set per-connection pragmas, read `PRAGMA user_version`.
Writers take the single write lock up front (BEGIN IMMEDIATE), so concurrent writers
wait their turn, for at most the store's wait bound (SQLite's busy timeout; the threads
of one process first take turns on a lock of the process, see _turns). The store's
clock is this machine's.
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from functools import lru_cache

from .base import ADMIN_TIMEOUT_S, Wrote
from ..errors import StoreDamaged, StoreError, StoreMissing

# Small pages: a commit writes each page it dirtied to the WAL, and a recorded request
# dirties one page in each of four b-trees (usage and three roll-ups).
PAGE_SIZE = 1024
WAL_AUTOCHECKPOINT = 4000  # pages (4 MB): fewer, larger checkpoints; the WAL stays small


# Writers of one process take turns on a lock of their own before SQLite's: SQLite's
# busy handler makes a waiting writer sleep (1, 2, 5, 10... ms) and try again, so threads
# of a service that write at once (KeyStore shared by threads, AsyncKeyStore's workers)
# would sleep through most of the time the lock was free; a thread waiting on this
# lock is woken the moment the writer before it commits. Other processes still wait
# through the busy timeout. (Reentrant: a write inside a write of the same thread.)
_turns: dict = {}


def _turn(location: str):
    turn = _turns.get(location)
    if turn is None:
        import _thread  # (threading.RLock is this; loading threading costs ~1.5 ms a process)

        turn = _turns.setdefault(location, _thread.RLock())
    return turn


# Event loops waiting for a turn (their connections never wait: db/async_connections.py),
# woken by the writer that passes it: location -> [(loop, future)].
turn_waiters: dict = {}


def _pass_turn(location: str, turn) -> None:
    """The turn given up, and every event loop waiting for it woken (to try again).
    (Written out where every request passes: a call fewer.)"""
    turn.release()
    if turn_waiters:
        wake_loops(location)


def wake_loops(location: str) -> None:
    for loop, future in turn_waiters.pop(location, ()):
        try:
            loop.call_soon_threadsafe(_wake, future)
        except RuntimeError:  # (that loop has closed)
            pass


def _wake(future) -> None:
    if not future.done():
        future.set_result(None)


if hasattr(os, "register_at_fork"):  # a forked child's writers start with no turn held
    os.register_at_fork(after_in_child=lambda: (_turns.clear(), turn_waiters.clear()))


_RECORD = None  # record_request's usage insert (made on first use: rollups stays off the cold path)


class WouldWait(Exception):
    """On a connection that never waits (the event loop's: db/async_connections.py), the
    operation would have waited for another writer; nothing of it was done. `turn`: the
    writer is a thread of this process (its turn wakes the loop, see turn_waiters);
    else another process holds the store's lock."""

    def __init__(self, turn: bool = False):
        super().__init__()
        self.turn = turn


def turn_not_passed() -> StoreError:
    """This process's writer kept its turn past the wait bound (a thread's, or the loop's wait)."""
    return StoreError("the store stayed busy past its wait bound (another thread of this process is "
                      "writing; CLAUDE_API_TIMEOUT sets the bound); try again")


def is_busy(error: BaseException) -> bool:
    """SQLite's answer when its lock is taken (and its busy timeout, if any, ran out)."""
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))


class _NotOurs(Exception):
    """record_request: roll its transaction back."""


class Features:
    stages_in_place = True  # an import stages its rows in the store connection's temp database


class Connection(sqlite3.Connection):
    """sqlite3's connection with the backend interface (see claude_keys.db)."""

    backend = "sqlite"
    features = Features
    location = ""
    wait = ADMIN_TIMEOUT_S
    for_update = ""  # SQLite's write lock covers the whole store
    broken = False
    never_waits = False  # the event loop's connection: WouldWait instead of a wait
    IntegrityError = sqlite3.IntegrityError

    def rows(self, sql: str, params=()) -> list:
        cur = self.execute(sql, params)
        cur.row_factory = sqlite3.Row
        return cur.fetchall()

    def row(self, sql: str, params=()):
        cur = self.execute(sql, params)
        cur.row_factory = sqlite3.Row
        return cur.fetchone()

    def stream(self, sql: str, params=()):
        """Rows of a big query, as SQLite's cursor steps through them."""
        return self.execute(sql, params)

    # -- the clock ----------------------------------------------------------------------
    def now_ms(self) -> int:
        """The store's clock, in epoch milliseconds: this machine's, for a local file."""
        return time.time_ns() // 1_000_000

    def now_s(self) -> int:
        return self.now_ms() // 1000

    def row_with_clock(self, sql: str, params=()):
        """(the row of `sql`, whose select list ends in `{clock}`, and the store's time)."""
        return self.row(_without_clock(sql), params), time.time_ns() // 1_000_000

    def lock_scopes(self, scopes) -> int:
        """Inside an admission's transaction: BEGIN IMMEDIATE already holds the only write
        lock, so the rate windows of `scopes` are ours; the time, read after it."""
        return time.time_ns() // 1_000_000

    def take_slot(self, lineage: str, limit: int, key_id: str, last_used_at=None):
        """A rate-limited key's slot: the library's steps under the single writer
        (db/windows.py)."""
        from .windows import take_slot_steps

        return take_slot_steps(self, lineage, limit, key_id, last_used_at)

    # -- writes -------------------------------------------------------------------------
    def write_one(self, sql: str, params=()) -> int:
        """One statement as its own write transaction (BEGIN IMMEDIATE: never a stale
        snapshot in WAL); how many rows it changed."""
        with self.transaction():
            return self.execute(sql, params).rowcount

    def write_usage(self, insert: str, params=(), one: bool = False) -> int:
        """An INSERT into usage; the roll-ups follow by trigger. How many rows it stored.
        (`one`: it inserts one row at most; the same here.)"""
        turn = self._take_turn()
        try:
            try:
                stored = self.execute(insert, params).rowcount
            except sqlite3.OperationalError as e:  # (a statement that failed did nothing)
                if self.never_waits and is_busy(e):
                    raise WouldWait from None
                raise
            if stored and not self.in_transaction:  # (committed as it ran; else see _Write)
                Wrote.changed = True
            return stored
        finally:
            turn.release()  # (_pass_turn)
            if turn_waiters:
                wake_loops(self.location)

    def record_request(self, row: tuple, lineage: str | None) -> tuple:
        """Store one request (a usage row, USAGE_COLUMNS) for a key of `lineage` and
        settle it if it is in flight there (claude_keys/inflight.py), in one write
        transaction. Nothing is written when another lineage holds that request id in
        flight. Returns (rows stored: 1 or 0, the lineage holding it in flight or None,
        the cost it reserved)."""
        global _RECORD
        if _RECORD is None:
            from .rollups import USAGE_COLUMNS

            _RECORD = (f"INSERT INTO usage ({', '.join(USAGE_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(USAGE_COLUMNS))}) ON CONFLICT (request_id) DO NOTHING")
        try:
            with self.transaction():
                # Settle first: by the lineage's key (one b-tree, no other index on the
                # request path's commits); else, is the id another lineage's? (a scan
                # of this small table: it holds only requests still in flight).
                held = self.execute("DELETE FROM in_flight WHERE lineage = ? AND request_id = ? "
                                    "RETURNING lineage, reserved_nanos", (lineage or "", row[0])).fetchone()
                if held is None:
                    other = self.execute("SELECT lineage FROM in_flight WHERE request_id = ?", (row[0],)).fetchone()
                    if other is not None:
                        raise _NotOurs(other[0])
                stored = self.execute(_RECORD, row).rowcount
                if held is not None and not stored:
                    raise _NotOurs(None)  # (stored already: leave its row as it was)
        except _NotOurs as e:
            return 0, e.args[0], None
        return stored, held and held[0], held and held[1]

    def remove_usage(self, doomed: str) -> None:
        """Take the requests of the table `doomed` (usage rows) out of every roll-up and
        out of usage, inside the caller's write transaction."""
        from .rollups import ROLLUPS, merge_sql

        for table in ROLLUPS:
            self.execute(merge_sql(table, doomed, -1))
        self.execute(f"DELETE FROM usage WHERE request_id IN (SELECT request_id FROM {doomed})")

    def copy_in(self, table: str, columns, rows) -> None:
        """Insert many rows (an iterable of tuples) into `table`, inside the caller's
        transaction."""
        marks = ", ".join("?" for _ in columns)
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    @contextmanager
    def bulk_load(self):
        """Inside a write transaction: rows are written with their roll-ups already
        summed (an import's grouped merge, a copy), so the roll-up trigger stands aside
        (a row in bulk_mode, which only this transaction sees); foreign keys are checked
        at commit, so tables can be filled in any order."""
        self.execute("PRAGMA defer_foreign_keys = ON")
        self.execute("INSERT INTO bulk_mode VALUES (1)")
        yield self
        self.execute("DELETE FROM bulk_mode")

    @contextmanager
    def scratch_table(self, name: str, columns: dict | None = None, rows=None, *, query: str = "",
                      params=()):
        """A temporary table for the caller's transaction: of `columns` (name -> "text"
        or "int") filled with `rows`, or made by `query`. Dropped afterwards."""
        if query:
            self.execute(f"CREATE TEMP TABLE {name} AS {query}", params)
        else:
            types = {"text": "TEXT", "int": "INTEGER"}
            self.execute(f"CREATE TEMP TABLE {name} ("
                         + ", ".join(f"{c} {types[t]}" for c, t in columns.items()) + ")")
            if rows is not None:
                self.copy_in(f"temp.{name}", list(columns), rows)
        try:
            yield name
        finally:
            self.execute(f"DROP TABLE IF EXISTS temp.{name}")

    def tune_for_import(self) -> None:
        """For an import staging its rows in this connection's temporary database."""
        self.execute("PRAGMA temp.cache_size = -16384")  # 16 MiB of staging, then it spills to disk
        self.execute("PRAGMA main.cache_size = -16384")  # the pages a merge batch touches
        # A merge batch writes megabytes: checkpoint every ~32 MB rather than every 4 MB,
        # and trim the WAL back afterwards.
        self.execute("PRAGMA wal_autocheckpoint = 32000")
        self.execute("PRAGMA journal_size_limit = 67108864")

    # -- transactions -------------------------------------------------------------------
    def write(self):
        """A write transaction, taken at once (BEGIN IMMEDIATE) so it never deadlocks
        upgrading a read lock, and waits out other writers through the busy timeout
        (this process's own writers, on their turn: see _turns)."""
        return _Write(self)

    def _take_turn(self):
        turn = _turn(self.location)
        if self.never_waits:
            if not turn.acquire(False):
                raise WouldWait(turn=True)
            return turn
        if not turn.acquire(timeout=self.wait):
            raise turn_not_passed()
        return turn

    transaction = write  # one writer at a time: every write transaction is serialized

    @contextmanager
    def snapshot(self):
        """A read transaction: every query inside sees the store as of its first one."""
        self.execute("BEGIN")
        try:
            self.execute("SELECT count(*) FROM settings").fetchone()  # takes the snapshot now
            yield self
        finally:
            if self.in_transaction:
                self.execute("ROLLBACK")

    # -- looking at the store -----------------------------------------------------------
    def table_names(self) -> list[str]:
        return [r[0] for r in self.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]

    def column_names(self, table: str) -> list[str]:
        return [r[1] for r in self.execute(f"PRAGMA table_info({table})")]

    def integrity_problems(self) -> list[str]:
        """SQLite's own check of every page, index and constraint."""
        problems = [r[0] for r in self.execute("PRAGMA integrity_check")]
        return [] if problems == ["ok"] else problems

    def details(self) -> dict:
        return {}

    def schema_version(self) -> int:
        return self.execute("PRAGMA user_version").fetchone()[0]

    def applied_migrations(self) -> list[str]:
        if not self.execute("SELECT 1 FROM sqlite_master WHERE name='_sqlite_migrations'").fetchone():
            return []
        return [r[0] for r in self.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set='claude_keys' ORDER BY id")]

    def backup_to(self, target_path: str) -> bool:
        """SQLite's online backup: a consistent copy, page by page, while others write."""
        target = sqlite3.connect(target_path)
        try:
            self.backup(target)
        finally:
            target.close()
        return True


class _Write:
    """Connection.write's context (a class, not a generator: the request path takes two
    a request, and a generator-based one costs a few microseconds more)."""

    __slots__ = ("conn", "turn", "changes")

    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self) -> Connection:
        self.turn = self.conn._take_turn()
        self.changes = self.conn.total_changes
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException as e:
            _pass_turn(self.conn.location, self.turn)
            if self.conn.never_waits and is_busy(e):
                raise WouldWait from None
            raise
        return self.conn

    def __exit__(self, kind, error, trace) -> bool:
        conn = self.conn
        try:
            if kind is None:
                conn.execute("COMMIT")
                if conn.total_changes != self.changes:
                    Wrote.changed = True
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        except BaseException:
            # A COMMIT that failed (a full disk) leaves the transaction open: end it, or
            # every later write on this connection fails too.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            self.turn.release()  # (_pass_turn, after the transaction ended: the next writer's turn)
            if turn_waiters:
                wake_loops(conn.location)
        return False


@lru_cache(maxsize=64)
def _without_clock(sql: str) -> str:
    return sql.format(clock="")


def create_private_file(path: str, *, exist_ok: bool = True) -> None:
    """Create the folder (0700) and an empty file (0600) whatever the umask. Never
    through a symbolic link: O_EXCL refuses one, even one pointing nowhere, which
    SQLite would otherwise follow to create a file with the umask's mode elsewhere."""
    make_private_folders(os.path.dirname(os.path.abspath(path)))
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        refuse_dangling_link(path)
        if not exist_ok:
            raise StoreError(f"{path} already exists; choose a new file name") from None
        return  # another process created it first
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def make_private_folders(folder: str) -> None:
    """Every missing folder down to `folder`, each 0700 whatever the umask: os.makedirs
    gives its mode to the last folder only (the others got 0755 under umask 022). A
    folder that already exists, or that another process makes meanwhile, is left as it is."""
    missing = []
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            continue
        os.chmod(path, 0o700)  # a umask such as 0277 would take the owner's bits too


def refuse_dangling_link(path: str) -> None:
    """A symbolic link to nothing is not a new store's place: whoever planted it would
    choose where the store (and its secrets' digests) is written, and with what mode."""
    if os.path.islink(path) and not os.path.exists(path):
        raise StoreError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                         "claude-api never creates a file through a link: give the real path")


def missing(path: str) -> StoreError:
    return StoreMissing(f"there is no store at {os.path.abspath(path)} (nothing was created; "
                        "`claude-api keys create` makes one, or check --db / CLAUDE_API_DB)")


def open_store(path: str, schema_version: int, *, create: bool = True,
               readonly: bool = False, wait: float = ADMIN_TIMEOUT_S) -> Connection:
    """Open (creating and migrating if needed) the store at `path`. With create=False a
    missing or empty store is an error; readonly opens it without writing (listings and
    reports), so a user who may read the store but not write it can use them."""
    try:
        if not os.path.exists(path):
            refuse_dangling_link(path)
            if not create:
                raise missing(path)
            create_private_file(path)
        if readonly:
            conn = _open_readonly(path, schema_version, wait)
            if conn is not None:
                return conn
        conn = sqlite3.connect(path, timeout=wait, isolation_level=None,
                               check_same_thread=False, factory=Connection)
    except (OSError, sqlite3.Error) as e:
        raise _error_class(e)(f"cannot open the store {path}: {_reason(e)}") from None
    conn.location, conn.wait = path, wait
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and not create:
            _refuse_foreign(conn, path)
            raise _not_set_up(path)
        if version != schema_version:
            _upgrade(conn, path, version, schema_version)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise _error_class(e)(f"cannot use the store {path}: {_reason(e)}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def open_never_waiting(path: str, schema_version: int) -> Connection:
    """A connection to an up-to-date store for an event loop's own thread
    (db/async_connections.py): it never waits (SQLite's busy timeout 0, this process's
    writers' turn tried once: WouldWait instead) and never checkpoints the WAL (a
    checkpoint copies the WAL into the file and syncs it: the loop leaves that to a
    worker thread)."""
    conn = open_store(path, schema_version, create=False, wait=0)
    conn.never_waits = True
    conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


def _not_set_up(path: str) -> StoreError:
    return StoreMissing(f"{path} is not a claude-api store yet (an empty file): a command that "
                        "writes, such as `claude-api keys create`, sets it up")


def _open_readonly(path: str, schema_version: int, wait: float) -> Connection | None:
    """A read-only connection to an up-to-date store, or None when the store must first
    be upgraded (which needs a writing connection). Reading a WAL store takes its
    shared-memory file; a reader who cannot create that file (it is not in the folder
    while no one uses the store, and the folder is not theirs) reads the store as
    immutable instead, which is exact as long as no WAL holds unmerged changes."""
    quoted = os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    uri = "file://" + quoted  # an empty authority: the path is taken as it is
    conn, last = None, None
    for mode in ("?mode=ro", "?immutable=1"):
        if mode == "?immutable=1" and _wal_has_changes(path):
            break  # immutable would not see them
        try:
            conn = sqlite3.connect(uri + mode, uri=True, timeout=wait, isolation_level=None,
                                   check_same_thread=False, factory=Connection)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            break
        except sqlite3.OperationalError as e:
            if conn is not None:
                conn.close()
                conn = None
            last = e
    if conn is None:
        raise StoreError(f"cannot read the store {path}: {_reason(last)}")
    conn.location, conn.wait = path, wait
    if version == schema_version:
        return conn
    try:
        if version == 0:
            _refuse_foreign(conn, path)
            raise _not_set_up(path)
    finally:
        conn.close()
    if version > schema_version:
        _upgrade(None, path, version, schema_version)  # raises: newer than this program
    return None


def _error_class(e: BaseException) -> type:
    """SQLite's DatabaseError (not its OperationalError: busy, locked, cannot open) means
    the file's content is wrong: damaged, or not a database."""
    damaged = isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError)
    return StoreDamaged if damaged else StoreError


def _wal_has_changes(path: str) -> bool:
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if "file is not a database" in text:
        return "the file is not a SQLite database (point --db or CLAUDE_API_DB elsewhere)"
    if "unable to open" in text or isinstance(e, PermissionError):
        return f"{text} (check the path and its permissions)"
    return text


def _upgrade(conn: Connection | None, path: str, version: int, schema_version: int) -> None:
    if version > schema_version:
        raise StoreError(
            f"the store {path} has schema version {version}, newer than this claude-api "
            f"understands ({schema_version}); upgrade claude-api to use it"
        )
    if version == 0:
        _refuse_foreign(conn, path)  # before changing anything in someone else's file
        _use_wal(conn)
    from . import migrations

    with conn.write():
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
        if version == schema_version:
            return  # another process migrated while we waited
        if version > schema_version:
            raise StoreError(f"the store {path} was upgraded by a newer claude-api meanwhile")
        if version == 0:
            _refuse_foreign(conn, path)
        migrations.apply_sqlite(conn)
        conn.execute(f"PRAGMA user_version={schema_version}")


def _refuse_foreign(conn: Connection, path: str) -> None:
    """A version-0 file with tables was not made by claude-api (ours sets the version in
    the same transaction as its tables)."""
    foreign = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type='table' "
        "AND name NOT LIKE 'sqlite_%' AND name != '_sqlite_migrations'"
    ).fetchone()[0]
    if foreign:
        raise StoreError(f"{path} is a SQLite database but not a claude-api store; "
                         "point --db or CLAUDE_API_DB at a new file")


def _use_wal(conn: Connection) -> None:
    """Switch a new store to WAL (persistent). That needs the file to itself, and when
    several processes open a new store at once SQLite answers "locked" at once instead
    of waiting, so try again for as long as the busy timeout."""
    deadline = time.monotonic() + conn.wait
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes effect on an empty file
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as e:
            if not is_busy(e):
                raise
        if time.monotonic() > deadline:
            raise StoreError("the new store stayed locked by other processes; try again")
        time.sleep(0.005)


def translate(error: BaseException, location: str = ""):
    """A sqlite3 error as the one line the user sees (None: not a store error)."""
    if not isinstance(error, sqlite3.Error) or isinstance(error, (sqlite3.ProgrammingError,
                                                                   sqlite3.InterfaceError)):
        return None  # not the store's doing: a bug, reported as one
    text = str(error)
    if "fits_exactly" in text or text == "integer overflow":  # a roll-up or a sum past 2**63
        from ..errors import TooLarge

        return TooLarge()
    if isinstance(error, sqlite3.OperationalError):
        if is_busy(error):
            return StoreError("the store stayed busy past its wait bound (another process is writing "
                              "or holds it; CLAUDE_API_TIMEOUT sets the bound); try again")
        if "disk is full" in text or "disk I/O" in text or "readonly" in text:
            return StoreError(f"the store {location} cannot be written: {text}".replace("  ", " "))
        return StoreError(f"the store could not be used: {text}")
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.IntegrityError):
        return StoreDamaged(f"the store is damaged or not a claude-api store: {text}")
    return StoreError(f"the store refused the change: {text}")
