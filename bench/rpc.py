"""addsvc Sum through the full lokit stack against a bare server of the same transport.

Cases `grpc-uds`, `grpc-tcp`, `http-uds`, `http-tcp`; systems `lokit` (logs,
RED metrics, request context, deadline handling on; tracing off) and `bare` (a
plain grpc.aio servicer / a plain ASGI app on uvicorn). One sequential client,
the same for both systems (a plain grpc.aio stub / aiohttp keep-alive), so the
difference is the server stack. Rounds alternate bare and lokit to share noise.
Metrics: `p50_us`, `p99_us`, `cpu_us_per_call` (client + server CPU per call).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Row, cpu_seconds, median, parser, percentile, report

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(system: str, transport: str, addr: str, cwd: str) -> subprocess.Popen[bytes]:
    if system == "lokit":
        cmd = [
            sys.executable,
            "-m",
            "lokit",
            "serve",
            "addsvc",
            f"--{transport}",
            addr,
            "--debug",
            f"127.0.0.1:{free_port()}",
        ]
    else:
        cmd = [sys.executable, str(HERE / "_bare_servers.py"), transport, addr]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    expected = 2 if system == "lokit" else 1
    for _ in range(expected):
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"{system} {transport} server did not start: {' '.join(cmd)}")
    return proc


async def grpc_calls(addr: str, cwd: str, n: int) -> list[float]:
    import grpc

    from lokit.proto import addsvc_pb2

    target = "unix://" + os.path.join(cwd, addr[5:]) if addr.startswith("unix:") else addr
    async with grpc.aio.insecure_channel(target) as ch:
        call = ch.unary_unary(
            "/pb.Add/Sum",
            request_serializer=addsvc_pb2.SumRequest.SerializeToString,
            response_deserializer=addsvc_pb2.SumReply.FromString,
        )
        req = addsvc_pb2.SumRequest(a=1, b=2)
        out: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = await call(req)
            out.append(time.perf_counter() - t0)
            assert r.v == 3
        return out


async def http_calls(addr: str, cwd: str, n: int) -> list[float]:
    import aiohttp

    if addr.startswith("unix:"):
        conn: aiohttp.BaseConnector = aiohttp.UnixConnector(path=os.path.join(cwd, addr[5:]))
        url = "http://localhost/sum"
    else:
        conn = aiohttp.TCPConnector()
        url = f"http://{addr}/sum"
    body = b'{"a":1,"b":2}'
    headers = {"Content-Type": "application/json"}
    out: list[float] = []
    async with aiohttp.ClientSession(connector=conn) as s:
        for _ in range(n):
            t0 = time.perf_counter()
            async with s.post(url, data=body, headers=headers) as r:
                await r.read()
            out.append(time.perf_counter() - t0)
            assert r.status == 200
    return out


def measure(system: str, case: str, n: int, warmup: int, cwd: str) -> tuple[list[float], float]:
    """Latencies of n sequential calls, and CPU µs per call (client + server)."""
    transport, kind = case.split("-")
    addr = f"unix:run/{system}-{case}.sock" if kind == "uds" else f"127.0.0.1:{free_port()}"
    proc = start_server(system, transport, addr, cwd)
    try:
        fn = grpc_calls if transport == "grpc" else http_calls

        async def go() -> tuple[list[float], float]:
            await fn(addr, cwd, warmup)
            c0, s0 = cpu_seconds(), cpu_seconds(proc.pid)
            lat = await fn(addr, cwd, n)
            c1, s1 = cpu_seconds(), cpu_seconds(proc.pid)
            return lat, (c1 - c0 + s1 - s0) / n * 1e6

        import uvloop

        return uvloop.run(go())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n, warmup, rounds = (1500, 200, 1) if args.quick else (10000, 1000, 3)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as cwd:
        os.makedirs(os.path.join(cwd, "run"))
        for case in ("grpc-uds", "grpc-tcp", "http-uds", "http-tcp"):
            results: dict[str, dict[str, list[float]]] = {
                s: {"p50": [], "p99": [], "cpu": []} for s in ("bare", "lokit")
            }
            for _ in range(rounds):
                for system in ("bare", "lokit"):
                    lat, cpu = measure(system, case, n, warmup, cwd)
                    us = [x * 1e6 for x in lat]
                    results[system]["p50"].append(percentile(us, 50))
                    results[system]["p99"].append(percentile(us, 99))
                    results[system]["cpu"].append(cpu)
            for system in ("lokit", "bare"):
                r = results[system]
                rows.append(Row(case, system, "p50_us", median(r["p50"]), "µs"))
                rows.append(Row(case, system, "p99_us", median(r["p99"]), "µs"))
                rows.append(Row(case, system, "cpu_us_per_call", median(r["cpu"]), "µs"))
            print(f"{case}: done", file=sys.stderr)
    report(rows, args, f"addsvc Sum, sequential, {n} calls x {rounds} rounds")
    overhead: dict[str, Any] = {}
    for case in ("grpc-uds", "grpc-tcp", "http-uds", "http-tcp"):
        vals = {r.system: r.value for r in rows if r.case == case and r.metric == "p50_us"}
        overhead[case] = f"{(vals['lokit'] / vals['bare'] - 1) * 100:+.1f}%"
    print("lokit p50 over bare:", overhead)


if __name__ == "__main__":
    main()
