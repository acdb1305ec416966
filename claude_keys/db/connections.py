"""The connections of the Python API, which a threaded service shares: on a SQLite file
one connection per thread; on PostgreSQL one bounded pool per process and store
(psycopg_pool). A forked child never uses its parent's connections: it opens its own.

A store that is missing (a file, or a database claude-api has not set up) is opened
only by a call that writes (`create=True`): a read never creates one, it fails as
unavailable until a write has set the store up.
"""
from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager

from .base import SCHEMA_VERSION
from .location import POSTGRES, locate, masked

_pools: dict = {}  # (location, wait, size) -> [this process's pool for it, how many objects use it]
_per_thread: "weakref.WeakSet[Connections]" = weakref.WeakSet()  # every SQLite Connections
_lock = threading.RLock()  # (reentrant: a collected API object's finalizer may run under it)
_inherited: list = []  # a forked child's copies of its parent's: never used, never closed
_probed: dict = {}  # location -> when a call last tried to connect after an outage
PROBE_EVERY_S = 0.1
PROBE_WAIT_S = 0.2  # while connecting fails: how long a call waits for a pooled connection
POOL_SIZE = 10  # default most connections a process opens to one store
ENV_POOL_SIZE = "CLAUDE_API_POOL_SIZE"


def _after_fork_in_child() -> None:
    """A connection must not cross a fork (the parent's session would be shared): the
    child drops every pool and per-thread connection, keeping them unclosed (closing
    one would end the parent's session too)."""
    global _lock
    _lock = threading.RLock()  # (a thread of the parent may have held it)
    _inherited.append(dict(_pools))
    _pools.clear()
    for client in list(_per_thread):
        _inherited.append(client._local)
        client._local = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def pool_size(given=None) -> int:
    from ..values import parse_count

    value = given if given is not None else os.environ.get(ENV_POOL_SIZE) or POOL_SIZE
    size = parse_count(value.strip() if isinstance(value, str) else value, "pool_size")
    if size < 1:
        from ..errors import InvalidInput

        raise InvalidInput("pool_size must be at least 1")
    return size


class Connections:
    """Where an API object gets a connection for one call."""

    def __init__(self, target: str, wait: float, size: int | None = None):
        self.kind, self.where = locate(target)
        self.location = masked(self.where)  # for messages
        self.wait = wait
        self.size = pool_size(size) if self.kind == POSTGRES else None
        self.ready = False  # the store's schema has been checked (and set up if need be)
        self._local = threading.local()
        self._pool_key = self._pid = None
        if self.kind == POSTGRES:
            from . import postgres  # (psycopg: only for a PostgreSQL store)

            self._postgres = postgres
        else:
            with _lock:
                _per_thread.add(self)

    @contextmanager
    def connection(self, *, create: bool):
        """A connection for one call; `create`: the call may set up a missing store."""
        if self.kind == POSTGRES:
            postgres = self._postgres
            pool, raw = self._getconn(postgres)
            try:
                conn = postgres.wrap(raw, self.location, self.wait)
                if not self.ready:
                    postgres.ready(conn, SCHEMA_VERSION, create=create)
                    self.ready = True
                yield conn
                raw.last_used = postgres.monotonic()
            finally:
                pool.putconn(raw)  # (one the server dropped is let go by the pool)
            return
        yield self.local(create=create)

    def local(self, *, create: bool):
        """On SQLite, this thread's connection (opened on first use); None on PostgreSQL,
        whose connections come from the pool by `connection()`."""
        if self.kind == POSTGRES:
            return None
        conn = self._local.__dict__.get("conn")
        if conn is None:
            from . import sqlite

            conn = self._local.conn = sqlite.open_store(self.where, SCHEMA_VERSION, create=create,
                                                        wait=self.wait)
        return conn

    def _getconn(self, postgres):
        """(the pool, a connection from it), within the bound. While attempts to open one fail
        (an outage, or the server's connection limit), a call waits only a moment for a
        connection the pool holds; if none comes, see _after_an_outage."""
        pool = self._pool()
        failing = self.where in postgres.RawConnection.failing
        try:
            return pool, pool.getconn(timeout=min(PROBE_WAIT_S, self.wait) if failing else self.wait)
        except Exception as e:
            if not failing:
                raise postgres.unavailable(e, self.location, self.wait) from None
        self._after_an_outage()
        pool = self._pool()
        try:
            return pool, pool.getconn(timeout=self.wait)
        except Exception as e:
            raise postgres.unavailable(e, self.location, self.wait) from None

    def _after_an_outage(self) -> None:
        """Every attempt to open a connection failed since the last success, and the
        pool had none to give: rather than wait out the bound while the pool backs off,
        try one connection now (one try at a time, at most every PROBE_EVERY_S, in this
        process; other calls meanwhile answer unavailable at once). If it opens, the
        server is back: the pool is replaced by a fresh one, and the call goes ahead."""
        from . import postgres

        location = self.location
        now = postgres.monotonic()
        with _lock:
            probing = now - _probed.get(self.where, 0.0) >= PROBE_EVERY_S
            if probing:
                _probed[self.where] = now
        if not probing:
            raise postgres.unavailable(None, location, 0)
        postgres.connect_raw(self.where, location, self.wait).close()  # StoreError while down
        key = (self.where, self.wait, self.size)
        with _lock:
            entry = _pools.get(key)
            if entry is not None:
                old, entry[0] = entry[0], postgres.pool(self.where, self.wait, self.size)
                old.close(timeout=0)

    def _pool(self):
        """The process's pool for this store, shared by every API object using it, and
        closed when the last of them is closed or collected."""
        entry = _pools.get(self._pool_key)
        if entry is not None:
            return entry[0]
        from . import postgres

        key = (self.where, self.wait, self.size)
        with _lock:
            if key not in _pools:
                _pools[key] = [postgres.pool(self.where, self.wait, self.size), 0]
            if self._pool_key is None or self._pid != os.getpid():  # (a forked child counts anew)
                _pools[key][1] += 1
                self._pool_key, self._pid = key, os.getpid()
                self._release = weakref.finalize(self, _release, key, self._pid)
            return _pools[key][0]

    def forget_broken(self) -> None:
        """After a failed call: a connection the server dropped is let go (a pool does
        that itself), so that the next call opens a new one."""
        conn = self._local.__dict__.get("conn")
        if conn is not None and conn.broken:
            del self._local.conn
            try:
                conn.close()
            except Exception:
                pass

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends), or let
        go of the pool (closed when no other API object of this process uses it)."""
        conn = self._local.__dict__.pop("conn", None)
        if conn is not None:
            conn.close()
        if self._pool_key is not None:
            self._release()
            self._pool_key = None


def _release(key, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child's copy: closing it would end the parent's sessions
    with _lock:
        entry = _pools.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _pools[key]
    entry[0].close(timeout=1.0)
