"""Where a local call's time goes: lokit's HTTP server and client per call, in one process.

`bench/rpc.py` measures a whole call between two processes, where the CPU of
both sides, two processes sharing a core's caches, and the kernel's wakeups add
up. This bench takes each side alone, in this process, so its own Python is
what is measured:

- case `http-server`: a request (addsvc `Sum`, as lokit's client sends it) fed
  as bytes into the server's protocol, whose transport only keeps what is
  written (no socket, no syscall for the answer). Systems: `lokit` (lokit's
  protocol and app as `lokit serve` builds them: the listener limits, the direct
  path, the request context, the request log line (logfmt, to /dev/null), RED
  metrics; tracing off), `lokit, no request line` (the same at log level
  warning) and `httptools` (the bare httptools server of `bench/_bare_servers.py`,
  which decodes the body with orjson in a task and answers it: the floor of this
  harness).
- case `http-client`: `sum(1, 2)` over a real Unix socket to a responder in
  this process that answers every request with a fixed response. Systems:
  `lokit` (`lokit.connect(addsvc_contract(), "unix:STEM")`, lokit's default
  client and protocol) and `raw` (an asyncio protocol writing a fixed request
  and waiting for the answer).
- case `one-loop`: whole calls over real Unix sockets, server and client on this
  process's one loop, so no call switches between processes. Systems: `framed` (the
  framed echo and its client: the Python floor of `bench/rpc.py`), `httptools`
  (lokit's client to the bare httptools server of `bench/_bare_servers.py`),
  `lokit` (lokit's client to lokit's HTTP server, as above, `http=`) and `frames`
  (`lokit.connect` with a stem only, lokit's default: lokit frames to lokit's frames
  server, with the same request line, metrics and context). The systems take turns by
  rounds. Metrics `p50_us` (of all calls) and `cpu_us` (client and server together);
  the ratios to `framed` are printed under the table.

Metric `cpu_us`: process CPU µs per request (the median of several rounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from _common import Row, median, parser, percentile, report

REQUEST = (
    b"POST /sum HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
    b"x-request-id: 5f0c6d7e8a9b0c1d0000000000000001\r\ncontent-length: 13\r\n\r\n"
    b'{"a":1,"b":2}'
)
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n"
    b"x-request-id: 5f0c6d7e8a9b0c1d0000000000000001\r\n\r\n"
    b'{"v":3}'
)

Run = Callable[[int], Awaitable[None]]


class Kept:
    """A transport that keeps nothing but a signal: the next write completes `answered`."""

    def __init__(self) -> None:
        self.answered: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        waiter = self.answered
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": "/run/addsvc.http.sock", "peername": ""}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def fed(protocol: Any, transport: Kept) -> Run:
    """n requests fed into `protocol`, each answered before the next."""
    loop = asyncio.get_running_loop()

    async def run(n: int) -> None:
        for _ in range(n):
            transport.answered = loop.create_future()
            protocol.data_received(REQUEST)
            await transport.answered

    return run


def lokit_protocol(level: str, sink: TextIO) -> Callable[[], asyncio.Protocol]:
    """lokit's HTTP protocol and app for addsvc as the runtime builds them: a factory of
    connections, whose request lines go to `sink` at `level`."""
    import uvicorn
    from uvicorn.server import ServerState

    from lokit.examples.addsvc.contract import addsvc_contract
    from lokit.examples.addsvc.service import AddService
    from lokit.observability.logs import configure_logging
    from lokit.observability.request import RequestObserver
    from lokit.service import define
    from lokit.transport.http.app import HttpApp
    from lokit.transport.http.protocol import limited_protocol
    from lokit.transport.limits import Limits

    configure_logging(level=level, stream=sink)
    service = define(addsvc_contract(), AddService())
    app = HttpApp(service, RequestObserver(service.name), Limits())
    protocol_class = limited_protocol(Limits(), service.name, {}, app)
    config = uvicorn.Config(
        app, http=protocol_class, lifespan="off", log_config=None, server_header=False
    )
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Tue, 01 Dec 2026 12:00:00 GMT")]
    loop = asyncio.get_running_loop()

    def connection() -> asyncio.Protocol:
        return protocol_class(config=config, server_state=state, app_state={}, _loop=loop)

    return connection


async def lokit_server(level: str, sink: TextIO) -> Run:
    """lokit's protocol and app for addsvc, fed requests as bytes."""
    protocol = lokit_protocol(level, sink)()
    transport = Kept()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return fed(protocol, transport)


async def httptools_server() -> Run:
    """The harness's floor: the bare httptools server of `bench/_bare_servers.py`, fed
    requests as bytes."""
    from _bare_servers import BareHttptools

    protocol = BareHttptools()
    transport = Kept()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return fed(protocol, transport)


async def lokit_client(stem: str) -> tuple[Run, Callable[[], Awaitable[None]]]:
    import lokit
    from lokit.examples.addsvc.contract import addsvc_contract

    conn = lokit.connect(addsvc_contract(), f"unix:{stem}")
    svc = await conn.__aenter__()

    async def run(n: int) -> None:
        for _ in range(n):
            await svc.sum(1, 2)

    async def close() -> None:
        await conn.__aexit__(None, None, None)

    return run, close


async def raw_client(path: str) -> tuple[Run, Callable[[], Awaitable[None]]]:
    loop = asyncio.get_running_loop()

    class Raw(asyncio.Protocol):
        waiter: asyncio.Future[None] | None = None

        def data_received(self, data: bytes) -> None:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

    transport, protocol = await loop.create_unix_connection(Raw, path)
    request = REQUEST.replace(b"x-request-id: 5f0c6d7e8a9b0c1d0000000000000001\r\n", b"")

    async def run(n: int) -> None:
        for _ in range(n):
            protocol.waiter = loop.create_future()
            transport.write(request)
            await protocol.waiter

    async def close() -> None:
        transport.close()

    return run, close


class Responder(asyncio.Protocol):
    """Answers every complete request (its body ends with `}`) with ANSWER."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        if data.endswith(b"}"):
            self.transport.write(ANSWER)


async def cpu_per_call(run: Run, n: int, rounds: int) -> float:
    """Median process CPU µs per call over `rounds` rounds of n calls (after a warm-up)."""
    await run(max(200, n // 5))
    per: list[float] = []
    for _ in range(rounds):
        t0 = time.process_time()
        await run(n)
        per.append((time.process_time() - t0) / n * 1e6)
    return median(per)


Client = Callable[[], Awaitable[tuple[Run, Callable[[], Awaitable[None]]]]]


async def measure(n: int, rounds: int, sink: TextIO) -> list[Row]:
    rows: list[Row] = []
    servers: list[tuple[str, Callable[[], Awaitable[Run]]]] = [
        ("lokit", lambda: lokit_server("info", sink)),
        ("lokit, no request line", lambda: lokit_server("warning", sink)),
        ("httptools", httptools_server),
    ]
    for system, make in servers:
        value = await cpu_per_call(await make(), n, rounds)
        rows.append(Row("http-server", system, "cpu_us", value, "µs"))
    with tempfile.TemporaryDirectory() as scratch:
        stem = os.path.join(scratch, "addsvc")
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(Responder, stem + ".http.sock")
        try:
            clients: list[tuple[str, Client]] = [
                ("lokit", lambda: lokit_client(stem)),
                ("raw", lambda: raw_client(stem + ".http.sock")),
            ]
            for system, open_client in clients:
                run, close = await open_client()
                try:
                    value = await cpu_per_call(run, n, rounds)
                finally:
                    await close()
                rows.append(Row("http-client", system, "cpu_us", value, "µs"))
        finally:
            server.close()
            await server.wait_closed()
    return rows


Call = Callable[[], Awaitable[object]]


async def one_loop(n: int, rounds: int, sink: TextIO) -> list[Row]:
    """Case `one-loop`: each system's whole calls with its server on this loop too."""
    import _framed_echo
    from _bare_servers import BareHttptools

    import lokit
    from lokit.examples.addsvc.contract import addsvc_contract
    from lokit.examples.addsvc.service import AddService
    from lokit.observability.request import RequestObserver
    from lokit.service import define
    from lokit.transport.address import parse
    from lokit.transport.frames.server import FramesServer

    loop = asyncio.get_running_loop()
    contract = addsvc_contract()
    service = define(contract, AddService())
    frames = FramesServer(service, RequestObserver(service.name))
    with tempfile.TemporaryDirectory() as scratch:
        framed, bare = os.path.join(scratch, "framed.sock"), os.path.join(scratch, "bare.sock")
        stem = os.path.join(scratch, "addsvc")
        servers = [
            await loop.create_unix_server(_framed_echo.Echo, framed),
            await loop.create_unix_server(BareHttptools, bare),
            await loop.create_unix_server(lokit_protocol("info", sink), stem + ".http.sock"),
        ]
        await frames.start([parse(f"unix:{stem}.frames.sock")])
        try:
            async with contextlib.AsyncExitStack() as clients:
                caller = await _framed_echo.connect(framed)
                clients.callback(caller.close)
                to_bare = await clients.enter_async_context(
                    lokit.connect(contract, http=f"unix:{bare}")
                )
                to_lokit = await clients.enter_async_context(
                    lokit.connect(contract, http=f"unix:{stem}.http.sock")
                )
                to_frames = await clients.enter_async_context(
                    lokit.connect(contract, f"unix:{stem}")
                )
                calls: dict[str, Call] = {
                    "framed": caller.call,
                    "httptools": lambda: to_bare.sum(1, 2),
                    "lokit": lambda: to_lokit.sum(1, 2),
                    "frames": lambda: to_frames.sum(1, 2),
                }
                measured = await in_turns(calls, n, rounds)
        finally:
            await frames.stop()
            for server in servers:
                server.close()
                await server.wait_closed()
    rows: list[Row] = []
    for system, (p50, cpu) in measured.items():
        rows.append(Row("one-loop", system, "p50_us", p50, "µs"))
        rows.append(Row("one-loop", system, "cpu_us", cpu, "µs"))
    return rows


async def in_turns(calls: dict[str, Call], n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Each system's call n times a round, the systems in turn (in reverse every other
    round, so none always follows the same one). Per system: the p50 µs of all its
    calls and the median of its rounds' CPU µs per call."""
    for call in calls.values():
        for _ in range(max(200, n // 5)):
            await call()
    latencies: dict[str, list[float]] = {s: [] for s in calls}
    cpu: dict[str, list[float]] = {s: [] for s in calls}
    order = list(calls)
    for _ in range(rounds):
        for system in order:
            call, lat = calls[system], latencies[system]
            c0 = time.process_time()
            for _ in range(n):
                t0 = time.perf_counter()
                await call()
                lat.append((time.perf_counter() - t0) * 1e6)
            cpu[system].append((time.process_time() - c0) / n * 1e6)
        order.reverse()
    return {s: (percentile(latencies[s], 50), median(cpu[s])) for s in calls}


def one_loop_ratios(rows: list[Row]) -> None:
    """Each one-loop system's p50 against the framed floor's, on the same loop."""
    p50 = {r.system: r.value for r in rows if r.case == "one-loop" and r.metric == "p50_us"}
    for system in ("httptools", "lokit", "frames"):
        print(f"one-loop/{system} / one-loop/framed: {p50[system] / p50['framed']:.2f}")


def main() -> None:
    import uvloop

    args = parser(__doc__ or "").parse_args()
    n, rounds = (3000, 5) if args.quick else (10000, 9)
    with open(os.devnull, "w") as sink:  # where the request lines go
        rows = uvloop.run(measure(n, rounds, sink))
        rows += uvloop.run(one_loop(n, rounds, sink))
    report(rows, args, f"addsvc Sum, in one process: CPU per call, median of {rounds} x {n}")
    one_loop_ratios(rows)


if __name__ == "__main__":
    main()
