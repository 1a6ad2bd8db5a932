"""A length-prefixed echo over a Unix socket on uvloop: bench/rpc.py's Python floor.

`python bench/_framed_echo.py PATH` serves until SIGTERM and prints `ready` once
listening. Each frame is a 4-byte big-endian length and that many bytes; the
server writes every complete frame straight back. An `asyncio.Protocol` (no
streams) so the figure is the loop and the socket, nothing more.
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
