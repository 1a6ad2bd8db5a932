"""`lokit run` (what `make run` starts): the whole stack up, wired, and stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.e2e.procs import run_cli


def test_run_starts_the_stack_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lokit", "run"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's job
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        seen = ""
        deadline = time.monotonic() + 60
        while "try:" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        for needle in (
            "log.grpc.sock",
            "stringsvc.grpc.sock",
            "addsvc.grpc.sock",
            "127.0.0.1:9101",
        ):
            assert needle in seen, seen
        r = run_cli(
            ["call", "addsvc", "concat", "ab", "cd", "--grpc", "unix:run/addsvc.grpc.sock"],
            tmp_path,
        )
        assert (r.returncode, orjson.loads(r.stdout)) == (0, {"v": "ABCD"})
        r = run_cli(["log", "produce", "hello"], tmp_path)
        assert r.returncode == 0, r.stderr
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert list((tmp_path / "run").iterdir()) == []
    assert (tmp_path / "data" / "log").is_dir()
