"""`Expiry`: calls' deadlines on one loop timer."""

from __future__ import annotations

import asyncio

from lokit.transport.expiry import _COMPACT_AT, Expiry


class Exchange:
    """What `Expiry` expires: records when, and with what."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.expired_at: float | None = None

    def expire(self) -> None:
        assert self.expired_at is None, "expired twice"
        self.expired_at = self.loop.time()


async def test_a_call_past_its_deadline_is_expired() -> None:
    loop = asyncio.get_running_loop()
    expiry = Expiry(loop)
    call = Exchange(loop)
    when = loop.time() + 0.03
    expiry.add(when, Exchange.expire, call)
    await asyncio.sleep(0.1)
    assert call.expired_at is not None and call.expired_at >= when - 0.002


async def test_a_call_done_in_time_is_not_expired() -> None:
    loop = asyncio.get_running_loop()
    expiry = Expiry(loop)
    call = Exchange(loop)
    entry = expiry.add(loop.time() + 0.02, Exchange.expire, call)
    expiry.done(entry)
    expiry.done(entry)  # twice is harmless
    await asyncio.sleep(0.06)
    assert call.expired_at is None


async def test_an_earlier_deadline_moves_the_timer_and_later_ones_follow() -> None:
    loop = asyncio.get_running_loop()
    expiry = Expiry(loop)
    late, early, finished = Exchange(loop), Exchange(loop), Exchange(loop)
    t0 = loop.time()
    expiry.add(t0 + 0.2, Exchange.expire, late)
    expiry.add(t0 + 0.03, Exchange.expire, early)
    expiry.done(expiry.add(t0 + 0.01, Exchange.expire, finished))
    await asyncio.sleep(0.1)
    assert early.expired_at is not None and late.expired_at is None
    await asyncio.sleep(0.2)
    assert late.expired_at is not None and late.expired_at >= t0 + 0.2 - 0.002
    assert finished.expired_at is None


async def test_done_entries_do_not_pile_up_behind_a_long_call() -> None:
    loop = asyncio.get_running_loop()
    expiry = Expiry(loop)
    slow = Exchange(loop)
    expiry.add(loop.time() + 10, Exchange.expire, slow)  # the earliest deadline, still in flight
    for _ in range(10 * _COMPACT_AT):
        expiry.done(expiry.add(loop.time() + 20, Exchange.expire, Exchange(loop)))
    assert len(expiry._heap) <= 2 * _COMPACT_AT + 2
    assert slow.expired_at is None
