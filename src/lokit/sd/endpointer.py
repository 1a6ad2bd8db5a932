"""The endpointer cache: one client per instance, made when it joins, closed when it leaves.

Go kit's `sd.NewEndpointer`: on each new set it keeps the clients of the
instances that stayed, calls the factory for those that joined (a factory error
is logged and the instance skipped) and closes those that left. `members()` is
called on every request, so it returns a list built once per change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from lokit.observability.logs import get_logger
from lokit.sd.instancer import Instancer, Instances

C = TypeVar("C")

_log = get_logger("lokit.sd")


class Endpointer(Generic[C]):
    """Keeps one `C` per instance of `instancer`, ordered by instance string.

    `factory(instance)` makes the client of an instance that joined, `close(c)`
    closes one whose instance left (or all, in `close()`). The endpointer
    subscribes to the instancer at once; starting and closing the instancer is
    the caller's.
    """

    def __init__(
        self,
        instancer: Instancer,
        factory: Callable[[str], C],
        close: Callable[[C], Awaitable[None]],
    ) -> None:
        self.instancer = instancer
        self._factory = factory
        self._close = close
        self._clients: dict[str, C] = {}
        self._members: list[C] = []
        self._entries: list[tuple[str, C]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._unsubscribe = instancer.subscribe(self._changed)

    def members(self) -> list[C]:
        """The current clients, in instance order (shared: do not modify it)."""
        return self._members

    def entries(self) -> list[tuple[str, C]]:
        """The current (instance, client) pairs, in instance order (shared: do not modify it)."""
        return self._entries

    def _changed(self, instances: Instances) -> None:
        if self._closed:
            return
        old = self._clients
        new: dict[str, C] = {}
        for instance in instances:
            if instance in old:
                new[instance] = old[instance]
                continue
            try:
                new[instance] = self._factory(instance)
            except Exception as e:
                _log.error(
                    "cannot make a client for an instance; skipping it",
                    target=self.instancer.target,
                    instance=instance,
                    err=str(e) or repr(e),
                )
        for instance, client in old.items():
            if instance not in new:
                self._schedule_close(client)
        self._clients = new
        self._entries = list(new.items())  # `instances` is sorted, so these are too
        self._members = [c for _, c in self._entries]

    def _schedule_close(self, client: C) -> None:
        task = asyncio.get_running_loop().create_task(self._close_one(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_one(self, client: C) -> None:
        try:
            await self._close(client)
        except Exception as e:
            _log.warning("closing a client failed", target=self.instancer.target, err=repr(e))

    async def close(self) -> None:
        """Unsubscribe and close every client (and wait for those already closing)."""
        self._closed = True
        self._unsubscribe()
        clients = list(self._clients.values())
        self._clients, self._members, self._entries = {}, [], []
        await asyncio.gather(*(self._close_one(c) for c in clients), *self._closing)
