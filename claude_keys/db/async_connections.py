"""The async API's way to the store (AsyncKeyStore): every call runs in a worker
thread, never on the event loop.

The library's calls are synchronous: deciding one request is a few statements with the
product's rules between them (gate.py), written once for both backends. So an awaitable
call hands the whole call to a worker, which takes its connection where the threaded API
does (db/connections.py: one per thread on SQLite, the process's bounded pool on
PostgreSQL). The workers are bounded too: as many as the connections one process may
hold (the pool's size, CLAUDE_API_POOL_SIZE, else 10), so a slow store fills the workers
and never the event loop. A check waits for a free worker within the store's wait bound,
like a call waiting for a pooled connection; past it, it is unavailable (StoreError).
Recording usage and releasing wait their turn however long a burst makes it: they end
requests already served.
"""
from __future__ import annotations

import asyncio
import functools
import os
import weakref
from concurrent.futures import ThreadPoolExecutor

from ..errors import StoreError


class Workers:
    """A bounded set of worker threads for one API object's calls."""

    def __init__(self, size: int, wait: float, location: str):
        self.size, self.wait, self.location = size, wait, location
        self._executor: ThreadPoolExecutor | None = None
        self._pid = None
        # One semaphore per event loop (an asyncio primitive belongs to the loop that
        # first waits on it; a test or a script may run several loops in turn).
        self._free: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = \
            weakref.WeakKeyDictionary()

    def _threads(self) -> ThreadPoolExecutor:
        if self._executor is None or self._pid != os.getpid():  # (a forked child starts its own)
            self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="claude-api")
            self._pid = os.getpid()
        return self._executor

    async def run(self, fn, /, *args, bounded: bool = True, **kwargs):
        """fn(*args, **kwargs) in a worker; StoreError when no worker is free within the
        bound. `bounded=False`: wait for a worker as long as it takes (a request's usage
        must be recorded after a burst, not lost to it; the call itself is still bounded)."""
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
        try:
            return await loop.run_in_executor(self._threads(), functools.partial(fn, *args, **kwargs))
        finally:
            free.release()

    def close(self) -> None:
        """Let the workers end (a call under way finishes first, without the caller waiting)."""
        if self._executor is not None and self._pid == os.getpid():
            self._executor.shutdown(wait=False)
        self._executor = None
