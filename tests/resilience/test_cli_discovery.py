"""The CLI's clients over discovery addresses: `lokit call --grpc dir:`, `lokit log --addr dir:`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.procs import LokitProcess, run_cli

pytestmark = pytest.mark.timeout(90)


def test_lokit_call_and_lokit_log_take_a_dir_registry(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    reg.mkdir()
    procs = [
        LokitProcess(["serve", "stringsvc", "--grpc", f"unix:{reg}/s.grpc.sock"], tmp_path),
        LokitProcess(
            ["serve", "log", "--grpc", f"unix:{reg}/log.grpc.sock", "--data", "data"], tmp_path
        ),
    ]
    try:
        for p in procs:
            p.wait_ready(1)
        # stringsvc's directory also holds the log's socket: only gRPC sockets of a
        # server that answers the method count, and the call names its service.
        strings = tmp_path / "strings"
        strings.mkdir()
        (strings / "s.grpc.sock").symlink_to(reg / "s.grpc.sock")
        r = run_cli(
            [
                "call",
                "stringsvc",
                "uppercase",
                "hi",
                "--grpc",
                f"dir:{strings}",
                "--lb",
                "round-robin",
            ],
            tmp_path,
        )
        assert (r.returncode, r.stdout.strip()) == (0, '{"v":"HI"}'), r.stderr
        logs = tmp_path / "logs"
        logs.mkdir()
        (logs / "a.grpc.sock").symlink_to(reg / "log.grpc.sock")
        r = run_cli(["log", "produce", "--addr", f"dir:{logs}", "hello", "world"], tmp_path)
        assert r.returncode == 0, r.stderr
        r = run_cli(["log", "consume", "--addr", f"dir:{logs}", "--lb", "p2c"], tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["hello", "world"]
        r = run_cli(["log", "info", "--addr", f"dir:{tmp_path}/empty"], tmp_path)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    finally:
        for p in procs:
            p.stop()
