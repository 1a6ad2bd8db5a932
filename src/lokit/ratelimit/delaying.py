"""Egress: Go kit's delaying limiter, which makes calls wait to stay under a rate.

`delaying("50/second")` spaces calls evenly at the rate's interval (20 ms),
letting `burst` calls go at once after a quiet spell (default 1: never more
than RATE in any window). A call that would have to wait past its deadline
(the request's own, from `lokit.context`, else `timeout` from now: a client's
default per-call timeout) fails at once with DeadlineExceeded,
as golang.org/x/time/rate's `Wait` does, and takes no slot.

Written here (a dozen lines of GCRA) because neither library does this: the
`limits` library only says yes or no, and aiolimiter lets a whole window's
worth of calls through at once and knows no deadlines.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lokit.context import current
from lokit.endpoint import Endpoint, Middleware
from lokit.errors import DeadlineExceeded
from lokit.ratelimit.rates import parse_rate

__all__ = ["Delayer", "delaying"]


class Delayer:
    """Hands out send times `interval` apart (a token bucket of `burst` in GCRA form)."""

    __slots__ = ("_next", "burst", "interval", "rate", "timeout")

    def __init__(self, rate: str, burst: int = 1, timeout: float | None = None) -> None:
        parsed = parse_rate(rate)
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.rate = str(parsed)
        self.interval = parsed.interval
        self.burst = burst
        self.timeout = timeout
        self._next = 0.0  # the theoretical arrival time of the next call

    async def wait(self) -> None:
        """Wait for this call's turn; DeadlineExceeded at once if it would come too late."""
        now = time.monotonic()
        slot = max(self._next, now)
        wait = slot - now - (self.burst - 1) * self.interval
        if wait <= 0:
            self._next = slot + self.interval
            return
        ctx = current()
        deadline = ctx.deadline if ctx is not None else None
        if deadline is None and self.timeout is not None:
            deadline = now + self.timeout
        if deadline is not None and now + wait > deadline:
            raise DeadlineExceeded(
                f"rate limit {self.rate}: the call would wait {wait:.3f} s, past its deadline"
            )
        self._next = slot + self.interval
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            if self._next == slot + self.interval:  # the last one booked: give the slot back
                self._next = slot
            raise


def delaying(rate: str, burst: int = 1, timeout: float | None = None) -> Middleware:
    """An endpoint middleware delaying calls to stay under `rate` (limits' notation).

    `timeout` bounds the wait of a call that carries no deadline of its own.
    """
    delayer = Delayer(rate, burst, timeout)

    def wrap(next_endpoint: Endpoint) -> Endpoint:
        async def delayed(request: Any) -> Any:
            await delayer.wait()
            return await next_endpoint(request)

        return delayed

    return wrap
