"""The HTTP transport over real uvicorn and aiohttp, on a Unix socket and on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest
from multidict import CIMultiDict
from opentelemetry import trace

from lokit import context
from lokit.codec import JsonCodec
from lokit.context import RequestContext
from lokit.derive import describe
from lokit.endpoint import Kind
from lokit.errors import (
    Cancelled,
    Code,
    DeadlineExceeded,
    Error,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from lokit.observability import propagation
from lokit.observability.observer import Call
from lokit.routes import HttpInput, HttpRoute, ServiceDef, http_routes
from lokit.transport.address import Address, AddressError, parse, unix_socket_alive
from lokit.transport.http import HttpClient, HttpServer, asgi_app
from lokit.transport.http.router import Router
from lokit.transport.http.wire import LineSplitter

SERVICE = "test.v1.Http"


class Teapot(Error):
    """A business error with its own HTTP status."""

    code = Code.FAILED_PRECONDITION
    http_status = 418


class Info(msgspec.Struct):
    request_id: str
    caller: str | None
    remaining: float | None
    service: str
    method: str
    transport: str
    trace_id: str


class Svc:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.stream_closed = asyncio.Event()

    async def sum(self, a: int, b: int) -> int:
        return a + b

    async def teapot(self) -> int:
        raise Teapot("I'm a teapot")

    async def invalid(self, n: int) -> int:
        raise InvalidArgument(f"n must be positive, not {n}")

    async def crash(self) -> int:
        raise RuntimeError("secret detail")

    async def info(self) -> Info:
        ctx = context.current()
        assert ctx is not None
        span = trace.get_current_span().get_span_context()
        return Info(
            ctx.request_id,
            ctx.caller_hint,
            ctx.time_remaining(),
            ctx.service,
            ctx.method,
            ctx.transport,
            format(span.trace_id, "032x") if span.is_valid else "",
        )

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    async def gated(self) -> str:
        self.started.set()
        await self.release.wait()
        return "finished"

    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def count_then_fail(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i
        raise Teapot("boiled over")

    async def forever(self) -> AsyncIterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.005)
        finally:
            self.stream_closed.set()

    async def total(self, items: AsyncIterator[int]) -> int:
        return sum([i async for i in items])

    async def double(self, items: AsyncIterator[int]) -> AsyncIterator[int]:
        async for i in items:
            yield 2 * i

    async def get_item(self, item_id: int, verbose: bool = False) -> str:
        return f"item {item_id}" + (" (verbose)" if verbose else "")

    async def greet(self, name: str, loud: bool = False) -> str:
        text = f"hello {name}"
        return text.upper() if loud else text


class _RecordedCall:
    def __init__(self, log: list[tuple[RequestContext, BaseException | None]], ctx: RequestContext):
        self._log = log
        self._ctx = ctx

    def finish(self, error: BaseException | None = None) -> None:
        self._log.append((self._ctx, error))


class Recorder:
    """An observer that remembers each finished call."""

    def __init__(self) -> None:
        self.calls: list[tuple[RequestContext, BaseException | None]] = []

    def start(self, ctx: RequestContext) -> Call:
        return _RecordedCall(self.calls, ctx)


def build(svc: Svc) -> list[HttpRoute]:
    methods = {m.name: m for m in describe(svc)}
    routes = http_routes([m for name, m in methods.items() if name not in ("GetItem", "Greet")])
    get_item = methods["GetItem"]
    greet = methods["Greet"]

    def decode_greet(inp: HttpInput) -> Any:
        loud = inp.query.get("loud") == "1" or inp.headers.get("x-loud") == "1"
        return greet.request_type(name=inp.path_params["name"], loud=loud)

    routes.append(HttpRoute("GET", "/items/{item_id}", get_item, JsonCodec(get_item)))
    routes.append(
        HttpRoute("GET", "/users/{name}/greeting", greet, JsonCodec(greet), decode=decode_greet)
    )
    return routes


class Served:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.svc = Svc()
        self.routes = build(self.svc)
        self.route = {r.method.name: r for r in self.routes}
        self.observer = Recorder()
        self.app = asgi_app(ServiceDef(SERVICE, http=self.routes), self.observer)
        self.servers: list[HttpServer] = []
        self.clients: list[HttpClient] = []

    def addr(self, kind: str) -> Address:
        return parse(f"unix:{self.tmp_path}/http.sock" if kind == "unix" else "127.0.0.1:0")

    async def start(
        self, kind: str = "unix", graceful_timeout: float = 5.0
    ) -> tuple[HttpServer, Address, HttpClient]:
        server = HttpServer(self.app, graceful_timeout=graceful_timeout)
        self.servers.append(server)
        (bound,) = await server.start([self.addr(kind)])
        client = HttpClient(bound)
        self.clients.append(client)
        return server, bound, client

    def req(self, name: str, **fields: Any) -> Any:
        return self.route[name].method.request_type(**fields)

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
        for s in self.servers:
            await s.stop()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    s = Served(tmp_path)
    yield s
    await s.close()


async def raw(
    addr: Address,
    verb: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    """A plain aiohttp call, to look at status, headers and body as they are on the wire."""
    conn: aiohttp.BaseConnector
    if addr.path is not None:
        conn, base = aiohttp.UnixConnector(path=addr.path), "http://localhost"
    else:
        conn, base = aiohttp.TCPConnector(), f"http://{addr.host}:{addr.port}"
    async with (
        aiohttp.ClientSession(connector=conn) as s,
        s.request(verb, base + path, data=body, headers=headers or {}) as r,
    ):
        return r.status, CIMultiDict(r.headers), await r.read()


async def collect(it: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in it]


async def agen(items: list[Any]) -> AsyncIterator[Any]:
    for x in items:
        yield x


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unix", "tcp"])
async def test_round_trips(served: Served, kind: str) -> None:
    _, bound, client = await served.start(kind)
    if kind == "tcp":
        assert bound.port and bound.port > 0
    assert await client.unary(served.route["Sum"], served.req("Sum", a=1, b=2)) == 3
    nums = await collect(client.server_stream(served.route["Count"], served.req("Count", n=4)))
    assert nums == [0, 1, 2, 3]
    assert await client.client_stream(served.route["Total"], agen([1, 2, 3])) == 6
    assert await collect(client.bidi(served.route["Double"], agen([1, 2, 3]))) == [2, 4, 6]
    eps = client.endpoints(served.routes)
    assert await eps["Sum"](served.req("Sum", a=20, b=22)) == 42
    assert await collect(await eps["Count"](served.req("Count", n=2))) == [0, 1]
    assert await eps["Total"](agen([4, 5])) == 9
    with pytest.raises(Teapot):
        await eps["Teapot"](served.req("Teapot"))
    status, body = await client.request("POST", "/sum", b'{"a":2,"b":3}')
    assert (status, orjson.loads(body)) == (200, {"v": 5})


async def test_unknown_path_is_404_and_wrong_verb_405(served: Served) -> None:
    _, bound, client = await served.start()
    status, body = await client.request("POST", "/nope")
    assert (status, orjson.loads(body)) == (404, {"error": "no route for /nope"})
    status, headers, body = await raw(bound, "GET", "/sum", headers={"X-Request-ID": "r-405"})
    assert status == 405
    assert headers["Allow"] == "POST"
    assert headers["X-Request-ID"] == "r-405"
    assert "GET" in orjson.loads(body)["error"]
    status, headers, _ = await raw(bound, "POST", "/items/3")
    assert status == 405 and headers["Allow"] == "GET"
    with pytest.raises(NotFound):
        await client.unary(
            HttpRoute("POST", "/missing", served.route["Sum"].method, served.route["Sum"].codec),
            served.req("Sum", a=1, b=1),
        )


async def test_bad_input_is_400_with_a_clear_message(served: Served) -> None:
    _, bound, _ = await served.start()
    status, headers, body = await raw(bound, "POST", "/sum", b'{"a":1,')
    assert status == 400 and orjson.loads(body)["error"].startswith("malformed JSON")
    assert headers["X-Lokit-Error"] == InvalidArgument.error_name
    assert headers["Content-Type"] == "application/json"
    status, _, body = await raw(bound, "POST", "/sum", b'{"a":"one","b":2}')
    message = orjson.loads(body)["error"]
    assert status == 400 and "$.a" in message and "int" in message
    assert "Traceback" not in message
    status, _, body = await raw(bound, "POST", "/sum", b"[1, 2]")
    assert status == 400 and "error" in orjson.loads(body)


async def test_errors_map_to_status_and_back_to_the_same_class(served: Served) -> None:
    _, bound, client = await served.start()
    status, headers, body = await raw(bound, "POST", "/teapot")
    assert (status, orjson.loads(body)) == (418, {"error": "I'm a teapot"})
    assert headers["X-Lokit-Error"] == Teapot.error_name
    with pytest.raises(Teapot, match="I'm a teapot"):
        await client.unary(served.route["Teapot"], served.req("Teapot"))
    with pytest.raises(InvalidArgument, match="n must be positive, not -1"):
        await client.unary(served.route["Invalid"], served.req("Invalid", n=-1))


async def test_unexpected_exception_is_500_without_details(served: Served) -> None:
    _, bound, client = await served.start()
    status, headers, body = await raw(bound, "POST", "/crash")
    rid = headers["x-request-id"]
    assert (status, body) == (500, b'{"error":"internal error (request id %s)"}' % rid.encode())
    with pytest.raises(Internal, match=r"^internal error \(request id [0-9a-f]{32}\)$"):
        await client.unary(served.route["Crash"], served.req("Crash"))
    errs = [e for ctx, e in served.observer.calls if ctx.method == "Crash"]
    assert errs and all(isinstance(e, RuntimeError) and "secret" in str(e) for e in errs)


# --- context -------------------------------------------------------------------------


async def test_request_id_is_taken_echoed_or_generated(served: Served) -> None:
    _, bound, client = await served.start()
    status, headers, body = await raw(bound, "POST", "/info", headers={"X-Request-ID": "req-42"})
    assert status == 200 and headers["X-Request-ID"] == "req-42"
    info = msgspec.json.decode(body, type=Info)
    assert (info.request_id, info.service, info.method, info.transport) == (
        "req-42",
        SERVICE,
        "Info",
        "http",
    )
    status, headers, body = await raw(bound, "POST", "/info")
    generated = headers["X-Request-ID"]
    assert len(generated) == 32 and msgspec.json.decode(body, type=Info).request_id == generated
    status, headers, _ = await raw(bound, "POST", "/nope")
    assert status == 404 and headers["X-Request-ID"]
    status, headers, _ = await raw(bound, "POST", "/teapot", headers={"X-Request-ID": "t-1"})
    assert status == 418 and headers["X-Request-ID"] == "t-1"

    # The lokit client sends the current request's id and identity on.
    with context.scope(RequestContext(request_id="outer-7", caller_hint="svc-a")):
        info = await client.unary(served.route["Info"], served.req("Info"))
    assert (info.request_id, info.caller) == ("outer-7", "svc-a")
    assert [c.request_id for c, _ in served.observer.calls if c.method == "Info"][-1] == "outer-7"


async def test_deadline_reaches_the_endpoint_and_is_enforced(served: Served) -> None:
    _, bound, client = await served.start()
    info = await client.unary(served.route["Info"], served.req("Info"), timeout=30)
    assert info.remaining is not None and 0 < info.remaining <= 30
    with context.scope(RequestContext("r", deadline=context.deadline_from_timeout(20))):
        info = await client.unary(served.route["Info"], served.req("Info"), timeout=60)
    assert info.remaining is not None and 0 < info.remaining <= 20

    status, headers, body = await raw(
        bound, "POST", "/slow", b'{"seconds":30}', {"X-Request-Timeout-Ms": "50"}
    )
    assert status == 504 and headers["X-Lokit-Error"] == DeadlineExceeded.error_name
    assert "deadline" in orjson.loads(body)["error"]
    with pytest.raises(DeadlineExceeded):
        await client.unary(served.route["Slow"], served.req("Slow", seconds=30), timeout=0.2)

    status, _, body = await raw(bound, "POST", "/info", headers={"X-Request-Timeout-Ms": "soon"})
    assert status == 400 and "x-request-timeout-ms" in orjson.loads(body)["error"]
    status, _, _ = await raw(bound, "POST", "/info", headers={"X-Request-Timeout-Ms": "-5"})
    assert status == 400
    # the observer gets the deadline's own TimeoutError, and maps it itself
    slow = [e for c, e in served.observer.calls if c.method == "Slow"]
    assert len(slow) == 2 and all(type(e) is TimeoutError for e in slow)


async def test_client_default_and_call_timeouts_take_the_smaller(served: Served) -> None:
    _, bound, _ = await served.start()
    client = HttpClient(bound, timeout=5)
    served.clients.append(client)
    info = await client.unary(served.route["Info"], served.req("Info"), timeout=60)
    assert info.remaining is not None and 0 < info.remaining <= 5
    info = await client.unary(served.route["Info"], served.req("Info"), timeout=2)
    assert info.remaining is not None and 0 < info.remaining <= 2
    with context.scope(RequestContext("r", deadline=context.deadline_from_timeout(-1))):
        with pytest.raises(DeadlineExceeded, match="the deadline has passed"):
            await client.unary(served.route["Info"], served.req("Info"))


async def test_trace_context_is_attached_and_forwarded(served: Served) -> None:
    _, bound, client = await served.start()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    _, _, body = await raw(bound, "POST", "/info", headers={"traceparent": parent})
    assert msgspec.json.decode(body, type=Info).trace_id == trace_id
    token = propagation.extract_and_attach({"traceparent": parent})
    try:
        info = await client.unary(served.route["Info"], served.req("Info"))
    finally:
        propagation.detach(token)
    assert info.trace_id == trace_id


# --- streams -------------------------------------------------------------------------


async def test_server_stream_is_ndjson_and_errors_end_it(served: Served) -> None:
    _, bound, client = await served.start()
    status, headers, body = await raw(bound, "POST", "/count", b'{"n":3}', {"X-Request-ID": "s"})
    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    assert headers["X-Request-ID"] == "s"
    assert body == b'{"v":0}\n{"v":1}\n{"v":2}\n'
    assert (
        await collect(client.server_stream(served.route["Count"], served.req("Count", n=0))) == []
    )

    got: list[int] = []
    with pytest.raises(Teapot, match="boiled over"):
        async for x in client.server_stream(
            served.route["CountThenFail"], served.req("CountThenFail", n=3)
        ):
            got.append(x)
    assert got == [0, 1, 2]
    status, _, body = await raw(bound, "POST", "/count-then-fail", b'{"n":1}')
    last = orjson.loads(body.splitlines()[-1])
    assert status == 200 and last["error"] == "boiled over"
    # An error before the first item is an ordinary error response.
    status, _, body = await raw(bound, "POST", "/count-then-fail", b'{"n":0}')
    assert (status, orjson.loads(body)) == (418, {"error": "boiled over"})


async def test_request_streams_read_ndjson(served: Served) -> None:
    _, _, client = await served.start()
    status, body = await client.request("POST", "/total", b"1\n2\n\n3")
    assert (status, orjson.loads(body)) == (200, {"v": 6})
    status, body = await client.request("POST", "/total", b"")
    assert (status, orjson.loads(body)) == (200, {"v": 0})
    status, body = await client.request("POST", "/total", b"1\nx\n")
    assert status == 400 and "malformed JSON" in orjson.loads(body)["error"]
    status, body = await client.request("POST", "/double", b"5\n6\n")
    assert (status, body) == (200, b'{"v":10}\n{"v":12}\n')


async def test_client_disconnect_closes_the_producing_generator(served: Served) -> None:
    _, _, client = await served.start()
    stream = client.server_stream(served.route["Forever"], served.req("Forever"))
    assert [await anext(stream) for _ in range(3)] == [0, 1, 2]
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(served.svc.stream_closed.wait(), 10)
    for _ in range(200):
        if any(c.method == "Forever" for c, _ in served.observer.calls):
            break
        await asyncio.sleep(0.01)
    (err,) = [e for c, e in served.observer.calls if c.method == "Forever"]
    assert isinstance(err, Cancelled)


# --- path parameters -----------------------------------------------------------------


async def test_path_params(served: Served) -> None:
    _, bound, client = await served.start()
    status, body = await client.request("GET", "/items/42")
    assert (status, orjson.loads(body)) == (200, {"v": "item 42"})
    status, body = await client.request("GET", "/items/abc")
    assert status == 400 and "item_id" in orjson.loads(body)["error"]
    assert await client.unary(served.route["GetItem"], served.req("GetItem", item_id=7)) == "item 7"
    status, body = await client.request("GET", "/users/ann%20lee/greeting?loud=1")
    assert (status, orjson.loads(body)) == (200, {"v": "HELLO ANN LEE"})
    status, body = await client.request("GET", "/users/a%2Fb/greeting")
    assert (status, orjson.loads(body)) == (200, {"v": "hello a/b"})
    status, _ = await client.request("GET", "/users//greeting")
    assert status == 404
    status, _, body = await raw(bound, "GET", "/users/ann/greeting", headers={"X-Loud": "1"})
    assert (status, orjson.loads(body)) == (200, {"v": "HELLO ANN"})  # the decoder saw a header


def test_router_refuses_ambiguous_routes() -> None:
    m = describe(Svc())[0]
    with pytest.raises(ValueError, match="two HTTP routes"):
        Router([HttpRoute("POST", "/a", m, JsonCodec(m)), HttpRoute("post", "/a", m, JsonCodec(m))])
    with pytest.raises(ValueError, match="whole segment"):
        Router([HttpRoute("GET", "/a/x{id}", m, JsonCodec(m))])


def test_line_splitter_handles_any_chunking() -> None:
    data = b'{"v":1}\n\n{"v":22}\n{"v":333}'
    for size in range(1, len(data) + 1):
        lines = LineSplitter()
        out: list[bytes] = []
        for i in range(0, len(data), size):
            out += lines.feed(data[i : i + size])
        tail = lines.tail()
        assert out + ([tail] if tail else []) == [b'{"v":1}', b'{"v":22}', b'{"v":333}']


# --- server lifecycle ----------------------------------------------------------------


async def test_stale_socket_is_replaced(served: Served) -> None:
    path = served.tmp_path / "http.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.exists() and not unix_socket_alive(str(path))
    _, _, client = await served.start("unix")
    assert await client.unary(served.route["Sum"], served.req("Sum", a=1, b=1)) == 2


async def test_live_socket_and_busy_port_are_refused(served: Served) -> None:
    _, unix_addr, client = await served.start("unix")
    with pytest.raises(AddressError, match="another server is running there"):
        await HttpServer(served.app).start([unix_addr])
    assert await client.unary(served.route["Sum"], served.req("Sum", a=1, b=2)) == 3
    _, tcp_addr, _ = await served.start("tcp")
    with pytest.raises(AddressError, match="already in use"):
        await HttpServer(served.app).start([tcp_addr])
    # A failed start leaves no socket file behind for the addresses it did bind.
    other = parse(f"unix:{served.tmp_path}/other.sock")
    with pytest.raises(AddressError):
        await HttpServer(served.app).start([other, tcp_addr])
    assert not os.path.exists(other.path or "")


async def test_stop_finishes_in_flight_requests_and_removes_the_socket(served: Served) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server, bound, client = await served.start("unix")
    assert bound.path is not None
    call = asyncio.create_task(client.unary(served.route["Gated"], served.req("Gated")))
    await asyncio.wait_for(served.svc.started.wait(), 10)
    stopping = asyncio.create_task(server.stop())
    await _until(lambda: not unix_socket_alive(bound.path or ""))
    assert not stopping.done()
    served.svc.release.set()
    assert await asyncio.wait_for(call, 10) == "finished"
    await asyncio.wait_for(stopping, 10)
    assert not os.path.exists(bound.path)
    # uvicorn left the process's signal handlers alone.
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


async def test_requests_outliving_the_grace_period_get_unavailable(served: Served) -> None:
    server, _, client = await served.start("unix", graceful_timeout=0.2)
    stream = client.server_stream(served.route["Forever"], served.req("Forever"))
    assert await anext(stream) == 0
    call = asyncio.create_task(client.unary(served.route["Gated"], served.req("Gated")))
    await asyncio.wait_for(served.svc.started.wait(), 10)
    await asyncio.wait_for(server.stop(), 10)
    with pytest.raises(Unavailable, match="shutting down"):
        await asyncio.wait_for(call, 10)
    with pytest.raises(Unavailable, match="shutting down"):
        async with asyncio.timeout(10):
            async for _ in stream:
                pass


async def test_client_to_a_missing_socket_is_unavailable(tmp_path: Path) -> None:
    client = HttpClient(f"unix:{tmp_path}/nobody.sock")
    route = next(r for r in build(Svc()) if r.method.name == "Sum")
    try:
        with pytest.raises(Unavailable, match=r"nobody\.sock"):
            await asyncio.wait_for(client.unary(route, route.method.request_type(a=1, b=2)), 10)
        with pytest.raises(Unavailable):
            await asyncio.wait_for(client.request("POST", "/sum"), 10)
    finally:
        await client.close()


async def test_kinds_are_served_as_declared(served: Served) -> None:
    kinds = {r.method.name: r.method.kind for r in served.routes}
    assert kinds["Count"] is Kind.SERVER_STREAM
    assert kinds["Total"] is Kind.CLIENT_STREAM
    assert kinds["Double"] is Kind.BIDI


async def _until(cond: Callable[[], bool | Awaitable[bool]]) -> None:
    for _ in range(1000):
        result = cond()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")
