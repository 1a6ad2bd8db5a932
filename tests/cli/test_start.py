"""What each command loads before it runs: the CLI starts fast by not importing what it
does not use (servers, the storage engine, YAML, rich). No timing here: the start times
are measured by `bench/limits.py` (case cli-start) and `python -X importtime`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Never loaded by a command that only calls a service, lists its help, or talks to a log.
SERVER_SIDE = (
    "uvicorn",
    "yaml",
    "lokit.runtime",
    "lokit.commitlog",
    "lokit.logsvc.service",
    "lokit.logsvc.config",
    "lokit.transport.http.app",
    "lokit.transport.http.server",
)
# Loaded only where they are used: rich for `lokit log info`'s tables and a progress bar
# on a terminal; the transports' clients for a call.
HEAVY = (*SERVER_SIDE, "grpc", "google.protobuf", "aiohttp", "rich", "structlog", "opentelemetry")


def imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules `python -m lokit ARGS` imports (from -X importtime), whatever its exit."""
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lokit", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert lines, r.stderr
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("call", "--help"),
        ("log", "--help"),
        ("log", "produce", "--help"),
        ("serve", "log", "--help"),
    ],
)
def test_help_loads_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert loaded(imported(tmp_path, *args), HEAVY) == []


@pytest.mark.parametrize(
    "args",
    [
        ("call", "addsvc", "sum", "1", "2", "--grpc", "127.0.0.1:1"),
        ("call", "log", "list-topics", "--grpc", "127.0.0.1:1"),
        ("log", "produce", "--addr", "127.0.0.1:1", "v"),
        ("log", "consume", "--addr", "127.0.0.1:1"),
    ],
)
def test_clients_load_no_server_side(tmp_path: Path, args: tuple[str, ...]) -> None:
    """The call fails (nothing listens on port 1), after loading only a client."""
    assert loaded(imported(tmp_path, *args), SERVER_SIDE) == []


def test_an_http_call_loads_no_server(tmp_path: Path) -> None:
    args = ("call", "stringsvc", "count", "abc", "--http", "127.0.0.1:1")
    assert loaded(imported(tmp_path, *args), SERVER_SIDE) == []


@pytest.mark.parametrize(
    "args",
    [
        ("call", "addsvc", "sum", "1", "2", "--grpc", "127.0.0.1:1"),
        ("log", "produce", "--addr", "127.0.0.1:1", "v"),
    ],
)
def test_a_grpc_call_loads_only_the_grpc_client(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules = imported(tmp_path, *args)
    unused = ("rich", "structlog", "prometheus_client", "opentelemetry.sdk", "aiohttp")
    assert loaded(modules, (*SERVER_SIDE, *unused)) == []
