"""A length-prefixed echo over a Unix socket on uvloop: the benches' Python floor.

`python bench/_framed_echo.py PATH` serves until SIGTERM and prints `ready` once
listening. Each frame is a 4-byte big-endian length and that many bytes; the
server writes every complete frame straight back. `Caller` is its client, one
frame in flight. Both are `asyncio.Protocol`s (no streams) so the figure is the
loop and the socket, nothing more.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import cast


class Echo(asyncio.Protocol):
    """Buffers bytes and writes back each complete length-prefixed frame."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            size = int.from_bytes(self.buf[:4], "big")
            if len(self.buf) < 4 + size:
                return
            frame = bytes(self.buf[: 4 + size])
            del self.buf[: 4 + size]
            assert self.transport is not None
            self.transport.write(frame)


class Caller(asyncio.Protocol):
    """The floor's client: `call()` writes one frame and returns once it is echoed whole."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.buf = bytearray()
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        size = len(self.frame)
        if len(self.buf) >= size and self.waiter is not None:
            self.waiter.set_result(bytes(self.buf[:size]))
            del self.buf[:size]
            self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("framed echo closed the connection"))

    async def call(self) -> None:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(self.frame)
        if await self.waiter != self.frame:
            raise AssertionError("framed echo answered another frame")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def sum_frame() -> bytes:
    """addsvc's Sum(1, 2) request, protobuf-encoded, as one frame: the floor's payload."""
    from lokit.proto import addsvc_pb2

    payload = addsvc_pb2.SumRequest(a=1, b=2).SerializeToString()
    return len(payload).to_bytes(4, "big") + payload


async def connect(path: str) -> Caller:
    """A `Caller` of `sum_frame()` connected to the framed echo on `path`."""
    frame = sum_frame()
    _, caller = await asyncio.get_running_loop().create_unix_connection(lambda: Caller(frame), path)
    return caller


async def serve(path: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(Echo, path)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    import uvloop

    uvloop.run(serve(sys.argv[1]))


if __name__ == "__main__":
    main()
