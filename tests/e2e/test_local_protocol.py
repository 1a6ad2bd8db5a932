"""lokit's default protocol between services: on a lokit service's Unix socket, frames for
unary methods and HTTP for streams; else gRPC."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest

import lokit
from lokit.contract import as_contract
from lokit.dialing import choose, frames_beside
from lokit.examples.stringsvc.contract import stringsvc_contract
from tests.e2e.conftest import Start
from tests.e2e.procs import run_cli

STRINGS = stringsvc_contract()


class Chat(Protocol):
    async def talk(self, lines: AsyncIterator[str]) -> AsyncIterator[str]: ...


def _bind(path: Path) -> socket.socket:
    """A real listening Unix socket at `path` (closed by the caller)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen()
    return s


def test_the_choice_follows_the_one_box_naming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both, grpc_only = tmp_path / "both.d", tmp_path / "grpc.d"
    both.mkdir()
    grpc_only.mkdir()
    socks = [
        _bind(tmp_path / "svc.http.sock"),
        _bind(tmp_path / "svc.grpc.sock"),
        _bind(tmp_path / "svc.frames.sock"),
        _bind(tmp_path / "old.grpc.sock"),
        _bind(both / "a.http.sock"),
        _bind(both / "a.grpc.sock"),
        _bind(grpc_only / "a.grpc.sock"),
    ]
    try:
        stem = f"unix:{tmp_path}/svc"
        assert choose(STRINGS, stem) == ("http", stem + ".http.sock")
        assert choose(STRINGS, stem + ".grpc.sock") == ("grpc", stem + ".grpc.sock")
        assert choose(STRINGS, stem + ".http.sock") == ("http", stem + ".http.sock")
        # unary methods then go over the frames socket beside the HTTP one, if any
        assert frames_beside(stem + ".http.sock") == stem + ".frames.sock"
        assert frames_beside(stem + ".grpc.sock") is None
        old = f"unix:{tmp_path}/old"
        assert frames_beside(old + ".http.sock") is None  # no frames listener there
        assert choose(STRINGS, old) == ("grpc", old + ".grpc.sock")  # serves no HTTP
        assert choose(STRINGS, f"dir:{both}") == ("http", f"dir:{both}")
        assert choose(STRINGS, f"dir:{grpc_only}") == ("grpc", f"dir:{grpc_only}")
        for other in (
            "127.0.0.1:9000",
            "srv:strings.local",
            "serf:stringsvc",
            f"unix:{tmp_path}/x",
        ):
            assert choose(STRINGS, other) == ("grpc", other)
        # a conversation (a bidi stream) goes over HTTP too (full duplex NDJSON); a
        # contract with a method HTTP does not route goes over gRPC
        chat = as_contract(Chat, "chat")
        assert choose(chat, stem) == ("http", stem + ".http.sock")
        grpc_only_contract = lokit.contract("chat", Chat, http=lambda methods: [])
        assert choose(grpc_only_contract, stem) == ("grpc", stem + ".grpc.sock")
        assert choose(grpc_only_contract, f"dir:{both}") == ("grpc", f"dir:{both}")
        # no address: the service's own sockets under run/, HTTP when it is there
        monkeypatch.chdir(tmp_path)
        os.mkdir("run")
        assert choose(STRINGS, None) == ("http", "unix:run/stringsvc.http.sock")  # none yet
        socks.append(_bind(tmp_path / "run" / "stringsvc.grpc.sock"))
        assert choose(STRINGS, None) == ("grpc", "unix:run/stringsvc.grpc.sock")
        socks.append(_bind(tmp_path / "run" / "stringsvc.http.sock"))
        assert choose(STRINGS, None) == ("http", "unix:run/stringsvc.http.sock")
    finally:
        for s in socks:
            s.close()


def test_connect_with_an_address_only_calls_over_frames(start: Start, tmp_path: Path) -> None:
    strings = start(
        "serve",
        "stringsvc",
        "--grpc",
        "unix:s.grpc.sock",
        "--http",
        "unix:s.http.sock",
        listeners=2,
    )

    async def call() -> tuple[str, str, str]:
        conn = lokit.connect(STRINGS, f"unix:{tmp_path}/s")
        try:
            return conn.protocol, conn.address, await conn.service.uppercase("hi")
        finally:
            await conn.close()

    import asyncio

    assert asyncio.run(call()) == ("frames", f"unix:{tmp_path}/s.frames.sock", "HI")
    strings.wait_stderr(lambda line: "method=Uppercase" in line and "transport=frames" in line)

    async def named() -> str:  # http= names the protocol: no frames
        async with lokit.connect(STRINGS, http=f"unix:{tmp_path}/s.http.sock") as s:
            return await s.uppercase("ho")

    assert asyncio.run(named()) == "HO"
    strings.wait_stderr(lambda line: "method=Uppercase" in line and "transport=http" in line)


def test_addsvc_reaches_stringsvc_instances_over_frames(start: Start, tmp_path: Path) -> None:
    (tmp_path / "strings.d").mkdir()
    strings = start(
        "serve",
        "stringsvc",
        "--grpc",
        "unix:strings.d/a.grpc.sock",
        "--http",
        "unix:strings.d/a.http.sock",
        listeners=2,
    )
    add = start(
        "serve",
        "addsvc",
        "--grpc",
        "unix:add.grpc.sock",
        "--http",
        "unix:add.http.sock",
        "--stringsvc",
        "dir:strings.d",
        listeners=2,
    )
    r = run_cli(["call", "addsvc", "concat", "ab", "cd", "--grpc", "unix:add.grpc.sock"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '{"v":"ABCD"}'
    # the registry's instance, over the frames socket beside its HTTP one
    strings.wait_stderr(lambda line: "method=Uppercase" in line and "transport=frames" in line)
    # `lokit call` without an address: the service's own sockets, over HTTP (no frames
    # socket beside this one)
    os.mkdir(tmp_path / "run")
    os.symlink(tmp_path / "add.http.sock", tmp_path / "run" / "addsvc.http.sock")
    r = run_cli(["call", "addsvc", "sum", "1", "2"], tmp_path)
    assert r.returncode == 0, r.stderr
    add.wait_stderr(lambda line: "method=Sum" in line and "transport=http" in line)
