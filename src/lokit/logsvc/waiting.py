"""The log service's waits, and ending them all at once when the server drains.

Tailing streams and long polls wait on the log's append notification
(`AsyncLog.wait_for`), or on a missing topic for a produce to create it; they
never poll. Every such wait goes through one `Waits`, so `drain()` can end them
all with `ServerStoppingError` when shutdown begins (before the transports
drain, so idle followers do not hold the shutdown for the whole grace period),
and refuse new ones. Cancelling the waiting caller (the client went away)
cancels its wait and stays a cancellation. A ProduceStream idle between records
is no such wait (it waits on its client); it registers `on_drain` to end then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from lokit.commitlog import AsyncLog
from lokit.logsvc.errors import ServerStoppingError

T = TypeVar("T")

__all__ = ["Waits"]


class Waits:
    """The waits in progress; `drain()` ends them and refuses new ones."""

    __slots__ = ("_draining", "_on_drain", "_waiters")

    def __init__(self) -> None:
        self._draining = False
        self._waiters: set[asyncio.Future[Any]] = set()
        self._on_drain: set[Callable[[], None]] = set()

    @property
    def draining(self) -> bool:
        """True once `drain()` was called."""
        return self._draining

    def drain(self) -> None:
        """End every wait (with ServerStoppingError) and refuse new ones."""
        self._draining = True
        for waiter in list(self._waiters):
            waiter.cancel()
        for callback in list(self._on_drain):
            callback()

    def on_drain(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` when the server drains (at once if it is draining);
        returns the function that unregisters it. For waits too frequent to wrap in
        `until` one by one (a ProduceStream's next request)."""
        if self._draining:
            callback()
            return lambda: None
        self._on_drain.add(callback)
        return lambda: self._on_drain.discard(callback)

    async def until(self, waiting: Coroutine[Any, Any, T]) -> T:
        """Await `waiting`, or end with ServerStoppingError when the server drains.
        Cancelling the caller cancels the wait."""
        if self._draining:
            waiting.close()
            raise ServerStoppingError()
        waiter = asyncio.ensure_future(waiting)
        self._waiters.add(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._draining or (task is not None and task.cancelling()):
                raise  # the caller itself was cancelled (the client went away)
            raise ServerStoppingError() from None
        finally:
            self._waiters.discard(waiter)

    async def for_offset(self, log: AsyncLog, offset: int) -> None:
        """Wait until `offset` exists in `log`; ServerStoppingError when the server
        drains or the log closes."""
        if not await self.until(log.wait_for(offset)):
            raise ServerStoppingError()  # the log closed
