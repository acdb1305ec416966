"""The async API's way to the store (AsyncKeyStore): never a wait on the event loop.

By default every call runs in a worker thread, with its connection where the threaded
API takes it (db/connections.py): one per thread on SQLite (whose driver has no
asynchronous side), the process's bounded pool on PostgreSQL.

Deciding one request, recording its usage and releasing it are steps (db/steps.py): the
product's rules written once, asking for each statement. With `async_pool=True` on
PostgreSQL, once the first call (in a worker) has found the store set up, AsyncKeyStore
plays those steps on the event loop itself, over psycopg's asynchronous connections
from an AsyncConnectionPool of the loop (db/postgres_async.py): a request waiting on the
server holds no thread. It is not the default because it measured slower here
(BENCHMARKS.md §9: half the throughput of the threads, and longer stalls of the loop,
with the server on the same 2 cores): the driver's own work for each statement then
runs on the loop, where in a worker it runs beside it, the lock released while it waits.

Both are bounded alike: at most as many calls under way as the connections one process
may hold (the pool's size, CLAUDE_API_POOL_SIZE, else 10), so a slow store fills those
places and never the event loop. A check waits for a place within the store's wait
bound, like a call waiting for a pooled connection; past it, it is unavailable
(StoreError). Recording usage and releasing wait their turn however long a burst makes
it: they end requests already served.
"""
from __future__ import annotations

import asyncio
import functools
import os
import weakref
import queue
import threading

from ..errors import StoreError
from .steps import run_async


class Workers:
    """A bounded set of worker threads for one API object's calls.

    A call is handed over through a plain queue and its answer comes back to the loop
    with one call_soon_threadsafe: about a third of run_in_executor's cost per call
    (no concurrent.futures Future, no chained futures, no executor bookkeeping), which
    is most of what the gate costs per request beside the store's own work
    (BENCHMARKS.md §9). Still one call per hand-off: a worker that took several at
    once would hold the interpreter lock long enough to stall the loop."""

    def __init__(self, size: int, wait: float, location: str):
        self.size, self.wait, self.location = size, wait, location
        self._calls: queue.SimpleQueue | None = None
        self._started = 0  # worker threads started (they start as calls need them, up to size)
        self._busy = 0  # calls handed over and not yet answered
        self._pid = None
        # One semaphore per event loop (an asyncio primitive belongs to the loop that
        # first waits on it; a test or a script may run several loops in turn).
        self._free: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = \
            weakref.WeakKeyDictionary()

    def _hand_over(self, loop, fn) -> asyncio.Future:
        """fn() in a worker; a future of the loop for its answer."""
        if self._calls is None or self._pid != os.getpid():  # (a forked child starts its own)
            self._calls, self._started, self._busy, self._pid = queue.SimpleQueue(), 0, 0, os.getpid()
        self._busy += 1
        if self._busy > self._started and self._started < self.size:
            self._started += 1
            threading.Thread(target=_work, args=(self._calls,), name=f"claude-api-{self._started}",
                             daemon=True).start()
        answer = loop.create_future()
        self._calls.put((fn, answer, loop))
        return answer
    async def place(self, bounded: bool) -> asyncio.Semaphore:
        """One of the `size` places for a call under way, taken (release it when done);
        StoreError when none is free within the bound. `bounded=False`: wait as long as
        it takes (a request's usage must be recorded after a burst, not lost to it; the
        call itself is still bounded)."""
        loop = asyncio.get_running_loop()
        free = self._free.get(loop)
        if free is None:
            free = self._free[loop] = asyncio.Semaphore(self.size)
        try:
            if bounded and free.locked():  # (else no timer is needed)
                await asyncio.wait_for(free.acquire(), self.wait)
            else:
                await free.acquire()
        except asyncio.TimeoutError:
            raise StoreError(f"the store {self.location} is unavailable: every one of this process's "
                             f"{self.size} connections stayed busy for {self.wait:g} s; try again") from None
        return free

    async def run(self, fn, /, *args, bounded: bool = True, **kwargs):
        """fn(*args, **kwargs) in a worker, in a place (see `place`)."""
        free = await self.place(bounded)
        try:
            return await self._hand_over(asyncio.get_running_loop(), functools.partial(fn, *args, **kwargs))
        finally:
            self._busy -= 1
            free.release()

    def close(self) -> None:
        """Let the workers end (a call under way finishes first, without the caller waiting)."""
        if self._calls is not None and self._pid == os.getpid():
            for _ in range(self._started):
                self._calls.put(None)
        self._calls = None


def _work(calls: queue.SimpleQueue) -> None:
    """A worker thread: calls from the queue, one at a time, each answer sent to its loop,
    until a None says to end."""
    while True:
        item = calls.get()
        if item is None:
            return
        fn, answer, loop = item
        try:
            result, error = fn(), None
        except BaseException as e:  # (the caller's to see, whatever it is)
            result, error = None, e
        try:
            loop.call_soon_threadsafe(_answer, answer, result, error)
        except RuntimeError:  # the loop has closed: nobody waits for it
            pass
        del item, fn, answer, result, error


def _answer(answer: asyncio.Future, result, error) -> None:
    if answer.cancelled():  # (the caller stopped waiting; the call was made)
        return
    if error is None:
        answer.set_result(result)
    else:
        answer.set_exception(error)


class AsyncWay:
    """How an AsyncKeyStore reaches its store: its worker threads over `connections`
    (db/connections.py), and on PostgreSQL, once the store is known to be set up, an
    asynchronous pool per event loop (db/postgres_async.py) to play steps on."""

    def __init__(self, connections, size: int, async_pool: bool = False):
        self.connections, self.size = connections, size
        self.workers = Workers(size, connections.wait, connections.location)
        self._pools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = weakref.WeakKeyDictionary()
        self._pid = os.getpid()
        from .location import POSTGRES

        self._server = async_pool and connections.kind == POSTGRES

    @property
    def direct(self) -> bool:
        """Whether steps can be played on the event loop (PostgreSQL, set up)."""
        return self._server and self.connections.ready

    async def play(self, make_steps, *, bounded: bool = True):
        """The steps that `make_steps()` gives, played on a connection of the loop's
        pool; once more (new steps) if the store asked to try again (a pooler forgot a
        prepared statement: nothing was done)."""
        from ..errors import TryAgain
        from . import postgres_async

        free = await self.workers.place(bounded)
        try:
            opened = await self._pool()
            for attempt in (1, 2):
                conn = await postgres_async.getconn(opened, self.connections.location, self.connections.wait)
                try:
                    return await run_async(conn, make_steps())
                except TryAgain:
                    if attempt == 2:
                        raise
                except Exception as e:
                    found = postgres_async.is_error(e) and postgres_async.translate(e, self.connections.location)
                    if not found:  # (a driver's error not met by a statement: the pool's, say)
                        raise
                    raise found from None
                finally:
                    await postgres_async.putconn(opened, conn)
        finally:
            free.release()

    async def _pool(self):
        loop = asyncio.get_running_loop()
        if self._pid != os.getpid():  # (a forked child opens its own)
            self._pools, self._pid = weakref.WeakKeyDictionary(), os.getpid()
        opening = self._pools.get(loop)
        if opening is None:  # (the first calls of a burst wait for the same pool)
            from . import postgres_async

            opening = self._pools[loop] = asyncio.ensure_future(
                postgres_async.pool(self.connections.where, self.connections.wait, self.size))
        try:
            return await asyncio.shield(opening)
        except Exception:
            if self._pools.get(loop) is opening:
                del self._pools[loop]
            raise

    async def aclose(self) -> None:
        """Close the running loop's pool (its connections) and let the workers end."""
        loop = asyncio.get_running_loop()
        opening = self._pools.pop(loop, None) if self._pid == os.getpid() else None
        self.close()
        if opening is not None and opening.done() and not opening.exception():
            await opening.result().close(timeout=1.0)

    def close(self) -> None:
        """Let the workers end. (A loop's pool closes with `aclose`, or when the loop
        and this object are gone.)"""
        self.workers.close()
