"""Addresses and safe binding; typed requests from CLI words; client proxies."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lokit.derive import describe
from lokit.errors import InvalidArgument
from lokit.proxy import proxy, request_from_args
from lokit.transport.address import AddressError, bind, parse, remove_socket_file


def test_parse() -> None:
    assert parse("unix:run/a.sock").path == "run/a.sock"
    assert parse("unix:///tmp/a.sock").path == "/tmp/a.sock"
    a = parse("127.0.0.1:8080")
    assert (a.host, a.port, a.is_unix) == ("127.0.0.1", 8080, False)
    assert parse(":9000").host == "0.0.0.0"
    assert parse("[::1]:80").host == "::1"
    assert str(parse("[::1]:80")) == "[::1]:80"
    for bad in ("nonsense", "unix:", "host:99999", "host:port"):
        with pytest.raises(AddressError):
            parse(bad)


def test_bind_unix_replaces_stale_refuses_live_and_non_sockets(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    live = bind(parse(f"unix:{path}"))
    try:
        with pytest.raises(AddressError, match="another server is running there"):
            bind(parse(f"unix:{path}"))
    finally:
        live.close()
    remove_socket_file(parse(f"unix:{path}"))
    assert not path.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(AddressError, match="is not a socket"):
        bind(parse(f"unix:{tmp_path / 'file'}"))


def test_bind_tcp_refuses_a_busy_port() -> None:
    first = bind(parse("127.0.0.1:0"))
    port = first.getsockname()[1]
    try:
        with pytest.raises(AddressError, match="already in use"):
            bind(parse(f"127.0.0.1:{port}"))
    finally:
        first.close()


class Calc:
    async def add(self, a: int, b: int = 1) -> int:
        return a + b

    async def name(self, s: str, loud: bool = False) -> str:
        return s.upper() if loud else s


def test_request_from_args() -> None:
    ms = {m.name: m for m in describe(Calc())}
    assert request_from_args(ms["Add"], ["1", "2"]) == ms["Add"].request_type(1, 2)
    assert request_from_args(ms["Add"], ["b=5", "1"]) == ms["Add"].request_type(1, 5)
    assert request_from_args(ms["Name"], ["x", "loud=true"]) == ms["Name"].request_type("x", True)
    with pytest.raises(InvalidArgument, match="invalid arguments for Add"):
        request_from_args(ms["Add"], ["one"])
    with pytest.raises(InvalidArgument, match="takes 2 argument"):
        request_from_args(ms["Add"], ["1", "2", "3"])


async def test_proxy_calls_endpoints_by_method_name() -> None:
    local = {m.name: m.endpoint for m in describe(Calc())}
    client = proxy(Calc, local)
    assert await client.add(2, 3) == 5
    assert await client.add(a=2) == 3
    assert await client.name("x", loud=True) == "X"
