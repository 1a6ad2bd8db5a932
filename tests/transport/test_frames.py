"""lokit frames: the local protocol's server and client, over real Unix sockets."""

from __future__ import annotations

import asyncio
import getpass
import io
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lokit import context, errors
from lokit.derive import describe
from lokit.observability.logs import configure_logging
from lokit.observability.observer import NullObserver, Observer
from lokit.observability.request import RequestObserver
from lokit.routes import HttpRoute, ServiceDef, http_routes
from lokit.transport.address import parse
from lokit.transport.frames import wire
from lokit.transport.frames.client import FramesClient
from lokit.transport.frames.server import FramesServer
from lokit.transport.limits import Limits

SERVICE = "test.v1.Frames"
Served = tuple["Svc", FramesServer, FramesClient]


class Svc:
    """Sum, a slow call, the request's context, a business error, a stream."""

    def __init__(self) -> None:
        self.finished = 0

    async def sum(self, a: int, b: int) -> int:
        return a + b

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        self.finished += 1
        return "done"

    async def whoami(self) -> list[str]:
        ctx = context.current()
        assert ctx is not None
        caller = "" if ctx.caller is None else f"{ctx.caller.source}:{ctx.caller.name}"
        left = "" if ctx.deadline is None else "deadline"
        return [ctx.request_id, caller, ctx.caller_hint or "", left]

    async def missing(self, key: str) -> str:
        raise errors.NotFound(f"no key {key}")

    async def broken(self) -> str:
        raise RuntimeError("a secret detail")

    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


def routes(svc: Svc) -> dict[str, HttpRoute]:
    return {r.method.name: r for r in http_routes(describe(svc))}


async def serve(
    tmp_path: Path, svc: Svc, limits: Limits | None = None, observer: Observer | None = None
) -> tuple[FramesServer, str]:
    service = ServiceDef(SERVICE, http=list(routes(svc).values()))
    server = FramesServer(service, observer or NullObserver(), limits=limits, graceful_timeout=2.0)
    (bound,) = await server.start([parse(f"unix:{tmp_path}/svc.frames.sock")])
    return server, str(bound)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    svc = Svc()
    server, addr = await serve(tmp_path, svc)
    client = FramesClient(addr)
    try:
        yield svc, server, client
    finally:
        await client.close()
        await server.stop()


def call(client: FramesClient, svc: Svc, name: str, request: Any, **kw: Any) -> Any:
    return client.unary(routes(svc)[name], request, **kw)


def req(svc: Svc, name: str, **fields: Any) -> Any:
    return routes(svc)[name].method.request_type(**fields)


async def test_unary_calls_share_one_connection(served: Served) -> None:
    svc, _, client = served
    assert await call(client, svc, "Sum", req(svc, "Sum", a=1, b=2)) == 3
    results = await asyncio.gather(
        *(call(client, svc, "Sum", req(svc, "Sum", a=i, b=1)) for i in range(50))
    )
    assert results == [i + 1 for i in range(50)]


async def test_answers_come_as_each_call_finishes(
    served: Served,
) -> None:
    svc, _, client = served
    slow = asyncio.ensure_future(call(client, svc, "Slow", req(svc, "Slow", seconds=0.5)))
    await asyncio.sleep(0.05)
    assert await call(client, svc, "Sum", req(svc, "Sum", a=2, b=2)) == 4
    assert not slow.done()  # the quick call did not wait behind the slow one
    assert await slow == "done"


async def test_context_travels_with_the_call(served: Served) -> None:
    svc, _, client = served
    ctx = context.RequestContext("rid-42", "caller.v1.X", "Go", "http", None, None, None, "")
    token = context.set_current(ctx)
    try:
        rid, caller, _, left = await call(client, svc, "Whoami", req(svc, "Whoami"), timeout=5.0)
    finally:
        context.reset(token)
    assert rid == "rid-42"
    assert caller == f"unix:{getpass.getuser()}"  # SO_PEERCRED, not a header
    assert left == "deadline"


async def test_errors_raise_the_servers_class(served: Served) -> None:
    svc, _, client = served
    with pytest.raises(errors.NotFound, match="no key k1"):
        await call(client, svc, "Missing", req(svc, "Missing", key="k1"))
    with pytest.raises(errors.Internal) as info:
        await call(client, svc, "Broken", req(svc, "Broken"))
    assert "secret" not in str(info.value)
    with pytest.raises(errors.Unimplemented, match="Count streams; call it over HTTP or gRPC"):
        await client.unary(routes(svc)["Count"], req(svc, "Count", n=1))
    # The connection is still good after errors.
    assert await call(client, svc, "Sum", req(svc, "Sum", a=1, b=1)) == 2


async def test_deadline_is_enforced_by_the_client(
    served: Served,
) -> None:
    svc, _, client = served
    with pytest.raises(errors.DeadlineExceeded, match=r"did not answer within 0\.1s"):
        await call(client, svc, "Slow", req(svc, "Slow", seconds=5.0), timeout=0.1)
    assert await call(client, svc, "Sum", req(svc, "Sum", a=1, b=1)) == 2


async def test_an_unreachable_socket_is_unavailable(tmp_path: Path) -> None:
    client = FramesClient(f"unix:{tmp_path}/none.frames.sock")
    with pytest.raises(errors.Unavailable, match="cannot connect"):
        await client.unary(routes(Svc())["Sum"], req(Svc(), "Sum", a=1, b=1))


async def test_the_client_dials_again_after_a_restart(tmp_path: Path) -> None:
    svc = Svc()
    server, addr = await serve(tmp_path, svc)
    client = FramesClient(addr)
    try:
        assert await call(client, svc, "Sum", req(svc, "Sum", a=1, b=1)) == 2
        await server.stop()
        server, _ = await serve(tmp_path, svc)
        await asyncio.sleep(0.05)  # the old connection's close reaches the client
        assert await call(client, svc, "Sum", req(svc, "Sum", a=2, b=1)) == 3
    finally:
        await client.close()
        await server.stop()


async def test_stop_lets_calls_in_flight_finish(served: Served) -> None:
    svc, server, client = served
    slow = asyncio.ensure_future(call(client, svc, "Slow", req(svc, "Slow", seconds=0.3)))
    await asyncio.sleep(0.05)
    await server.stop()
    assert await slow == "done"
    assert svc.finished == 1


async def test_the_request_line_says_frames(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(level="info", stream=out)
    try:
        svc = Svc()
        server, addr = await serve(tmp_path, svc, observer=RequestObserver(SERVICE))
        client = FramesClient(addr)
        assert await call(client, svc, "Sum", req(svc, "Sum", a=1, b=2)) == 3
        await client.close()
        await server.stop()
    finally:
        configure_logging(level="info")
    line = out.getvalue()
    assert "transport=frames" in line and "method=Sum" in line and "code=OK" in line


def raw(path: str, data: bytes) -> bytes:
    """What the server answers `data` with, up to its close."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_an_http_client_is_told_where_http_is(tmp_path: Path) -> None:
    server, _ = await serve(tmp_path, Svc())
    try:
        answer = await asyncio.to_thread(
            raw, f"{tmp_path}/svc.frames.sock", b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
        )
    finally:
        await server.stop()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")
    assert f"call HTTP at unix:{tmp_path}/svc.http.sock".encode() in answer


async def test_malformed_and_oversized_frames_end_the_connection(tmp_path: Path) -> None:
    server, _ = await serve(tmp_path, Svc(), limits=Limits(max_body_bytes=1024))
    path = f"{tmp_path}/svc.frames.sock"
    try:
        bad = await asyncio.to_thread(raw, path, wire.PREFACE + wire.LENGTH.pack(3) + b"abc")
        huge = await asyncio.to_thread(  # too large, and not even a request's head
            raw, path, wire.PREFACE + wire.LENGTH.pack(10_000_000) + b"x" * wire.ID_BYTES
        )
    finally:
        await server.stop()
    rid, code, message, name, _ = wire.ANSWERS.decode(bad[wire.LENGTH.size :])
    assert (rid, code, name) == (0, errors.Code.INVALID_ARGUMENT, "lokit.INVALID_ARGUMENT")
    assert message.startswith(b"malformed request frame")
    rid, code, message, _, _ = wire.ANSWERS.decode(huge[wire.LENGTH.size :])
    assert (rid, code) == (0, errors.Code.RESOURCE_EXHAUSTED)
    assert b"a frame of 10000000 bytes is over this server's limit" in message


async def test_a_request_over_the_limit_fails_alone(tmp_path: Path) -> None:
    svc = Svc()
    server, addr = await serve(tmp_path, svc, limits=Limits(max_body_bytes=1024))
    client = FramesClient(addr)
    try:
        slow = asyncio.ensure_future(call(client, svc, "Slow", req(svc, "Slow", seconds=0.3)))
        await asyncio.sleep(0.05)
        with pytest.raises(errors.ResourceExhausted, match="over this server's limit"):
            await call(client, svc, "Missing", req(svc, "Missing", key="k" * 200_000))
        assert await slow == "done"  # the call beside it, on the same connection
        assert await call(client, svc, "Sum", req(svc, "Sum", a=1, b=1)) == 2
    finally:
        await client.close()
        await server.stop()


async def test_a_silent_connection_is_closed_after_the_header_timeout(tmp_path: Path) -> None:
    server, _ = await serve(tmp_path, Svc(), limits=Limits(header_timeout=0.2))
    try:
        answer = await asyncio.to_thread(raw, f"{tmp_path}/svc.frames.sock", b"")
    finally:
        await server.stop()
    assert answer == b""  # closed, once overdue, without a word


async def test_an_idle_connection_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    server, _ = await serve(tmp_path, Svc(), limits=Limits(idle_timeout=0.3))
    payload = wire.ENCODER.encode((1, "Sum", "rid-1", None, None, None, b'{"a":1,"b":2}'))
    try:  # one call, then silence: the answer, then the close (`raw` reads up to it)
        answer = await asyncio.to_thread(
            raw,
            f"{tmp_path}/svc.frames.sock",
            wire.PREFACE + wire.LENGTH.pack(len(payload)) + payload,
        )
    finally:
        await server.stop()
    assert wire.ANSWERS.decode(answer[wire.LENGTH.size :]) == (1, 0, b'{"v":3}', None, None)


async def test_frames_are_for_unix_sockets_only() -> None:
    server = FramesServer(ServiceDef(SERVICE), NullObserver())
    with pytest.raises(Exception, match="Unix sockets only"):
        await server.start([parse("127.0.0.1:0")])


async def test_the_runtime_serves_frames_and_connect_uses_them(tmp_path: Path) -> None:
    import lokit
    from lokit.examples.greeter import Greeter, NameRequired
    from lokit.runtime import Listeners, Runtime

    runtime = Runtime(
        lokit.define("greeter", Greeter()), Listeners(http=[f"unix:{tmp_path}/g.http.sock"])
    )
    await runtime.start()
    try:
        assert [k for k, _ in runtime.bound] == ["http", "frames"]
        conn = lokit.connect(Greeter, f"unix:{tmp_path}/g")
        async with conn as greeter:
            assert (conn.protocol, conn.address) == ("frames", f"unix:{tmp_path}/g.frames.sock")
            assert await greeter.greet("ada") == "hello, ada"  # over frames
            assert [i async for i in greeter.countdown(3)] == [3, 2, 1]  # a stream: HTTP
            with pytest.raises(NameRequired):
                await greeter.greet("")
    finally:
        await runtime.stop()
    assert not (tmp_path / "g.frames.sock").exists()


async def test_no_frames_leaves_http_alone(tmp_path: Path) -> None:
    import lokit
    from lokit.examples.greeter import Greeter
    from lokit.runtime import Listeners, Runtime

    listeners = Listeners(http=[f"unix:{tmp_path}/g.http.sock"], frames=False)
    runtime = Runtime(lokit.define("greeter", Greeter()), listeners)
    await runtime.start()
    try:
        assert [k for k, _ in runtime.bound] == ["http"]
        conn = lokit.connect(Greeter, f"unix:{tmp_path}/g")
        async with conn as greeter:
            assert conn.protocol == "http"
            assert await greeter.greet("ada") == "hello, ada"
    finally:
        await runtime.stop()


def test_a_frames_id_is_read_from_its_first_bytes() -> None:
    for rid in (1, 127, 128, 300, 70_000, 2**40):
        payload = wire.ENCODER.encode((rid, "Sum", "r", None, None, None, b"{}"))
        assert wire.frame_id(payload[: wire.ID_BYTES]) == rid
    assert wire.frame_id(b"GET / HTTP") is None
