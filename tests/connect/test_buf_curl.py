"""`buf curl --protocol connect` (a client nobody here wrote) against live `lokit serve` processes.

The schema is given as a file: addsvc's `proto/addsvc.proto`, and for the derived
stringsvc the `.proto` lokit derives from its type hints (reflection is a gRPC
stream; the HTTP listener speaks HTTP/1.1, so buf reads the schema from a file).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import LokitProcess

ROOT = Path(__file__).resolve().parents[2]


def _buf() -> str | None:
    found = shutil.which("buf")
    local = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    return found or (str(local) if local.exists() else None)


@pytest.fixture(scope="module")
def buf() -> str:
    path = _buf()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("buf is not installed (make test installs it into .tools/)")
        pytest.skip("buf is not installed (make test installs it into .tools/)")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("bufcurl")
    procs = []
    socks = {}
    try:
        for name in ("addsvc", "stringsvc"):
            sock = f"{tmp}/{name}.http.sock"
            procs.append(LokitProcess(["serve", name, "--http", f"unix:{sock}"], tmp))
            socks[name] = sock
        for p in procs:
            p.wait_ready(1)
        yield socks
    finally:
        for p in procs:
            p.stop()


@pytest.fixture(scope="module")
def stringsvc_proto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lokit.examples.stringsvc.contract import stringsvc_contract
    from lokit.protobuf import schema_of

    schema = schema_of(stringsvc_contract())
    assert schema is not None
    root = tmp_path_factory.mktemp("schema")
    path = root / schema.file_proto.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema.proto_text())
    return path


def _curl(buf: str, sock: str, schema: Path, path: str, data: Any) -> tuple[int, Any, str]:
    out = subprocess.run(
        [
            buf,
            "curl",
            "--protocol",
            "connect",
            "--unix-socket",
            sock,
            "--schema",
            str(schema),
            "--data",
            json.dumps(data),
            f"http://localhost{path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=schema.parent,
    )
    body = json.loads(out.stdout) if out.stdout.strip() else None
    return out.returncode, body, out.stderr


def test_addsvc_over_connect(buf: str, served: dict[str, str]) -> None:
    schema = ROOT / "proto" / "addsvc.proto"
    rc, body, err = _curl(buf, served["addsvc"], schema, "/pb.Add/Sum", {"a": 2, "b": 3})
    assert rc == 0, err
    assert body == {"v": "5"}
    rc, body, err = _curl(buf, served["addsvc"], schema, "/pb.Add/Concat", {"a": "x", "b": "y"})
    assert (rc, body) == (0, {"v": "xy"}), err
    # go-kit's business errors travel in the reply, as on gRPC
    rc, body, err = _curl(buf, served["addsvc"], schema, "/pb.Add/Sum", {"a": 0, "b": 0})
    assert rc == 0 and body["err"], err


def test_a_derived_service_over_connect(
    buf: str, served: dict[str, str], stringsvc_proto: Path
) -> None:
    sock = served["stringsvc"]
    path = "/stringsvc.v1.StringService/"
    rc, body, err = _curl(buf, sock, stringsvc_proto, path + "Uppercase", {"s": "ada"})
    assert (rc, body) == (0, {"v": "ADA"}), err
    rc, body, err = _curl(buf, sock, stringsvc_proto, path + "Count", {"s": "ada"})
    assert (rc, body) == (0, {"v": "3"}), err  # int64: a string in protobuf JSON


def test_errors_come_back_with_their_codes(
    buf: str, served: dict[str, str], stringsvc_proto: Path
) -> None:
    path = "/stringsvc.v1.StringService/Uppercase"
    rc, _, err = _curl(buf, served["stringsvc"], stringsvc_proto, path, {"s": ""})
    assert rc != 0
    reported = json.loads(err)
    assert reported["code"] == "invalid_argument"
    assert reported["message"] == "empty string"
