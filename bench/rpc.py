"""addsvc Sum through the full lokit stack against a bare server of the same transport.

Cases `grpc-uds`, `grpc-tcp`, `http-uds`, `http-tcp`; systems `lokit` (the
lokit stack — request context, deadline handling, the request log line, RED
metrics, a debug server; tracing off — around the same plain Sum), `bare` (a
plain grpc.aio servicer / a plain ASGI app on uvicorn), and `lokit serve addsvc`
(the workshop service as shipped, with its own service-level logging and
instrumenting middlewares on top). One sequential client,
the same for both systems (a plain grpc.aio stub / aiohttp keep-alive), so the
difference is the server stack. Each system's server is one process listening
on a Unix socket and on TCP, all servers run at once, and every (system, socket)
is called in alternating blocks, so they share whatever else the machine is
doing and a Unix socket is compared with TCP on the same server, in the same
placement on the cores.
Metrics: `p50_us`, `p99_us`, `cpu_us_per_call` (client + server CPU per call),
`server_cpu_us_per_call` (the server's part of it).

System `lokit-client` is lokit's own client (`lokit.connect(addsvc_contract(),
grpc=ADDR)` or `http=ADDR`, `sum(1, 2)`) against the same `lokit` server, so
lokit's client costs are in it (`bare` stays a bare stub / aiohttp to a bare
server). It runs in a client process of its own (bench/_lokit_client.py), where
lokit's transport is what loads grpc, as in a lokit service calling another: so it
runs the gRPC settings lokit chooses (`lokit.transport.grpc.iomgr`), while this
process loads grpc first and its bare stub keeps grpc's own. Its CPU per call is
that process's. The gRPC cases are measured twice: as the kernel places the
processes (`p50_us` ...), and with this process, every server and the client
process on one core (`p50_us_one_core` ...): a gRPC call hands off between a
dozen threads, and on this 2-vCPU VM a hand-off to the other core costs tens of
µs, so the first placement's ratios move by more than the targets' margins
between runs, while on one core only the stacks and the sockets differ.
Case `floor-uds`, system `framed`: the Python floor, a uvloop
length-prefixed echo over a Unix socket (bench/_framed_echo.py) of a payload the
size of addsvc's Sum request. Case `local-uds`, system `lokit`: `lokit.connect`
to a lokit Sum over a Unix socket with lokit's default client and protocol (an
address only, `unix:STEM`, where the server listens on `STEM.grpc.sock`,
`STEM.http.sock` and `STEM.frames.sock`: `lokit.dialing` picks lokit frames), and
system `lokit-http` the same calls over HTTP (`http=unix:STEM.http.sock`, the
default before frames). These two are measured with the
servers pinned to the client's core (the rows' `p50_us`) and to another core
(`p50_us_cross_core`), because the kernel keeps whichever placement a server
starts with (`measure_local`). Beside them, case `local-uds` has systems `uvicorn`
and `httptools`: the same lokit client (`http=ADDR`) to a bare ASGI app on uvicorn
and to a bare asyncio protocol on httptools (bench/_bare_servers.py), what a
server with nothing of lokit's per-request work costs in that placement, and system
`lokit-deadline`: the `lokit` calls with a client timeout of 10 s, so every call
carries a deadline (`x-request-timeout-ms`) and the server runs it under one. The
issue #12 target ratios are printed under the table as information.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from _common import (
    Row,
    cpu_seconds,
    free_port,
    parser,
    percentile,
    placed,
    placements,
    report,
    stop,
)

HERE = Path(__file__).resolve().parent


Calls = Callable[[int], Awaitable[list[float]]]
"""k sequential calls of one system; their latencies in seconds."""


class Target(NamedTuple):
    """A measured system: its server's pid, its calls, and the pid of the process that
    makes them (None: this one), whose CPU is the client's."""

    server: int
    calls: Calls
    client: int | None = None


SYSTEMS = ("bare", "lokit", "lokit serve addsvc")
# local-uds systems beside `lokit`: lokit's client to a bare server (`_bare_servers.py`).
BARE_LOCAL = ("uvicorn", "httptools")
# local-uds/lokit-deadline: the same calls with a client timeout (a deadline on every call).
DEADLINE_SECONDS = 10.0
CLIENT_SYSTEMS = ("bare", "lokit", "lokit-client", "lokit serve addsvc")


@contextlib.contextmanager
def running() -> Iterator[dict[str, subprocess.Popen[Any]]]:
    """A dict to put started servers (and client processes) in; every one is stopped on
    leaving, also when a later one fails to start."""
    procs: dict[str, subprocess.Popen[Any]] = {}
    try:
        yield procs
    finally:
        for proc in procs.values():
            stop(proc)


def start_server(
    system: str, transport: str, addrs: list[str], cwd: str
) -> subprocess.Popen[bytes]:
    """`system`'s server on every address of `addrs`, once it says it listens."""
    debug = f"127.0.0.1:{free_port()}"
    if system == "lokit serve addsvc":
        cmd = [sys.executable, "-m", "lokit", "serve", "addsvc"]
        for addr in addrs:
            cmd += [f"--{transport}", addr]
        cmd += ["--debug", debug]
    elif system == "lokit":
        cmd = [sys.executable, str(HERE / "_lokit_server.py"), transport, ",".join(addrs), debug]
    else:
        cmd = [sys.executable, str(HERE / "_bare_servers.py"), transport, ",".join(addrs)]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    listeners = 2 if transport == "both" else len(addrs)
    for _ in range(1 if system == "bare" else listeners + 1):
        line = proc.stdout.readline()
        if not line:
            stop(proc)
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


def lokit_address(addr: str, cwd: str) -> str:
    """addr with a relative Unix socket path made absolute against the servers' cwd."""
    return "unix:" + os.path.join(cwd, addr[5:]) if addr.startswith("unix:") else addr


async def lokit_calls(
    addr: str,
    cwd: str,
    n: int,
    protocol: str | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (the client's, sent as each call's deadline)
) -> list[float]:
    """Sequential `sum(1, 2)` calls through lokit's own client (`lokit.connect`).

    `protocol` "grpc" or "http" names it; None lets `connect` choose from the address.
    `timeout`: the client's per-call timeout, sent as each call's deadline.
    """
    import lokit
    from lokit.examples.addsvc.contract import addsvc_contract

    out: list[float] = []
    where = lokit_address(addr, cwd)
    grpc = where if protocol == "grpc" else None
    http = where if protocol == "http" else None
    address = None if protocol else where
    async with lokit.connect(
        addsvc_contract(), address, grpc=grpc, http=http, timeout=timeout
    ) as svc:
        for _ in range(n):
            t0 = time.perf_counter()
            v = await svc.sum(1, 2)
            out.append(time.perf_counter() - t0)
            assert v == 3
    return out


def start_client(protocol: str, addr: str, cwd: str) -> subprocess.Popen[str]:
    """lokit's client in its own process (bench/_lokit_client.py), connected to addr."""
    cmd = [sys.executable, str(HERE / "_lokit_client.py"), protocol, lokit_address(addr, cwd)]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        stop(proc)
        raise SystemExit(f"lokit's client did not start: {' '.join(cmd)}")
    return proc


async def client_calls(proc: subprocess.Popen[str], n: int) -> list[float]:
    """n sequential calls made by a client process; their latencies in seconds.

    It waits on the pipe without yielding: the bench drives one system at a time, so
    the loop has nothing else to run meanwhile."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{n}\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"lokit's client process {proc.pid} ended")
    return [float(x) for x in json.loads(line)]


async def framed_calls(path: str, n: int) -> list[float]:
    """Sequential round trips of one Sum-request-sized frame to the framed echo."""
    import _framed_echo

    caller = await _framed_echo.connect(path)
    out: list[float] = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await caller.call()
            out.append(time.perf_counter() - t0)
    finally:
        caller.close()
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


Results = dict[str, tuple[list[float], float, float]]


def measure_transport(
    transport: str, n: int, warmup: int, blocks: int, cwd: str, core: int | None = None
) -> dict[str, Results]:
    """Cases `TRANSPORT-uds` and `TRANSPORT-tcp`: every system, both sockets, alternating.

    Each system's server is one process listening on a Unix socket and on TCP,
    and all (system, socket) pairs are called in alternating blocks, so the
    systems, and a Unix socket against TCP, are compared within one run, in the
    same placement on the cores, sharing the same noise; with `core`, this process,
    the servers and the client processes are all on that one core. Returns, per case
    and system, the latencies of its n calls and its CPU µs per call (client + server).
    """
    with running() as procs:
        return _measure_transport(procs, transport, n, warmup, blocks, cwd, core)


def _measure_transport(
    procs: dict[str, subprocess.Popen[Any]],
    transport: str,
    n: int,
    warmup: int,
    blocks: int,
    cwd: str,
    core: int | None,
) -> dict[str, Results]:
    addrs: dict[tuple[str, str], str] = {}
    for i, system in enumerate(SYSTEMS):
        addrs[(system, "uds")] = f"unix:run/{i}-{transport}.sock"
        addrs[(system, "tcp")] = f"127.0.0.1:{free_port()}"
        both = [addrs[(system, "uds")], addrs[(system, "tcp")]]
        procs[system] = start_server(system, transport, both, cwd)
    fn = grpc_calls if transport == "grpc" else http_calls
    calls: dict[str, Target] = {}
    for kind in ("uds", "tcp"):
        for s in CLIENT_SYSTEMS:
            if s == "lokit-client":  # lokit's client, in its own process, to the lokit server
                client = procs[f"client-{kind}"] = start_client(
                    transport, addrs[("lokit", kind)], cwd
                )
                target = Target(
                    procs["lokit"].pid, functools.partial(client_calls, client), client.pid
                )
            else:
                target = Target(procs[s].pid, functools.partial(fn, addrs[(s, kind)], cwd))
            calls[f"{transport}-{kind}/{s}"] = target
    with contextlib.ExitStack() as pinned:
        if core is not None:
            pinned.enter_context(placed([proc.pid for proc in procs.values()], core))
        measured = alternate(calls, n, warmup, blocks)
    out: dict[str, Results] = {}
    for key, result in measured.items():
        case, system = key.split("/", 1)
        out.setdefault(case, {})[system] = result
    return out


def alternate(calls: dict[str, Target], n: int, warmup: int, blocks: int) -> Results:
    """Each system's `calls(k)` (k sequential calls, their latencies) in alternating blocks.

    `calls` maps a system to its `Target`; all are driven from one uvloop,
    so the systems share whatever else the machine is doing, and every other round
    runs in reverse order, so that which system a block follows (the order alone
    moved a UDS/TCP ratio by 5-10 %) evens out. Returns, per system,
    the latencies of its n calls and its CPU µs per call (client + server).
    """
    import uvloop

    per_block = max(1, n // blocks)

    async def go() -> Results:
        lat: dict[str, list[float]] = {s: [] for s in calls}
        cpu: dict[str, float] = {s: 0.0 for s in calls}
        server: dict[str, float] = {s: 0.0 for s in calls}
        for target in calls.values():
            await target.calls(warmup)
        order = list(calls.items())
        for _ in range(blocks):
            for s, (pid, call, client) in order:
                c0, s0 = cpu_seconds(client), cpu_seconds(pid)
                lat[s] += await call(per_block)
                served = cpu_seconds(pid) - s0
                server[s] += served
                cpu[s] += cpu_seconds(client) - c0 + served
            order.reverse()  # counterbalanced: no system always follows the same one
        return {
            s: (lat[s], cpu[s] / len(lat[s]) * 1e6, server[s] / len(lat[s]) * 1e6) for s in calls
        }

    return uvloop.run(go())


def start_framed(path: str) -> subprocess.Popen[bytes]:
    """The framed echo server on path, once it says it is ready."""
    cmd = [sys.executable, str(HERE / "_framed_echo.py"), path]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    if not proc.stdout.readline():
        stop(proc)
        raise SystemExit(f"framed echo did not start: {' '.join(cmd)}")
    return proc


Placements = dict[str, Results]


def measure_local(n: int, warmup: int, blocks: int, cwd: str) -> Placements:
    """floor-uds/framed and local-uds/lokit, called in alternating blocks, per placement.

    Both are wakeup-bound ping-pongs, so both are measured pinned in both placements
    (`_common.placements`): `same` (servers on the client's core) and `cross` (servers
    on another core; skipped on one core). Returns, per placement, latencies and CPU
    µs per call of each system.
    """
    with running() as procs:
        return _measure_local(procs, n, warmup, blocks, cwd)


def _measure_local(
    procs: dict[str, subprocess.Popen[Any]], n: int, warmup: int, blocks: int, cwd: str
) -> Placements:
    framed_path = os.path.join(cwd, "run", "framed.sock")
    addr = "unix:run/local-uds"
    procs["framed"] = start_framed(framed_path)
    procs["lokit"] = start_server("lokit", "both", [addr], cwd)
    calls: dict[str, Target] = {
        "framed": Target(procs["framed"].pid, functools.partial(framed_calls, framed_path)),
        "lokit": Target(procs["lokit"].pid, functools.partial(lokit_calls, addr, cwd)),
        "lokit-deadline": Target(
            procs["lokit"].pid,
            functools.partial(lokit_calls, addr, cwd, timeout=DEADLINE_SECONDS),
        ),
        "lokit-http": Target(
            procs["lokit"].pid,
            functools.partial(lokit_calls, addr + ".http.sock", cwd, protocol="http"),
        ),
    }
    for bare in BARE_LOCAL:  # lokit's client to bare servers: what the server stack costs
        where = f"unix:run/local-{bare}.http.sock"
        procs[bare] = start_server("bare", "http" if bare == "uvicorn" else bare, [where], cwd)
        calls[bare] = Target(
            procs[bare].pid, functools.partial(lokit_calls, where, cwd, protocol="http")
        )
    out: Placements = {}
    for placement, core in placements().items():
        with placed([proc.pid for proc in procs.values()], core):
            out[placement] = alternate(calls, n, warmup, blocks)
    return out


def call_rows(
    case: str, system: str, result: tuple[list[float], float, float], suffix: str = ""
) -> list[Row]:
    """A measured system's rows: p50 and p99 latency, CPU per call (client + server) and
    the server's part of it; `suffix` ends the metrics' names (`_cross_core`)."""
    lat, cpu, server = result
    us = [x * 1e6 for x in lat]
    return [
        Row(case, system, "p50_us" + suffix, percentile(us, 50), "µs"),
        Row(case, system, "p99_us" + suffix, percentile(us, 99), "µs"),
        Row(case, system, "cpu_us_per_call" + suffix, cpu, "µs"),
        Row(case, system, "server_cpu_us_per_call" + suffix, server, "µs"),
    ]


def ratios(rows: list[Row]) -> None:
    """Issue #12's targets as measured ratios (information, not assertions)."""
    p50 = {(r.case, r.system): r.value for r in rows if r.metric == "p50_us"}
    targets = [
        (
            "local-uds/lokit / floor-uds/framed",
            ("local-uds", "lokit"),
            ("floor-uds", "framed"),
            4.0,
        ),
        (
            "grpc-uds/lokit-client / grpc-uds/bare",
            ("grpc-uds", "lokit-client"),
            ("grpc-uds", "bare"),
            1.15,
        ),
        (
            "grpc-uds/lokit-client / grpc-tcp/lokit-client",
            ("grpc-uds", "lokit-client"),
            ("grpc-tcp", "lokit-client"),
            0.9,
        ),
    ]
    one_core = {(r.case, r.system): r.value for r in rows if r.metric == "p50_us_one_core"}
    for label, a, b, target in targets:
        if a in p50 and b in p50:
            print(f"{label}: {p50[a] / p50[b]:.2f} (target <= {target})")
        if a in one_core and b in one_core:
            print(f"  ... on one core: {one_core[a] / one_core[b]:.2f}")
    cross = {(r.case, r.system): r.value for r in rows if r.metric == "p50_us_cross_core"}
    for bare in BARE_LOCAL:
        if ("local-uds", bare) in p50:
            ratio = p50[("local-uds", bare)] / p50[("floor-uds", "framed")]
            print(f"local-uds/{bare} / floor-uds/framed (a bare server): {ratio:.2f}")
    if ("local-uds", "lokit-http") in p50:
        ratio = p50[("local-uds", "lokit-http")] / p50[("floor-uds", "framed")]
        print(f"local-uds/lokit-http / floor-uds/framed (lokit to lokit over HTTP): {ratio:.2f}")
    if ("local-uds", "lokit-deadline") in p50:
        ratio = p50[("local-uds", "lokit-deadline")] / p50[("local-uds", "lokit")]
        print(f"local-uds/lokit-deadline / local-uds/lokit (what a deadline costs): {ratio:.2f}")
    if ("local-uds", "lokit") in cross and ("floor-uds", "framed") in cross:
        ratio = cross[("local-uds", "lokit")] / cross[("floor-uds", "framed")]
        print(f"the same, both servers on another core than the client: {ratio:.2f}")


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n, warmup, blocks = (2000, 300, 4) if args.quick else (20000, 1000, 20)
    import grpc  # noqa: F401  (loaded first, so this process's bare stub keeps grpc's own I/O manager)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as cwd:
        os.makedirs(os.path.join(cwd, "run"))
        for transport in ("grpc", "http"):
            for case, result in measure_transport(transport, n, warmup, blocks, cwd).items():
                for system in CLIENT_SYSTEMS:
                    rows += call_rows(case, system, result[system])
            print(f"{transport}-uds, {transport}-tcp: done", file=sys.stderr)
        one_core = placements()["same"]
        for case, result in measure_transport("grpc", n, warmup, blocks, cwd, one_core).items():
            for system in CLIENT_SYSTEMS:
                rows += call_rows(case, system, result[system], "_one_core")
        print("grpc-uds, grpc-tcp on one core: done", file=sys.stderr)
        for placement, local in measure_local(n, warmup, blocks, cwd).items():
            suffix = "" if placement == "same" else "_cross_core"
            local_rows = [("floor-uds", "framed"), ("local-uds", "lokit")]
            local_rows += [("local-uds", "lokit-deadline"), ("local-uds", "lokit-http")]
            local_rows += [("local-uds", bare) for bare in BARE_LOCAL]
            for case, system in local_rows:
                rows += call_rows(case, system, local[system], suffix)
        print("floor-uds, local-uds: done", file=sys.stderr)
    report(
        rows, args, f"addsvc Sum, sequential, {n} calls per system in {blocks} alternating blocks"
    )
    overhead: dict[str, Any] = {}
    for case in ("grpc-uds", "grpc-tcp", "http-uds", "http-tcp"):
        vals = {r.system: r.value for r in rows if r.case == case and r.metric == "p50_us"}
        overhead[case] = f"{(vals['lokit'] / vals['bare'] - 1) * 100:+.1f}%"
    print("lokit p50 over bare:", overhead)
    ratios(rows)


if __name__ == "__main__":
    main()
