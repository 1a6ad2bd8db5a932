"""The README's greeter: contract, define, Runtime and connect, on both transports."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest

import lokit
from lokit.errors import Unavailable
from lokit.examples.greeter import Greeter, NameRequired
from lokit.runtime import Listeners, Runtime


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
                assert [n async for n in g.countdown(3)] == [3, 2, 1]
    finally:
        await rt.stop()
    assert not (tmp_path / "g.sock").exists() and not (tmp_path / "h.sock").exists()
    async with lokit.connect(Greeter, grpc=grpc_addr, name="greeter") as g:
        with pytest.raises(Unavailable):
            await g.greet("ada")


def test_connect_takes_one_address() -> None:
    with pytest.raises(ValueError, match="one address"):
        lokit.connect(Greeter, "unix:run/greeter", grpc="unix:run/greeter.grpc.sock")
    with pytest.raises(ValueError, match="one address"):
        lokit.connect(Greeter, grpc="127.0.0.1:1", http="127.0.0.1:2")


def test_one_contract_names_the_wire_once() -> None:
    spec = lokit.contract("greeter", Greeter)
    assert spec.grpc_service == "greeter.v1.Greeter"
    assert [r.path for r in spec.grpc] == [
        "/greeter.v1.Greeter/Countdown",
        "/greeter.v1.Greeter/Greet",
    ]
    assert [(r.verb, r.path) for r in spec.http] == [("POST", "/countdown"), ("POST", "/greet")]
    served = lokit.define(spec, Greeter())
    assert served.name == "greeter" and served.grpc_services == ["greeter.v1.Greeter"]
    assert [r.path for r in served.grpc] == [r.path for r in spec.grpc]
    assert spec.method("COUNTDOWN") is spec.methods["Countdown"] and spec.method("nope") is None


class Counter(Protocol):
    async def add(self, n: int) -> int: ...


class CounterService:
    """Implements Counter, plus public helpers that are no endpoints."""

    def __init__(self) -> None:
        self.total = 0

    async def add(self, n: int) -> int:
        self.total += n
        return self.total

    async def reset(self) -> None:  # public, async, and still not an endpoint
        self.total = 0


async def test_an_interface_decides_the_endpoints(tmp_path: Path) -> None:
    spec = lokit.contract("counter", Counter, actions={"Add": "write"}, idempotent=())
    assert list(spec.methods) == ["Add"] and spec.methods["Add"].action == "write"
    with pytest.raises(ValueError, match="Remove, which Counter does not have"):
        lokit.contract("counter", Counter, idempotent=["Remove"])
    with pytest.raises(ValueError, match=r"grpc_codecs names Ad, .*\(its methods: Add\)"):
        lokit.contract("counter", Counter, grpc_codecs={"Ad": object()})
    with pytest.raises(TypeError, match="either a contract or the options"):
        lokit.define(spec, CounterService(), grpc_service="other.Counter")
    addr = f"unix:{tmp_path}/c.sock"
    rt = Runtime(lokit.define(spec, CounterService()), Listeners([addr], [], None, 1.0))
    await rt.start()
    try:
        async with lokit.connect(spec, grpc=addr) as counter:
            assert await counter.add(2) == 2
            assert await counter.add(3) == 5
            assert not hasattr(counter, "reset")
    finally:
        await rt.stop()


async def test_a_failing_lifespan_leaks_nothing_and_a_failed_start_leaves_it(
    tmp_path: Path,
) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            events.append("open a")
            stack.callback(events.append, "close a")
            raise OSError("b cannot open")
            yield  # pragma: no cover

    rt = Runtime(
        lokit.define("greeter", Greeter(), lifespan=lifespan), Listeners([], [], None, 1.0)
    )
    with pytest.raises(OSError, match="b cannot open"):
        await rt.start()
    assert events == ["open a", "close a"]

    @contextlib.asynccontextmanager
    async def fine() -> AsyncIterator[None]:
        events.append("open")
        try:
            yield
        finally:
            events.append("close")

    events.clear()
    (tmp_path / "file").write_text("not a socket")
    bad = Listeners([f"unix:{tmp_path}/file"], [], None, 1.0)
    rt = Runtime(lokit.define("greeter", Greeter(), lifespan=fine), bad)
    with pytest.raises(Exception, match="not a socket"):
        await rt.start()
    assert events == ["open", "close"]


def test_the_script_serves_with_the_flags_of_lokit_serve(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "lokit.examples.greeter", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "Serve greeter" in r.stdout and "--grpc ADDR" in r.stdout
