"""addsvc Sum through the full lokit stack against a bare server of the same transport.

Cases `grpc-uds`, `grpc-tcp`, `http-uds`, `http-tcp`; systems `lokit` (the
lokit stack — request context, deadline handling, the request log line, RED
metrics, a debug server; tracing off — around the same plain Sum), `bare` (a
plain grpc.aio servicer / a plain ASGI app on uvicorn), and `lokit serve addsvc`
(the workshop service as shipped, with its own service-level logging and
instrumenting middlewares on top). One sequential client,
the same for both systems (a plain grpc.aio stub / aiohttp keep-alive), so the
difference is the server stack. Both servers run at once and are called in
alternating blocks, so they share whatever else the machine is doing.
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

from _common import Row, cpu_seconds, free_port, parser, percentile, report

HERE = Path(__file__).resolve().parent


SYSTEMS = ("bare", "lokit", "lokit serve addsvc")


def start_server(system: str, transport: str, addr: str, cwd: str) -> subprocess.Popen[bytes]:
    debug = f"127.0.0.1:{free_port()}"
    if system == "lokit serve addsvc":
        cmd = [sys.executable, "-m", "lokit", "serve", "addsvc", f"--{transport}", addr]
        cmd += ["--debug", debug]
    elif system == "lokit":
        cmd = [sys.executable, str(HERE / "_lokit_server.py"), transport, addr, debug]
    else:
        cmd = [sys.executable, str(HERE / "_bare_servers.py"), transport, addr]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    expected = 1 if system == "bare" else 2
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


def measure_pair(
    case: str, n: int, warmup: int, blocks: int, cwd: str
) -> dict[str, tuple[list[float], float]]:
    """Both systems up at once, called in alternating blocks so they share the noise.

    Returns, per system, the latencies of its n calls and its CPU µs per call
    (client + server).
    """
    transport, kind = case.split("-")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    addrs: dict[str, str] = {}
    for i, system in enumerate(SYSTEMS):
        addrs[system] = f"unix:run/{i}-{case}.sock" if kind == "uds" else f"127.0.0.1:{free_port()}"
        procs[system] = start_server(system, transport, addrs[system], cwd)
    fn = grpc_calls if transport == "grpc" else http_calls
    per_block = max(1, n // blocks)

    async def go() -> dict[str, tuple[list[float], float]]:
        lat: dict[str, list[float]] = {s: [] for s in procs}
        cpu: dict[str, float] = {s: 0.0 for s in procs}
        for s in procs:
            await fn(addrs[s], cwd, warmup)
        for _ in range(blocks):
            for s, proc in procs.items():
                c0, s0 = cpu_seconds(), cpu_seconds(proc.pid)
                lat[s] += await fn(addrs[s], cwd, per_block)
                cpu[s] += cpu_seconds() - c0 + cpu_seconds(proc.pid) - s0
        return {s: (lat[s], cpu[s] / len(lat[s]) * 1e6) for s in procs}

    try:
        import uvloop

        return uvloop.run(go())
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n, warmup, blocks = (2000, 300, 4) if args.quick else (20000, 1000, 20)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as cwd:
        os.makedirs(os.path.join(cwd, "run"))
        for case in ("grpc-uds", "grpc-tcp", "http-uds", "http-tcp"):
            result = measure_pair(case, n, warmup, blocks, cwd)
            for system in SYSTEMS:
                lat, cpu = result[system]
                us = [x * 1e6 for x in lat]
                rows.append(Row(case, system, "p50_us", percentile(us, 50), "µs"))
                rows.append(Row(case, system, "p99_us", percentile(us, 99), "µs"))
                rows.append(Row(case, system, "cpu_us_per_call", cpu, "µs"))
            print(f"{case}: done", file=sys.stderr)
    report(
        rows, args, f"addsvc Sum, sequential, {n} calls per system in {blocks} alternating blocks"
    )
    overhead: dict[str, Any] = {}
    for case in ("grpc-uds", "grpc-tcp", "http-uds", "http-tcp"):
        vals = {r.system: r.value for r in rows if r.case == case and r.metric == "p50_us"}
        overhead[case] = f"{(vals['lokit'] / vals['bare'] - 1) * 100:+.1f}%"
    print("lokit p50 over bare:", overhead)


if __name__ == "__main__":
    main()
