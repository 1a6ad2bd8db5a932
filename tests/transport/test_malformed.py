"""Malformed request bodies are INVALID_ARGUMENT / 400 on both transports, never INTERNAL / 500.

Invalid UTF-8 made msgspec raise UnicodeDecodeError and JSON nested past its
depth limit a RecursionError; neither is a msgspec.DecodeError, so the derived
codec let them through and the transports answered INTERNAL. The services keep
JSON on gRPC (`codec="json"`) to send it malformed JSON there too (malformed
protobuf: tests/protobuf/test_grpc.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

import lokit
from lokit.examples.greeter import Greeter
from lokit.runtime import Listeners, Runtime

DEEP = b"[" * 10_000 + b"]" * 10_000
BAD_UTF8 = b'{"name":"\xff\xfe"}'
SURROGATE = b'{"value":"\xed\xa0\x80"}'


class Echo:
    async def echo(self, value: Any) -> Any:
        return value


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    out: dict[str, Any] = {}
    runtimes = []
    for name, impl in (("greeter", Greeter()), ("echo", Echo())):
        grpc_addr, http_addr = f"unix:{tmp_path}/{name}.g.sock", f"unix:{tmp_path}/{name}.h.sock"
        service = lokit.define(name, impl, codec="json")
        rt = Runtime(service, Listeners([grpc_addr], [http_addr], None, 1.0))
        await rt.start()
        runtimes.append(rt)
        out[name] = (rt, grpc_addr, http_addr)
    try:
        yield out
    finally:
        for rt in runtimes:
            await rt.stop()


def _route(routes: list[Any]) -> str:
    """The path of the service's Greet / Echo route."""
    path: str = next(r.path for r in routes if r.method.name in ("Greet", "Echo"))
    return path


async def _http(addr: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    conn = aiohttp.UnixConnector(path=addr.removeprefix("unix:"))
    async with (
        aiohttp.ClientSession(connector=conn) as s,
        s.post("http://localhost" + path, data=body) as r,
    ):
        return r.status, await r.json(content_type=None)


async def _grpc(addr: str, path: str, body: bytes) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(addr) as ch:
        call = ch.unary_unary(path)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(body, timeout=5)
    return info.value


CASES = [
    ("greeter", BAD_UTF8, "not valid UTF-8"),
    ("echo", b'{"value":"\xff"}', "not valid UTF-8"),
    ("echo", SURROGATE, "not valid UTF-8"),
    ("echo", b'{"value":' + DEEP + b"}", "nested too deeply"),
    ("echo", b'{"value":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001, "nested too deeply"),
    ("greeter", b'{"name":' + DEEP + b"}", "invalid request"),
    ("greeter", DEEP, "invalid request"),
]


@pytest.mark.parametrize(("service", "body", "says"), CASES)
async def test_http_answers_400(
    servers: dict[str, Any], service: str, body: bytes, says: str
) -> None:
    rt, _, http_addr = servers[service]
    path = _route(rt.service.http)
    status, reply = await _http(http_addr, path, body)
    assert status == 400, reply
    assert says in reply["error"]
    assert "\n" not in reply["error"]


@pytest.mark.parametrize(("service", "body", "says"), CASES)
async def test_grpc_answers_invalid_argument(
    servers: dict[str, Any], service: str, body: bytes, says: str
) -> None:
    rt, grpc_addr, _ = servers[service]
    err = await _grpc(grpc_addr, _route(rt.service.grpc), body)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert says in (err.details() or "")


async def test_ndjson_request_line_with_bad_utf8_is_400(tmp_path: Path) -> None:
    class Summer:
        async def total(self, items: AsyncIterator[Any]) -> int:
            return len([i async for i in items])

    http_addr = f"unix:{tmp_path}/s.sock"
    summer = lokit.define("summer", Summer(), codec="json")  # Any has no protobuf form
    rt = Runtime(summer, Listeners([], [http_addr], None, 1.0))
    await rt.start()
    try:
        status, reply = await _http(http_addr, "/total", b'1\n"\xff"\n2\n')
        assert status == 400, reply
        assert "not valid UTF-8" in reply["error"]
    finally:
        await rt.stop()


async def test_well_formed_requests_still_pass(servers: dict[str, Any]) -> None:
    _, _, http_addr = servers["echo"]
    status, reply = await _http(http_addr, "/echo", b'{"value":' + b"[" * 100 + b"]" * 100 + b"}")
    assert status == 200
    _, _, greet_http = servers["greeter"]
    status, reply = await _http(greet_http, "/greet", '{"name":"ünï"}'.encode())
    assert (status, reply) == (200, {"v": "hello, ünï"})
