"""AsyncKeyStore: KeyStore's calls, awaitable, never blocking the event loop (its calls
run in bounded worker threads: claude_keys/db/async_connections.py). On both backends."""
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
