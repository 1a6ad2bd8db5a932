"""What the discovery tests share: record an instancer's sets, wait for one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

from lokit.sd import Instancer, Instances
from lokit.sd.metrics import ERRORS


class Recorder:
    """Every set an instancer sent, in order."""

    def __init__(self, instancer: Instancer) -> None:
        self.sets: list[Instances] = []
        self._changed = asyncio.Event()
        self.unsubscribe = instancer.subscribe(self._got)

    def _got(self, instances: Instances) -> None:
        self.sets.append(instances)
        self._changed.set()

    async def wait(self, match: Callable[[Instances], bool], within: float = 10.0) -> Instances:
        """The first set (already sent or to come) that satisfies `match`."""
        async with asyncio.timeout(within):
            while True:
                for s in self.sets:
                    if match(s):
                        return s
                self._changed.clear()
                await self._changed.wait()


def errors(target: str) -> float:
    """`lokit_sd_errors_total{target}` now."""
    value: float = ERRORS.labels(target)._value.get()
    return value


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `condition()` holds (checked every 20 ms); fail after `within` seconds."""
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def listen_unix(path: Path) -> socket.socket:
    """A listening Unix socket at `path` (a live instance, for the directory's purposes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(16)
    return s
