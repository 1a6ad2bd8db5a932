"""lokit.define + Runtime + lokit.connect: a new service served and called over both transports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import lokit
from lokit.errors import InvalidArgument, Unavailable
from lokit.runtime import Listeners, Runtime


class NameRequired(InvalidArgument):
    default_message = "name is required"


class Greeter:
    async def greet(self, name: str, excited: bool = False) -> str:
        if not name:
            raise NameRequired()
        return f"hello, {name}" + ("!" if excited else "")

    async def countdown(self, n: int) -> AsyncIterator[int]:
        for i in range(n, 0, -1):
            yield i


async def test_define_serve_connect(tmp_path: Path) -> None:
    grpc_addr, http_addr = f"unix:{tmp_path}/g.sock", f"unix:{tmp_path}/h.sock"
    rt = Runtime(lokit.define("greeter", Greeter()), Listeners([grpc_addr], [http_addr], None, 1.0))
    await rt.start()
    try:
        assert [k for k, _ in rt.bound] == ["grpc", "http"]
        for kw in ({"grpc": grpc_addr}, {"http": http_addr}):
            async with lokit.connect(Greeter, name="greeter", **kw) as g:
                assert await g.greet("ada") == "hello, ada"
                assert await g.greet("ada", excited=True) == "hello, ada!"
                with pytest.raises(NameRequired, match="name is required"):
                    await g.greet("")
    finally:
        await rt.stop()
    assert not (tmp_path / "g.sock").exists() and not (tmp_path / "h.sock").exists()
    async with lokit.connect(Greeter, grpc=grpc_addr, name="greeter") as g:
        with pytest.raises(Unavailable):
            await g.greet("ada")


def test_connect_needs_one_transport() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        lokit.connect(Greeter)
