"""The pb codecs on real gRPC over a Unix socket.

A minimal generic handler stands in for lokit's gRPC transport (bytes in, the
route's codec, the endpoint, bytes out); the other side is the generated
`AddStub`, exactly what a Go kit client speaks, and a raw channel using the
codecs' client half, as a lokit client does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lokit.errors import Error, Unavailable
from lokit.examples.addsvc.contract import addsvc_contract
from lokit.examples.addsvc.definition import addsvc_definition
from lokit.examples.addsvc.service import TeapotError, TwoZeroesError
from lokit.proto import addsvc_pb2, addsvc_pb2_grpc
from lokit.routes import GrpcRoute


def handler(route: GrpcRoute) -> grpc.RpcMethodHandler:
    codec, endpoint = route.codec, route.method.endpoint

    async def unary(data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            return codec.encode_response(await endpoint(codec.decode_request(data)))
        except Error as e:
            reply = codec.encode_error(e)
            if reply is None:
                await context.abort(_status(e), e.message)
                raise  # abort() raises; unreachable
            return reply

    return grpc.unary_unary_rpc_method_handler(unary)


def _status(e: Error) -> grpc.StatusCode:
    return next(s for s in grpc.StatusCode if s.value[0] == int(e.code))


async def stringsvc_down(s: str) -> str:
    raise Unavailable("stringsvc unavailable")


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[str]:
    d = addsvc_definition(uppercase=stringsvc_down)
    server = grpc.aio.server()
    methods = {r.path.rsplit("/", 1)[1]: handler(r) for r in d.grpc}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("pb.Add", methods)])
    addr = f"unix:{tmp_path / 'add.sock'}"
    server.add_insecure_port(addr)
    await server.start()
    yield addr
    await server.stop(None)


async def test_go_kit_client(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = addsvc_pb2_grpc.AddStub(ch)  # type: ignore[no-untyped-call]
        r = await stub.Sum(addsvc_pb2.SumRequest(a=1, b=2))
        assert (r.v, r.err) == (3, "")
        r = await stub.Sum(addsvc_pb2.SumRequest(a=0, b=0))  # business error: status OK
        assert (r.v, r.err) == (0, "can't sum two zeroes")
        c = await stub.Concat(addsvc_pb2.ConcatRequest(a="tea", b="pot"))
        assert (c.v, c.err) == ("", "I'm a teapot")
        m = await stub.Mult(addsvc_pb2.MultRequest(a=2.5, b=4))
        assert (m.v, m.err) == (10.0, "")
        with pytest.raises(grpc.aio.AioRpcError) as e:  # not a business error: a status
            await stub.Concat(addsvc_pb2.ConcatRequest(a="a", b="b"))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert e.value.details() == "stringsvc unavailable"


async def test_lokit_client_half(target: str) -> None:
    routes = {r.method.name: r for r in addsvc_contract().grpc}

    async def call(name: str, **kw: Any) -> Any:
        route = routes[name]
        rpc = ch.unary_unary(route.path)
        data = await rpc(route.codec.encode_request(route.method.request_type(**kw)))
        return route.codec.decode_response(data)

    async with grpc.aio.insecure_channel(target) as ch:
        assert await call("Sum", a=40, b=2) == 42
        assert await call("Mult", a=1.5, b=3.0) == 4.5
        with pytest.raises(TwoZeroesError):
            await call("Sum", a=0, b=0)
        with pytest.raises(TeapotError):
            await call("Concat", a="te", b="apot")
