"""Fixtures for the log service: an in-process server on tmp Unix sockets, and real
`python -m lokit serve log` processes for restart, crash and CLI tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lokit.logsvc.client import LogClient
from lokit.logsvc.config import ServerConfig
from lokit.logsvc.definition import log_definition
from lokit.runtime import Listeners, Runtime
from tests.e2e.procs import with_nofile


@dataclass
class InProcess:
    """A log server running in the test's event loop."""

    grpc: str
    http: str
    data: Path
    runtime: Runtime


async def start_in_process(tmp: Path, **config: Any) -> InProcess:
    grpc = f"unix:{tmp}/log.grpc.sock"
    http = f"unix:{tmp}/log.http.sock"
    settings = {"data": str(tmp / "data"), "fsync": "never", **config}
    runtime = Runtime(
        log_definition(ServerConfig(**settings), rpc_addr=grpc), Listeners([grpc], [http], grace=1)
    )
    await runtime.start()
    return InProcess(grpc, http, tmp / "data", runtime)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[InProcess]:
    srv = await start_in_process(tmp_path)
    try:
        yield srv
    finally:
        await srv.runtime.stop()


@pytest.fixture
async def client(server: InProcess) -> AsyncIterator[LogClient]:
    c = LogClient(server.grpc, timeout=10)
    try:
        yield c
    finally:
        await c.close()


class ServerProcess:
    """`python -m lokit serve log ARGS` in `cwd`, ready once its listeners are up."""

    def __init__(
        self,
        cwd: Path,
        *args: str,
        listeners: int = 2,
        env: dict[str, str] | None = None,
        fd_limit: int | None = None,
    ) -> None:
        self.cwd = cwd
        self.args = list(args)
        argv = [sys.executable, "-m", "lokit", "serve", "log", *args]
        # The fd limit is set by an exec wrapper, not a preexec_fn (which races gRPC's fork
        # handlers in this process: see tests.e2e.procs.with_nofile).
        self.proc = subprocess.Popen(
            argv if fd_limit is None else with_nofile(fd_limit, argv),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.addrs: dict[str, str] = {}
        self.stderr_lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._stdout, daemon=True).start()
        threading.Thread(target=self._stderr, daemon=True).start()
        self._wait(listeners)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if " listening on " in line:
                kind = line.split(": ", 1)[1].split(" ", 1)[0]
                with self._cond:
                    self.addrs[kind] = line.rsplit(" listening on ", 1)[1]
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode(errors="replace").rstrip())

    def _wait(self, listeners: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.addrs) < listeners:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"lokit serve log {' '.join(self.args)} did not start "
                        f"(rc={self.proc.poll()}):\n" + "\n".join(self.stderr_lines[-20:])
                    )
                self._cond.wait(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the log server did not stop") from None


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start log server processes in tmp_path (all stopped at the end)."""
    procs: list[ServerProcess] = []

    def start(
        *args: str,
        listeners: int = 2,
        env: dict[str, str] | None = None,
        fd_limit: int | None = None,
    ) -> ServerProcess:
        p = ServerProcess(tmp_path, *args, listeners=listeners, env=env, fd_limit=fd_limit)
        procs.append(p)
        return p

    try:
        yield start
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.stop(signal.SIGKILL)


def run_cli(
    cwd: Path, *args: str | bytes, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`python -m lokit ARGS` to completion (`env` is added to this process's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "lokit", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
