"""Services the Connect tests call: a derived one with every shape a test needs, and addsvc.

`Probe` is derived (JSON-in-gRPC until the protobuf codec lands, msgspec JSON on
Connect); `addsvc` is go-kit's `pb.Add` with explicit protobuf codecs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import orjson

import lokit
from lokit import context
from lokit.errors import InvalidArgument
from lokit.transport.http.connect import envelope


class Shelf(msgspec.Struct):
    shelf_name: str
    max_items: int
    tags: dict[str, int] = {}


class Who(msgspec.Struct):
    request_id: str
    caller: str | None
    remaining: float | None


class Probe:
    async def greet(self, name: str) -> str:
        """Say hello; an empty name is a business error."""
        if not name:
            raise InvalidArgument("name is required")
        return f"hello, {name}"

    async def describe(self, shelf: Shelf) -> Shelf:
        """Echo a struct whose field names have underscores (camelCase on the Connect wire)."""
        return shelf

    async def whoami(self) -> Who:
        """The request's context as the endpoint sees it."""
        ctx = context.current()
        assert ctx is not None
        deadline = ctx.deadline
        left = None if deadline is None else deadline - time.monotonic()
        return Who(ctx.request_id, None if ctx.caller is None else ctx.caller.name, left)

    async def slow(self, ms: int) -> str:
        """Answer after `ms` milliseconds."""
        await asyncio.sleep(ms / 1000)
        return "done"

    async def crash(self) -> str:
        raise RuntimeError("a secret detail")

    async def count(self, n: int, fail_at: int = -1) -> AsyncIterator[int]:
        """n, n-1, ..., 1; raises InvalidArgument when it reaches `fail_at`."""
        for i in range(n, 0, -1):
            if i == fail_at:
                raise InvalidArgument(f"stopped at {i}")
            yield i

    async def total(self, items: AsyncIterator[int]) -> int:
        """A client stream: the sum of the items."""
        return sum([i async for i in items])


def probe() -> lokit.ServiceDef:
    return lokit.define("probe", Probe())


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """The (flags, data) envelopes of a streamed Connect answer."""
    out = []
    i = 0
    while i < len(body):
        flags, size = body[i], int.from_bytes(body[i + 1 : i + 5], "big")
        out.append((flags, body[i + 5 : i + 5 + size]))
        i += 5 + size
    return out


def json_frames(*messages: object) -> bytes:
    return b"".join(envelope(orjson.dumps(m)) for m in messages)
