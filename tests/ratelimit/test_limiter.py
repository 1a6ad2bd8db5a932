"""The ingress limiter on memory and on a real Redis: limits, Retry-After, failing open/closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lokit.context import RequestContext, scope
from lokit.endpoint import Kind, Method
from lokit.errors import ResourceExhausted
from lokit.ratelimit import RateLimit, ingress
from tests.ratelimit.redis import RedisServer

SUM = Method("Sum", py_name="sum")
CONCAT = Method("Concat", py_name="concat")
COUNT = Method("Count", py_name="count", kind=Kind.SERVER_STREAM)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def memory() -> AsyncIterator[RateLimit]:
    limit = RateLimit("5/second", {"sum": "2/second"})
    async with limit.lifespan():
        yield limit


async def test_memory_allows_the_rate_then_refuses(memory: RateLimit) -> None:
    assert [await memory.hit("svc-a", "Concat") for _ in range(7)] == [True] * 5 + [False] * 2
    with pytest.raises(ResourceExhausted, match=r"^rate limit exceeded$") as info:
        await memory.acquire("svc-a", "Concat")
    assert info.value.retry_after == 1.0
    assert metric("lokit_ratelimit_rejected_total", service="svc-a", method="Concat") == 1


async def test_per_method_rates_by_rpc_or_python_name(memory: RateLimit) -> None:
    assert [await memory.hit("svc-b", "Sum") for _ in range(3)] == [True, True, False]
    assert not await memory.hit("svc-b", "SUM")  # the same method, the same window
    # Methods without their own rate share the default window.
    assert [await memory.hit("svc-b", m) for m in ("Concat", "Other")] == [True, True]
    assert sum([await memory.hit("svc-b", "Concat") for _ in range(5)]) == 3
    assert await memory.hit("svc-c", "Sum")  # another service counts apart


async def test_unknown_methods_are_named(memory: RateLimit) -> None:
    limit = RateLimit(None, {"Sum": "1/second", "Multiply": "1/second"})
    with pytest.raises(ValueError) as info:
        limit.check_methods([SUM, CONCAT], "addsvc")
    assert str(info.value) == (
        "--limit names Multiply, which addsvc does not have (its methods: Concat, Sum)"
    )


def test_bad_settings_in_one_sentence() -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        RateLimit("fast")
    with pytest.raises(ValueError, match="is not a rate limit storage"):
        RateLimit("1/second", storage="mysql://x")
    with pytest.raises(ValueError, match="fail must be 'open' or 'closed'"):
        RateLimit("1/second", fail="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two default rates"):
        RateLimit.parse(["1/second", "2/second"])
    with pytest.raises(ValueError, match="given twice"):
        RateLimit.parse(["Sum=1/second", "sum=2/second"])


async def test_the_middleware_limits_each_method_from_the_request_context() -> None:
    limit = RateLimit("3/second", {"count": "1/second"})
    make = ingress(limit)

    async def answer(request: Any) -> Any:
        return request

    sum_ep = make(SUM)
    count_ep = make(COUNT)
    assert sum_ep is not None and count_ep is not None
    limited_sum = sum_ep(answer)
    limited_count = count_ep(answer)
    with scope(RequestContext("rid", service="mw-svc", method="Sum")):
        assert [await limited_sum(i) for i in range(3)] == [0, 1, 2]
        with pytest.raises(ResourceExhausted):
            await limited_sum(3)
        assert await limited_count("x") == "x"
        with pytest.raises(ResourceExhausted):
            await limited_count("y")
    assert metric("lokit_ratelimit_rejected_total", service="mw-svc", method="Sum") == 1
    assert RateLimit(None, {"count": "1/second"}).middleware(SUM) is None  # no rate applies
    await limit.close()


async def test_instances_sharing_redis_accept_the_rate_together(redis: RedisServer) -> None:
    a = RateLimit("10/second", storage=redis.uri)
    b = RateLimit("10/second", storage=redis.uri)
    async with a.lifespan(), b.lifespan():
        results = await asyncio.gather(
            *(lim.hit("shared", "Sum") for _ in range(15) for lim in (a, b))
        )
        assert sum(results) == 10
        with pytest.raises(ResourceExhausted) as info:
            await a.acquire("shared", "Sum")
        assert info.value.retry_after is not None and info.value.retry_after >= 1


async def test_redis_gone_fails_open_with_one_error_per_window(own_redis: RedisServer) -> None:
    limit = RateLimit("2/second", storage=own_redis.uri, retry_storage=30.0)
    async with limit.lifespan():
        assert [await limit.hit("open-svc", "Sum") for _ in range(3)] == [True, True, False]
        own_redis.kill()
        assert all([await limit.hit("open-svc", "Sum") for _ in range(50)])
    # One failed storage call; the other 49 decided without a round trip.
    assert metric("lokit_ratelimit_storage_errors_total", service="open-svc") == 1


async def test_redis_gone_fails_closed_when_asked(own_redis: RedisServer) -> None:
    limit = RateLimit("100/second", storage=own_redis.uri, fail="closed", retry_storage=0.05)
    async with limit.lifespan():
        await limit.acquire("closed-svc", "Sum")
        own_redis.kill()
        for _ in range(3):
            with pytest.raises(ResourceExhausted, match="rate limit storage unreachable") as info:
                await limit.acquire("closed-svc", "Sum")
            assert info.value.retry_after is not None and info.value.retry_after >= 1
        own_redis.start()  # back: after the retry window, the limiter asks it again
        await asyncio.sleep(0.06)
        await limit.acquire("closed-svc", "Sum")
    assert metric("lokit_ratelimit_storage_errors_total", service="closed-svc") >= 1


async def test_starting_without_redis_serves_and_logs(own_redis: RedisServer) -> None:
    own_redis.kill()
    limit = RateLimit("1/second", storage=own_redis.uri)
    async with limit.lifespan():
        assert await limit.hit("nostart-svc", "Sum")
        assert await limit.hit("nostart-svc", "Sum")  # open: no limit without storage
