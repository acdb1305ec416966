"""The staging table of an import, and its merge into the store.

Staging lives in SQLite's temporary database (on disk, with a bounded cache), so an
import of any size runs in flat memory. Rows are appended as they are read, with a
rank. Once everything has been read (so a malformed line has stopped the import
before anything was stored), one index sorts them by request id, and where a request
id was read more than once only its best copy stays: the highest rank (Claude Code
writes a response once per content block, and the copy with the most tokens is the
final one), then the first one read.

The merge then walks the index in batches, one write transaction each: the usage
table is clustered on the request id, so inserting in its order touches each page
once; requests already stored are left out; the roll-ups get the new requests' sums,
grouped (claude_keys.rollups). A PostgreSQL store is fed the same way: staging is then
a private local SQLite database, and each batch is copied to the server (COPY) and
stored, with its roll-ups, by one statement.
"""
from __future__ import annotations

import os
import sqlite3

from .. import rollups
from ..store import write
from ..usage import COLUMNS

BATCH = 50_000  # requests per merge transaction: long enough to be fast, short enough
#                 that verifiers waiting on the write lock are not held up for long
_INDEX = "request_id, rank_main DESC, rank_total DESC"  # an index ends with the rowid:
#                                                         ties stay in the order read


_COLUMNS_DDL = ("request_id TEXT NOT NULL, key_id TEXT, project_id TEXT NOT NULL, "
                "at_ms INTEGER NOT NULL, model TEXT NOT NULL, input_tokens INTEGER, "
                "output_tokens INTEGER, cache_read_tokens INTEGER, cache_write_5m_tokens INTEGER, "
                "cache_write_1h_tokens INTEGER, cost_nanos INTEGER, priced INTEGER, "
                "rank_main INTEGER NOT NULL, rank_total INTEGER NOT NULL")
_NAMES = COLUMNS + ("rank_main", "rank_total")


class _Rows:
    """A table of staged rows, filled by add() in batches of one transaction."""

    table = "staging"

    def __init__(self, conn):
        self.conn = conn
        conn.execute(f"CREATE TABLE {self.table} ({_COLUMNS_DDL})")
        self._insert = (f"INSERT INTO {self.table} ({', '.join(_NAMES)}) "
                        f"VALUES ({', '.join('?' * len(_NAMES))})")
        self._pending = []

    def add(self, record: tuple, rank: tuple = (0, 0)) -> None:
        """One request, as usage.COLUMNS; `rank` decides between copies of a request id."""
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
        import sqlite3

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
        if store.dialect == "sqlite":
            conn = store  # staged in the store connection's own temporary database
            conn.execute("PRAGMA main.cache_size = -16384")  # the pages a merge batch touches
            # A merge batch writes megabytes: checkpoint every ~32 MB rather than every
            # 4 MB, and trim the WAL back afterwards.
            conn.execute("PRAGMA wal_autocheckpoint = 32000")
            conn.execute("PRAGMA journal_size_limit = 67108864")
        else:
            conn = sqlite3.connect("", isolation_level=None)  # private, on disk, gone when closed
        conn.execute("PRAGMA temp.cache_size = -16384")  # 16 MiB, then it spills to disk
        self.conn = conn
        self.drop()
        super().__init__(conn)

    def absorb(self, scratch: str) -> None:
        """Take a worker's scratch file of staged rows, in one statement."""
        self.flush()
        self.conn.execute("ATTACH DATABASE ? AS unit", (scratch,))
        try:
            self.conn.execute("INSERT INTO temp.staging SELECT * FROM unit.staging")
        finally:
            self.conn.execute("DETACH DATABASE unit")
        os.unlink(scratch)

    def _keep_best_copies(self) -> None:
        """Sort by request id, and drop all but the best copy of each."""
        conn = self.conn
        conn.execute(f"CREATE INDEX temp.staging_order ON staging ({_INDEX})")
        if not conn.execute("SELECT 1 FROM staging GROUP BY request_id HAVING count(*) > 1 "
                            "LIMIT 1").fetchone():
            return
        conn.execute(
            "DELETE FROM staging WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() "
            "OVER (PARTITION BY request_id ORDER BY rank_main DESC, rank_total DESC, rowid) AS n "
            "FROM staging WHERE request_id IN (SELECT request_id FROM staging GROUP BY request_id "
            "HAVING count(*) > 1)) WHERE n > 1)")

    def merge(self, progress=None) -> tuple[int, int]:
        """Move staged requests into the store, batch by batch. Returns (imported,
        already stored); repeated copies of a request in the input count once."""
        self.flush()
        conn = self.conn
        self._keep_best_copies()
        total = conn.execute("SELECT count(*) FROM staging").fetchone()[0]
        imported = seen = 0
        last = ""
        while seen < total:
            bound = conn.execute("SELECT request_id FROM staging WHERE request_id > ? "
                                 "ORDER BY request_id LIMIT 1 OFFSET ?", (last, BATCH - 1)).fetchone()
            if bound is None:  # the last batch
                bound = conn.execute("SELECT max(request_id) FROM staging").fetchone()
            bound = bound[0]
            if self.store.dialect == "sqlite":
                with write(conn):
                    conn.execute("INSERT INTO bulk_mode VALUES (1)")  # the trigger stands aside
                    imported += self._store_batch(last, bound)
                    conn.execute("DELETE FROM bulk_mode")
            else:
                imported += self._send_batch(last, bound)
            seen += conn.execute("SELECT count(*) FROM staging WHERE request_id > ? AND "
                                 "request_id <= ?", (last, bound)).fetchone()[0]
            last = bound
            if progress:
                progress(phase="storing", done=seen, total=total)
        return imported, total - imported

    def _store_batch(self, lo: str, hi: str) -> int:
        """Store the staged requests with ids in (lo, hi] that are new; returns how many."""
        conn = self.conn
        columns = ", ".join(COLUMNS)
        batch = "SELECT {columns} FROM staging s WHERE request_id > ? AND request_id <= ?"
        if conn.execute(batch.format(columns="1") + " AND EXISTS (SELECT 1 FROM usage u WHERE "
                        "u.request_id = s.request_id) LIMIT 1", (lo, hi)).fetchone():
            # Some are stored already (a re-import): keep only the new ones.
            conn.execute(f"CREATE TEMP TABLE fresh AS {batch.format(columns=columns)} AND NOT EXISTS "
                         "(SELECT 1 FROM usage u WHERE u.request_id = s.request_id) "
                         "ORDER BY request_id", (lo, hi))
            source, params = "SELECT * FROM temp.fresh WHERE true", ()
        else:
            source, params = batch.format(columns=columns) + " ORDER BY request_id", (lo, hi)
        count = conn.execute(f"INSERT INTO usage ({columns}) {source}", params).rowcount
        if count:
            # The new requests at the roll-ups' finest grouping, then every roll-up from it.
            conn.execute(f"CREATE TEMP TABLE grain AS {rollups.grain_sql(f'({source}) AS s')}", params)
            for table in rollups.ROLLUPS:
                conn.execute(rollups.merge_sql(table, "temp.grain", canonical=True))
            conn.execute("DROP TABLE temp.grain")
        conn.execute("DROP TABLE IF EXISTS temp.fresh")
        return count

    def _send_batch(self, lo: str, hi: str) -> int:
        """PostgreSQL: copy the staged requests with ids in (lo, hi] to the server and
        store the new ones, with their roll-ups, in one transaction."""
        store = self.store
        rows = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM staging WHERE request_id > ? "
                                 "AND request_id <= ? ORDER BY request_id", (lo, hi))
        with store.transaction():
            store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE usage) ON COMMIT DELETE ROWS")
            store.copy_in("incoming", COLUMNS, rows)
            columns = ", ".join(COLUMNS)
            return store.execute(rollups.with_rollups(
                f"INSERT INTO usage ({columns}) SELECT {columns} FROM incoming ORDER BY request_id "
                "ON CONFLICT (request_id) DO NOTHING RETURNING *")).fetchone()[0]

    def drop(self) -> None:
        self._pending = []
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        for table in ("staging", "fresh", "grain"):
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{table}")

    def close(self) -> None:
        self.drop()
        if self.conn is not self.store:
            self.conn.close()
