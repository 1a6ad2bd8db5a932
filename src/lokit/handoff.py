"""A bounded FIFO handing items from one task to one other task.

Why not asyncio.Queue: it serves any number of producers and consumers and pays
for that on every item (a deque of waiter futures each way, `full` and `empty`
through `qsize`, a loop lookup per wait): about 200 bytecodes per item. A
streamed request crosses two such queues on its way to the endpoint (the
transport's body pump, then the log's ProduceStream grouping): 8 % of a single
ProduceStream record's server instructions. Each of those has exactly one writer
and one reader, as does the log client's queue of single produces, so this keeps
one waiting future each way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Handoff"]

T = TypeVar("T")
_GET, _PUT = 0, 1  # which side waits: the consumer in `get`, the producer in `put`


class Handoff(Generic[T]):
    """Items from one producer task to one consumer task, in order.

    `put` waits while `maxsize` items are held (0: no bound, as asyncio.Queue);
    `put_nowait` never waits (for an end marker that must get through however full
    it is). A `get` or `put` cancelled while waiting loses nothing. Use from one
    event loop; a second task waiting in `get` (or in `put`) while one already does
    is a RuntimeError.
    """

    __slots__ = ("_items", "_maxsize", "_waiting")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque()
        self._maxsize = maxsize if maxsize > 0 else float("inf")
        self._waiting: list[asyncio.Future[None] | None] = [None, None]

    def empty(self) -> bool:
        return not self._items

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        """Add `item` now, past the bound if need be, and wake the consumer."""
        self._items.append(item)
        if self._waiting[_GET] is not None:
            self._wake(_GET)

    async def put(self, item: T) -> None:
        """Add `item` once fewer than `maxsize` items are held."""
        while len(self._items) >= self._maxsize:
            await self._wait(_PUT)
        self.put_nowait(item)

    def get_nowait(self) -> T:
        """The oldest item (IndexError when there is none); wakes a waiting producer."""
        item = self._items.popleft()
        if self._waiting[_PUT] is not None:
            self._wake(_PUT)
        return item

    async def get(self) -> T:
        """The oldest item, once there is one."""
        while not self._items:
            await self._wait(_GET)
        return self.get_nowait()

    def _wake(self, side: int) -> None:
        """Wake the task waiting on `side`; the waker clears the slot."""
        waiting = self._waiting
        fut = waiting[side]
        waiting[side] = None
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _wait(self, side: int) -> None:
        """Wait to be woken on `side`; on the way out clear the slot only if it still
        holds this wait's future (not one a later waiter has set since)."""
        waiting = self._waiting
        if waiting[side] is not None:
            raise RuntimeError(f"two tasks wait in Handoff.{'get' if side == _GET else 'put'}")
        fut = waiting[side] = asyncio.get_running_loop().create_future()
        try:
            await fut
        finally:
            if waiting[side] is fut:
                waiting[side] = None
