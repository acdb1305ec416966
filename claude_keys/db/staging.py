"""The staging table of an import, and its merge into the store.

Staging lives in SQLite's temporary database (on disk, with a bounded cache), so an
import of any size runs in flat memory. Rows are appended as they are read, with a
rank. Once everything has been read (so a malformed line has stopped the import
before anything was stored):

1. one index sorts them by request id;
2. replays are resolved: every copy of a Claude Code message (its message id) under
   another request id than one already stored, or read in this import, becomes that
   request (the stored one first, then a main-conversation copy), whichever copy came
   first;
3. where a request id was read more than once only its best copy stays: the most
   tokens (Claude Code writes a response once per content block, and the copy with
   the most tokens is the final one), then a main-conversation copy, then the first
   one read.

The merge then walks the index in batches, one write transaction each: the usage
table is clustered on the request id, so inserting in its order touches each page
once; the roll-ups get the new requests' sums, grouped (db.rollups). A
request already stored changes nothing, except a Claude Code request whose new copy
has more tokens (it was imported while Claude Code was still writing it): the stored
copy is taken out of the roll-ups and replaced, in the same transaction.

Where the store can hold the staging table itself (a local file: its connection's
temporary database), staging lives there and a batch is stored by SQL across the two.
Otherwise (a database server) staging is a private scratch SQLite database of this
process; each batch is then copied into a scratch table of the store and stored, with
its roll-ups, under the write lock (so two imports replacing the same request agree).
Either way the staging speaks SQLite: that is why it lives in the storage package.
"""
from __future__ import annotations

import os
import sqlite3

from ..errors import RequestIdConflict
from . import rollups, write
from .rollups import TOKEN_FIELDS, USAGE_COLUMNS as COLUMNS, remove_requests as remove_rows

BATCH = 50_000  # requests per merge transaction: long enough to be fast, short enough
#                 that verifiers waiting on the write lock are not held up for long
_INDEX = "request_id, rank_total DESC, rank_main DESC"  # an index ends with the rowid:
#                                                         ties stay in the order read


_COLUMNS_DDL = ("request_id TEXT NOT NULL, key_id TEXT, project_id TEXT NOT NULL, "
                "at_ms INTEGER NOT NULL, model TEXT NOT NULL, input_tokens INTEGER, "
                "output_tokens INTEGER, cache_read_tokens INTEGER, cache_write_5m_tokens INTEGER, "
                "cache_write_1h_tokens INTEGER, cost_nanos INTEGER, priced INTEGER, session_id TEXT, "
                "rank_total INTEGER NOT NULL, rank_main INTEGER NOT NULL, "
                "replaceable INTEGER NOT NULL, message_id TEXT")
# rank_total: the copy's tokens; rank_main: 1 for a main-conversation copy; replaceable:
# 1 for a Claude Code request (a bigger copy replaces a stored one); message_id: Claude
# Code's message.id (replays are found by it).
_RANK = ("rank_total", "rank_main", "replaceable", "message_id")
_NAMES = COLUMNS + _RANK
_NO_RANK = (0, 0, 0, None)  # records: the first copy wins, a stored one is never replaced
_TEXT = {"request_id", "key_id", "project_id", "model", "session_id", "message_id"}
_KINDS = {name: "text" if name in _TEXT else "int" for name in _NAMES}  # for scratch tables


def _message(alias: str, s: str) -> str:
    """SQL: the row `alias` holds a copy of the message of row `s` (its request id is in
    the message's range; see Staging._resolve_replays)."""
    return (f"{alias}.request_id >= 'cc:' || {s}.message_id || ':' "
            f"AND {alias}.request_id < 'cc:' || {s}.message_id || ';'")


def bigger(new: str, old: str) -> str:
    """SQL: the staged copy `new` replaces the stored copy `old` (both qualifiers): it
    is a Claude Code request with more tokens, or as many and a session the stored
    copy (imported before sessions were kept) lacks."""
    tokens = "(" + " + ".join(f"{old}.{c}" for c in TOKEN_FIELDS) + ")"
    return (f"{new}.replaceable = 1 AND ({new}.rank_total > {tokens} OR ({new}.rank_total = {tokens} "
            f"AND {old}.session_id IS NULL AND {new}.session_id IS NOT NULL))")


class _batch_and_its_count:
    """Ctrl-C and SIGTERM wait for the batch under way (a fraction of a second): it is
    stored and counted, or neither, so an interrupted import says exactly how much it stored.
    (`_signal`, the C module under `signal`, already loaded by every Python: `signal`
    puts enum names over it, ~2 ms to load that the status line's import would pay.)"""

    def __enter__(self):
        import _signal

        self.masked = hasattr(_signal, "pthread_sigmask")
        if self.masked:
            _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT, _signal.SIGTERM})

    def __exit__(self, *exc):
        import _signal

        if self.masked:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGINT, _signal.SIGTERM})  # a pending one lands here


class _indexes_rebuilt:
    """Inside a batch's write transaction: when the store holds at most as many requests
    as the batch brings (`rows`: a first import), the usage table's secondary indexes
    are dropped before the batch and made again after it, from the sorted table, which
    costs about half of keeping them up row by row in request-id order (measured: 0.27 s
    against 0.46 s of CPU for 54,000 requests). Atomic with the batch (SQLite's DDL is
    transactional: readers see the indexes throughout); on a bigger table rebuilding
    would cost more than it saves, and nothing changes. (SQLite: the staging is in place.)"""

    def __init__(self, conn, rows: int):
        self.conn, self.rows, self.indexes = conn, rows, []

    def __enter__(self):
        conn = self.conn
        if conn.execute("SELECT 1 FROM usage LIMIT 1 OFFSET ?", (self.rows,)).fetchone():
            return  # (at most `rows` steps of an index to learn it, whatever the table's size)
        self.indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                    "AND tbl_name = 'usage' AND sql IS NOT NULL").fetchall()
        for name, _ in self.indexes:
            conn.execute(f'DROP INDEX "{name}"')

    def __exit__(self, kind, *exc):
        if kind is None:  # (after an error the transaction is rolled back, indexes and all)
            for _, sql in self.indexes:
                self.conn.execute(sql)


_PRIVATE = "import_staging"


def _attach_private(conn) -> str:
    """The staging table's name in a private database attached to the store connection
    (SQLite makes its file, on disk, and deletes it when it is detached): dropping the
    staging is then detaching it, where dropping a table of the connection's temporary
    database walks every page of it (~1.5 µs a staged request). An earlier import on
    this connection that could not detach (interrupted mid-statement) left it attached:
    it is reused, emptied."""
    if any(row[1] == _PRIVATE for row in conn.execute("PRAGMA database_list")):
        conn.execute(f"DROP TABLE IF EXISTS {_PRIVATE}.staging")
    else:
        conn.execute(f"ATTACH DATABASE '' AS {_PRIVATE}")
    conn.execute(f"PRAGMA {_PRIVATE}.cache_size = -16384")  # 16 MiB, then it spills to disk
    return f"{_PRIVATE}.staging"


class _Rows:
    """A table of staged rows, filled by add() in batches of one transaction."""

    table = "staging"

    def __init__(self, conn):
        self.conn = conn
        conn.execute(f"CREATE TABLE {self.table} ({_COLUMNS_DDL})")
        self._insert = (f"INSERT INTO {self.table} ({', '.join(_NAMES)}) "
                        f"VALUES ({', '.join('?' * len(_NAMES))})")
        self._pending = []

    def add(self, record: tuple, rank: tuple = _NO_RANK) -> None:
        """One request, as usage.COLUMNS; `rank` (see _RANK) decides between copies."""
        self._pending.append(record + rank)
        if len(self._pending) >= 20_000:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.conn.execute("BEGIN")
            self.conn.executemany(self._insert, self._pending)
            self.conn.execute("COMMIT")
            self._pending.clear()


class Scratch(_Rows):
    """A worker's staged rows: a throwaway file, no journal, no fsync."""

    def __init__(self, path: str):
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        super().__init__(conn)

    def close(self) -> None:
        self.flush()
        self.conn.close()


class Staging(_Rows):
    table = "temp.staging"

    def __init__(self, store):
        self.store = store
        self.in_place = store.features.stages_in_place
        if self.in_place:
            conn = store  # staged beside the store, in a private database of its connection
            store.tune_for_import()
            self.table = _attach_private(conn)
        else:
            conn = sqlite3.connect("", isolation_level=None)  # private, on disk, gone when closed
            conn.execute("PRAGMA temp.cache_size = -16384")  # 16 MiB, then it spills to disk
        self.conn = conn
        self.drop()
        super().__init__(conn)
        # What the merge has committed so far (an interrupted import reports it).
        self.total = self.imported = self.replaced = 0
        self.merged = 0  # staged requests merged so far: new, replacing, or in the store already

    def absorb(self, scratch: str) -> None:
        """Take a worker's scratch file of staged rows, in one statement."""
        self.flush()
        self.conn.execute("ATTACH DATABASE ? AS unit", (scratch,))
        try:
            self.conn.execute(f"INSERT INTO {self.table} SELECT * FROM unit.staging")
        finally:
            self.conn.execute("DETACH DATABASE unit")
        os.unlink(scratch)

    def _resolve_replays(self) -> None:
        """Copies of one Claude Code message under different request ids (a subagent or
        sidechain replaying its parent's message, a resumed session's copy, in whatever
        order files and runs bring them) are one request: the stored one (lowest id),
        else a main-conversation copy read now (lowest id), else the lowest id read now.
        A message's request ids all start `cc:<message id>:`, so its copies are one range
        of an index; each staged copy costs one seek there, and only the few messages
        found under another id are rewritten."""
        conn = self.conn

        def another(table: str, s: str) -> str:  # a copy of s's message under another id in table
            return (f"EXISTS (SELECT 1 FROM {table} o WHERE {_message('o', s)} AND o.request_id <> {s}.request_id)")

        lowest_stored = f"(SELECT min(u.request_id) FROM usage u WHERE {_message('u', 's')})"
        found = (f"SELECT s.message_id, {lowest_stored} FROM {{table}} s WHERE s.message_id IS NOT NULL "
                 f"AND {another('usage', 's')}")
        if self.in_place:
            stored = dict(conn.execute(found.format(table="staging")))
        else:
            store = self.store
            with store.transaction(), store.scratch_table(
                    "replay_ids", {"message_id": "text", "request_id": "text"},
                    conn.execute("SELECT message_id, request_id FROM staging WHERE message_id IS NOT NULL")):
                stored = dict(store.execute(found.format(table="replay_ids")))
        # Messages staged under more than one request id: one sort by message id (a seek
        # per row into the message's range of ids cost three times as much).
        twice = [m for (m,) in conn.execute("SELECT message_id FROM staging WHERE message_id IS NOT NULL "
                                            "GROUP BY message_id HAVING min(request_id) <> max(request_id)")]
        if not stored and not twice:
            return
        conn.execute("BEGIN")
        for message_id in dict.fromkeys([*stored, *twice]):
            mine = "request_id >= 'cc:' || ?1 || ':' AND request_id < 'cc:' || ?1 || ';' AND message_id = ?1"
            canonical = stored.get(message_id) or conn.execute(
                "SELECT coalesce(min(CASE WHEN rank_main = 1 THEN request_id END), min(request_id)) "
                f"FROM staging WHERE {mine}", (message_id,)).fetchone()[0]
            conn.execute(f"UPDATE staging SET request_id = ?2 WHERE {mine} AND request_id <> ?2",
                         (message_id, canonical))
        conn.execute("COMMIT")

    def _refuse_ids_of_others(self) -> None:
        """A record (JSONL/CSV) whose request id another key's lineage owns, in flight or
        stored, stops the import before anything is stored (claude_keys/inflight.py: a
        request id has one owner). Claude Code requests have ids of their own."""
        owner = "(SELECT lineage FROM keys WHERE id = {key})"
        clash = (f"SELECT o.request_id FROM {{ours}} o WHERE o.replaceable = 0 AND ("
                 f"EXISTS (SELECT 1 FROM usage u WHERE u.request_id = o.request_id "
                 f"AND coalesce({owner.format(key='u.key_id')}, '') <> coalesce({owner.format(key='o.key_id')}, '')) "
                 f"OR EXISTS (SELECT 1 FROM in_flight f WHERE f.request_id = o.request_id "
                 f"AND f.lineage <> coalesce({owner.format(key='o.key_id')}, ''))) LIMIT 1")
        if self.in_place:
            found = self.conn.execute(clash.format(ours=self.table)).fetchone()
        else:
            store = self.store
            ours = self.conn.execute("SELECT request_id, key_id, replaceable FROM staging WHERE replaceable = 0")
            with store.transaction(), store.scratch_table(
                    "ours", {"request_id": "text", "key_id": "text", "replaceable": "int"}, ours):
                found = store.execute(clash.format(ours="ours")).fetchone()
        if found:
            raise RequestIdConflict(f"the request id {found[0]!r} belongs to another key's request; nothing was "
                                    "imported (import it with that key, or give the record another id)")

    def _settle(self, source: str, params=()) -> None:
        """Requests in flight that these records settle (their ids, already checked to
        be of the same lineage): they end, as a `usage record` would end them."""
        self.store.execute(f"DELETE FROM in_flight WHERE request_id IN (SELECT request_id FROM {source})", params)

    def _keep_best_copies(self) -> None:
        """Drop all but the best copy of each request id."""
        conn = self.conn
        if not conn.execute("SELECT 1 FROM staging GROUP BY request_id HAVING count(*) > 1 "
                            "LIMIT 1").fetchone():
            return
        conn.execute(
            "DELETE FROM staging WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() "
            "OVER (PARTITION BY request_id ORDER BY rank_total DESC, rank_main DESC, rowid) AS n "
            "FROM staging WHERE request_id IN (SELECT request_id FROM staging GROUP BY request_id "
            "HAVING count(*) > 1)) WHERE n > 1)")

    def merge(self, progress=None) -> tuple[int, int, int]:
        """Move staged requests into the store, batch by batch. Returns (imported,
        replaced, already stored); repeated copies of a request count once."""
        self.flush()
        conn = self.conn
        conn.execute(f"CREATE INDEX {self.table}_order ON staging ({_INDEX})")
        self._resolve_replays()
        self._keep_best_copies()
        self._refuse_ids_of_others()
        self.total = total = conn.execute("SELECT count(*) FROM staging").fetchone()[0]
        last = ""
        while self.merged < total:
            bound = conn.execute("SELECT request_id FROM staging WHERE request_id > ? "
                                 "ORDER BY request_id LIMIT 1 OFFSET ?", (last, BATCH - 1)).fetchone()
            if bound is None:  # the last batch
                bound = conn.execute("SELECT max(request_id) FROM staging").fetchone()
            bound = bound[0]
            with _batch_and_its_count():
                if self.in_place:
                    with write(conn), conn.bulk_load():  # the roll-ups are merged set-wise
                        with _indexes_rebuilt(conn, min(BATCH, total - self.merged)):
                            added, replaced = self._store_batch(last, bound)
                else:
                    added, replaced = self._send_batch(last, bound)
                self.imported += added
                self.replaced += replaced
                self.merged += conn.execute("SELECT count(*) FROM staging WHERE request_id > ? AND "
                                            "request_id <= ?", (last, bound)).fetchone()[0]
            last = bound
            if progress:
                progress(phase="storing", done=self.merged, total=total)
        return self.imported, self.replaced, total - self.imported - self.replaced

    def _store_batch(self, lo: str, hi: str) -> tuple[int, int]:
        """Store the staged requests with ids in (lo, hi]: the new ones, and bigger copies
        of stored Claude Code requests. Returns (added, replaced)."""
        conn = self.conn
        columns = ", ".join(COLUMNS)
        batch = "SELECT {columns} FROM staging s WHERE request_id > ? AND request_id <= ?"
        replaced = 0
        if conn.execute(batch.format(columns="1") + " AND EXISTS (SELECT 1 FROM usage u WHERE "
                        "u.request_id = s.request_id) LIMIT 1", (lo, hi)).fetchone():
            # Some are stored already (a re-import): bigger copies replace theirs...
            conn.execute("CREATE TEMP TABLE replaced AS SELECT u.* FROM staging s JOIN usage u "
                         f"ON u.request_id = s.request_id WHERE s.request_id > ? AND s.request_id <= ? "
                         f"AND {bigger('s', 'u')}", (lo, hi))
            replaced = remove_rows(conn, "temp.replaced")
            conn.execute("DROP TABLE temp.replaced")
            # ... and the rest of them change nothing.
            conn.execute(f"CREATE TEMP TABLE fresh AS {batch.format(columns=columns)} AND NOT EXISTS "
                         "(SELECT 1 FROM usage u WHERE u.request_id = s.request_id) "
                         "ORDER BY request_id", (lo, hi))
            source, params = "SELECT * FROM temp.fresh WHERE true", ()
        else:
            source, params = batch.format(columns=columns), (lo, hi)
        count = conn.execute(f"INSERT INTO usage ({columns}) {source} ORDER BY request_id", params).rowcount
        if count:
            # The new requests at the roll-ups' finest grouping, then every roll-up from it.
            # (Grouping needs no order: the batch's rows are read as they lie.)
            conn.execute(f"CREATE TEMP TABLE grain AS {rollups.grain_sql(f'({source}) AS s')}", params)
            for table in rollups.ROLLUPS:
                conn.execute(rollups.merge_sql(table, "temp.grain", canonical=True))
            conn.execute("DROP TABLE temp.grain")
        conn.execute("DROP TABLE IF EXISTS temp.fresh")
        self._settle(f"{self.table} WHERE replaceable = 0 AND request_id > ? AND request_id <= ?", (lo, hi))
        return count - replaced, replaced

    def _send_batch(self, lo: str, hi: str) -> tuple[int, int]:
        """A store that cannot hold the staging: copy the staged requests with ids in
        (lo, hi] into a scratch table of the store and store them, with their roll-ups,
        in one write transaction."""
        store = self.store
        names = COLUMNS + ("rank_total", "replaceable")
        rows = self.conn.execute(f"SELECT {', '.join(names)} FROM staging WHERE request_id > ? "
                                 "AND request_id <= ? ORDER BY request_id", (lo, hi))
        columns = ", ".join(COLUMNS)
        with store.write(), store.scratch_table("incoming", {n: _KINDS[n] for n in names}, rows), \
                store.scratch_table("replaced", query=f"SELECT u.* FROM incoming s JOIN usage u "
                                    f"ON u.request_id = s.request_id WHERE {bigger('s', 'u')}"):
            replaced = remove_rows(store, "replaced")
            added = store.write_usage(f"INSERT INTO usage ({columns}) SELECT {columns} FROM incoming "
                                      "ORDER BY request_id ON CONFLICT (request_id) DO NOTHING")
            self._settle("incoming WHERE replaceable = 0")
        return added - replaced, replaced

    def drop(self) -> None:
        self._pending = []
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        for table in ("staging", "fresh", "grain", "replaced"):
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{table}")

    def close(self, quietly: bool = False) -> None:
        """Drop the staging. `quietly`: after an error, which a failure here (a statement
        still reading the staging holds its table) must not replace."""
        try:
            if self.conn is self.store:
                self.drop()
                self.conn.execute(f"DETACH DATABASE {_PRIVATE}")  # its file goes with it
            else:
                self.conn.close()  # a private database: closing it is dropping it
        except Exception:
            if not quietly:
                raise
