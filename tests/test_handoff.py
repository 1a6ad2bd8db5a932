"""Handoff: one producer task to one consumer task, in order, bounded, losing nothing."""

from __future__ import annotations

import asyncio

import pytest

from lokit.handoff import Handoff


async def test_items_arrive_in_order_and_a_waiting_get_is_woken() -> None:
    h: Handoff[int] = Handoff(4)
    got: list[int] = []

    async def consume() -> None:
        for _ in range(10):
            got.append(await h.get())

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer waits on an empty handoff
    for i in range(10):
        await h.put(i)
    await asyncio.wait_for(consumer, 5)
    assert got == list(range(10))
    assert h.empty()


async def test_put_waits_while_full_and_put_nowait_passes_the_bound() -> None:
    h: Handoff[int] = Handoff(2)
    await h.put(1)
    await h.put(2)
    blocked = asyncio.create_task(h.put(3))
    await asyncio.sleep(0.01)
    assert not blocked.done() and len(h) == 2
    h.put_nowait(99)  # an end marker gets through however full
    assert len(h) == 3
    assert h.get_nowait() == 1
    await asyncio.sleep(0.01)
    assert not blocked.done()  # still two held: the put keeps waiting
    assert h.get_nowait() == 2  # room again: the waiting put goes on
    await asyncio.wait_for(blocked, 5)
    assert [h.get_nowait() for _ in range(len(h))] == [99, 3]
    with pytest.raises(IndexError):
        h.get_nowait()


async def test_no_bound_with_maxsize_zero() -> None:
    h: Handoff[int] = Handoff(0)
    for i in range(1000):
        await h.put(i)
    assert len(h) == 1000


async def test_a_cancelled_get_loses_nothing() -> None:
    h: Handoff[str] = Handoff(1)
    waiting = asyncio.create_task(h.get())
    await asyncio.sleep(0)
    h.put_nowait("kept")  # woken, but cancelled before it runs
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.wait_for(h.get(), 5) == "kept"


async def test_a_cancelled_put_adds_nothing_and_the_next_put_still_waits() -> None:
    h: Handoff[int] = Handoff(1)
    await h.put(1)
    waiting = asyncio.create_task(h.put(2))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(h) == 1
    again = asyncio.create_task(h.put(3))
    await asyncio.sleep(0)
    assert await h.get() == 1
    await asyncio.wait_for(again, 5)
    assert await h.get() == 3


async def test_a_second_waiting_consumer_is_an_error() -> None:
    h: Handoff[int] = Handoff(1)
    first = asyncio.create_task(h.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match=r"two tasks wait in Handoff\.get"):
        await h.get()
    h.put_nowait(7)
    assert await asyncio.wait_for(first, 5) == 7
