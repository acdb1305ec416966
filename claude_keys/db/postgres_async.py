"""The PostgreSQL backend for the event loop: psycopg's asynchronous connections, in a
psycopg_pool AsyncConnectionPool per event loop, speaking the operations that the
request path's steps ask for (db/steps.py). Used by AsyncKeyStore's check,
record_usage and release (db/async_connections.py) once the store is known to be set
up; everything else goes through db/postgres.py in worker threads.

It keeps db/postgres.py's rules: connections open with the same parameters (autocommit,
lock_timeout and idle_in_transaction_session_timeout in the startup options, connect
timeout, keepalives); a statement the server does not answer within the bound has its
socket shut, as the sync watchdog does, here by a timer of the loop, so a stalled
server gives StoreError within the bound, never a hang; statements are prepared only
where no pooler is seen (the same check of the server's address, and the same
fallback when a pooler refuses the startup options or forgets a prepared statement),
sharing what postgres.RawConnection learnt in this process.
"""
from __future__ import annotations

import asyncio
import functools
import os
import socket
from contextlib import asynccontextmanager
from time import monotonic

import psycopg
from psycopg import AsyncRawCursor

from . import postgres
from .postgres import RawConnection, translate_raw, named_rows, _with_clock, _record_request_sql, _parameters
from .base import SERVER_CLOCK_MS
from .location import masked


class AsyncRawConnection(psycopg.AsyncConnection):
    """psycopg's async connection as this backend opens it (postgres.RawConnection's twin)."""

    last_used = 0.0
    wrapper = None
    timed_out = False

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs):
        kwargs, pooler = RawConnection.asking(conninfo, kwargs), False
        try:
            while True:  # (each refusal takes something away: see RawConnection.without_options)
                try:
                    conn = await super().connect(conninfo, **kwargs)
                    break
                except psycopg.OperationalError as e:
                    kwargs, refused_by_a_pooler = RawConnection.without_options(e, kwargs, conninfo)
                    pooler = pooler or refused_by_a_pooler
        except psycopg.Error:
            RawConnection.failing.setdefault(conninfo, monotonic())
            raise
        if pooler:
            RawConnection.unprepared.add(conn.info.dsn)
        RawConnection.opened(conninfo, conn)
        return conn


def _expire(raw: AsyncRawConnection) -> None:
    """A statement waited past the bound: shut the socket, so its wait ends now with an
    error whatever the server does (postgres.RawConnection.expire)."""
    raw.timed_out = True
    try:
        with socket.socket(fileno=os.dup(raw.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass


class AsyncConnection:
    """An async psycopg connection with the operations of db/steps.py, awaitable."""

    # (the sync Connection's judgement of an error, read from the same attributes)
    _error = postgres.Connection._error
    _unprepared = postgres.Connection._unprepared
    broken = postgres.Connection.broken
    in_transaction = postgres.Connection.in_transaction

    def __init__(self, raw: AsyncRawConnection, location: str, wait: float):
        self.raw, self.location, self.wait = raw, location, wait
        raw.adapters.register_loader("numeric", postgres._IntNumericLoader)

    def _timer(self):
        return asyncio.get_running_loop().call_later(self.wait, _expire, self.raw)

    async def _cursor(self, sql: str, params, named: bool = False):
        timer = self._timer()
        try:
            cursor = AsyncRawCursor(self.raw, row_factory=named_rows(sql)) if named else AsyncRawCursor(self.raw)
            await cursor.execute(translate_raw(sql), params)
            return cursor
        except psycopg.Error as e:
            if self._unprepared(e):  # (nothing ran: once more, unprepared)
                return await self._cursor(sql, params, named)
            raise self._error(e) from None
        finally:
            timer.cancel()

    async def one(self, sql: str, params=()):
        return await (await self._cursor(sql, params)).fetchone()

    async def all(self, sql: str, params=()):
        return await (await self._cursor(sql, params)).fetchall()

    async def run(self, sql: str, params=()) -> None:
        await self._cursor(sql, params)

    async def write_one(self, sql: str, params=()) -> int:
        return (await self._cursor(sql, params)).rowcount

    async def row_with_clock(self, sql: str, params=()):
        row = await (await self._cursor(_with_clock(sql), params, named=True)).fetchone()
        return row, (row["now_ms"] if row is not None else None)

    async def lock_scopes(self, scopes) -> int:
        values = ", ".join("(?, 0)" for _ in scopes)
        rows = await self.all(f"INSERT INTO rate_windows AS w (lineage, used) VALUES {values} "
                              f"ON CONFLICT (lineage) DO UPDATE SET used = w.used RETURNING {SERVER_CLOCK_MS}",
                              scopes)
        return max(r[0] for r in rows)

    async def take_slot(self, lineage: str, limit: int, key_id: str, last_used_at=None):
        return await self.one("SELECT * FROM claude_take_slot(?, ?, ?)", (lineage, limit, key_id))

    async def record_request(self, row: tuple, lineage: str | None) -> tuple:
        return await self.one(_record_request_sql(), (row[0], *row, lineage, row[0]))

    async def write_usage(self, insert: str, params=(), one: bool = False) -> int:
        from .rollups import with_rollups

        return (await self.one(with_rollups(insert + " RETURNING *", one=one), params))[0]

    @asynccontextmanager
    async def transaction(self):
        """A plain transaction (READ COMMITTED); its BEGIN and its end bounded too."""
        try:
            timer = self._timer()
            try:
                block = self.raw.transaction()
                await block.__aenter__()
            finally:
                timer.cancel()
            try:
                yield self
            except BaseException as e:
                timer = self._timer()
                try:
                    await block.__aexit__(type(e), e, e.__traceback__)
                finally:
                    timer.cancel()
                raise
            timer = self._timer()
            try:
                await block.__aexit__(None, None, None)
            finally:
                timer.cancel()
        except psycopg.Error as e:
            raise self._error(e) from None


async def _configure(raw: AsyncRawConnection) -> None:
    """postgres._configure, awaited: prepare statements only when speaking to the server
    itself, not through a pooler."""
    if raw.prepare_threshold is None:
        return
    timer = asyncio.get_running_loop().call_later(postgres.IDLE_PROBE_BOUND_S, _expire, raw)
    try:
        cursor = await raw.execute("SELECT current_setting('port'), host(inet_server_addr()), "
                                   "current_setting('unix_socket_directories')")
        port, address, folders = await cursor.fetchone()
    finally:
        timer.cancel()
    if not postgres.speaks_to_the_server(raw.info, port, address, folders):
        raw.prepare_threshold = None
        RawConnection.unprepared.add(raw.info.dsn)


async def _check(raw: AsyncRawConnection, wait: float) -> None:
    """postgres._check, awaited: a connection the server closed is let go; one idle for
    long is probed."""
    if RawConnection.unprepared and raw.prepare_threshold is not None and raw.info.dsn in RawConnection.unprepared:
        raw.prepare_threshold = None
    if raw.broken or raw.closed or postgres._readable(raw.pgconn.socket):
        await raw.close()
        raise psycopg.OperationalError("the server closed this connection")
    if monotonic() - raw.last_used > postgres.IDLE_PROBE_S:
        timer = asyncio.get_running_loop().call_later(wait, _expire, raw)
        try:
            await raw.execute("")
        finally:
            timer.cancel()


async def pool(uri: str, wait: float, size: int):
    """An open AsyncConnectionPool of at most `size` connections (postgres._pool's twin),
    for the running event loop."""
    from psycopg_pool import AsyncConnectionPool

    postgres.pool_logging(uri, wait)
    _, kwargs = _parameters(uri, masked(uri), wait, prepare=True)
    opened = AsyncConnectionPool(uri, connection_class=AsyncRawConnection, kwargs=kwargs, min_size=1,
                                 max_size=size, open=False, configure=_configure,
                                 check=functools.partial(_check, wait=wait), timeout=wait, max_lifetime=1800,
                                 max_idle=300, reconnect_timeout=postgres.RECONNECT_S, name="claude-api-async")
    await opened.open(wait=False)
    return opened


async def getconn(opened, location: str, wait: float) -> AsyncConnection:
    """A connection from the pool within the bound, wrapped (StoreError if none)."""
    try:
        raw = await opened.getconn(timeout=wait)
    except Exception as e:
        raise postgres.unavailable(e, location, wait) from None
    conn = raw.wrapper
    if conn is None or conn.wait != wait:
        conn = raw.wrapper = AsyncConnection(raw, location, wait)
    return conn


async def putconn(opened, conn: AsyncConnection) -> None:
    conn.raw.last_used = monotonic()
    await opened.putconn(conn.raw)  # (one the server dropped, or timed out, is let go)


def is_error(e: BaseException) -> bool:
    return isinstance(e, psycopg.Error)
