"""A unary endpoint run under its request's deadline, with a timer only when it waits.

`asyncio.timeout` is a fifth of a local request's server time when the caller sent
a deadline (a `Timeout`, the current task, a loop timer armed and cancelled: 27,000
of 167,000 instructions per request on `bench/percall.py`'s harness), and most local
endpoints never wait: they answer from memory. A timer can only fire while the
endpoint is suspended, so `within` runs the endpoint's first step at once and arms
`asyncio.timeout` only if that step suspends; the rest of the call then runs inside
it, exactly as if the whole call had. Either way, an endpoint that finishes without
suspending answers even past its deadline: nothing can interrupt a step.

Why not a library: asyncio has no lazily armed timeout, and `asyncio.timeout`
itself is what runs once the endpoint waits (its cancel/uncancel bookkeeping is
the part worth not rewriting).
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Coroutine, Generator
from typing import Any

from lokit.endpoint import Endpoint

__all__ = ["within"]


async def within(endpoint: Endpoint, request: Any, deadline: float | None) -> Any:
    """`await endpoint(request)`, cut off at `deadline` (a time.monotonic() instant, or None)."""
    awaitable = endpoint(request)
    if deadline is None:
        return await awaitable
    if type(awaitable) is not types.CoroutineType:  # no first step to take by hand
        async with asyncio.timeout(deadline - time.monotonic()):
            return await awaitable
    try:
        waiting_on = awaitable.send(None)
    except StopIteration as done:  # finished in its first step: no timer needed
        return done.value
    async with asyncio.timeout(deadline - time.monotonic()):
        return await _resume(awaitable, waiting_on)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """The rest of `coro`, whose last step yielded `waiting_on`: that goes to the task,
    then the coroutine goes on as under `yield from`.

    What the task throws in meanwhile (a cancellation: the deadline's, or the
    server's) is thrown into the coroutine where it waits.
    """
    try:
        yield waiting_on
    except BaseException as exc:  # delivered to the coroutine, not handled here
        try:
            next_wait = coro.throw(exc)
        except StopIteration as done:
            return done.value
        return (yield from _resume(coro, next_wait))
    return (yield from coro.__await__())
