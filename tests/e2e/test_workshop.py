"""addsvc and stringsvc end to end: real processes, both transports, both address kinds."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import aiohttp
import grpc
import orjson
import pytest

from lokit.proto import addsvc_pb2, addsvc_pb2_grpc
from tests.e2e.conftest import Start
from tests.e2e.procs import LokitProcess, run_cli


async def http(
    addr: str, verb: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request to `unix:PATH` or `HOST:PORT`."""
    if addr.startswith("unix:"):
        conn: aiohttp.BaseConnector = aiohttp.UnixConnector(path=addr[5:])
        base = "http://localhost"
    else:
        conn = aiohttp.TCPConnector()
        base = f"http://{addr}"
    async with (
        aiohttp.ClientSession(connector=conn) as s,
        s.request(verb, base + path, data=body, headers=headers) as r,
    ):
        return r.status, dict(r.headers), await r.read()


def grpc_target(addr: str, cwd: Path) -> str:
    return "unix://" + str(cwd / addr[5:]) if addr.startswith("unix:") else addr


@pytest.fixture
def addsvc(start: Start) -> LokitProcess:
    return start(
        "serve",
        "addsvc",
        "--grpc",
        "unix:run/add.grpc.sock",
        "--grpc",
        "127.0.0.1:0",
        "--http",
        "unix:run/add.http.sock",
        "--http",
        "127.0.0.1:0",
        "--debug",
        "127.0.0.1:0",
        listeners=5,
    )


async def test_addsvc_http_on_both_address_kinds(addsvc: LokitProcess, tmp_path: Path) -> None:
    p = addsvc
    for addr in p.addrs["http"]:
        if addr.startswith("unix:"):
            addr = "unix:" + str(tmp_path / addr[5:])
        status, _, body = await http(addr, "POST", "/sum", b'{"a":1,"b":2}')
        assert (status, orjson.loads(body)) == (200, {"v": 3})
        status, _, body = await http(addr, "POST", "/concat", b'{"a":"x","b":"y"}')
        assert (status, orjson.loads(body)) == (200, {"v": "xy"})
        status, _, body = await http(addr, "POST", "/mult", b'{"a":1.5,"b":2}')
        assert (status, orjson.loads(body)) == (200, {"v": 3.0})
        status, _, body = await http(addr, "POST", "/sum", b'{"a":0,"b":0}')
        assert (status, orjson.loads(body)) == (400, {"error": "can't sum two zeroes"})
        status, _, body = await http(addr, "POST", "/sum", b'{"a":2147483647,"b":1}')
        assert (status, orjson.loads(body)) == (400, {"error": "integer overflow"})
        status, _, body = await http(addr, "POST", "/concat", b'{"a":"abcdef","b":"ghijk"}')
        assert (status, orjson.loads(body)) == (400, {"error": "result exceeds maximum size"})
        status, _, body = await http(addr, "POST", "/concat", b'{"a":"tea","b":"pot"}')
        assert (status, orjson.loads(body)) == (418, {"error": "I'm a teapot"})


async def test_addsvc_http_bad_input(addsvc: LokitProcess) -> None:
    addr = addsvc.addr("http", 1)
    status, _, body = await http(addr, "POST", "/nope", b"{}")
    assert status == 404 and "error" in orjson.loads(body)
    status, headers, body = await http(addr, "GET", "/sum")
    assert status == 405 and "POST" in headers.get("Allow", "")
    status, _, body = await http(addr, "POST", "/sum", b'{"a":1,')
    assert status == 400 and "malformed JSON" in orjson.loads(body)["error"]
    status, _, body = await http(addr, "POST", "/sum", b'{"a":"one","b":2}')
    assert status == 400 and "$.a" in orjson.loads(body)["error"]


async def test_addsvc_grpc_is_wire_compatible_with_go_kit(
    addsvc: LokitProcess, tmp_path: Path
) -> None:
    for addr in addsvc.addrs["grpc"]:
        async with grpc.aio.insecure_channel(grpc_target(addr, tmp_path)) as ch:
            stub = addsvc_pb2_grpc.AddStub(ch)
            r = await stub.Sum(addsvc_pb2.SumRequest(a=1, b=2))
            assert (r.v, r.err) == (3, "")
            r = await stub.Sum(
                addsvc_pb2.SumRequest(a=0, b=0)
            )  # business error: status OK, err set
            assert (r.v, r.err) == (0, "can't sum two zeroes")
            c = await stub.Concat(addsvc_pb2.ConcatRequest(a="x", b="y"))
            assert (c.v, c.err) == ("xy", "")
            c = await stub.Concat(addsvc_pb2.ConcatRequest(a="tea", b="pot"))
            assert c.err == "I'm a teapot"
            m = await stub.Mult(addsvc_pb2.MultRequest(a=2.5, b=4))
            assert m.v == 10.0


async def test_health_metrics_and_request_id(addsvc: LokitProcess, tmp_path: Path) -> None:
    p = addsvc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(grpc_target(p.addr("grpc"), tmp_path)) as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    status, headers, _ = await http(
        p.addr("http", 1),
        "POST",
        "/sum",
        b'{"a":1,"b":2}',
        {"X-Request-ID": "req-e2e-42"},
    )
    assert status == 200 and headers["X-Request-ID"] == "req-e2e-42"
    status, headers, _ = await http(p.addr("http", 1), "POST", "/sum", b'{"a":1,"b":2}')
    assert headers.get("X-Request-ID")
    debug = p.addr("debug")
    status, _, body = await http(debug, "GET", "/healthz")
    assert status == 200
    status, _, body = await http(debug, "GET", "/metrics")
    text = body.decode()
    assert status == 200
    assert 'lokit_requests_total{code="OK",method="Sum",service="addsvc",transport="http"}' in text
    assert "lokit_request_duration_seconds_bucket" in text
    assert "lokit_requests_in_flight" in text
    assert "addsvc_integers_summed_total" in text
    assert "process_cpu_seconds_total" in text
    logged = p.wait_stderr(lambda ln: "request_id=req-e2e-42" in ln and "event=request" in ln)
    lines = [ln for ln in logged if "request_id=req-e2e-42" in ln]
    assert any("event=call" in ln and "logger=addsvc" in ln for ln in lines)  # service middleware
    line = next(ln for ln in lines if "event=request" in ln)
    for field in ("service=addsvc", "method=Sum", "transport=http", "took=", "code=OK"):
        assert field in line


async def test_stringsvc_dependency(start: Start, tmp_path: Path) -> None:
    env = {"OTEL_TRACES_EXPORTER": "console"}
    strings = start(
        "serve",
        "stringsvc",
        "--grpc",
        "unix:run/s.grpc.sock",
        "--http",
        "unix:run/s.http.sock",
        listeners=2,
        env=env,
    )
    add = start(
        "serve",
        "addsvc",
        "--grpc",
        "unix:run/a.grpc.sock",
        "--http",
        "127.0.0.1:0",
        "--stringsvc",
        "unix:run/s.grpc.sock",
        listeners=2,
        env=env,
    )
    haddr = add.addr("http")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    status, _, body = await http(
        haddr,
        "POST",
        "/concat",
        b'{"a":"ab","b":"cd"}',
        {"X-Request-ID": "dep-1", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert (status, orjson.loads(body)) == (200, {"v": "ABCD"})
    # the request id and the trace reached stringsvc
    logged = strings.wait_stderr(lambda ln: "dep-1" in ln and "Uppercase" in ln)
    assert any("dep-1" in ln and "Uppercase" in ln for ln in logged)
    assert trace_id in "\n".join(strings.wait_stderr(lambda ln: trace_id in ln))

    status, _, body = await http(
        f"unix:{tmp_path}/run/s.http.sock", "POST", "/uppercase", b'{"s":""}'
    )
    assert (status, orjson.loads(body)) == (400, {"error": "empty string"})
    status, _, body = await http(
        f"unix:{tmp_path}/run/s.http.sock", "POST", "/count", b'{"s":"hello"}'
    )
    assert (status, orjson.loads(body)) == (200, {"v": 5})

    assert strings.stop() == 0
    status, _, body = await http(haddr, "POST", "/concat", b'{"a":"ab","b":"cd"}')
    assert status == 503 and "unavailable" in orjson.loads(body)["error"]
    status, _, body = await http(haddr, "POST", "/sum", b'{"a":1,"b":2}')
    assert (status, orjson.loads(body)) == (200, {"v": 3})
    r = run_cli(
        ["call", "addsvc", "concat", "ab", "cd", "--grpc", "unix:run/a.grpc.sock"], tmp_path
    )
    assert r.returncode == 1 and "unavailable" in r.stderr and "Traceback" not in r.stderr


def test_cli_call(addsvc: LokitProcess, tmp_path: Path) -> None:
    g = "unix:run/add.grpc.sock"
    r = run_cli(["call", "addsvc", "sum", "1", "2", "--grpc", g], tmp_path)
    assert (r.returncode, orjson.loads(r.stdout)) == (0, {"v": 3})
    r = run_cli(
        ["call", "addsvc", "concat", "a=x", "b=y", "--http", addsvc.addr("http", 1)], tmp_path
    )
    assert (r.returncode, orjson.loads(r.stdout)) == (0, {"v": "xy"})
    r = run_cli(["call", "addsvc", "sum", "0", "0", "--grpc", g], tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "error: can't sum two zeroes"
    r = run_cli(["call", "addsvc", "sum", "x", "2", "--grpc", g], tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    r = run_cli(["call", "addsvc", "nope", "--grpc", g], tmp_path)
    assert r.returncode == 1 and "no method" in r.stderr
    r = run_cli(["call", "addsvc", "sum", "1", "2", "--grpc", "unix:run/missing.sock"], tmp_path)
    assert r.returncode == 1 and "unavailable" in r.stderr and "Traceback" not in r.stderr


def test_graceful_shutdown_removes_sockets(start: Start, tmp_path: Path) -> None:
    p = start(
        "serve", "stringsvc", "--grpc", "unix:run/g.sock", "--http", "unix:run/h.sock", listeners=2
    )
    assert (tmp_path / "run/g.sock").exists() and (tmp_path / "run/h.sock").exists()
    assert p.stop(signal.SIGTERM) == 0
    assert not (tmp_path / "run/g.sock").exists() and not (tmp_path / "run/h.sock").exists()
    p = start("serve", "stringsvc", "--grpc", "unix:run/g.sock", listeners=1)
    assert p.stop(signal.SIGINT) == 0


def test_stale_socket_is_replaced_and_live_one_refused(start: Start, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    for name in ("g.sock", "h.sock"):  # stale socket files: bound, never unlinked
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(tmp_path / "run" / name))
        s.close()
    p = start(
        "serve", "stringsvc", "--grpc", "unix:run/g.sock", "--http", "unix:run/h.sock", listeners=2
    )
    for flag, path in (("--grpc", "unix:run/g.sock"), ("--http", "unix:run/h.sock")):
        r = run_cli(["serve", "stringsvc", flag, path], tmp_path)
        assert r.returncode == 1, r.stderr
        assert "another server is running there" in r.stderr and "Traceback" not in r.stderr
    assert p.stop() == 0


@pytest.mark.parametrize("flag", ["--grpc", "--http"])
def test_busy_port_refused(flag: str, tmp_path: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        r = run_cli(["serve", "stringsvc", flag, f"127.0.0.1:{port}"], tmp_path)
    finally:
        s.close()
    assert r.returncode == 1 and "already in use" in r.stderr and "Traceback" not in r.stderr


def test_bad_address_flag(tmp_path: Path) -> None:
    r = run_cli(["serve", "addsvc", "--grpc", "nonsense"], tmp_path)
    assert r.returncode == 1 and "neither unix:PATH nor HOST:PORT" in r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "run")


def test_repeated_signals_do_not_cut_shutdown_short(start: Start, tmp_path: Path) -> None:
    p = start(
        "serve", "stringsvc", "--grpc", "unix:run/g.sock", "--http", "unix:run/h.sock", listeners=2
    )
    p.proc.send_signal(signal.SIGINT)
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait_exit() == 0
    assert not (tmp_path / "run/g.sock").exists() and not (tmp_path / "run/h.sock").exists()
