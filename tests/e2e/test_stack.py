"""`lokit run` (what `make run` starts): the whole stack up, wired, and stopped by Ctrl-C.

The stack runs two stringsvc instances registered in `run/stringsvc.d/`; addsvc
finds them there, so one SIGKILLed instance leaves addsvc answering and the
stack running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.e2e.procs import run_cli


def _pids(table: str) -> dict[str, int]:
    """Service instance name -> pid, from the rows of the stack's table."""
    out: dict[str, int] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[2].isdigit():
            out[cells[1]] = int(cells[2])
    return out


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
            "stringsvc.d/a.grpc.sock",
            "stringsvc.d/b.grpc.sock",
            "stringsvc.d/a.http.sock",
            "stringsvc.d/b.http.sock",
            "stringsvc.d/b.frames.sock",
            "addsvc.grpc.sock",
            "127.0.0.1:9101",
            "127.0.0.1:9102",
            "127.0.0.1:9104",
        ):
            assert needle in seen, seen
        pids = _pids(seen)
        assert {"log", "stringsvc/a", "stringsvc/b", "addsvc"} <= set(pids), seen
        concat = ["call", "addsvc", "concat", "ab", "cd", "--grpc", "unix:run/addsvc.grpc.sock"]
        r = run_cli(concat, tmp_path)
        assert (r.returncode, orjson.loads(r.stdout)) == (0, {"v": "ABCD"}), r.stderr
        r = run_cli(
            ["call", "stringsvc", "uppercase", "hi", "--grpc", "dir:run/stringsvc.d"],
            tmp_path,
        )
        assert (r.returncode, orjson.loads(r.stdout)) == (0, {"v": "HI"}), r.stderr
        r = run_cli(["log", "produce", "hello"], tmp_path)
        assert r.returncode == 0, r.stderr

        # One stringsvc dies hard: addsvc keeps answering through the other, the stack runs on.
        os.kill(pids["stringsvc/b"], signal.SIGKILL)
        for _ in range(3):
            r = run_cli(concat, tmp_path)
            assert (r.returncode, orjson.loads(r.stdout)) == (0, {"v": "ABCD"}), r.stderr
        assert proc.poll() is None

        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, seen + rest
        assert "stringsvc/b exited" in rest, rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # Every server removed its sockets; the SIGKILLed one could not (discovery skips them).
    left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "run").rglob("*.sock"))
    assert left == [f"run/stringsvc.d/b.{kind}.sock" for kind in ("frames", "grpc", "http")]
    assert (tmp_path / "data" / "log").is_dir()
