"""AsyncKeyStore: KeyStore's calls, awaitable, never waiting on the event loop (on SQLite
played on the loop over a connection that never waits, carried on in a worker thread
from a statement that would wait; on PostgreSQL in bounded worker threads, or with
async_pool=True on the loop over psycopg's async pool: claude_keys/db/async_connections.py).
On both backends."""
import asyncio
import sqlite3
import threading
import time

import pytest

from claude_keys import AsyncKeyStore, AuthManager, KeyNotFound
from tests.helpers.store import assert_consistent, sql, store_held_busy


def key(**opts) -> str:
    return AuthManager().generate_key("async", rate_limit=opts.pop("rate_limit", None), **opts)


def test_the_same_calls_awaited():
    secret = key(max_cost=0.10, monthly_budget=10)

    async def scenario():
        async with AsyncKeyStore() as store:
            first = await store.check({"x-api-key": secret}, tool="Read", cost=0.02)
            second = await store.check(key=secret)
            assert first.allowed and second.allowed and first.request_id != second.request_id
            assert sql("SELECT count(*) FROM in_flight") == [(2,)]
            recorded = await store.record_usage(first.key_id, model="claude-sonnet-4-5", input_tokens=100,
                                                output_tokens=10, request_id=first.request_id)
            assert recorded.recorded and recorded.reserved_nanos == 20_000_000
            assert await store.release(second.request_id) is True
            assert await store.release(second.request_id) is False
            with pytest.raises(KeyNotFound):
                await store.record_usage("key_nobody", model="claude-sonnet-4-5", input_tokens=1)
            refused = await store.check(key="cc_" + "x" * 40)
            assert (refused.status, refused.body["error"]["type"]) == (401, "authentication_error")

    asyncio.run(scenario())
    assert sql("SELECT count(*) FROM in_flight") == [(0,)]
    assert sql("SELECT input_tokens, output_tokens FROM usage") == [(100, 10)]
    assert_consistent()


def test_many_at_once_are_exact():
    secret = key(rate_limit=10)

    async def scenario():
        async with AsyncKeyStore() as store:
            return await asyncio.gather(*[store.check(key=secret) for _ in range(40)])

    decisions = asyncio.run(scenario())
    assert sum(d.allowed for d in decisions) == 10
    assert {d.status for d in decisions if not d.allowed} == {429}


async def _ticking(ticks: list) -> None:
    """Counts into ticks[0] each time the loop lets it run (every 10 ms while it turns)."""
    while True:
        await asyncio.sleep(0.01)
        ticks[0] += 1


def test_the_loop_runs_while_the_store_waits(store_backend, isolated):
    secret = key(rate_limit=1000)
    bound = 1.5

    async def scenario():
        ticks = [0]
        async with AsyncKeyStore(timeout=bound, pool_size=2) as store:
            assert (await store.check(key=secret)).allowed  # the key's rate window exists
            ticker = asyncio.create_task(_ticking(ticks))
            started = time.monotonic()
            with store_held_busy(store_backend, isolated):
                # twice as many calls as workers: the second two wait for a worker, within the bound
                decisions = await asyncio.gather(*[store.check(key=secret) for _ in range(4)])
            elapsed = time.monotonic() - started
            ticker.cancel()
        return decisions, elapsed, ticks[0]

    decisions, elapsed, ticks = asyncio.run(scenario())
    assert [d.status for d in decisions] == [503] * 4
    assert all(d.body["error"]["type"] == "api_error" for d in decisions)
    assert elapsed < 2 * bound + 1.5  # each waited at most the bound for a worker, then for the store
    assert ticks >= elapsed / 0.01 / 4  # the loop kept turning (a blocked loop would not tick at all)


def _counting_hand_overs(store) -> list:
    """The functions the store hands to its worker threads from now on."""
    handed, hand_over = [], store._workers._hand_over
    store._workers._hand_over = lambda loop, fn: handed.append(fn) or hand_over(loop, fn)
    return handed


def _calls_played_on_the_loop(**options) -> None:
    """Once the first call (in a worker: it may set the store up) has found the store,
    check, record_usage and release play their steps on the event loop: none goes to a
    worker thread, and the store comes out exact."""
    secret = key(max_cost=0.05, monthly_budget=100, rate_limit=1000)

    async def scenario():
        async with AsyncKeyStore(pool_size=4, **options) as store:
            first = await store.check(key=secret)
            assert store._way.direct
            handed = _counting_hand_overs(store)
            decisions = await asyncio.gather(*[store.check(key=secret, model="claude-sonnet-4-5", max_tokens=100)
                                               for _ in range(20)])
            assert all(d.allowed for d in decisions)
            recorded = await asyncio.gather(*[
                store.record_usage(d.key_id, model="claude-sonnet-4-5", input_tokens=10, output_tokens=5,
                                   request_id=d.request_id) for d in decisions[:10]])
            released = await asyncio.gather(*[store.release(d.request_id) for d in decisions[10:]])
            assert handed == []  # none of them went to a worker thread
            assert await store.release(first.request_id) is True
            with pytest.raises(KeyNotFound):
                await store.record_usage("key_nobody", model="claude-sonnet-4-5", input_tokens=1)
            return recorded, released

    recorded, released = asyncio.run(scenario())
    assert all(r.recorded and r.reserved_nanos for r in recorded) and released == [True] * 10
    assert sql("SELECT count(*) FROM in_flight") == [(0,)]
    assert sql("SELECT count(*), sum(input_tokens) FROM usage") == [(10, 100)]
    assert sql("SELECT used FROM rate_windows")[0][0] == 21
    assert_consistent()


@pytest.mark.sqlite_only
def test_on_sqlite_calls_run_on_the_loop():
    """SQLite's calls play on the loop over its connection that never waits."""
    _calls_played_on_the_loop()


@pytest.mark.sqlite_only
def test_on_sqlite_a_step_that_would_wait_for_another_process_carries_on_in_a_worker(isolated):
    """Another process holds the write lock: the admission's transaction would wait, so the
    check carries on from that step in a worker (the key's lookup is not made twice, the
    loop keeps turning) and ends when the lock is let go."""
    secret = key(max_cost=0.05, monthly_budget=100)
    other = sqlite3.connect(isolated, isolation_level=None, check_same_thread=False)

    async def scenario():
        async with AsyncKeyStore(timeout=10) as store:
            assert (await store.check(key=secret)).allowed
            handed, ticks = _counting_hand_overs(store), [0]
            ticker = asyncio.create_task(_ticking(ticks))
            other.execute("BEGIN IMMEDIATE")
            threading.Timer(0.5, other.execute, ("ROLLBACK",)).start()
            started = time.monotonic()
            decision = await store.check(key=secret)
            took = time.monotonic() - started
            ticker.cancel()
            after = await store.check(key=secret)  # the lock is free: on the loop again
            return decision, after, took, ticks[0], handed

    decision, after, took, ticks, handed = asyncio.run(scenario())
    other.close()
    assert decision.allowed and after.allowed
    assert 0.4 < took < 5
    assert [getattr(fn, "func", fn).__name__ for fn in handed] == ["_carry_on_reading"]
    assert ticks >= took / 0.01 / 4  # the loop kept turning
    assert sql("SELECT count(*) FROM in_flight") == [(3,)]


@pytest.mark.sqlite_only
def test_on_sqlite_the_loop_waits_for_this_process_writer_without_blocking(isolated):
    """A thread of this process is writing (it holds the process's writers' turn): the
    loop's calls wait for that turn to pass, the loop turning meanwhile, and go on on
    the loop (not in a worker, where they would keep each other off it), each asking
    once to be woken however long it waits; every call waits within the store's bound,
    as KeyStore's do: then a check answers 503, record_usage raises StoreError."""
    from claude_keys import StoreError
    from claude_keys.db import sqlite as backend

    secret = key(max_cost=0.05, monthly_budget=100)
    location = str(isolated)
    turn = backend._turn(location)
    asking = []  # how many wake-ups were asked for when the turn passed

    def hold(seconds: float, taken: threading.Event) -> None:
        turn.acquire()
        taken.set()
        time.sleep(seconds)
        asking.append(len(backend.turn_waiters.get(location, ())))
        backend._pass_turn(location, turn)

    async def held_for(seconds: float, calls):
        taken = threading.Event()
        holder = threading.Thread(target=hold, args=(seconds, taken))
        holder.start()
        taken.wait()
        ticks = [0]
        ticker = asyncio.create_task(_ticking(ticks))
        started = time.monotonic()
        answers = await asyncio.gather(*calls, return_exceptions=True)
        took = time.monotonic() - started
        ticker.cancel()
        holder.join()
        return answers, took, ticks[0]

    async def scenario():
        async with AsyncKeyStore(timeout=2.0) as store:
            first = await store.check(key=secret)
            handed = _counting_hand_overs(store)
            waited = await held_for(0.3, [store.check(key=secret) for _ in range(5)])
            gave_up = await held_for(3.0, [store.check(key=secret), store.check(key=secret),
                                           store.record_usage(first.key_id, model="claude-sonnet-4-5",
                                                              input_tokens=1, request_id=first.request_id)])
            return waited, gave_up, handed

    (decisions, took, ticks), (gave_up, gave_up_after, _), handed = asyncio.run(scenario())
    assert all(d.allowed for d in decisions) and 0.25 < took < 2.0
    assert ticks >= took / 0.01 / 4
    assert [d.status for d in gave_up[:2]] == [503, 503] and 1.9 < gave_up_after < 2.9
    assert isinstance(gave_up[2], StoreError) and "busy" in str(gave_up[2])
    assert asking[0] <= 5 and asking[1] <= 3  # (polled every 50 ms for 0.3 s and 3 s: not one per poll)
    assert handed == []
    assert sql("SELECT count(*) FROM in_flight") == [(6,)]


@pytest.mark.sqlite_only
def test_on_sqlite_the_loop_leaves_checkpoints_to_a_worker(monkeypatch):
    """The loop's connection never checkpoints the WAL (that syncs the file); every
    CHECKPOINT_EVERY writes on it, a worker does."""
    from claude_keys.db import async_connections

    monkeypatch.setattr(async_connections, "CHECKPOINT_EVERY", 10)
    secret = key()

    async def scenario():
        async with AsyncKeyStore() as store:
            first = await store.check(key=secret)
            handed = _counting_hand_overs(store)
            for _ in range(3):
                for _ in range(12):  # (each on the loop at once: the worker's checkpoint waits for a pause)
                    await store.record_usage(first.key_id, model="claude-sonnet-4-5", input_tokens=1)
                await asyncio.sleep(0.2)
            loop_connection = store._way._loop_connection()
            return handed, loop_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]

    handed, autocheckpoint = asyncio.run(scenario())
    assert autocheckpoint == 0
    assert [fn.func.__name__ for fn in handed] == ["_checkpoint_wal"] * 3
    assert sql("SELECT count(*) FROM usage") == [(36,)]


@pytest.mark.sqlite_only
def test_on_sqlite_one_store_serves_one_event_loop_after_another(monkeypatch):
    """A script may run several loops in turn with one AsyncKeyStore: each loop gets its
    own connection, and the checkpoints and the loop's share of store work start afresh
    (a checkpoint left pending by a closed loop does not stop the next loop's)."""
    from claude_keys.db import async_connections

    monkeypatch.setattr(async_connections, "CHECKPOINT_EVERY", 5)
    secret = key(max_cost=0.05, monthly_budget=100)
    store = AsyncKeyStore()

    async def requests(n: int):
        handed = _counting_hand_overs(store)
        for _ in range(n):
            decision = await store.check(key=secret)
            assert decision.allowed
            await store.record_usage(decision.key_id, model="claude-sonnet-4-5", input_tokens=1,
                                     request_id=decision.request_id)
        store._way._slice_used = 1.0  # (as if this turn had had its share: the next loop starts afresh)
        return [getattr(fn, "func", fn).__name__ for fn in handed], store._way._loop_connection()

    first, first_connection = asyncio.run(requests(6))
    second, second_connection = asyncio.run(requests(6))
    store.close()
    assert first_connection is not second_connection
    assert "_checkpoint_wal" in second
    assert sql("SELECT count(*) FROM usage") == [(12,)]
    assert sql("SELECT count(*) FROM in_flight") == [(0,)]


@pytest.mark.postgres_only
def test_on_postgresql_calls_run_on_the_loop_over_the_async_pool():
    """With async_pool=True, PostgreSQL's calls play on the loop over psycopg's async
    pool (db/async_connections.py), holding no thread."""
    _calls_played_on_the_loop(async_pool=True)


@pytest.mark.postgres_only
def test_a_stopped_server_process_is_503_within_the_bound_on_the_loop(pg):
    """The async pool's statements are bounded as the threads' are: a server process that
    stops answering (SIGSTOP) gives 503 within the bound, the loop turning meanwhile; and
    once it answers again, the next call succeeds on a new connection."""
    import os
    import signal

    import psycopg

    secret = key(rate_limit=1000, max_concurrent=50)
    bound = 1.5

    async def scenario():
        async with AsyncKeyStore(timeout=bound, pool_size=2, async_pool=True) as store:
            assert (await store.check(key=secret)).allowed and store._way.direct
            assert (await store.check(key=secret)).allowed  # the loop's pool is open
            with psycopg.connect(pg, autocommit=True) as admin:
                stopped = [pid for (pid,) in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'claude-api'")]
            assert stopped
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            ticks = [0]
            ticker = asyncio.create_task(_ticking(ticks))
            try:
                started = time.monotonic()
                decisions = await asyncio.gather(*[store.check(key=secret) for _ in range(2)])
                took = time.monotonic() - started
            finally:
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
                ticker.cancel()
            after = await store.check(key=secret)
            return decisions, took, ticks[0], after

    decisions, took, ticks, after = asyncio.run(scenario())
    assert [d.status for d in decisions] == [503, 503], [d.warnings for d in decisions]
    assert any("did not answer" in w for d in decisions for w in d.warnings)
    assert took < bound + 1.5
    assert ticks >= took / 0.01 / 4  # the loop kept turning
    assert after.allowed
