"""Endpoints and JSON codecs derived from a service class's type hints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pytest

from lokit.codec import JsonCodec
from lokit.derive import describe, http_path, rpc_name
from lokit.endpoint import Kind
from lokit.errors import InvalidArgument
from lokit.routes import http_routes


class Point(msgspec.Struct):
    x: int
    y: int


@dataclass
class Area:
    value: float


class Shapes:
    def __init__(self) -> None:
        self.calls = 0

    async def add(self, a: int, b: int = 10) -> int:
        self.calls += 1
        return a + b

    async def area(self, p: Point) -> Area:
        return Area(float(p.x * p.y))

    async def count_up(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def total(self, xs: AsyncIterator[int]) -> int:
        return sum([x async for x in xs])

    async def echo(self, xs: AsyncIterator[str]) -> AsyncIterator[str]:
        async for x in xs:
            yield x.upper()

    async def _hidden(self) -> None:
        return None

    def sync_helper(self) -> int:
        return 1


def methods() -> dict[str, object]:
    return {m.name: m for m in describe(Shapes())}


def test_names_and_kinds() -> None:
    ms = {m.name: m for m in describe(Shapes())}
    assert sorted(ms) == ["Add", "Area", "CountUp", "Echo", "Total"]
    assert ms["Add"].kind is Kind.UNARY
    assert ms["CountUp"].kind is Kind.SERVER_STREAM
    assert ms["Total"].kind is Kind.CLIENT_STREAM
    assert ms["Echo"].kind is Kind.BIDI
    assert ms["CountUp"].py_name == "count_up" and ms["CountUp"].action == "count_up"
    assert [r.path for r in http_routes(list(ms.values())) if r.method.name == "CountUp"] == [
        "/count-up"
    ]
    assert (rpc_name("get_servers"), http_path("get_servers")) == ("GetServers", "/get-servers")


async def test_unary_with_fields_default_and_wrap() -> None:
    ms = {m.name: m for m in describe(Shapes())}
    c = JsonCodec(ms["Add"])
    req = c.decode_request(b'{"a": 1}')
    assert c.encode_response(await ms["Add"].endpoint(req)) == b'{"v":11}'
    assert c.decode_response(b'{"v":11}') == 11
    assert c.decode_request(c.encode_request(req)) == req


async def test_struct_request_and_record_response_are_not_wrapped() -> None:
    ms = {m.name: m for m in describe(Shapes())}
    c = JsonCodec(ms["Area"])
    out = await ms["Area"].endpoint(c.decode_request(b'{"x":2,"y":3}'))
    assert c.encode_response(out) == b'{"value":6.0}'
    assert c.decode_response(b'{"value":6.0}') == Area(6.0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a":"x"}', "invalid request: Expected `int`, got `str` - at `$.a`"),
        (b"{", "malformed JSON"),
        (b'{"b":1}', "invalid request: Object missing required field `a`"),
        (b"[1]", "invalid request: Expected `object`, got `array`"),
    ],
)
def test_bad_requests_are_clear_invalid_arguments(body: bytes, message: str) -> None:
    ms = {m.name: m for m in describe(Shapes())}
    with pytest.raises(InvalidArgument) as e:
        JsonCodec(ms["Add"]).decode_request(body)
    assert e.value.message.startswith(message)


async def test_streams() -> None:
    ms = {m.name: m for m in describe(Shapes())}
    it = await ms["CountUp"].endpoint(JsonCodec(ms["CountUp"]).decode_request(b'{"n":3}'))
    assert [x async for x in it] == [0, 1, 2]

    async def nums() -> AsyncIterator[int]:
        for i in (1, 2, 3):
            yield i

    assert await ms["Total"].endpoint(nums()) == 6

    async def words() -> AsyncIterator[str]:
        yield "a"
        yield "b"

    assert [x async for x in await ms["Echo"].endpoint(words())] == ["A", "B"]


def test_untyped_parameters_are_refused() -> None:
    class Bad:
        async def f(self, x):  # type: ignore[no-untyped-def]
            return x

    with pytest.raises(TypeError, match="needs a type hint"):
        describe(Bad())
