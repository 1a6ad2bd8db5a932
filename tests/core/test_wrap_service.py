"""`wrap_service`: serve-time middlewares reach every method, outermost first, once per method."""

from __future__ import annotations

from typing import Any

import lokit
from lokit.endpoint import Endpoint, Method, Middleware
from lokit.routes import wrap_service


class Pair:
    async def first(self, s: str) -> str:
        return s

    async def second(self, s: str) -> str:
        return s + "!"


def tagging(tag: str, seen: list[str], only: str | None = None):  # type: ignore[no-untyped-def]
    def make(method: Method) -> Middleware | None:
        if only is not None and method.name != only:
            return None

        def wrap(next_endpoint: Endpoint) -> Endpoint:
            async def endpoint(request: Any) -> Any:
                seen.append(f"{tag}:{method.name}")
                return await next_endpoint(request)

            return endpoint

        return wrap

    return make


async def test_first_factory_is_outermost_and_none_skips_a_method() -> None:
    seen: list[str] = []
    svc = wrap_service(
        lokit.define("pair", Pair()), tagging("a", seen), tagging("b", seen, only="First")
    )
    by_name = {r.method.name: r.method.endpoint for r in svc.grpc}
    assert await by_name["First"](_request(svc, "First", "x")) == "x"
    assert await by_name["Second"](_request(svc, "Second", "y")) == "y!"
    assert seen == ["a:First", "b:First", "a:Second"]


def test_both_transports_share_one_wrapped_endpoint_and_no_factory_is_a_no_op() -> None:
    plain = lokit.define("pair", Pair())
    assert wrap_service(plain) is plain
    svc = wrap_service(plain, tagging("a", []))
    grpc = {r.method.name: r.method.endpoint for r in svc.grpc}
    http = {r.method.name: r.method.endpoint for r in svc.http}
    assert grpc == http
    assert all(
        grpc[n] is not r.method.endpoint for n in grpc for r in plain.grpc if r.method.name == n
    )


def _request(svc: Any, name: str, value: str) -> Any:
    method = next(r.method for r in svc.grpc if r.method.name == name)
    return method.request_type(value) if method.spread else value
