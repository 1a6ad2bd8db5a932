"""go-kit's own HTTP client against `lokit serve addsvc --http`.

`addclient/main.go` calls every addsvc method as go-kit's
`addtransport.NewHTTPClient` does (standard library only: untagged request
structs, so `{"A":1,"B":2}`; no Content-Type; non-200 read as
`errors.New(r.Status)`). It is built here with the Debian `go` toolchain,
offline (`GOPROXY=off`, no modules), into a tmp dir with its own GOCACHE.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import LokitProcess

SOURCE = Path(__file__).parent / "addclient" / "main.go"

# call -> (value, go-kit client error, server's {"error"} message, status)
EXPECTED: dict[str, tuple[Any, str, str, int]] = {
    "Sum(1, 2)": (3, "", "", 200),
    "Sum(-5, 3)": (-2, "", "", 200),
    "Sum(0, 0)": (None, "400 Bad Request", "can't sum two zeroes", 400),
    "Sum(2147483647, 1)": (None, "400 Bad Request", "integer overflow", 400),
    "Sum(-2147483648, -1)": (None, "400 Bad Request", "integer overflow", 400),
    'Concat("1", "2")': ("12", "", "", 200),
    'Concat("", "")': ("", "", "", 200),
    'Concat("abcdef", "ghijk")': (
        None,
        "400 Bad Request",
        "result exceeds maximum size",
        400,
    ),
    'Concat("tea", "pot")': (None, "418 I'm a Teapot", "I'm a teapot", 418),
    "Mult(1.5, 4)": (6, "", "", 200),
    "Mult(1e+308, 10)": (None, "400 Bad Request", "result is not a finite number", 400),
}


def _go() -> str:
    path = shutil.which("go")
    if path is None:
        why = "go is not installed (scripts/ensure-servers.sh installs golang-go)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def addclient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go client, built offline from the standard library only."""
    go = _go()
    root = tmp_path_factory.mktemp("gokit")
    src = root / "src"
    src.mkdir()
    shutil.copy(SOURCE, src / "main.go")
    (src / "go.mod").write_text("module x\n\ngo 1.19\n")
    env = {
        **os.environ,
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOCACHE": str(root / "gocache"),
        "GOPATH": str(root / "gopath"),
        "CGO_ENABLED": "0",
    }
    out = root / "addclient"
    build = subprocess.run(
        [go, "build", "-o", str(out), "."],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    return out


@pytest.fixture(scope="module")
def results(addclient: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every call's outcome as the Go client saw it, by call."""
    cwd = tmp_path_factory.mktemp("addsvc")
    server = LokitProcess(["serve", "addsvc", "--http", "127.0.0.1:0"], cwd).wait_ready(1)
    try:
        port = server.addr("http").rsplit(":", 1)[1]
        run = subprocess.run(
            [str(addclient), f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    return {row["call"]: row for row in rows}


def test_every_call_was_made(results: dict[str, Any]) -> None:
    assert sorted(results) == sorted(EXPECTED)


@pytest.mark.parametrize("call", list(EXPECTED))
def test_gokit_client_reads_the_answer(results: dict[str, Any], call: str) -> None:
    value, error, body_error, status = EXPECTED[call]
    row = results[call]
    assert (row["value"], row["error"], row["body_error"], row["status"]) == (
        value,
        error,
        body_error,
        status,
    )
