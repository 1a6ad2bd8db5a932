"""addsvc's service middlewares and its ServiceDef (endpoints called in process)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from lokit.endpoint import Endpoint, Middleware
from lokit.errors import Unavailable
from lokit.examples.addsvc.contract import addsvc_contract
from lokit.examples.addsvc.definition import addsvc_definition
from lokit.examples.addsvc.middleware import (
    ConcatTransform,
    InstrumentingMiddleware,
    LoggingMiddleware,
)
from lokit.examples.addsvc.pb import PbCodec
from lokit.examples.addsvc.service import AddService, MaxSizeExceededError, TwoZeroesError


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def upper(s: str) -> str:
    return s.upper()


async def stringsvc_down(s: str) -> str:
    raise Unavailable("stringsvc unavailable: connection refused")


async def test_logging_one_line_per_call() -> None:
    s = LoggingMiddleware(AddService())
    with capture_logs() as logs:
        assert await s.sum(1, 2) == 3
        with pytest.raises(TwoZeroesError):
            await s.sum(0, 0)
        assert await s.concat("a", "b") == "ab"
        assert await s.mult(2, 3) == 6.0
    keys = ("method", "a", "b", "v", "err")
    assert [tuple(e[k] for k in keys) for e in logs] == [
        ("Sum", 1, 2, 3, None),
        ("Sum", 0, 0, None, "can't sum two zeroes"),
        ("Concat", "a", "b", "ab", None),
        ("Mult", 2, 3, 6.0, None),
    ]
    assert all(e["log_level"] == "info" for e in logs)


async def test_instrumenting_counts_successes() -> None:
    s = InstrumentingMiddleware(AddService())
    ints, chars = (
        sample("addsvc_integers_summed_total"),
        sample("addsvc_characters_concatenated_total"),
    )
    assert await s.sum(3, 4) == 7
    assert await s.sum(-10, 1) == -9  # a counter cannot go down: the magnitude is added
    with pytest.raises(TwoZeroesError):
        await s.sum(0, 0)
    assert await s.concat("abc", "de") == "abcde"
    with pytest.raises(MaxSizeExceededError):
        await s.concat("abcdef", "ghijkl")
    assert sample("addsvc_integers_summed_total") == ints + 16
    assert sample("addsvc_characters_concatenated_total") == chars + 5


async def test_concat_transform() -> None:
    assert await ConcatTransform(AddService(), upper).concat("ab", "cd") == "ABCD"
    assert await ConcatTransform(AddService(), None).concat("ab", "cd") == "abcd"
    # a business error happens before the transform and is not transformed
    with pytest.raises(MaxSizeExceededError):
        await ConcatTransform(AddService(), upper).concat("abcdef", "ghijkl")


async def test_concat_transform_failure_fails_only_concat() -> None:
    s = ConcatTransform(AddService(), stringsvc_down)
    with pytest.raises(Unavailable) as e:
        await s.concat("ab", "cd")
    assert e.value.message == "stringsvc unavailable: connection refused" and e.value.status == 503
    assert await s.sum(1, 2) == 3
    assert await s.mult(1.5, 2) == 3.0


async def test_definition_routes() -> None:
    d = addsvc_definition()
    assert d.name == "addsvc" and d.grpc_services == ["pb.Add"]
    assert sorted(r.path for r in d.grpc) == ["/pb.Add/Concat", "/pb.Add/Mult", "/pb.Add/Sum"]
    assert all(isinstance(r.codec, PbCodec) for r in d.grpc)
    assert sorted((r.verb, r.path) for r in d.http) == [
        ("POST", "/concat"),
        ("POST", "/mult"),
        ("POST", "/sum"),
    ]
    c = addsvc_contract()
    assert [r.path for r in c.grpc] == [r.path for r in d.grpc]
    assert all(isinstance(r.codec, PbCodec) for r in c.grpc)
    addsvc_definition()  # building twice in one process is fine (metrics created once)


async def test_definition_http_json() -> None:
    d = addsvc_definition()
    sum_route = next(r for r in d.http if r.path == "/sum")
    req = sum_route.codec.decode_request(b'{"a":1,"b":2}')
    assert sum_route.codec.encode_response(await sum_route.method.endpoint(req)) == b'{"v":3}'


async def test_definition_with_uppercase_and_endpoint_middlewares() -> None:
    seen: list[str] = []

    def tag(name: str) -> Middleware:
        def mw(next: Endpoint) -> Endpoint:
            async def endpoint(request: Any) -> Any:
                seen.append(name)
                return await next(request)

            return endpoint

        return mw

    d = addsvc_definition(uppercase=upper, endpoint_middlewares=(tag("outer"), tag("inner")))
    concat = next(r for r in d.grpc if r.method.name == "Concat")
    chars = sample("addsvc_characters_concatenated_total")
    with capture_logs() as logs:
        v = await concat.method.endpoint(concat.method.request_type(a="ab", b="c"))
    assert v == "ABC" and seen == ["outer", "inner"]
    assert logs[0]["v"] == "ABC"  # logging sits outside the transform
    assert sample("addsvc_characters_concatenated_total") == chars + 3

    d = addsvc_definition(uppercase=stringsvc_down)
    routes = {r.method.name: r.method for r in d.grpc}
    with pytest.raises(Unavailable):
        await routes["Concat"].endpoint(routes["Concat"].request_type(a="a", b="b"))
    assert await routes["Sum"].endpoint(routes["Sum"].request_type(a=2, b=2)) == 4
