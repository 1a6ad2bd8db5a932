"""A limited service: 429 + Retry-After on HTTP, RESOURCE_EXHAUSTED + retry-after on gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import orjson
import pytest

import lokit
from lokit.errors import ResourceExhausted
from lokit.examples.greeter import Greeter
from lokit.ratelimit import RateLimit, ingress
from lokit.runtime import Extension, Listeners, Runtime


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    grpc_addr, http_addr = f"unix:{tmp_path}/g.sock", f"unix:{tmp_path}/h.sock"
    limit = RateLimit(None, {"greet": "2/minute", "countdown": "1/minute"})
    ext = Extension(middleware=ingress(limit), lifespan=limit.lifespan)
    rt = Runtime(
        lokit.define("greeter", Greeter()),
        Listeners([grpc_addr], [http_addr], None, 1.0),
        (ext,),
    )
    await rt.start()
    try:
        yield grpc_addr, http_addr
    finally:
        await rt.stop()


async def test_http_429_with_retry_after(served: tuple[str, str]) -> None:
    _, http_addr = served
    connector = aiohttp.UnixConnector(path=http_addr.removeprefix("unix:"))
    async with aiohttp.ClientSession(connector=connector) as client:
        for _ in range(2):
            async with client.post("http://greeter/greet", json={"name": "ada"}) as ok:
                assert ok.status == 200
        async with client.post("http://greeter/greet", json={"name": "ada"}) as refused:
            assert refused.status == 429
            assert orjson.loads(await refused.read()) == {"error": "rate limit exceeded"}
            after = int(refused.headers["retry-after"])
        assert 1 <= after <= 60
        # A stream is limited when it starts, with the same answer.
        async with client.post("http://greeter/countdown", json={"n": 2}) as streamed:
            assert streamed.status == 200
        async with client.post("http://greeter/countdown", json={"n": 2}) as refused:
            assert refused.status == 429
            assert orjson.loads(await refused.read()) == {"error": "rate limit exceeded"}
            assert int(refused.headers["retry-after"]) >= 1


async def test_grpc_resource_exhausted_with_retry_after(served: tuple[str, str]) -> None:
    grpc_addr, _ = served
    async with lokit.connect(Greeter, grpc=grpc_addr, name="greeter") as g:
        assert await g.greet("ada") == "hello, ada"
        assert await g.greet("bob") == "hello, bob"
        with pytest.raises(ResourceExhausted, match="rate limit exceeded"):
            await g.greet("cy")
    greet = lokit.contract("greeter", Greeter).grpc_route("Greet")
    request = greet.codec.encode_request(greet.method.request_type("dee"))  # protobuf
    async with grpc.aio.insecure_channel(grpc_addr) as channel:
        call = channel.unary_unary(greet.path)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(info.value.trailing_metadata() or ())
        assert 1 <= int(trailers["retry-after"]) <= 60
