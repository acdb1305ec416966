"""The async API's way to the store (AsyncKeyStore): never a wait on the event loop.

Deciding one request, recording its usage and releasing it are steps (db/steps.py): the
product's rules written once, asking for each statement. Where those steps are played:

- SQLite: on the event loop itself, over a connection of the loop's that never waits
  (db/sqlite.py, open_never_waiting): SQLite's busy timeout 0, this process's writers'
  turn tried once. A statement on a local file takes microseconds; what takes long is
  waiting for another writer, and that a loop must never do. So when a step would wait
  for another process's write lock, nothing of it has been done: the steps carry on
  from that step in a worker thread, which waits as KeyStore would. A step that would
  wait for another thread of this process awaits that thread's turn on the loop (woken
  as it passes; within the store's wait bound, as KeyStore's wait for it). The
  loop's connection never checkpoints the WAL either (that syncs the file): every
  CHECKPOINT_EVERY writes, a worker does it. The first call of a store goes to a
  worker (it may create or upgrade the store). Played on the loop, a check and a settle
  cost what KeyStore's cost; handed to a thread and back, they cost 3-4x that in the
  interpreter lock passing between threads (BENCHMARKS.md §9).
- PostgreSQL: every call in a worker thread, with its connection from the process's
  bounded pool (db/connections.py). With `async_pool=True`, once the first call (in a
  worker) has found the store set up, AsyncKeyStore plays the steps on the event loop
  over psycopg's asynchronous connections from an AsyncConnectionPool of the loop
  (db/postgres_async.py): a request waiting on the server holds no thread. It is not
  the default because it measured slower here (BENCHMARKS.md §9: half the throughput
  of the threads, and longer stalls of the loop, with the server on the same 2 cores):
  the driver's own work for each statement then runs on the loop, where in a worker it
  runs beside it, the lock released while it waits.

Worker threads are bounded alike: at most as many calls under way as the connections
one process may hold (the pool's size, CLAUDE_API_POOL_SIZE, else 10), so a slow store
fills those places and never the event loop. A check waits for a place within the
store's wait bound, like a call waiting for a pooled connection; past it, it is
unavailable (StoreError). Recording usage and releasing wait their turn however long a
burst makes it: they end requests already served.
"""
from __future__ import annotations

import asyncio
import functools
import os
import queue
import threading
import time
import weakref

from ..errors import ClaudeKeysError, StoreError
from . import as_store_error, sqlite
from .steps import play as play_one, run_async

# At most this much store work per turn of the event loop: in a burst (every request
# ready at once) later calls wait for the next turn, so the loop's other tasks are not
# kept waiting for all of them.
LOOP_SLICE_S = 0.0005
TURN_POLL_S = 0.05  # a loop waiting for this process's writer tries again at least this often
CHECKPOINT_EVERY = 500  # writes on a loop's SQLite connection between two checkpoints (by a worker)


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


def _checkpointed(task) -> None:
    if not task.cancelled():
        task.exception()  # (seen: a failed checkpoint is tried again CHECKPOINT_EVERY writes later)


def _answer(answer: asyncio.Future, result, error) -> None:
    if answer.cancelled():  # (the caller stopped waiting; the call was made)
        return
    if error is None:
        answer.set_result(result)
    else:
        answer.set_exception(error)


class AsyncWay:
    """How an AsyncKeyStore reaches its store: on SQLite, the event loop's own connection,
    and worker threads when a step would wait; on PostgreSQL, its worker threads over
    `connections` (db/connections.py) and, with async_pool, once the store is known to be
    set up, an asynchronous pool per event loop (db/postgres_async.py)."""

    def __init__(self, connections, size: int, async_pool: bool = False):
        self.connections, self.size = connections, size
        self.workers = Workers(size, connections.wait, connections.location)
        # Each event loop's own: its SQLite connection, or its PostgreSQL pool (a task opening it).
        self._of_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = weakref.WeakKeyDictionary()
        self._pid = os.getpid()
        from .location import POSTGRES

        self._sqlite = connections.kind != POSTGRES
        self._server = async_pool and not self._sqlite
        self._set_up = False  # a worker's call found the store set up (SQLite: the loop may open it)
        self._writes = 0  # writes on the loops' SQLite connections since the last checkpoint
        self._checkpoint = None  # the worker's checkpoint under way (a task)
        # Store work on the loop in its current turn (see LOOP_SLICE_S), and which loop that is.
        self._slice_used, self._slice_ends, self._slice_of = 0.0, False, None

    @property
    def direct(self) -> bool:
        """Whether `play` takes the calls: always on SQLite; on PostgreSQL with the
        async pool, once the store is set up (else the caller hands the call to a worker)."""
        return self._sqlite or (self._server and self.connections.ready)

    async def play(self, make_steps, carry_on=None, *, bounded: bool = True):
        """The steps that `make_steps()` gives: on SQLite on the loop, carried on by
        `carry_on(steps, step)` in a worker from a step that would wait; on PostgreSQL on a
        connection of the loop's pool, once more (new steps) if the store asked to try
        again (a pooler forgot a prepared statement: nothing was done)."""
        if self._sqlite:
            return await self._play_sqlite(make_steps(), carry_on, bounded)
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

    async def _play_sqlite(self, steps, carry_on, bounded: bool):
        """SQLite's steps on the running loop's connection; from a step that would wait for
        another process, carried on in a worker (the first call of all: there too)."""
        conn = self._loop_connection() if self._set_up else None
        step = None
        if conn is not None:
            loop = asyncio.get_running_loop()
            if self._slice_of is not loop:  # (another loop than the last call's)
                self._slice_of, self._slice_used, self._slice_ends = loop, 0.0, False
            while True:
                if not self._slice_ends:
                    loop.call_soon(self._next_slice)  # (runs at the loop's next turn)
                    self._slice_ends = True
                if self._slice_used < LOOP_SLICE_S:
                    break
                await asyncio.sleep(0)  # this turn of the loop has had its share
            changes, started = conn.total_changes, time.perf_counter()
            try:
                done, found = await self._on_the_loop(conn, steps)
            except ClaudeKeysError:
                raise
            except Exception as e:  # (the connection stays: a failed statement was rolled back)
                found = as_store_error(e, self.connections.location)
                if found is None:
                    raise
                raise found from None
            finally:
                self._slice_used += time.perf_counter() - started
            if done:
                if conn.total_changes != changes:
                    self._wrote()
                return found
            step = found
        answer = await self.workers.run(carry_on, steps, step, bounded=bounded)
        self._set_up = True
        return answer

    async def _on_the_loop(self, conn, steps) -> tuple:
        """(True, the steps' result), or (False, the step that would wait for another
        process: nothing of it was done). Waits for this process's writer on the loop."""
        value, step, turn, deadline = None, None, None, None
        try:
            while True:
                if step is None:
                    step = steps.send(value)
                try:
                    value, step = play_one(conn, step), None
                    continue
                except sqlite.WouldWait as e:
                    if not e.turn:
                        return False, step
                except Exception as e:
                    # Every step is one statement or one transaction: one that failed did
                    # nothing, except a transaction whose own steps had begun.
                    if not (sqlite.is_busy(e) and step[0] != "transaction"):
                        raise
                    return False, step
                # Another thread of this process is writing (microseconds, unless it waits
                # for another process): wait for its turn to pass, the loop free meanwhile,
                # within the store's wait bound as KeyStore's wait for the turn. (Asked for
                # before trying again: a turn passed in between wakes it too.)
                if turn is None:
                    turn = self._turn_passed()
                    continue
                if deadline is None:
                    deadline = time.monotonic() + self.connections.wait
                await self._wait(turn, deadline)
                if turn.done():  # (else polled: tried again, still asking)
                    turn = None
                if self._of_loop.get(asyncio.get_running_loop()) is not conn:  # closed meanwhile
                    return False, step
        except StopIteration as stop:
            return True, stop.value

    def _next_slice(self) -> None:
        self._slice_used, self._slice_ends = 0.0, False

    def _turn_passed(self) -> asyncio.Future:
        """A future set when this process's writer passes its turn (db/sqlite.py)."""
        loop = asyncio.get_running_loop()
        passed = loop.create_future()
        waiting = sqlite.turn_waiters.setdefault(self.connections.where, [])
        waiting.append((loop, passed))
        if sqlite.turn_waiters.get(self.connections.where) is not waiting:
            passed.set_result(None)  # (a writer took the list meanwhile, maybe before this was in it)
        return passed

    async def _wait(self, passed: asyncio.Future, deadline: float) -> None:
        """Wait for `passed`, but at most TURN_POLL_S (then the step is simply tried again)
        and not past `deadline`, the store's wait bound."""
        timeout = min(TURN_POLL_S, deadline - time.monotonic())
        if timeout <= 0:
            raise sqlite.turn_not_passed()
        await asyncio.wait((passed,), timeout=timeout)  # (not cancelled at the timeout: still asked)

    def _loop_connection(self):
        """The running loop's SQLite connection that never waits (opened on first use);
        None if it cannot be opened (the calls go to the workers)."""
        loop = asyncio.get_running_loop()
        if self._pid != os.getpid():  # (a forked child opens its own)
            self._after_fork()
        conn = self._of_loop.get(loop)
        if conn is None:
            from .base import SCHEMA_VERSION

            try:
                conn = self._of_loop[loop] = sqlite.open_never_waiting(self.connections.where, SCHEMA_VERSION)
            except Exception:
                return None
        return conn

    def _after_fork(self) -> None:
        """In a forked child: the parent's connections and pools are kept, never used and
        never closed (closing one would end the parent's too: db/connections.py)."""
        from .connections import _inherited

        _inherited.append(list(self._of_loop.values()))
        self._of_loop, self._pid = weakref.WeakKeyDictionary(), os.getpid()

    def _wrote(self) -> None:
        """After a write on the loop: every CHECKPOINT_EVERY, a worker checkpoints the WAL."""
        self._writes += 1
        last = self._checkpoint  # (a task of this loop's; one of a loop since closed never ends)
        if self._writes >= CHECKPOINT_EVERY and (last is None or last.done()
                                                 or last.get_loop() is not asyncio.get_running_loop()):
            self._writes = 0
            self._checkpoint = asyncio.ensure_future(self.workers.run(self._checkpoint_wal, bounded=False))
            self._checkpoint.add_done_callback(_checkpointed)

    def _checkpoint_wal(self) -> None:
        """In a worker: copy the WAL's pages into the store, waiting for no one (PASSIVE)."""
        self.connections.local(create=False).execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def _pool(self):
        loop = asyncio.get_running_loop()
        if self._pid != os.getpid():  # (a forked child opens its own)
            self._after_fork()
        opening = self._of_loop.get(loop)
        if opening is None:  # (the first calls of a burst wait for the same pool)
            from . import postgres_async

            opening = self._of_loop[loop] = asyncio.ensure_future(
                postgres_async.pool(self.connections.where, self.connections.wait, self.size))
        try:
            return await asyncio.shield(opening)
        except Exception:
            if self._of_loop.get(loop) is opening:
                del self._of_loop[loop]
            raise

    async def aclose(self) -> None:
        """Close the running loop's pool or SQLite connection, and let the workers end."""
        loop = asyncio.get_running_loop()
        opening = self._of_loop.pop(loop, None) if self._pid == os.getpid() else None
        self.close()
        if self._sqlite:
            if opening is not None:
                opening.close()
        elif opening is not None and opening.done() and not opening.exception():
            await opening.result().close(timeout=1.0)

    def close(self) -> None:
        """Let the workers end, and close the loops' SQLite connections. (A loop's
        PostgreSQL pool closes with `aclose`, or when the loop and this object are gone.)"""
        self.workers.close()
        if self._sqlite and self._pid == os.getpid():
            for conn in list(self._of_loop.values()):
                conn.close()
            self._of_loop = weakref.WeakKeyDictionary()
