"""Derived protobuf on a real gRPC server: lokit.define + Runtime + lokit.connect, raw grpc."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import grpc
import pytest

import lokit
from lokit.protobuf import schema_of
from tests.protobuf.conftest import Served
from tests.protobuf.services import Kitchen, NameRequired, everything

pytestmark = pytest.mark.asyncio(loop_scope="module")

T = TypeVar("T")

KITCHEN = lokit.contract("kitchen", Kitchen)
JSON = lokit.contract("kitchen", Kitchen, codec="json")


async def _items(*values: T) -> AsyncIterator[T]:
    for v in values:
        yield v


async def test_every_kind_round_trips(kitchen: Served) -> None:
    async with lokit.connect(KITCHEN, grpc=kitchen.grpc, timeout=5) as conn:
        svc = conn
        assert await svc.greet("ada") == "hello, ada"
        assert await svc.greet("ada", excited=True) == "hello, ada!"
        assert await svc.echo(everything()) == everything()
        assert [i async for i in svc.countdown(3)] == [3, 2, 1]
        assert await svc.total(_items(1, 2, 39)) == 42
        assert [w async for w in svc.shout(_items("a", "b"))] == ["A", "B"]
        await svc.nothing()  # an empty response message
        assert await svc.maybe() is None
        assert await svc.maybe("") == ""


async def test_business_error_keeps_status_and_trailer(kitchen: Served) -> None:
    async with lokit.connect(KITCHEN, grpc=kitchen.grpc, timeout=5) as conn:
        with pytest.raises(NameRequired, match="name is required"):
            await conn.greet("")
    schema = schema_of(KITCHEN)
    assert schema is not None
    request = schema.classes["kitchen.v1.GreetRequest"](name="").SerializeToString()
    async with grpc.aio.insecure_channel(kitchen.grpc) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary("/kitchen.v1.Kitchen/Greet")(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "name is required"
    assert ("lokit-error", NameRequired.error_name) in tuple(info.value.trailing_metadata())


async def test_raw_protobuf_bytes_on_the_wire(kitchen: Served) -> None:
    schema = schema_of(KITCHEN)
    assert schema is not None
    req = schema.classes["kitchen.v1.GreetRequest"]
    resp = schema.classes["kitchen.v1.GreetResponse"]
    async with grpc.aio.insecure_channel(kitchen.grpc) as ch:
        raw = await ch.unary_unary("/kitchen.v1.Kitchen/Greet")(
            req(name="bob", excited=True).SerializeToString()
        )
        assert resp.FromString(raw).v == "hello, bob!"
        items = ch.unary_stream("/kitchen.v1.Kitchen/Countdown")(
            schema.classes["kitchen.v1.CountdownRequest"](n=2).SerializeToString()
        )
        item = schema.classes["kitchen.v1.CountdownResponse"]
        assert [item.FromString(m).v async for m in items] == [2, 1]
        for bad in (b"\xff\xff\xff", b"\x0a\x02\xff\xfe"):  # not protobuf; not UTF-8
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await ch.unary_unary("/kitchen.v1.Kitchen/Greet")(bad)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "malformed protobuf: Greet request" in (info.value.details() or "")


async def test_json_codec_stays_for_old_callers(kitchen: Served) -> None:
    async with grpc.aio.insecure_channel(kitchen.json_grpc) as ch:
        raw = await ch.unary_unary("/kitchen.v1.Kitchen/Greet")(b'{"name": "ada"}')
    assert raw == b'{"v":"hello, ada"}'
    async with lokit.connect(JSON, grpc=kitchen.json_grpc, timeout=5) as conn:
        assert await conn.echo(everything()) == everything()
        assert [i async for i in conn.countdown(2)] == [2, 1]
    # a protobuf caller against the JSON server is refused clearly, not crashed
    async with lokit.connect(KITCHEN, grpc=kitchen.json_grpc, timeout=5) as conn:
        with pytest.raises(lokit.Error):
            await conn.greet("ada")
