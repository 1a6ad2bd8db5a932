"""Using both cores: addsvc Sum throughput from one process, a pinned one, and two instances.

Case `sum-uds` (gRPC over Unix sockets, `lokit.connect` as the client in every
system): `CLIENTS` client processes, each with `INFLIGHT` calls in flight, call
Sum for a few seconds. Systems:

- `lokit`: `lokit serve addsvc --grpc unix:...` (one process, not pinned);
- `lokit-cpu0`: the same with `--cpu 0` (one process pinned to the first CPU);
- `lokit-x2`: `lokit serve addsvc --grpc dir:... --instances 2` (two processes,
  one per CPU); the clients dial `dir:` and balance over both sockets;
- `bare`: the peer, a bare grpc.aio server (one process, `_bare_servers.py`).

Case `sum-uds-one`: the same servers, one client process with one call at a
time (latency without queueing: what pinning a process changes), the client
pinned to the last CPU, apart from `lokit-cpu0`'s server.

Metrics: `calls_per_s` (all clients together), `p50_us` (each call's latency,
all clients merged), `cpu_us_per_call` (the server processes' CPU over the run
divided by the calls) and `client_cpu_us_per_call` (the same for the clients).
The clients run on the same cores as the servers: on a two-core machine they
take about as much CPU as the servers, so two instances can gain only what the
clients leave them. The servers all start
first (at once), and one pair of client processes measures each system in turn.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Row, cpu_seconds, parser, percentile, report, stop

HERE = Path(__file__).resolve().parent
CLIENTS = 2
INFLIGHT = 8
SYSTEMS = ("lokit", "lokit-cpu0", "lokit-x2", "bare")
CPUS = sorted(os.sched_getaffinity(0))


# --- a client process (`cores.py --client`): commands on stdin, answers on stdout -----


async def _warm(addr: str) -> Any:
    import lokit
    from lokit.examples.addsvc.contract import addsvc_contract

    conn = lokit.connect(addsvc_contract(), grpc=addr, timeout=30.0)
    end = time.perf_counter() + 0.6  # long enough for dir: to find every socket
    while time.perf_counter() < end:
        assert await conn.sum(1, 2) == 3
    return conn


async def _run(conn: Any, seconds: float, inflight: int) -> list[float]:
    lat: list[float] = []
    end = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await conn.sum(1, 2)
            lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(caller() for _ in range(inflight)))
    return lat


async def _client() -> None:
    loop = asyncio.get_running_loop()
    conn = None
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        word, _, arg = line.strip().partition(" ")
        if word == "warm":
            conn = await _warm(arg)
            print("warm", flush=True)
        elif word == "pin":
            os.sched_setaffinity(0, {int(arg)})
            print("pinned", flush=True)
        elif word == "go":
            assert conn is not None
            cpu = cpu_seconds()
            seconds, inflight = arg.split()
            lat = await _run(conn, float(seconds), int(inflight))
            cpu = cpu_seconds() - cpu
            await conn.close()
            print(json.dumps({"lat": lat, "cpu": cpu}), flush=True)


# --- the servers ----------------------------------------------------------------------


def _server(system: str, cwd: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start `system`; returns the process and the address its clients dial."""
    if system == "bare":
        path = os.path.join(cwd, "bare.grpc.sock")
        cmd = [sys.executable, str(HERE / "_bare_servers.py"), "grpc", f"unix:{path}"]
        addr = f"unix:{path}"
    else:
        cmd = [sys.executable, "-m", "lokit", "serve", "addsvc"]
        if system == "lokit-x2":
            cmd += ["--grpc", f"dir:{cwd}/x2", "--instances", "2"]
            addr = f"dir:{cwd}/x2"
        else:
            addr = f"unix:{cwd}/{system}.grpc.sock"
            cmd += ["--grpc", addr] + (["--cpu", "0"] if system == "lokit-cpu0" else [])
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    return proc, addr


def _wait_ready(system: str, proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    for _ in range(2 if system == "lokit-x2" else 1):
        if not proc.stdout.readline():
            raise SystemExit(f"the {system} server did not start")


def _server_pids(system: str, proc: subprocess.Popen[bytes]) -> list[int]:
    """The processes that serve: the supervisor's instances for lokit-x2."""
    if system != "lokit-x2":
        return [proc.pid]
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return [int(p) for p in children]


def _clients() -> list[subprocess.Popen[str]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--client"]
    return [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(CLIENTS)
    ]


def _say(clients: list[subprocess.Popen[str]], line: str) -> list[str]:
    for c in clients:
        assert c.stdin is not None
        c.stdin.write(line + "\n")
        c.stdin.flush()
    out = []
    for c in clients:
        assert c.stdout is not None
        answer = c.stdout.readline()
        if not answer:
            raise SystemExit(f"a client process failed on {line!r}")
        out.append(answer)
    return out


def measure(
    case: str,
    system: str,
    addr: str,
    pids: list[int],
    clients: list[subprocess.Popen[str]],
    secs: float,
    inflight: int,
) -> list[Row]:
    _say(clients, f"warm {addr}")
    cpu0 = sum(cpu_seconds(p) for p in pids)
    t0 = time.perf_counter()
    answers = _say(clients, f"go {secs} {inflight}")
    wall = time.perf_counter() - t0
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    results = [json.loads(a) for a in answers]
    lat = [x * 1e6 for r in results for x in r["lat"]]
    client_cpu = sum(r["cpu"] for r in results)
    calls = len(lat)
    return [
        Row(case, system, "calls_per_s", calls / min(wall, secs + 0.5), "/s"),
        Row(case, system, "p50_us", percentile(lat, 50), "µs"),
        Row(case, system, "cpu_us_per_call", cpu * 1e6 / max(calls, 1), "µs"),
        Row(case, system, "client_cpu_us_per_call", client_cpu * 1e6 / max(calls, 1), "µs"),
    ]


def main() -> None:
    if sys.argv[1:] == ["--client"]:
        import uvloop

        uvloop.run(_client())
        return
    args = parser(__doc__ or "").parse_args()
    secs = 2.0 if args.quick else 8.0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cores") as cwd:
        servers = {s: _server(s, cwd) for s in SYSTEMS}
        clients = _clients()
        try:
            for system, (proc, _) in servers.items():
                _wait_ready(system, proc)
            for system, (proc, addr) in servers.items():
                pids = _server_pids(system, proc)
                rows += measure("sum-uds", system, addr, pids, clients, secs, INFLIGHT)
            if len(CPUS) > 1:  # the one client apart from lokit-cpu0's server
                _say(clients[:1], f"pin {CPUS[-1]}")
            for system, (proc, addr) in servers.items():
                pids = _server_pids(system, proc)
                rows += measure("sum-uds-one", system, addr, pids, clients[:1], secs / 2, 1)
        finally:
            for c in clients:
                if c.stdin is not None:
                    c.stdin.close()
                c.wait(10)
            for proc, _ in servers.values():
                stop(proc)
    report(
        rows,
        args,
        f"addsvc Sum over gRPC/UDS, {CLIENTS} client processes x {INFLIGHT} in flight, "
        f"{secs:g} s each, on {len(os.sched_getaffinity(0))} CPUs (clients included)",
    )
    rate = {r.system: r.value for r in rows if (r.case, r.metric) == ("sum-uds", "calls_per_s")}
    one = {r.system: r.value for r in rows if (r.case, r.metric) == ("sum-uds-one", "p50_us")}
    print(
        f"sum-uds calls/s: lokit-x2 / lokit {rate['lokit-x2'] / rate['lokit']:.2f}x, "
        f"lokit-cpu0 / lokit {rate['lokit-cpu0'] / rate['lokit']:.2f}x, "
        f"lokit-x2 / bare {rate['lokit-x2'] / rate['bare']:.2f}x; "
        f"sum-uds-one p50: lokit-cpu0 / lokit {one['lokit-cpu0'] / one['lokit']:.2f}x"
    )


if __name__ == "__main__":
    main()
