"""The egress delaying limiter: calls wait their turn, within their deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lokit.context import RequestContext, scope
from lokit.errors import DeadlineExceeded
from lokit.ratelimit import Delayer, delaying


async def echo(request: Any) -> Any:
    return request


async def test_calls_are_spaced_at_the_rate() -> None:
    ep = delaying("20/second")(echo)  # one call per 50 ms
    t0 = time.monotonic()
    assert [await ep(i) for i in range(4)] == [0, 1, 2, 3]
    assert (
        time.monotonic() - t0 >= 0.15 - 0.005
    )  # three waits (a lower bound: sleeps never end early)


async def test_a_burst_goes_at_once_after_a_quiet_spell() -> None:
    delayer = Delayer("10/second", burst=3)
    t0 = time.monotonic()
    for _ in range(3):
        await delayer.wait()
    first = time.monotonic() - t0
    await delayer.wait()  # the fourth waits for its slot
    assert time.monotonic() - t0 >= 0.1 - 0.005
    assert first < 0.1


async def test_a_wait_past_the_deadline_fails_at_once() -> None:
    ep = delaying("2/second")(echo)  # 500 ms apart
    with scope(RequestContext("rid", deadline=time.monotonic() + 0.1)):
        assert await ep(1) == 1
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"rate limit 2/second: the call would wait"):
            await ep(2)
        assert time.monotonic() - t0 < 0.1  # it did not sleep first


async def test_a_cancelled_wait_gives_its_slot_back() -> None:
    delayer = Delayer("5/second")  # 200 ms apart
    await delayer.wait()
    task = asyncio.ensure_future(delayer.wait())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    booked = delayer._next
    assert booked - time.monotonic() < 0.2  # only the first call's slot is taken


def test_bad_rates_and_bursts() -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        delaying("quickly")
    with pytest.raises(ValueError, match="burst must be at least 1"):
        Delayer("1/second", burst=0)
