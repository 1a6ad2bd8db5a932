"""A small lokit HTTP service for the HTTP client's tests, in-process or as its own process.

`python -m tests.transport.http_client_server ADDR` serves it on ADDR and prints
`ready ADDR` (the bound address) once it listens, so a test can kill it mid-call.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from lokit import context
from lokit.derive import describe
from lokit.observability.observer import NullObserver
from lokit.routes import HttpRoute, ServiceDef, http_routes
from lokit.transport.address import parse
from lokit.transport.http import HttpServer, asgi_app
from lokit.transport.limits import Limits

SERVICE = "test.v1.HttpClient"


class Svc:
    """Sum, a slow call, streams of any length, an upload and an echo of the request id."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()  # a Forever stream was closed
        self.calls = 0

    async def sum(self, a: int, b: int) -> int:
        self.calls += 1
        return a + b

    async def slow(self, seconds: float) -> str:
        self.calls += 1
        await asyncio.sleep(seconds)
        return "done"

    async def request_id(self) -> str:
        ctx = context.current()
        return "" if ctx is None else ctx.request_id

    async def count(self, n: int, size: int = 0) -> AsyncIterator[str]:
        pad = "x" * size
        for i in range(n):
            yield f"{i}{pad}"

    async def forever(self) -> AsyncIterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.002)
        finally:
            self.closed.set()

    async def total(self, items: AsyncIterator[int]) -> int:
        return sum([i async for i in items])

    async def echo(self, items: AsyncIterator[str]) -> AsyncIterator[str]:
        async for item in items:
            yield item


def routes(svc: Svc) -> dict[str, HttpRoute]:
    """The service's routes by method name (`POST /sum`, ...)."""
    return {r.method.name: r for r in http_routes(describe(svc))}


async def start(
    svc: Svc, addr: str, limits: Limits | None = None, **kwargs: object
) -> tuple[HttpServer, str]:
    """Serve `svc` on `addr`; the server and its bound address."""
    app = asgi_app(ServiceDef(SERVICE, http=list(routes(svc).values())), NullObserver())
    server = HttpServer(app, limits=limits, **kwargs)  # type: ignore[arg-type]
    (bound,) = await server.start([parse(addr)])
    return server, str(bound)


async def _main(addr: str) -> None:
    server, bound = await start(Svc(), addr)
    print(f"ready {bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
