"""SIGHUP never ends a server dirty: it serves on, and SIGTERM still exits 0 without leftovers."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.e2e.procs import LokitProcess, run_cli


def _wait_for_line(p: LokitProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in p.stderr:
        assert p.proc.poll() is None, f"the server exited (rc={p.proc.returncode}):\n{p.stderr}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{p.stderr}"
        time.sleep(0.05)


def test_sighup_is_ignored_and_sigterm_still_cleans_up(tmp_path: Path) -> None:
    grpc_sock, http_sock = tmp_path / "s.grpc.sock", tmp_path / "s.http.sock"
    p = LokitProcess(
        ["serve", "stringsvc", "--grpc", f"unix:{grpc_sock}", "--http", f"unix:{http_sock}"],
        tmp_path,
    ).wait_ready(2)
    try:
        for _ in range(2):
            p.proc.send_signal(signal.SIGHUP)
            _wait_for_line(p, "SIGHUP ignored")
        assert p.proc.poll() is None
        assert grpc_sock.exists() and http_sock.exists()
        for flag, sock in (("--grpc", grpc_sock), ("--http", http_sock)):
            out = run_cli(["call", "stringsvc", "uppercase", "hup", flag, f"unix:{sock}"], tmp_path)
            assert out.returncode == 0, out.stderr
            assert "HUP" in out.stdout
    finally:
        rc = p.stop(signal.SIGTERM)
    assert rc == 0, p.stderr
    assert not grpc_sock.exists() and not http_sock.exists()
    assert "Traceback" not in p.stderr
