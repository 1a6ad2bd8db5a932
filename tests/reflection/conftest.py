"""Real `lokit serve` processes with reflection (and one without), and the `buf` binary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import LokitProcess

ROOT = Path(__file__).resolve().parents[2]


def buf_binary() -> str:
    """`buf` from PATH or the project's .tools/; missing: a failure under CI=true, else a skip."""
    path = shutil.which("buf") or shutil.which("buf", path=str(ROOT / ".tools/node_modules/.bin"))
    if path is None:
        why = "buf is not installed (scripts/ensure-servers.sh installs it into .tools/)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


class Buf:
    """`buf curl` over gRPC with server reflection only: no schema file anywhere."""

    def __init__(self, path: str) -> None:
        self.path = path

    def curl(
        self, url: str, data: object | None = None, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        args = [self.path, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *extra]
        if data is not None:
            args += ["-d", json.dumps(data)]
        return subprocess.run(
            [*args, url], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )


@pytest.fixture(scope="session")
def buf() -> Buf:
    return Buf(buf_binary())


def _serve(cwd: Path, *args: str, listeners: int) -> LokitProcess:
    return LokitProcess(["serve", *args], cwd).wait_ready(listeners)


@pytest.fixture(scope="module")
def addsvc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LokitProcess]:
    """`lokit serve addsvc` on TCP loopback and a Unix socket, with a debug listener."""
    d = tmp_path_factory.mktemp("addsvc")
    p = _serve(
        d,
        "addsvc",
        "--grpc=127.0.0.1:0",
        f"--grpc=unix:{d}/add.sock",
        "--debug=127.0.0.1:0",
        listeners=3,
    )
    yield p
    p.stop()


@pytest.fixture(scope="module")
def logsvc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LokitProcess]:
    """`lokit serve log` on TCP loopback and a Unix socket."""
    d = tmp_path_factory.mktemp("log")
    p = _serve(
        d,
        "log",
        "--grpc=127.0.0.1:0",
        f"--grpc=unix:{d}/log.sock",
        f"--data={d}/data",
        listeners=2,
    )
    yield p
    p.stop()


@pytest.fixture(scope="module")
def stringsvc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LokitProcess]:
    """`lokit serve stringsvc` (a derived service) on TCP loopback."""
    d = tmp_path_factory.mktemp("stringsvc")
    p = _serve(d, "stringsvc", "--grpc=127.0.0.1:0", listeners=1)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def unreflected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LokitProcess]:
    """`lokit serve addsvc --no-reflection`."""
    d = tmp_path_factory.mktemp("noreflect")
    p = _serve(d, "addsvc", "--grpc=127.0.0.1:0", "--no-reflection", listeners=1)
    yield p
    p.stop()


def url(proc: LokitProcess, path: str) -> str:
    """`http://HOST:PORT/path` for the process's first (TCP) gRPC listener."""
    return f"http://{proc.addr('grpc')}{path}"
