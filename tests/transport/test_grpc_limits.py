"""gRPC listener limits on a real `lokit serve addsvc`, set in grpc-core's channel arguments."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from grpc_health.v1 import health_pb2

from tests.transport.test_limits import Server, _grpc_health, _read_all, server

__all__ = ["server"]  # the fixture, shared with test_limits


def test_grpc_connection_without_a_handshake_is_closed(server: Server, tmp_path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(tmp_path / "a.grpc.sock"))
    try:
        _read_all(s, timeout=30)  # returns once grpc-core closes it (handshake timeout 1 s)
    finally:
        s.close()
    assert _grpc_health(tmp_path) == health_pb2.HealthCheckResponse.SERVING


def test_grpc_connections_past_the_limit_are_closed_by_grpc_core(tmp_path: Path) -> None:
    """grpc.max_allowed_incoming_connections: 5 held, the 5 past the limit closed at once."""
    sock = tmp_path / "g.sock"
    p = Server(
        [
            "serve",
            "addsvc",
            "--grpc",
            f"unix:{sock}",
            "--max-connections",
            "5",
            "--header-timeout",
            "120",
        ],
        tmp_path,
    )
    p.wait_ready(1)
    conns = []
    try:
        for _ in range(10):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(sock))
            s.setblocking(False)
            conns.append(s)
        closed: set[int] = set()
        deadline = time.monotonic() + 20
        while len(closed) < 5 and time.monotonic() < deadline:
            for i, s in enumerate(conns):
                try:
                    if s.recv(100) == b"":
                        closed.add(i)
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    closed.add(i)
            time.sleep(0.05)
        assert len(closed) == 5, closed
    finally:
        for s in conns:
            s.close()
        assert p.stop(signal.SIGTERM) == 0, p.stderr
