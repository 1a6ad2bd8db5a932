"""GrpcServer and GrpcClient over real grpc.aio, on a Unix socket and on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import msgspec
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lokit import context
from lokit.codec import JsonCodec
from lokit.context import RequestContext
from lokit.derive import describe
from lokit.endpoint import Endpoint, Method
from lokit.errors import (
    Code,
    DeadlineExceeded,
    Error,
    Internal,
    InvalidArgument,
    Unavailable,
)
from lokit.observability.observer import NullObserver
from lokit.routes import GrpcRoute, ServiceDef, grpc_routes
from lokit.transport.address import AddressError, parse
from lokit.transport.grpc import GrpcClient, GrpcServer

SERVICE = "test.v1.Test"


class Overdrawn(Error):
    """A business error with its own class and code."""

    code = Code.FAILED_PRECONDITION


class Info(msgspec.Struct):
    request_id: str
    caller: str | None
    remaining: float | None
    transport: str
    method: str


class Svc:
    def __init__(self) -> None:
        self.stream_closed = asyncio.Event()
        self.slow_started = asyncio.Event()

    async def sum(self, a: int, b: int) -> int:
        return a + b

    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def total(self, items: AsyncIterator[int]) -> int:
        return sum([i async for i in items])

    async def echo(self, words: AsyncIterator[str]) -> AsyncIterator[str]:
        async for w in words:
            yield w.upper()

    async def refuse(self, words: AsyncIterator[str]) -> AsyncIterator[str]:
        async for w in words:
            raise Overdrawn(f"refused {w}")
        yield ""

    async def refuse_total(self, items: AsyncIterator[int]) -> int:
        async for i in items:
            raise Overdrawn(f"refused {i}")
        return 0

    async def withdraw(self, amount: int) -> int:
        raise Overdrawn(f"cannot withdraw {amount}: balance is 0")

    async def crash(self) -> int:
        raise ValueError("boom")

    async def half_stream(self, n: int) -> AsyncIterator[int]:
        yield 1
        yield 2
        raise Overdrawn(f"stopped after 2 of {n}")

    async def whoami(self) -> Info:
        ctx = context.current()
        assert ctx is not None
        return Info(
            ctx.request_id, ctx.caller_hint, ctx.time_remaining(), ctx.transport, ctx.method
        )

    async def slow(self, seconds: float) -> float:
        self.slow_started.set()
        await asyncio.sleep(seconds)
        return seconds

    async def forever(self) -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.001)
        finally:
            self.stream_closed.set()


class Served:
    def __init__(self, svc: Svc, server: GrpcServer, client: GrpcClient, addr: str) -> None:
        self.svc = svc
        self.server = server
        self.client = client
        self.addr = addr
        self.routes = {r.method.name: r for r in routes_of(svc)}
        self.ep: dict[str, Endpoint] = client.endpoints(list(self.routes.values()))

    def req(self, name: str, **fields: Any) -> Any:
        return self.routes[name].method.request_type(**fields)

    def route(self, name: str) -> GrpcRoute:
        return self.routes[name]


def routes_of(svc: Svc) -> list[GrpcRoute]:
    return grpc_routes(SERVICE, describe(svc))


def route_named(svc: Svc, name: str) -> GrpcRoute:
    return next(r for r in routes_of(svc) if r.method.name == name)


def sum_request(svc: Svc, a: int, b: int) -> Any:
    return route_named(svc, "Sum").method.request_type(a=a, b=b)


def service_def(svc: Svc) -> ServiceDef:
    return ServiceDef(name="test", grpc=routes_of(svc), grpc_services=[SERVICE])


def target(addr: str) -> str:
    """A grpcio target for a bound lokit address."""
    a = parse(addr)
    return "unix://" + os.path.abspath(a.path) if a.path else f"{a.host}:{a.port}"


@pytest.fixture(params=["unix", "tcp"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    svc = Svc()
    server = GrpcServer(service_def(svc), NullObserver())
    want = f"unix:{tmp_path}/t.sock" if request.param == "unix" else "127.0.0.1:0"
    (bound,) = await server.start([parse(want)])
    client = GrpcClient(str(bound), timeout=30)
    try:
        yield Served(svc, server, client, str(bound))
    finally:
        await client.close()
        await server.stop(grace=1)


async def items(*values: Any) -> AsyncIterator[Any]:
    for v in values:
        yield v


async def test_round_trips_of_all_four_kinds(served: Served) -> None:
    assert await served.ep["Sum"](served.req("Sum", a=2, b=3)) == 5
    stream = await served.ep["Count"](served.req("Count", n=4))
    assert [i async for i in stream] == [0, 1, 2, 3]
    assert await served.ep["Total"](items(1, 2, 3, 4)) == 10
    replies = await served.ep["Echo"](items("a", "b", "c"))
    assert [w async for w in replies] == ["A", "B", "C"]
    # the same calls through the path-level API
    r = served.route("Sum")
    assert await served.client.unary(r.path, served.req("Sum", a=1, b=1), r.codec) == 2
    r = served.route("Count")
    assert [
        i async for i in served.client.server_stream(r.path, served.req("Count", n=2), r.codec)
    ] == [0, 1]
    r = served.route("Total")
    assert await served.client.client_stream(r.path, items(5, 6), r.codec) == 11
    r = served.route("Echo")
    assert [w async for w in served.client.bidi(r.path, items("x"), r.codec)] == ["X"]


async def test_empty_client_stream_half_close_is_ok(served: Served) -> None:
    assert await served.ep["Total"](items()) == 0
    replies = await served.ep["Echo"](items())
    assert [w async for w in replies] == []


async def test_a_stream_the_server_ends_early_raises_its_error_not_grpcs(
    served: Served,
) -> None:
    """The client was still writing when the server ended the call: its status wins over
    grpc.aio's `Internal error from Core` for the refused write (grpc/grpc#36066)."""
    many = [str(i) for i in range(50)]
    for _ in range(30):  # the race shows in a few per cent of calls
        with pytest.raises(Overdrawn, match="refused 0"):
            async for _w in await served.ep["Refuse"](items(*many)):
                pass
        with pytest.raises(Overdrawn, match="refused 0"):
            await served.ep["RefuseTotal"](items(*range(50)))


async def test_business_error_comes_back_as_the_same_class(served: Served) -> None:
    with pytest.raises(Overdrawn, match="cannot withdraw 7: balance is 0"):
        await served.ep["Withdraw"](served.req("Withdraw", amount=7))


async def test_error_in_the_middle_of_a_stream(served: Served) -> None:
    got = []
    stream = await served.ep["HalfStream"](served.req("HalfStream", n=5))
    with pytest.raises(Overdrawn, match="stopped after 2 of 5"):
        async for i in stream:
            got.append(i)
    assert got == [1, 2]


async def test_unexpected_exception_is_internal_without_traceback(served: Served) -> None:
    with pytest.raises(Internal) as info:
        await served.ep["Crash"](served.req("Crash"))
    # No exception text reaches a caller: only the request id that finds it in the log.
    assert re.fullmatch(r"internal error \(request id [0-9a-f]{32}\)", info.value.message)
    assert "Traceback" not in info.value.message
    assert "\n" not in info.value.message


async def test_malformed_request_is_invalid_argument(served: Served) -> None:
    async with grpc.aio.insecure_channel(target(served.addr)) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(f"/{SERVICE}/Sum")(b"{not json")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed JSON" in (info.value.details() or "")
    assert ("lokit-error", "lokit.INVALID_ARGUMENT") in tuple(info.value.trailing_metadata())
    # and a wrong field type through the lokit client
    r = served.route("Sum")
    with pytest.raises(InvalidArgument):
        await served.client.unary(r.path, {"a": "x", "b": 1}, r.codec)


async def test_request_id_visible_to_endpoint_and_echoed(served: Served) -> None:
    decode = msgspec.json.Decoder(Info).decode
    async with grpc.aio.insecure_channel(target(served.addr)) as ch:
        call = ch.unary_unary(f"/{SERVICE}/Whoami")(
            b"{}", metadata=(("x-request-id", "rid-abc"), ("x-caller-id", "alice"))
        )
        info = decode(await call)
        assert info.request_id == "rid-abc"
        assert info.caller == "alice"
        assert info.transport == "grpc"
        assert info.method == "Whoami"
        assert info.remaining is None
        assert ("x-request-id", "rid-abc") in tuple(await call.trailing_metadata())
        # no id sent: the server makes one, gives it to the endpoint and echoes it
        call = ch.unary_unary(f"/{SERVICE}/Whoami")(b"{}")
        info = decode(await call)
        assert len(info.request_id) == 32
        assert ("x-request-id", info.request_id) in tuple(await call.trailing_metadata())
        # streamed replies echo it in the initial metadata
        scall = ch.unary_stream(f"/{SERVICE}/Count")(
            b'{"n": 1}', metadata=(("x-request-id", "rid-s"),)
        )
        assert ("x-request-id", "rid-s") in tuple(await scall.initial_metadata())
        assert [m async for m in scall] == [b'{"v":0}']


async def test_lokit_client_propagates_request_id_and_caller(served: Served) -> None:
    with context.scope(RequestContext(request_id="rid-up", caller_hint="svc-a")):
        info = await served.ep["Whoami"](served.req("Whoami"))
    assert info.request_id == "rid-up"
    assert info.caller == "svc-a"
    # outside any request a fresh id is sent
    info = await served.ep["Whoami"](served.req("Whoami"))
    assert len(info.request_id) == 32 and info.request_id != "rid-up"


async def test_timeout_reaches_the_server(served: Served) -> None:
    r = served.route("Whoami")
    info = await served.client.unary(r.path, served.req("Whoami"), r.codec, timeout=2.0)
    assert info.remaining is not None and 0 < info.remaining <= 2.0
    # the current request's deadline bounds the outgoing call too
    token = context.with_deadline(1.5)
    try:
        info = await served.client.unary(r.path, served.req("Whoami"), r.codec, timeout=10)
    finally:
        context.reset(token)
    assert info.remaining is not None and 0 < info.remaining <= 1.5


async def test_slow_endpoint_yields_deadline_exceeded(served: Served) -> None:
    r = served.route("Slow")
    with pytest.raises(DeadlineExceeded):
        await served.client.unary(r.path, served.req("Slow", seconds=30.0), r.codec, timeout=0.2)
    # the server is still fine afterwards
    assert await served.ep["Sum"](served.req("Sum", a=1, b=2)) == 3
    # The server enforces the deadline itself: x-request-timeout-ms tightens a far
    # gRPC deadline, and applies without one; the lokit trailer shows the server
    # (not the client's own timer) ended the call.
    async with grpc.aio.insecure_channel(target(served.addr)) as ch:
        slow = ch.unary_unary(r.path)
        for grpc_timeout in (60.0, None):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await slow(
                    b'{"seconds": 30}',
                    timeout=grpc_timeout,
                    metadata=(("x-request-timeout-ms", "100"),),
                )
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            trailers = tuple(info.value.trailing_metadata())
            assert ("lokit-error", DeadlineExceeded.error_name) in trailers


@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
async def test_bad_timeout_header_is_invalid_argument(served: Served, value: str) -> None:
    async with grpc.aio.insecure_channel(target(served.addr)) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(f"/{SERVICE}/Sum")(
                b'{"a": 1, "b": 2}', timeout=30, metadata=(("x-request-timeout-ms", value),)
            )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        f"x-request-timeout-ms must be a number of milliseconds >= 0, not {value!r}"
    )


async def test_overlong_request_id_is_replaced(served: Served) -> None:
    decode = msgspec.json.Decoder(Info).decode
    async with grpc.aio.insecure_channel(target(served.addr)) as ch:
        whoami = ch.unary_unary(f"/{SERVICE}/Whoami")
        info = decode(await whoami(b"{}", metadata=(("x-request-id", "r" * 256),)))
        assert info.request_id == "r" * 256
        info = decode(await whoami(b"{}", metadata=(("x-request-id", "r" * 257),)))
        assert len(info.request_id) == 32


async def test_health_check_serving(served: Served) -> None:
    async with grpc.aio.insecure_channel(target(served.addr)) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("", SERVICE):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_cancelled_server_stream_closes_the_generator(served: Served) -> None:
    stream = await served.ep["Forever"](served.req("Forever"))
    got = [await anext(stream) for _ in range(3)]
    assert got == [0, 1, 2]
    await stream.aclose()
    await asyncio.wait_for(served.svc.stream_closed.wait(), 10)


async def test_stop_lets_an_in_flight_call_finish(tmp_path: Path) -> None:
    svc = Svc()
    server = GrpcServer(service_def(svc), NullObserver())
    path = tmp_path / "stop.sock"
    (bound,) = await server.start([parse(f"unix:{path}")])
    client = GrpcClient(bound)
    routes = {r.method.name: r for r in routes_of(svc)}
    r = routes["Slow"]
    try:
        call = asyncio.create_task(
            client.unary(r.path, r.method.request_type(seconds=0.3), r.codec)
        )
        await asyncio.wait_for(svc.slow_started.wait(), 10)
        await server.stop(grace=10)
        assert await call == 0.3
        assert not path.exists()
    finally:
        await client.close()
        await server.stop()


async def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # leaves a socket file nobody listens on
    svc = Svc()
    server = GrpcServer(service_def(svc), NullObserver())
    (bound,) = await server.start([parse(f"unix:{path}")])
    client = GrpcClient(bound)
    try:
        eps = client.endpoints(routes_of(svc))
        assert await eps["Sum"](sum_request(svc, 2, 2)) == 4
    finally:
        await client.close()
        await server.stop()
    assert not path.exists()


async def test_second_server_on_live_socket_is_refused(tmp_path: Path) -> None:
    addr = parse(f"unix:{tmp_path}/live.sock")
    first = GrpcServer(service_def(Svc()), NullObserver())
    await first.start([addr])
    try:
        second = GrpcServer(service_def(Svc()), NullObserver())
        with pytest.raises(AddressError, match="another server is running there"):
            await second.start([addr])
        # the first server still owns and serves its socket
        client = GrpcClient(addr)
        try:
            eps = client.endpoints(routes_of(Svc()))
            assert await eps["Sum"](sum_request(Svc(), 1, 1)) == 2
        finally:
            await client.close()
    finally:
        await first.stop()


async def test_second_server_on_same_tcp_port_is_refused() -> None:
    first = GrpcServer(service_def(Svc()), NullObserver())
    (bound,) = await first.start([parse("127.0.0.1:0")])
    assert bound.port
    try:
        second = GrpcServer(service_def(Svc()), NullObserver())
        with pytest.raises(AddressError, match="the port is already in use"):
            await second.start([bound])
    finally:
        await first.stop()


async def test_serves_several_addresses_at_once(tmp_path: Path) -> None:
    svc = Svc()
    server = GrpcServer(service_def(svc), NullObserver())
    bound = await server.start([parse(f"unix:{tmp_path}/a.sock"), parse("127.0.0.1:0")])
    try:
        for addr in bound:
            client = GrpcClient(addr)
            try:
                eps = client.endpoints(routes_of(svc))
                assert await eps["Sum"](sum_request(svc, 3, 4)) == 7
            finally:
                await client.close()
    finally:
        await server.stop()


async def test_missing_socket_is_unavailable_at_once(tmp_path: Path) -> None:
    addr = f"unix:{tmp_path}/missing.sock"
    client = GrpcClient(addr, timeout=60)
    r = route_named(Svc(), "Sum")
    try:
        async with asyncio.timeout(10):  # fail-fast: no wait_for_ready
            with pytest.raises(Unavailable, match=f"service at {addr} is unavailable: "):
                await client.unary(r.path, sum_request(Svc(), 1, 2), r.codec)
    finally:
        await client.close()


async def test_refused_tcp_port_is_unavailable() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    client = GrpcClient(f"127.0.0.1:{port}", name="adder")
    r = route_named(Svc(), "Sum")
    try:
        with pytest.raises(Unavailable, match=f"service adder at 127.0.0.1:{port} is unavailable"):
            await client.unary(r.path, sum_request(Svc(), 1, 2), r.codec)
    finally:
        await client.close()


class ReplyErr(msgspec.Struct, omit_defaults=True):
    v: int = 0
    err: str = ""


class ErrInReplyCodec:
    """Go kit addsvc style: business errors travel inside an OK reply."""

    def __init__(self, method: Method) -> None:
        self._req = JsonCodec(method)
        self._dec = msgspec.json.Decoder(ReplyErr)

    def decode_request(self, data: bytes) -> Any:
        return self._req.decode_request(data)

    def encode_request(self, request: Any) -> bytes:
        return msgspec.json.encode(request)

    def decode_response(self, data: bytes) -> Any:
        reply = self._dec.decode(data)
        if reply.err:
            raise Overdrawn(reply.err)
        return reply.v

    def encode_response(self, response: Any) -> bytes:
        return msgspec.json.encode(ReplyErr(v=response))

    def encode_error(self, error: Error) -> bytes | None:
        return (
            msgspec.json.encode(ReplyErr(err=error.message))
            if isinstance(error, Overdrawn)
            else None
        )


async def test_business_error_inside_an_ok_reply(tmp_path: Path) -> None:
    svc = Svc()
    methods = [m for m in describe(svc) if m.name == "Withdraw"]
    codec = ErrInReplyCodec(methods[0])
    routes = grpc_routes(SERVICE, methods, {"Withdraw": codec})
    server = GrpcServer(ServiceDef(name="test", grpc=routes), NullObserver())
    (bound,) = await server.start([parse(f"unix:{tmp_path}/e.sock")])
    try:
        async with grpc.aio.insecure_channel(target(str(bound))) as ch:
            raw = await ch.unary_unary(f"/{SERVICE}/Withdraw")(b'{"amount": 3}')
        assert msgspec.json.decode(raw) == {"err": "cannot withdraw 3: balance is 0"}
        client = GrpcClient(bound)
        try:
            with pytest.raises(Overdrawn, match="cannot withdraw 4"):
                await client.endpoints(routes)["Withdraw"](methods[0].request_type(amount=4))
        finally:
            await client.close()
    finally:
        await server.stop()


async def failing_requests() -> AsyncIterator[int]:
    yield 1
    raise ValueError("the producer broke")


async def test_request_stream_error_reaches_the_caller(served: Served) -> None:
    with pytest.raises(ValueError, match="the producer broke"):
        await served.ep["Total"](failing_requests())
    replies = await served.ep["Echo"](failing_requests())
    with pytest.raises(ValueError, match="the producer broke"):
        async for _ in replies:
            pass


async def test_expired_deadline_fails_before_calling(served: Served) -> None:
    token = context.with_deadline(-1)
    try:
        with pytest.raises(DeadlineExceeded, match="the deadline has passed"):
            await served.ep["Sum"](served.req("Sum", a=1, b=1))
    finally:
        context.reset(token)


async def test_relative_unix_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    svc = Svc()
    server = GrpcServer(service_def(svc), NullObserver())
    (bound,) = await server.start([parse("unix:run/rel.grpc.sock")])
    assert str(bound) == "unix:run/rel.grpc.sock"
    assert (tmp_path / "run" / "rel.grpc.sock").is_socket()
    client = GrpcClient("unix:run/rel.grpc.sock")
    try:
        assert await client.endpoints(routes_of(svc))["Sum"](sum_request(svc, 5, 5)) == 10
    finally:
        await client.close()
        await server.stop()
    assert not (tmp_path / "run" / "rel.grpc.sock").exists()


class Recorded:
    def __init__(self, log: list[tuple[str, BaseException | None]], ctx: RequestContext) -> None:
        self.log = log
        self.ctx = ctx

    def finish(self, error: BaseException | None = None) -> None:
        self.log.append((self.ctx.method, error))


class RecordingObserver:
    def __init__(self) -> None:
        self.log: list[tuple[str, BaseException | None]] = []
        self.contexts: list[RequestContext] = []

    def start(self, ctx: RequestContext) -> Recorded:
        self.contexts.append(ctx)
        return Recorded(self.log, ctx)


async def test_observer_sees_each_call_once_with_its_error(tmp_path: Path) -> None:
    svc = Svc()
    observer = RecordingObserver()
    server = GrpcServer(service_def(svc), observer)
    (bound,) = await server.start([parse(f"unix:{tmp_path}/o.sock")])
    client = GrpcClient(bound)
    eps = client.endpoints(routes_of(svc))
    req = {r.method.name: r.method.request_type for r in routes_of(svc)}
    try:
        assert await eps["Sum"](req["Sum"](a=1, b=2)) == 3
        with pytest.raises(Overdrawn):
            await eps["Withdraw"](req["Withdraw"](amount=1))
        with pytest.raises(Internal):
            await eps["Crash"](req["Crash"]())
        stream = await eps["Count"](req["Count"](n=3))
        assert [i async for i in stream] == [0, 1, 2]
        with pytest.raises(InvalidArgument):
            await client.unary(f"/{SERVICE}/Sum", {"a": "no"}, route_named(svc, "Sum").codec)
    finally:
        await client.close()
        await server.stop()
    kinds = [(m, type(e).__name__ if e else None) for m, e in observer.log]
    assert kinds == [
        ("Sum", None),
        ("Withdraw", "Overdrawn"),
        ("Crash", "ValueError"),  # the original exception, for the log's traceback
        ("Count", None),
        ("Sum", "InvalidArgument"),  # decoding happens inside the observed region
    ]
    assert {(c.service, c.transport) for c in observer.contexts} == {("test", "grpc")}


async def test_stop_reports_not_serving_first(tmp_path: Path) -> None:
    server = GrpcServer(service_def(Svc()), NullObserver())
    (bound,) = await server.start([parse(f"unix:{tmp_path}/h.sock")])
    async with grpc.aio.insecure_channel(target(str(bound))) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(server.stop(grace=0.2))
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping
