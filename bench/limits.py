"""A server under a flood keeps answering: listener limits, and the CLI's start-up time.

Case `probe-under-flood`: `lokit serve addsvc` with its default limits; a probe
calls addsvc Sum over gRPC on the Unix socket, one call at a time, while a flood
process holds 5,000 idle TCP connections to the HTTP port (reopening those the
server closes after its header timeout) and 8 clients POST 50 MB bodies to it
over and over (4 declaring Content-Length, refused 413 before the body is read;
4 chunked, read up to `--max-body-bytes` and then refused). Systems: `lokit`
(the probe during the flood) and `quiet` (the same probe on the same server with
no flood). Metric `p50_us`. Target: lokit <= 2 x quiet. The server runs with
`--max-connections 5100`, so the posters get past the 5,000 idle connections
(with the default, a quarter of a 20,000 fd limit, they would only see 503).
The server's limit metrics at the end of the flood are printed under the table.

Case `cli-start`: `lokit call addsvc sum 1 2 --grpc unix:...` end to end as a
subprocess (interpreter start, imports, the call, exit); metric `seconds`, the
median of a few runs. Target: <= 0.5 s.

The open-file limit is raised as far as the hard limit allows, in this process
and in the flood's. With two CPUs or more the flood runs on the last one and the
server and the probe on the others, in both systems alike.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Row, free_port, median, parser, percentile, report, stop

IDLE = 5_000
POSTERS = 8
BODY = 50_000_000


def cpus() -> tuple[set[int], set[int]]:
    """CPUs for the server and the probe, and for the flood (apart when there are two or more).

    The flood is a client's CPU, not the server's doing: on a small machine it would
    otherwise take the server's core and the figure would measure the machine.
    """
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        return set(mine), set(mine)
    return set(mine[:-1]), {mine[-1]}


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65_536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the flood (run as `limits.py --flood HOST PORT` in its own process) -------------


all_open = asyncio.Event()


async def _idle(host: str, port: int, opened: list[int]) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        opened[0] += 1
        if opened[0] >= IDLE:
            all_open.set()
        try:
            await reader.read()  # until the server closes it
        except OSError:
            pass
        writer.close()


async def _poster(host: str, port: int, chunked: bool, sent: list[int]) -> None:
    chunk = b"x" * 65_536
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        head = b"POST /sum HTTP/1.1\r\nHost: x\r\n"
        head += (
            b"Transfer-Encoding: chunked\r\n\r\n"
            if chunked
            else b"Content-Length: %d\r\n\r\n" % BODY
        )
        try:
            writer.write(head)
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            total = 0
            while total < BODY and not reader.at_eof():
                writer.write(frame)
                await writer.drain()
                total += len(chunk)
                sent[0] += len(chunk)
                if reader._buffer:  # type: ignore[attr-defined]  # answered: refused
                    break
        except OSError:
            pass
        writer.close()


async def _flood(host: str, port: int) -> None:
    opened, sent = [0], [0]
    # LIMITS_FLOOD picks a part of the flood, to find what costs: "all" (the default),
    # or "+"-joined parts: idle, length (declared 50 MB), chunked (50 MB chunked).
    parts = set(
        os.environ.get("LIMITS_FLOOD", "all").replace("all", "idle+length+chunked").split("+")
    )
    idle = IDLE if "idle" in parts else 0
    tasks = [asyncio.create_task(_idle(host, port, opened)) for _ in range(idle)]
    if idle:
        await all_open.wait()
    kinds = [chunked for chunked, part in ((False, "length"), (True, "chunked")) if part in parts]
    tasks += [
        asyncio.create_task(_poster(host, port, kinds[i % len(kinds)], sent))
        for i in range(POSTERS if kinds else 0)
    ]
    print("ready", flush=True)
    await asyncio.Event().wait()


def flood_main(host: str, port: int) -> None:
    os.sched_setaffinity(0, cpus()[1])
    raise_fd_limit()
    import uvloop

    uvloop.run(_flood(host, port))


# --- the measurements -----------------------------------------------------------------


def start_server(cwd: str) -> tuple[subprocess.Popen[bytes], int, int]:
    http_port, debug_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "lokit", "serve", "addsvc", "--grpc", "unix:run/a.grpc.sock"]
    cmd += ["--http", f"127.0.0.1:{http_port}", "--debug", f"127.0.0.1:{debug_port}"]
    # Room for the posters beside the idle connections (the default, a quarter of a
    # 20,000 fd limit, is 5,000: the posters would only ever see 503).
    cmd += ["--max-connections", str(IDLE + 100)]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    for _ in range(3):
        if not proc.stdout.readline():
            raise SystemExit(f"lokit serve addsvc did not start: {' '.join(cmd)}")
    return proc, http_port, debug_port


def limit_metrics(debug_port: int) -> str:
    """The server's limit metrics, to show the flood was real."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    keep = (
        "lokit_connections_open{",
        "lokit_connections_refused_total{",
        "lokit_http_requests_refused_total{",
    )
    return "\n".join(line for line in text.splitlines() if line.startswith(keep))


async def probe(target: str, n: int) -> list[float]:
    import grpc

    from lokit.proto import addsvc_pb2

    async with grpc.aio.insecure_channel(target) as ch:
        call = ch.unary_unary(
            "/pb.Add/Sum",
            request_serializer=addsvc_pb2.SumRequest.SerializeToString,
            response_deserializer=addsvc_pb2.SumReply.FromString,
        )
        req = addsvc_pb2.SumRequest(a=1, b=2)
        for _ in range(50):
            await call(req, timeout=30)
        out: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = await call(req, timeout=30)
            out.append(time.perf_counter() - t0)
            assert r.v == 3
        return out


def run_probe(target: str, n: int) -> list[float]:
    import uvloop

    return uvloop.run(probe(target, n))


def start_flood(port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--flood", "127.0.0.1", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise SystemExit("the flood did not start")
    return proc


def cli_start(cwd: str, runs: int) -> list[float]:
    out: list[float] = []
    cmd = [sys.executable, "-m", "lokit", "call", "addsvc", "sum", "1", "2"]
    cmd += ["--grpc", "unix:run/a.grpc.sock"]
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
        out.append(time.perf_counter() - t0)
        if done.returncode != 0 or '"v":3' not in done.stdout.replace(" ", ""):
            raise SystemExit(f"lokit call failed: {done.stdout}{done.stderr}")
    return out


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--flood":
        flood_main(sys.argv[2], int(sys.argv[3]))
        return
    args = parser(__doc__ or "").parse_args()
    n, runs = (1_000, 3) if args.quick else (5_000, 7)
    fds = raise_fd_limit()
    os.sched_setaffinity(0, cpus()[0])  # the server (a child) inherits it
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as cwd:
        os.makedirs(os.path.join(cwd, "run"))
        server, http_port, debug_port = start_server(cwd)
        target = "unix://" + os.path.join(cwd, "run", "a.grpc.sock")
        try:
            quiet = [x * 1e6 for x in run_probe(target, n)]
            seen = ""
            flood = start_flood(http_port)
            try:
                loud = [x * 1e6 for x in run_probe(target, n)]
                seen = limit_metrics(debug_port)
            finally:
                stop(flood)
            rows.append(Row("probe-under-flood", "lokit", "p50_us", percentile(loud, 50), "µs"))
            rows.append(Row("probe-under-flood", "quiet", "p50_us", percentile(quiet, 50), "µs"))
            rows.append(Row("probe-under-flood", "lokit", "p99_us", percentile(loud, 99), "µs"))
            rows.append(Row("probe-under-flood", "quiet", "p99_us", percentile(quiet, 99), "µs"))
            starts = cli_start(cwd, runs)
            rows.append(Row("cli-start", "lokit", "seconds", median(starts), "s"))
        finally:
            stop(server)
    report(
        rows,
        args,
        f"addsvc Sum over gRPC/UDS, {n} calls, quiet and under a flood of {IDLE:,} idle"
        f" connections + {POSTERS} x 50 MB POSTs (fd limit {fds:,}); lokit call start-up",
    )
    print("the server's limit metrics at the end of the flood:\n" + seen)
    p50 = {
        r.system: r.value for r in rows if r.case == "probe-under-flood" and r.metric == "p50_us"
    }
    start = next(r.value for r in rows if r.case == "cli-start")
    print(
        f"probe under flood / quiet: {p50['lokit'] / p50['quiet']:.2f}x (target <= 2x);"
        f" cli-start {start:.2f} s (target <= 0.5 s)"
    )


if __name__ == "__main__":
    main()
