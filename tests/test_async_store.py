"""AsyncKeyStore: KeyStore's calls, awaitable, never blocking the event loop (its calls
run in bounded worker threads, or with async_pool=True on PostgreSQL on the loop over
psycopg's async pool: claude_keys/db/async_connections.py). On both backends."""
import asyncio
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


def test_the_loop_runs_while_the_store_waits(store_backend, isolated):
    secret = key(rate_limit=1000)
    bound = 1.5

    async def scenario():
        ticks = 0

        async def ticking():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with AsyncKeyStore(timeout=bound, pool_size=2) as store:
            assert (await store.check(key=secret)).allowed  # the key's rate window exists
            ticker = asyncio.create_task(ticking())
            started = time.monotonic()
            with store_held_busy(store_backend, isolated):
                # twice as many calls as workers: the second two wait for a worker, within the bound
                decisions = await asyncio.gather(*[store.check(key=secret) for _ in range(4)])
            elapsed = time.monotonic() - started
            ticker.cancel()
        return decisions, elapsed, ticks

    decisions, elapsed, ticks = asyncio.run(scenario())
    assert [d.status for d in decisions] == [503] * 4
    assert all(d.body["error"]["type"] == "api_error" for d in decisions)
    assert elapsed < 2 * bound + 1.5  # each waited at most the bound for a worker, then for the store
    assert ticks >= elapsed / 0.01 / 4  # the loop kept turning (a blocked loop would not tick at all)


@pytest.mark.postgres_only
def test_on_postgresql_calls_run_on_the_loop_over_the_async_pool():
    """With async_pool=True, once the first call has found the store set up, check,
    record_usage and release play their steps on the event loop
    (db/async_connections.py), holding no thread."""
    secret = key(max_cost=0.05, monthly_budget=100, rate_limit=1000)

    async def scenario():
        async with AsyncKeyStore(pool_size=4, async_pool=True) as store:
            first = await store.check(key=secret)  # in a worker: it checks the schema
            assert store._way.direct
            handed, hand_over = [], store._workers._hand_over
            store._workers._hand_over = lambda loop, fn: handed.append(fn) or hand_over(loop, fn)
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
            ticks = 0

            async def ticking():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(ticking())
            try:
                started = time.monotonic()
                decisions = await asyncio.gather(*[store.check(key=secret) for _ in range(2)])
                took = time.monotonic() - started
            finally:
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
                ticker.cancel()
            after = await store.check(key=secret)
            return decisions, took, ticks, after

    decisions, took, ticks, after = asyncio.run(scenario())
    assert [d.status for d in decisions] == [503, 503], [d.warnings for d in decisions]
    assert any("did not answer" in w for d in decisions for w in d.warnings)
    assert took < bound + 1.5
    assert ticks >= took / 0.01 / 4  # the loop kept turning
    assert after.allowed
