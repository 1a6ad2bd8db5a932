"""Listener limits on a real `lokit serve addsvc`: bodies, header and idle timeouts, connections.

Every limit is a flag of `lokit serve`; each refusal is one sentence and a metric,
and the server keeps serving everyone else (its Unix-socket gRPC listener and
/healthz on the debug listener above all). No timing assertions: a deadline
here only bounds how long the test waits for the server to act.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.procs import LokitProcess, with_nofile

LIMITS = [
    "--max-body-bytes",
    "1KiB",
    "--header-timeout",
    "1",
    "--idle-timeout",
    "1",
]


class Server(LokitProcess):
    """`lokit serve addsvc` with an optional open-file limit in the child."""

    def __init__(self, args: list[str], cwd: Path, nofile: int | None = None) -> None:
        if nofile is None:
            super().__init__(args, cwd)
            return

        # LokitProcess.__init__ with the limit set by an exec wrapper (no preexec_fn: see
        # with_nofile): the same readers, the same stop.
        self.args, self.cwd = args, cwd
        self.proc = subprocess.Popen(
            with_nofile(nofile, [sys.executable, "-m", "lokit", *args]),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.addrs = defaultdict(list)
        self.stdout_lines, self.stderr_lines = [], []
        self._ready = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def tcp(self, kind: str) -> tuple[str, int]:
        host, _, port = self.addr(kind).rpartition(":")
        return host, int(port)


def _serve(tmp: Path, *extra: str, nofile: int | None = None) -> Server:
    args = [
        "serve",
        "addsvc",
        "--grpc",
        f"unix:{tmp}/a.grpc.sock",
        "--http",
        "127.0.0.1:0",
        "--debug",
        "127.0.0.1:0",
        *LIMITS,
        *extra,
    ]
    p = Server(args, tmp, nofile)
    p.wait_ready(3)
    return p


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    p = _serve(tmp_path, "--max-connections", "40")
    try:
        yield p
    finally:
        assert p.stop(signal.SIGTERM) == 0, p.stderr


def _connect(addr: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(addr, timeout=10)
    return s


def _read_all(s: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the server closes the connection."""
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data


def _response(raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, orjson.loads(body)


def _healthz(p: Server) -> int:
    s = _connect(p.tcp("debug"))
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _response(_read_all(s))[0]
    finally:
        s.close()


def _grpc_health(tmp: Path) -> int:
    with grpc.insecure_channel(f"unix://{tmp}/a.grpc.sock") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        return int(reply.status)


def _metrics(p: Server) -> str:
    s = _connect(p.tcp("debug"))
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_all(s).decode()
    finally:
        s.close()


def _sum(p: Server, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    s = _connect(p.tcp("http"))
    try:
        s.sendall(
            b"POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        return _response(_read_all(s))
    finally:
        s.close()


def test_declared_body_over_the_limit_is_413_before_it_is_read(server: Server) -> None:
    s = _connect(server.tcp("http"))
    try:
        # Only the headers go out: the answer must come without the body.
        s.sendall(b"POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
        status, headers, body = _response(_read_all(s))
    finally:
        s.close()
    assert status == 413
    assert headers["connection"] == "close"
    assert body == {"error": "the request body is larger than the server's limit of 1024 bytes"}
    assert _sum(server, b'{"a":1,"b":2}')[2] == {"v": 3}
    assert 'lokit_http_requests_refused_total{reason="body_too_large",service="addsvc"} 1.0' in (
        _metrics(server)
    )


def test_chunked_body_over_the_limit_is_413_and_reading_stops(server: Server) -> None:
    """The 413 comes while the chunked body is still open (a server reading the whole
    body first would wait for its last chunk, and never answer), and the server closes.

    Not counted: how many bytes the client's sends took. On loopback the kernel buffers
    take megabytes whatever the server reads, more the busier the machine (the earlier
    `sent < 1_000_000` failed that way now and then).
    """
    s = _connect(server.tcp("http"))
    try:
        s.sendall(b"POST /sum HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        # 4 KiB of chunks, over the 1 KiB limit, in one send; the body is never ended.
        s.sendall((b"%x\r\n%s\r\n" % (256, b" " * 256)) * 16)
        status, _headers, body = _response(_read_all(s))  # until the server closes
    finally:
        s.close()
    assert status == 413
    assert "larger than the server's limit of 1024 bytes" in body["error"]
    assert _sum(server, b'{"a":1,"b":2}')[2] == {"v": 3}


def test_slowloris_is_closed_after_the_header_timeout(server: Server) -> None:
    s = _connect(server.tcp("http"))
    request = b"POST /sum HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    closed_after = None
    try:
        for i, byte in enumerate(request):
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed_after = i
                break
            time.sleep(0.05)
        answer = _read_all(s)
    finally:
        s.close()
    assert closed_after is not None or answer, "the slow client was held"
    if answer:
        status, _, body = _response(answer)
        assert status == 408
        assert body == {"error": "the request headers did not arrive in time"}
    assert 'reason="header_timeout"' in _metrics(server)


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    s = _connect(server.tcp("http"))
    try:
        assert _response(_read_all(s))[0] == 408
    finally:
        s.close()


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    s = _connect(server.tcp("http"))
    try:
        body = b'{"a":1,"b":2}'
        s.sendall(
            b"POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        first = _read_all(s)  # the answer, then the close once the idle timeout passed
    finally:
        s.close()
    status, _, reply = _response(first)
    assert (status, reply) == (200, {"v": 3})


def test_connections_past_the_limit_are_refused_and_the_rest_keep_serving(
    server: Server, tmp_path: Path
) -> None:
    held = [_connect(server.tcp("http")) for _ in range(40)]
    try:
        extra = _connect(server.tcp("http"))
        status, _headers, body = _response(_read_all(extra))
        extra.close()
        assert status == 503
        assert body == {"error": "the server has too many connections; try again later"}
        assert _grpc_health(tmp_path) == health_pb2.HealthCheckResponse.SERVING
        assert _healthz(server) == 200
        metrics = _metrics(server)
        assert 'reason="max_connections"' in metrics
        assert 'lokit_connections_open{address="127.0.0.1:' in metrics
    finally:
        for s in held:
            s.close()


def test_a_flood_of_idle_connections_cannot_take_every_fd(tmp_path: Path) -> None:
    """The child may open 400 files; 2,000 idle TCP connections leave gRPC and /healthz up."""
    p = _serve(tmp_path, "--header-timeout", "60", nofile=400)
    held: list[socket.socket] = []
    try:
        for _ in range(2_000):
            try:
                held.append(socket.create_connection(p.tcp("http"), timeout=5))
            except OSError:
                break
        time.sleep(0.5)  # let the server accept (and refuse) what it can
        assert _grpc_health(tmp_path) == health_pb2.HealthCheckResponse.SERVING
        assert _healthz(p) == 200
        assert 'reason="max_connections"' in _metrics(p)
    finally:
        for s in held:
            s.close()
        assert p.stop(signal.SIGTERM) == 0, p.stderr
    assert not (tmp_path / "a.grpc.sock").exists()


def test_bad_limit_flags_are_one_sentence(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lokit", "serve", "addsvc", "--max-body-bytes", "lots"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert out.returncode != 0
    assert "--max-body-bytes must be a size such as 4096" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_log_takes_the_limits_from_its_config_file(tmp_path: Path) -> None:
    (tmp_path / "log.toml").write_text('max-body-bytes = "2KiB"\nmax-connections = 30\n')
    p = Server(
        [
            "serve",
            "log",
            "--config",
            str(tmp_path / "log.toml"),
            "--data",
            str(tmp_path / "data"),
            "--grpc",
            f"unix:{tmp_path}/a.grpc.sock",
            "--http",
            "127.0.0.1:0",
        ],
        tmp_path,
    )
    p.wait_ready(2)
    try:
        s = _connect(p.tcp("http"))
        s.sendall(b"POST /produce HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n")
        status, _, body = _response(_read_all(s))
        s.close()
        assert status == 413
        assert "limit of 2048 bytes" in body["error"]
        held = [_connect(p.tcp("http")) for _ in range(30)]
        try:
            assert _response(_read_all(_connect(p.tcp("http"))))[0] == 503
            assert _grpc_health(tmp_path) == health_pb2.HealthCheckResponse.SERVING
        finally:
            for h in held:
                h.close()
    finally:
        assert p.stop(signal.SIGTERM) == 0, p.stderr


async def test_large_bodies_under_the_limit_arrive_whole_at_the_body_rate(tmp_path: Path) -> None:
    """Past its first MiB a body is paced (`--max-body-rate`), never cut or refused."""
    import aiohttp

    import lokit
    from lokit.runtime import Listeners, Runtime
    from lokit.transport.limits import Limits

    class Sizer:
        async def size(self, text: str) -> int:
            return len(text)

    http = f"unix:{tmp_path}/h.sock"
    limits = Limits(max_body_bytes=8 << 20, max_body_rate=4 << 20)
    rt = Runtime(lokit.define("sizer", Sizer()), Listeners([], [http], None, 1.0, limits))
    await rt.start()
    try:
        text = "x" * (3 << 20)

        async def chunks() -> Any:
            body = orjson.dumps({"text": text})
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        conn = aiohttp.UnixConnector(path=f"{tmp_path}/h.sock")
        async with aiohttp.ClientSession(connector=conn) as s:
            for data in (orjson.dumps({"text": text}), chunks()):  # declared, then chunked
                async with s.post("http://localhost/size", data=data) as r:
                    assert (r.status, await r.json()) == (200, {"v": 3 << 20})
    finally:
        await rt.stop()
