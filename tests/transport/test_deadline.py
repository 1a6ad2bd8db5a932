"""`within`: the deadline of a unary call, armed only once the endpoint waits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lokit.transport.deadline import within


def soon(seconds: float) -> float:
    return time.monotonic() + seconds


async def test_an_endpoint_that_never_waits_answers_without_a_timer() -> None:
    async def endpoint(x: int) -> int:
        return x + 1

    assert await within(endpoint, 1, soon(1.0)) == 2
    # Not even a passed deadline interrupts a call that never suspends (as asyncio.timeout).
    assert await within(endpoint, 1, soon(-1.0)) == 2
    assert await within(endpoint, 1, None) == 2


async def test_a_failure_in_the_first_step_is_raised_as_it_is() -> None:
    async def endpoint(x: int) -> int:
        raise ValueError(f"bad {x}")

    with pytest.raises(ValueError, match="bad 3"):
        await within(endpoint, 3, soon(1.0))


async def test_an_endpoint_that_waits_finishes_within_its_deadline() -> None:
    async def inner(x: int) -> int:
        await asyncio.sleep(0)  # a bare yield to the loop
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, x)
        return await fut

    async def endpoint(x: int) -> int:
        first = await inner(x)
        await asyncio.sleep(0.01)
        return first + await inner(x)

    assert await within(endpoint, 2, soon(5.0)) == 4


async def test_an_endpoint_past_its_deadline_is_cancelled_and_raises_timeout() -> None:
    cleaned: list[str] = []

    async def endpoint(x: int) -> int:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")
        return x

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(endpoint, 1, soon(0.05))
    assert time.monotonic() - t0 < 5
    assert cleaned == ["finally"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the timeout's cancel was taken back


async def test_a_passed_deadline_cuts_an_endpoint_at_its_first_wait() -> None:
    async def endpoint(x: int) -> int:
        await asyncio.sleep(10)
        return x

    with pytest.raises(TimeoutError):
        await within(endpoint, 1, soon(-0.5))


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    started = asyncio.Event()
    seen: list[str] = []

    async def endpoint(x: int) -> int:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return x

    task = asyncio.create_task(within(endpoint, 1, soon(5.0)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_an_endpoint_may_catch_a_cancellation_and_go_on_waiting() -> None:
    async def endpoint(x: int) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # cleanup that waits again
            raise
        return x

    with pytest.raises(TimeoutError):
        await within(endpoint, 1, soon(0.05))


async def test_the_endpoint_runs_in_the_callers_task_with_its_own_timeouts() -> None:
    outer = asyncio.current_task()

    async def endpoint(x: int) -> Any:
        assert asyncio.current_task() is outer  # also in the first step
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        async with asyncio.TaskGroup() as tg:
            child = tg.create_task(asyncio.sleep(0, result=x))
        return child.result()

    assert await within(endpoint, 7, soon(5.0)) == 7


async def test_an_awaitable_that_is_not_a_coroutine_is_awaited_under_the_deadline() -> None:
    def endpoint(x: int) -> asyncio.Future[int]:
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, x)
        return fut

    assert await within(endpoint, 5, soon(5.0)) == 5

    def never(x: int) -> asyncio.Future[int]:
        return asyncio.get_running_loop().create_future()

    with pytest.raises(TimeoutError):
        await within(never, 5, soon(0.02))
