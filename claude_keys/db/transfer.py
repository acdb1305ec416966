"""Moving a whole store between backends (`db copy`, `db backup`), and checking that a
store agrees with itself (`db check`).

A copy reads the source inside one snapshot (so it is consistent while others keep
writing) and writes the destination inside one transaction (so it is all or nothing),
table by table, row for row: keys, settings, audit, usage, the roll-ups, the rate
windows. The roll-ups are copied as they are, not rebuilt, so both stores answer
every report identically.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import as_store_error, connect, display, rollups, same_store
from .location import POSTGRES, locate
from ..errors import StoreError, TooLarge

# Tables that belong to the store's machinery, not its data (each backend's own).
_MACHINERY = {"_sqlite_migrations", "claude_api_migrations", "claude_api_schema", "bulk_mode"}
_DATA = ("keys", "usage", "audit")  # a store holding any of these is not empty


def tables(conn) -> list[str]:
    """The store's data tables, in a fixed order (keys first: others refer to them)."""
    names = sorted(n for n in conn.table_names() if n not in _MACHINERY)
    return sorted(names, key=lambda n: n != "keys")


def check_new_or_empty(target: str) -> None:
    """Refuse, touching nothing, a destination that holds a store's data or tables that
    claude-api did not make (another program's database)."""
    kind, where = locate(target)
    if kind == POSTGRES:
        from . import postgres

        location = display(target)
        raw = postgres.connect_raw(where, location)
        try:
            found = {r[0] for r in raw.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
            ours = "claude_api_schema" in found
            held = [t for t in _DATA if t in found and raw.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]]
        except Exception as e:
            raise postgres.translate(e, location) or e from None
        finally:
            raw.close()
    else:
        from . import sqlite

        sqlite.refuse_dangling_link(where)
        if not os.path.lexists(where):
            return
        if os.path.isdir(where):
            raise StoreError(f"{where} is a folder; give the path of a new file")
        import sqlite3

        location = os.path.abspath(where)
        try:
            raw = sqlite3.connect(f"file:{location}?mode=ro", uri=True)
            try:
                found = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                                   "AND name NOT LIKE 'sqlite_%'")}
                ours = "keys" in found or "_sqlite_migrations" in found
                held = [t for t in _DATA if t in found and raw.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
            finally:
                raw.close()
        except sqlite3.Error as e:
            raise StoreError(f"cannot read {location}: {e}") from None
    if found and not ours:
        shown = ", ".join(sorted(found)[:3]) + (", …" if len(found) > 3 else "")
        raise StoreError(f"the destination {location} holds tables of another program ({shown}), not a "
                         "claude-api store; nothing was written: copy into a new or empty database or file")
    _refuse_held(location, held)


def _refuse_held(location: str, held: list) -> None:
    if held:
        raise StoreError(f"the destination {location} is not empty (it holds {', '.join(held)}); "
                         "nothing was written: copy into a new or empty store")


@dataclass
class Copied:
    source: str
    destination: str
    rows: dict = field(default_factory=dict)  # table -> rows copied

    def as_json(self) -> dict:
        return {"source": self.source, "destination": self.destination, "tables": self.rows}


def copy_store(source_target: str, dest_target: str, progress=None) -> Copied:
    """Copy the store at `source_target` into a new or empty store at `dest_target`.
    A new SQLite file appears whole or not at all: the copy is made in a scratch file
    beside it, then linked into place, never over a file made meanwhile."""
    if same_store(source_target, dest_target):
        raise StoreError("the source and the destination are the same store")
    check_new_or_empty(dest_target)
    kind, where = locate(dest_target)
    new_file = kind != POSTGRES and not os.path.lexists(where)
    place = _scratch_beside(where) if new_file else dest_target
    try:
        source = connect(source_target, create=False, readonly=True)
        try:
            dest = connect(place)
            try:
                if new_file:
                    dest.location = os.path.abspath(where)  # messages name the destination
                done = _copy(source, dest, progress)
            finally:
                dest.close()
        finally:
            source.close()
        if new_file:
            try:
                os.link(place, where)
            except FileExistsError:
                raise StoreError(f"the destination {os.path.abspath(where)} was made by another program "
                                 "(another copy?) meanwhile; this copy was not kept: copy into a new or "
                                 "empty store") from None
        return done
    finally:
        if new_file:
            for leftover in (place, place + "-wal", place + "-shm", place + "-journal"):
                if os.path.lexists(leftover):
                    os.unlink(leftover)


def _scratch_beside(path: str) -> str:
    """A new private file in the folder of `path` (made, 0700, if need be)."""
    import secrets

    from . import sqlite

    folder, name = os.path.split(os.path.abspath(path))
    scratch = os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.copying")
    sqlite.create_private_file(scratch, exist_ok=False)
    return scratch


def _copy(source, dest, progress=None) -> Copied:
    done = Copied(source.location, dest.location)
    with source.snapshot():
        names = tables(source)
        extra, missing = set(tables(dest)) - set(names), set(names) - set(tables(dest))
        if extra or missing:
            which = (f"the destination {dest.location} has tables the source has not ({', '.join(sorted(extra))})"
                     if extra else f"the source has tables the destination {dest.location} has not "
                     f"({', '.join(sorted(missing))})")
            raise StoreError(f"{which}; nothing was written: open both with the same claude-api version, "
                             "and copy into a new or empty store")
        # The write lock, then a second look: another copy racing this one into the same
        # destination has either finished (this one refuses) or waits for this one.
        with dest.write(), dest.bulk_load():  # roll-ups are copied, not re-added
            _refuse_held(dest.location, [t for t in _DATA if dest.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()])
            dest.execute("DELETE FROM settings")  # a new store's defaults give way to the source's
            for table in names:
                cols = source.column_names(table)
                counted = _Counter(source.stream(f"SELECT {', '.join(cols)} FROM {table}"), progress, table)
                try:
                    dest.copy_in(table, cols, counted)
                except dest.IntegrityError:  # (another program wrote it meanwhile)
                    raise StoreError(f"the destination {dest.location} changed while it was being copied into; "
                                     "nothing was written: copy into a new or empty store") from None
                done.rows[table] = counted.n
    return done


def backup(conn, target_path: str, source_target: str) -> None:
    """Copy the open store `conn` (at `source_target`) to a new SQLite file: SQLite's
    online backup, page by page; from a server, a snapshot copied table by table."""
    from . import sqlite

    sqlite.create_private_file(target_path, exist_ok=False)  # never through a link
    try:
        if not conn.backup_to(target_path):
            os.unlink(target_path)
            copy_store(source_target, target_path)
    except BaseException:
        if os.path.lexists(target_path):
            os.unlink(target_path)
        raise


class _Counter:
    def __init__(self, rows, progress, table):
        self.rows, self.progress, self.table, self.n = rows, progress, table, 0

    def __iter__(self):
        for row in self.rows:
            self.n += 1
            if self.progress and not self.n % 10_000:
                self.progress(self.table, self.n)
            yield tuple(row)


def disagreements(conn) -> list[str]:
    """Where the store disagrees with itself: a roll-up with a row the requests do not
    make (or without one they make), row by row; a rate window whose count differs
    from its slots. Empty when sound."""
    problems = []
    for table in rollups.ROLLUPS:
        # One pass: the roll-up's rows (+1) and the rows its requests make (-1), grouped
        # by every column; a group that does not cancel out is a row only one side has.
        columns = ", ".join([*rollups.ROLLUPS[table], *rollups.COUNTERS])
        both = (f"SELECT {columns}, 1 AS side FROM {table} UNION ALL "
                f"{rollups.grouped_sql(table, 'usage', extra=', -1')}")
        try:
            extra, missing = conn.execute(
                "SELECT coalesce(sum(CASE WHEN side > 0 THEN 1 ELSE 0 END), 0), "
                "coalesce(sum(CASE WHEN side < 0 THEN 1 ELSE 0 END), 0) "
                f"FROM (SELECT sum(side) AS side FROM ({both}) AS u GROUP BY {columns} "
                "HAVING sum(side) <> 0) AS d").fetchone()
        except Exception as e:  # a sum past what the database holds: not sound either
            if not isinstance(as_store_error(e), TooLarge):
                raise  # (busy, unavailable: not the store's damage)
            problems.append(f"the roll-up {table} could not be checked against the requests "
                            f"(a sum past what the store holds)")
            continue
        if extra or missing:
            problems.append(f"the roll-up {table} disagrees with the requests: {extra:,} of its rows "
                            f"are not what the requests make, {missing:,} rows are missing")
    for lineage, used, slots in conn.execute(
            "SELECT w.lineage, w.used, coalesce((SELECT sum(n) FROM rate_slots s WHERE s.lineage = w.lineage), 0) "
            "FROM rate_windows w"):
        if used != slots:
            problems.append(f"the rate window of lineage {lineage} counts {used}, its slots {slots}")
    return problems
