"""A real redis-server on a Unix socket in a temporary directory, stopped by its pid."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


class RedisServer:
    """`redis-server` listening on `sock` only (no TCP port, no persistence).

    The socket lives in a fresh short directory under /tmp (a Unix socket path
    has at most 107 bytes; pytest's tmp paths can be longer), removed at stop.
    """

    def __init__(self, tcp: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI") == "true":
                pytest.fail("redis-server is not installed (scripts/ensure-servers.sh installs it)")
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.port = _free_port() if tcp else 0
        directory = self.directory = Path(tempfile.mkdtemp(prefix="lokit-redis-", dir="/tmp"))
        self.sock = directory / "redis.sock"
        self.start()

    def start(self) -> None:
        """Start (again) on the same socket."""
        binary, directory = self.binary, self.directory
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--unixsocket",
                str(self.sock),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError(f"redis-server did not start (rc={self.proc.poll()})")
            time.sleep(0.02)

    @property
    def uri(self) -> str:
        """The Unix socket, as `--limit-storage` takes it."""
        return f"redis+unix://{self.sock}"

    @property
    def tcp_uri(self) -> str:
        assert self.port, "started without tcp=True"
        return f"redis://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(str(self.sock))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2.0)
            s.connect(str(self.sock))
            s.sendall(b"FLUSHALL\r\n")
            s.recv(16)

    def kill(self) -> None:
        """SIGKILL: Redis vanishes mid-use."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
