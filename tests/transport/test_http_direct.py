"""Unary requests lokit's protocol answers without an ASGI cycle (`transport.http.direct`).

Each request is sent as raw bytes over a real Unix socket to a real HttpServer:
once in the form the direct path takes (a Content-Length body) and once in a form
that goes through ASGI (a chunked body), and both answers must be the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lokit.observability.observer import NullObserver
from lokit.routes import ServiceDef
from lokit.transport.address import parse
from lokit.transport.http import HttpServer, asgi_app
from lokit.transport.http.app import HttpApp
from lokit.transport.http.direct import response
from tests.transport.test_http_transport import Svc, build  # the HTTP tests' service

Reply = tuple[int, dict[str, str], bytes]


class Wire:
    """One keep-alive connection speaking raw HTTP/1.1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> Reply:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    async def call(self, data: bytes) -> Reply:
        self.writer.write(data)
        return await self.reply()

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""


@pytest.fixture
async def wire(tmp_path: Path) -> AsyncIterator[tuple[Svc, HttpServer, Wire]]:
    svc = Svc()
    server = HttpServer(asgi_app(ServiceDef("test.v1.Direct", http=build(svc)), NullObserver()))
    (bound,) = await server.start([parse(f"unix:{tmp_path}/d.sock")])
    assert bound.path is not None
    reader, writer = await asyncio.open_unix_connection(bound.path)
    try:
        yield svc, server, Wire(reader, writer)
    finally:
        writer.close()
        await server.stop()


def sized(path: str, body: bytes, *headers: str) -> bytes:
    extra = "".join(h + "\r\n" for h in headers)
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def chunked(path: str, body: bytes, *headers: str) -> bytes:
    extra = "".join(h + "\r\n" for h in headers)
    return (
        (
            f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"transfer-encoding: chunked\r\n{extra}\r\n{len(body):x}\r\n"
        ).encode()
        + body
        + b"\r\n0\r\n\r\n"
    )


def comparable(reply: Reply) -> Reply:
    status, headers, body = reply
    return status, {k: v for k, v in headers.items() if k not in ("date", "x-request-id")}, body


def test_only_unary_routes_are_direct() -> None:
    app = asgi_app(ServiceDef("test.v1.Direct", http=build(Svc())), NullObserver())
    assert isinstance(app, HttpApp)
    found = app.direct_target(b"POST", b"/sum")
    assert found is not None and found[0].name == "Sum"
    assert app.direct_target(b"POST", b"/count") is None  # a stream
    assert app.direct_target(b"POST", b"/sum?x=1") is None  # a query string
    assert app.direct_target(b"GET", b"/sum") is None  # no such route
    found = app.direct_target(b"GET", b"/items/7")
    assert found is not None and found[0].name == "GetItem" and found[1] == {"item_id": "7"}
    assert app.direct_target(b"GET", b"/items/7?verbose=1") is None


async def test_a_path_parameter_route_is_answered_directly_as_by_asgi(
    wire: tuple[Svc, HttpServer, Wire],
) -> None:
    _, _, w = wire
    direct = await w.call(b"GET /items/7 HTTP/1.1\r\nhost: x\r\nx-request-id: r\r\n\r\n")
    via_asgi = await w.call(b"GET /items/7? HTTP/1.1\r\nhost: x\r\nx-request-id: r\r\n\r\n")
    assert direct[2] == b'{"v":"item 7"}'
    assert comparable(direct) == comparable(via_asgi)
    bad = await w.call(b"GET /items/x HTTP/1.1\r\nhost: x\r\n\r\n")
    assert bad[0] == 400


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/sum", b'{"a":1,"b":2}', 200),
        ("/sum", b'{"a":1', 400),  # malformed JSON
        ("/sum", b'{"a":"x","b":2}', 400),  # a field of the wrong type
        ("/invalid", b'{"n":-1}', 400),  # the endpoint's own lokit error
        ("/crash", b"{}", 500),  # an unexpected failure: no detail
    ],
)
async def test_a_direct_answer_is_the_asgi_answer(
    wire: tuple[Svc, HttpServer, Wire], path: str, body: bytes, status: int
) -> None:
    _, _, w = wire
    direct = await w.call(sized(path, body, "x-request-id: rid-1"))
    via_asgi = await w.call(chunked(path, body, "x-request-id: rid-1"))
    assert direct[0] == status
    assert comparable(direct) == comparable(via_asgi)
    assert direct[1]["x-request-id"] == via_asgi[1]["x-request-id"] == "rid-1"
    assert "date" in direct[1]
    if status == 500:
        assert b"secret" not in direct[2]


async def test_pipelined_requests_are_answered_in_order(
    wire: tuple[Svc, HttpServer, Wire],
) -> None:
    _, _, w = wire
    w.writer.write(
        sized("/sum", b'{"a":1,"b":1}')
        + sized("/sum", b'{"a":2,"b":2}')
        + sized("/sum", b'{"a":3,"b":3}')
    )
    bodies = [(await w.reply())[2] for _ in range(3)]
    assert bodies == [b'{"v":2}', b'{"v":4}', b'{"v":6}']


async def test_expect_100_continue_takes_the_asgi_path_and_works(
    wire: tuple[Svc, HttpServer, Wire],
) -> None:
    _, _, w = wire
    body = b'{"a":2,"b":3}'
    head = sized("/sum", body, "expect: 100-continue")[: -len(body)]
    w.writer.write(head)
    interim = await asyncio.wait_for(w.reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    w.writer.write(body)
    status, _, answer = await w.reply()
    assert (status, answer) == (200, b'{"v":5}')


async def test_connection_close_is_honoured(wire: tuple[Svc, HttpServer, Wire]) -> None:
    _, _, w = wire
    status, headers, body = await w.call(sized("/sum", b'{"a":1,"b":2}', "connection: close"))
    assert (status, headers["connection"], body) == (200, "close", b'{"v":3}')
    assert await w.closed()


async def test_http_1_0_is_served_and_closed(wire: tuple[Svc, HttpServer, Wire]) -> None:
    _, _, w = wire
    data = sized("/sum", b'{"a":1,"b":2}').replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    status, _, body = await w.call(data)
    assert (status, body) == (200, b'{"v":3}')
    assert await w.closed()


async def test_a_stop_lets_a_direct_request_finish_then_closes(
    wire: tuple[Svc, HttpServer, Wire],
) -> None:
    svc, server, w = wire
    w.writer.write(sized("/gated", b"{}"))
    await asyncio.wait_for(svc.started.wait(), 5)
    stopping = asyncio.create_task(server.stop())
    await asyncio.sleep(0.05)
    svc.release.set()
    status, headers, body = await w.reply()
    assert (status, body, headers["connection"]) == (200, b'{"v":"finished"}', "close")
    await stopping


async def test_a_client_gone_mid_request_leaves_the_server_serving(
    wire: tuple[Svc, HttpServer, Wire], tmp_path: Path
) -> None:
    svc, _, w = wire
    w.writer.write(sized("/gated", b"{}"))
    await asyncio.wait_for(svc.started.wait(), 5)
    w.writer.close()
    svc.release.set()
    reader, writer = await asyncio.open_unix_connection(f"{tmp_path}/d.sock")
    try:
        assert (await Wire(reader, writer).call(sized("/sum", b'{"a":1,"b":2}')))[2] == b'{"v":3}'
    finally:
        writer.close()


class _BrokenObserver:
    """An observer whose start fails: a fault in the serving steps, not in the endpoint."""

    def start(self, ctx: object) -> NullObserver:
        raise RuntimeError("observer broke")


async def test_a_fault_in_serving_is_a_500_with_the_request_id_and_a_close(
    tmp_path: Path,
) -> None:
    app = asgi_app(ServiceDef("test.v1.Direct", http=build(Svc())), _BrokenObserver())  # type: ignore[arg-type]
    server = HttpServer(app)
    (bound,) = await server.start([parse(f"unix:{tmp_path}/f.sock")])
    assert bound.path is not None
    reader, writer = await asyncio.open_unix_connection(bound.path)
    try:
        w = Wire(reader, writer)
        status, headers, body = await w.call(sized("/sum", b'{"a":1,"b":2}', "x-request-id: r9"))
        assert (status, headers["x-lokit-error"], headers["connection"]) == (
            500,
            "lokit.INTERNAL",
            "close",
        )
        assert b"r9" in body and b"observer broke" not in body
        assert await w.closed()
    finally:
        writer.close()
        await server.stop()


def test_response_bytes() -> None:
    out = response(200, b"{}", b"r1", ((b"retry-after", b"2"),), [(b"date", b"D")], False)
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
        b"date: D\r\nx-request-id: r1\r\nretry-after: 2\r\nconnection: close\r\n\r\n{}"
    )
