"""Endpoints, middlewares and chain order; stream-end hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from lokit.endpoint import Endpoint, Middleware, chain, nop, on_stream_end


def tag(name: str, trail: list[str]) -> Middleware:
    def mw(next_: Endpoint) -> Endpoint:
        async def e(req: Any) -> Any:
            trail.append(f">{name}")
            resp = await next_(req)
            trail.append(f"<{name}")
            return resp

        return e

    return mw


async def test_chain_is_outermost_first() -> None:
    trail: list[str] = []
    a, b, c = tag("a", trail), tag("b", trail), tag("c", trail)

    async def e(req: int) -> int:
        trail.append("e")
        return req + 1

    assert await chain(a, b, c)(e)(1) == 2
    assert trail == [">a", ">b", ">c", "e", "<c", "<b", "<a"]
    trail.clear()
    assert await a(b(c(e)))(1) == 2
    assert trail == [">a", ">b", ">c", "e", "<c", "<b", "<a"]
    assert await chain()(e)(1) == 2
    assert await nop(1) is None


async def test_on_stream_end_reports_completion_and_errors() -> None:
    seen: list[BaseException | None] = []

    async def gen(fail: bool) -> AsyncIterator[int]:
        yield 1
        if fail:
            raise ValueError("bad")
        yield 2

    assert [x async for x in on_stream_end(gen(False), seen.append)] == [1, 2]
    assert seen == [None]
    with pytest.raises(ValueError):
        [x async for x in on_stream_end(gen(True), seen.append)]
    assert isinstance(seen[-1], ValueError)
    closed = on_stream_end(gen(False), seen.append)
    assert await closed.__anext__() == 1
    await closed.aclose()  # type: ignore[attr-defined]
    assert len(seen) == 3
