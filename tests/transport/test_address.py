"""Addresses and safe binding."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lokit.transport.address import AddressError, bind, default_address, parse, remove_socket_file


def test_parse() -> None:
    assert parse("unix:run/a.sock").path == "run/a.sock"
    assert parse("unix:///tmp/a.sock").path == "/tmp/a.sock"
    a = parse("127.0.0.1:8080")
    assert (a.host, a.port, a.is_unix) == ("127.0.0.1", 8080, False)
    # issue 8: `:PORT` silently bound every interface; now it is refused in one sentence
    with pytest.raises(
        AddressError, match=r"has no host; write 0\.0\.0\.0:9000 .* 127\.0\.0\.1:9000"
    ):
        parse(":9000")
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


def test_default_address() -> None:
    assert default_address("log", "grpc") == "unix:run/log.grpc.sock"
    assert parse(default_address("addsvc", "http")).path == "run/addsvc.http.sock"
