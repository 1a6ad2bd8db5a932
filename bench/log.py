"""The commit log service against Redis Streams and NATS JetStream, side by side.

Each system gets a fresh server in a scratch directory and its own Python client
(all on loopback, one client process sharing the 2 cores with the server):

- `lokit`: `lokit serve log --fsync interval:1000` (like Redis's everysec; `--fsync`
  sets another policy), gRPC and HTTP on Unix sockets side by side (`log.grpc.sock`,
  `log.http.sock`), request logs and metrics on as deployed; the `LogClient`, which
  sends single produces on its open `POST /produce-stream` over the HTTP socket
  and everything else over gRPC.
- `redis`: redis-server, `--appendonly yes --appendfsync everysec --save ""`, TCP
  loopback; `redis.asyncio` with hiredis, one stream key, `XADD key * d <100 B>`.
- `nats`: nats-server with JetStream file storage (one stream, `allow_direct`), TCP
  loopback; nats-py.

Cases, in order, on the same data (records of 100 B):
- `produce-one`: one record at a time, each acknowledged before the next
  (lokit `LogClient.produce`, which sends it on the produce stream it keeps open; XADD;
  js.publish): `records_per_s`, `p50_us`, `p99_us`. lokit only: `produce-one-unary`
  (proglog's unary Produce over gRPC), `produce-one-stream` (a hand-driven gRPC
  ProduceStream, one in flight).
- `produce-stream-one` (lokit only): one record per stream message, as proglog's Go
  client sends them, pipelined: `--in-flight` concurrent `LogClient.produce` calls
  on the client's one stream, acks read concurrently.
- `produce-batched`: lokit ProduceBatch of `--batch` records over ProduceBatchStream
  with a few batches in flight; Redis pipelines of 1,000 XADD; NATS publish_async.
- `consume-all`: everything from offset 0 (lokit ConsumeBatchStream; XRANGE in
  chunks of 10,000; a NATS ordered push consumer, its fastest Python path).
- `read-random`: single records at random offsets, one at a time (lokit Consume;
  XRANGE id id; js.get_msg direct).
- `consume-all-store` (lokit only): consume-all again after a restart with the tail
  cache off (`--read-cache-bytes 0`), so every record comes from the segment files.
`server_cpu_us` is the server process's CPU per record in each case.

The one-at-a-time cases (`produce-one*`, `read-random`) are wakeup-bound ping-pongs,
and where the kernel puts a server decides much of their latency; left alone, it keeps
whichever placement the server started with, so two runs could disagree twofold on
placement alone. They run twice, pinned: the server's threads on the client's core
(the plain rows) and on the other core (rows `…_cross_core`); the other cases run
unpinned. `produce-one ÷ Redis` (issue #12's target, on the plain rows) is printed
under the table.

Redis and NATS come from Debian's packages; run as root, this installs them when
missing (scripts/ensure-servers.sh), otherwise it says how and skips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import Row, cpu_seconds, free_port, parser, percentile, placed, placements, report

ROOT = Path(__file__).resolve().parent.parent
VALUE = bytes(range(100))


@dataclass
class Settings:
    records: int  # produce-batched (and so consume-all)
    singles: int  # produce-one and read-random calls
    batch: int  # lokit records per ProduceBatch
    window: int  # lokit batches in flight
    in_flight: int  # produce-stream-one: records in flight
    read_batch: int  # lokit records per ConsumeBatchStream message
    fsync: str = "interval:1000"  # lokit's --fsync


class Server:
    """A server process in a scratch directory; its output is dropped unless `stdout`
    says otherwise (lokit's readiness line is read from a pipe)."""

    def __init__(self, cmd: list[str], cwd: Path, stdout: int = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=subprocess.DEVNULL)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def wait_port(port: int, what: str) -> None:
    for _ in range(300):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        w.close()
        return
    raise SystemExit(f"{what} did not start listening on 127.0.0.1:{port}")


class Measure:
    """Collects the rows of one system, with the server's CPU per record."""

    def __init__(self, system: str, server: Server, rows: list[Row]) -> None:
        self.system = system
        self.server = server
        self.rows = rows

    async def run(
        self,
        case: str,
        n: int,
        body: Callable[[], Awaitable[list[float] | None]],
        suffix: str = "",
    ) -> None:
        cpu0 = self.server.cpu()
        t0 = time.perf_counter()
        latencies = await body()
        took = time.perf_counter() - t0
        cpu = self.server.cpu() - cpu0

        def add(metric: str, value: float, unit: str) -> None:
            self.rows.append(Row(case, self.system, metric + suffix, value, unit))

        add("records_per_s", n / took, "rec/s")
        if latencies:
            add("p50_us", percentile(latencies, 50) * 1e6, "µs")
            add("p99_us", percentile(latencies, 99) * 1e6, "µs")
        add("server_cpu_us", cpu / n * 1e6, "µs/rec")
        where = f" ({suffix.removeprefix('_').replace('_', ' ')})" if suffix else ""
        print(f"  {self.system:6} {case:20} {n / took:12,.0f} rec/s{where}", file=sys.stderr)

    async def run_placed(
        self, case: str, n: int, body: Callable[[], Awaitable[list[float] | None]]
    ) -> int:
        """A one-at-a-time case run once per placement, pinned (`_common.placements`):
        the server on the client's core (the plain rows) and on another core (rows
        `…_cross_core`). Returns how many calls it made."""
        where = placements()
        for placement, core in where.items():
            with placed([self.server.proc.pid], core):
                await self.run(case, n, body, "" if placement == "same" else "_cross_core")
        return n * len(where)


def timed_loop(
    n: int, call: Callable[[int], Awaitable[Any]]
) -> Callable[[], Awaitable[list[float]]]:
    async def body() -> list[float]:
        out: list[float] = []
        clock = time.perf_counter
        for i in range(n):
            t0 = clock()
            await call(i)
            out.append(clock() - t0)
        return out

    return body


# --- lokit ----------------------------------------------------------------------------


async def start_lokit(scratch: Path, sock: Path, fsync: str, *extra: str) -> Server:
    server = Server(
        [
            sys.executable,
            "-m",
            "lokit",
            "serve",
            "log",
            "--data",
            str(scratch / "data"),
            "--grpc",
            f"unix:{sock}",
            "--http",
            f"unix:{str(sock).removesuffix('.grpc.sock')}.http.sock",
            "--fsync",
            fsync,
            *extra,
        ],
        scratch,
        stdout=subprocess.PIPE,
    )
    assert server.proc.stdout is not None
    for _ in range(2):  # gRPC and HTTP listening
        if not await asyncio.to_thread(server.proc.stdout.readline):
            raise SystemExit("lokit serve log did not start")
    return server


async def bench_lokit(scratch: Path, sizes: Settings, rows: list[Row]) -> None:
    from lokit.logsvc.client import LogClient
    from lokit.logsvc.messages import ProduceBatchRequest, ProduceRequest

    sock = scratch / "log.grpc.sock"
    server = await start_lokit(scratch, sock, sizes.fsync)
    client = LogClient(f"unix:{sock}", timeout=60)
    m = Measure("lokit", server, rows)
    total = 0
    try:
        total += await m.run_placed(
            "produce-one", sizes.singles, timed_loop(sizes.singles, lambda i: client.produce(VALUE))
        )
        total += await m.run_placed(
            "produce-one-unary",
            sizes.singles,
            timed_loop(sizes.singles, lambda i: client.produce_unary(VALUE)),
        )

        async def one_stream() -> list[float]:
            sent = asyncio.Queue[float]()
            out: list[float] = []
            go = asyncio.Event()
            go.set()

            async def requests() -> AsyncIterator[ProduceRequest]:
                for _ in range(sizes.singles):
                    await go.wait()
                    go.clear()
                    sent.put_nowait(time.perf_counter())
                    yield ProduceRequest(VALUE)

            async for _ in client.produce_stream(requests()):
                out.append(time.perf_counter() - sent.get_nowait())
                go.set()
            return out

        total += await m.run_placed("produce-one-stream", sizes.singles, one_stream)

        pipelined = sizes.records // 2

        async def stream_one() -> None:
            left = pipelined

            async def producer() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await client.produce(VALUE)

            await asyncio.gather(*(producer() for _ in range(sizes.in_flight)))

        await m.run("produce-stream-one", pipelined, stream_one)
        total += pipelined

        async def batched() -> None:
            batches = sizes.records // sizes.batch
            request = ProduceBatchRequest([VALUE] * sizes.batch)
            window = asyncio.Semaphore(sizes.window)

            async def requests() -> AsyncIterator[ProduceBatchRequest]:
                for _ in range(batches):
                    await window.acquire()
                    yield request

            async for _ in client.produce_batch_stream(requests()):
                window.release()

        await m.run("produce-batched", sizes.records, batched)
        total += sizes.records

        async def consume_all() -> None:
            got = 0
            async for b in client.consume_batches(
                0, max_records=sizes.read_batch, max_bytes=32 << 20, stop_at_end=True
            ):
                got += len(b.values)
            assert got == total, (got, total)

        await m.run("consume-all", total, consume_all)

        offsets = [random.randrange(total) for _ in range(sizes.singles)]
        await m.run_placed(
            "read-random",
            sizes.singles,
            timed_loop(sizes.singles, lambda i: client.consume(offsets[i])),
        )

        # The same consume-all from a restarted server without the tail cache: every
        # record decoded and checksummed from the store (warm page cache).
        await client.close()
        server.stop()
        server = m.server = await start_lokit(scratch, sock, sizes.fsync, "--read-cache-bytes", "0")
        client = LogClient(f"unix:{sock}", timeout=60)
        await m.run("consume-all-store", total, consume_all)
    finally:
        await client.close()
        server.stop()


# --- Redis ----------------------------------------------------------------------------


async def bench_redis(scratch: Path, sizes: Settings, rows: list[Row]) -> None:
    import redis.asyncio as aioredis

    port = free_port()
    (scratch / "redis").mkdir()
    server = Server(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(scratch / "redis"),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        scratch,
    )
    await wait_port(port, "redis-server")
    r: Any = aioredis.Redis(host="127.0.0.1", port=port)
    m = Measure("redis", server, rows)
    key = "bench"
    ids: list[bytes] = []
    try:
        await r.ping()

        async def xadd(i: int) -> None:
            ids.append(await r.xadd(key, {"d": VALUE}))

        await m.run_placed("produce-one", sizes.singles, timed_loop(sizes.singles, xadd))

        async def pipelined() -> None:
            per = 1000
            for _ in range(sizes.records // per):
                pipe = r.pipeline(transaction=False)
                for _ in range(per):
                    pipe.xadd(key, {"d": VALUE})
                ids.extend(await pipe.execute())

        await m.run("produce-batched", sizes.records, pipelined)
        total = len(ids)

        async def consume_all() -> None:
            got = 0
            last = "-"
            while True:
                chunk = await r.xrange(key, min=last, max="+", count=10_000)
                if not chunk:
                    break
                got += len(chunk)
                last = "(" + chunk[-1][0].decode()
            assert got == total, (got, total)

        await m.run("consume-all", total, consume_all)

        picks = [ids[random.randrange(total)] for _ in range(sizes.singles)]
        await m.run_placed(
            "read-random",
            sizes.singles,
            timed_loop(sizes.singles, lambda i: r.xrange(key, picks[i], picks[i], count=1)),
        )
    finally:
        await r.aclose()
        server.stop()


# --- NATS JetStream ---------------------------------------------------------------------


async def bench_nats(scratch: Path, sizes: Settings, rows: list[Row]) -> None:
    import nats
    from nats.js.api import StorageType, StreamConfig

    port = free_port()
    server = Server(
        ["nats-server", "-js", "-sd", str(scratch / "nats"), "-a", "127.0.0.1", "-p", str(port)],
        scratch,
    )
    await wait_port(port, "nats-server")
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream(publish_async_max_pending=4000)
    m = Measure("nats", server, rows)
    subject = "bench.log"
    try:
        await js.add_stream(
            StreamConfig(
                name="BENCH", subjects=[subject], storage=StorageType.FILE, allow_direct=True
            )
        )
        singles = await m.run_placed(
            "produce-one",
            sizes.singles,
            timed_loop(sizes.singles, lambda i: js.publish(subject, VALUE)),
        )

        async def pipelined() -> None:
            for _ in range(sizes.records):
                await js.publish_async(subject, VALUE)
            await js.publish_async_completed()

        await m.run("produce-batched", sizes.records, pipelined)
        total = singles + sizes.records

        async def consume_all() -> None:
            done = asyncio.Event()
            got = 0

            async def cb(msg: Any) -> None:
                nonlocal got
                got += 1
                if got == total:
                    done.set()

            sub = await js.subscribe(subject, cb=cb, ordered_consumer=True)
            await done.wait()
            await sub.unsubscribe()

        await m.run("consume-all", total, consume_all)

        seqs = [random.randrange(total) + 1 for _ in range(sizes.singles)]
        await m.run_placed(
            "read-random",
            sizes.singles,
            timed_loop(sizes.singles, lambda i: js.get_msg("BENCH", seqs[i], direct=True)),
        )
    finally:
        await nc.close()
        server.stop()


# --- main -------------------------------------------------------------------------------


def peers_available() -> dict[str, bool]:
    """Which peer servers can run; installs them as root when missing."""
    want = {"redis": "redis-server", "nats": "nats-server"}
    if any(shutil.which(b) is None for b in want.values()) and os.geteuid() == 0:
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-servers.sh")], check=False)
    found = {name: shutil.which(binary) is not None for name, binary in want.items()}
    missing = [want[n] for n, ok in found.items() if not ok]
    if missing:
        print(
            f"skipping {', '.join(missing)}: not installed; as root run "
            f"'apt-get install {' '.join(missing)}' (or scripts/ensure-servers.sh)",
            file=sys.stderr,
        )
    return found


async def main_async(sizes: Settings, systems: list[str]) -> list[Row]:
    rows: list[Row] = []
    benches: dict[str, Callable[[Path, Settings, list[Row]], Awaitable[None]]] = {
        "lokit": bench_lokit,
        "redis": bench_redis,
        "nats": bench_nats,
    }
    for name in systems:
        scratch = Path(tempfile.mkdtemp(prefix=f"bench-log-{name}-"))
        try:
            await benches[name](scratch, sizes, rows)
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0] if __doc__ else "log benchmark")
    p.add_argument("--records", type=int, help="records for produce-batched (200,000)")
    p.add_argument("--singles", type=int, help="one-at-a-time calls (20,000)")
    p.add_argument("--batch", type=int, default=5000, help="lokit records per batch")
    p.add_argument("--window", type=int, default=4, help="lokit batches in flight")
    p.add_argument("--read-batch", type=int, default=20000, help="lokit records per message")
    p.add_argument("--in-flight", type=int, default=256, help="produce-stream-one records")
    p.add_argument("--fsync", default="interval:1000", help="lokit's --fsync policy")
    p.add_argument("--systems", default="lokit,redis,nats", help="comma-separated")
    args = p.parse_args()
    sizes = Settings(
        records=args.records or (20_000 if args.quick else 200_000),
        singles=args.singles or (2_000 if args.quick else 20_000),
        batch=args.batch,
        window=args.window,
        in_flight=args.in_flight,
        fsync=args.fsync,
        read_batch=args.read_batch,
    )
    available = {"lokit": True, **peers_available()}
    systems = [s for s in args.systems.split(",") if s and available.get(s, False)]
    os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
    os.environ.setdefault("COLUMNS", "120")  # the table's width when not on a terminal
    try:
        import uvloop

        rows = uvloop.run(main_async(sizes, systems))
    except ImportError:
        rows = asyncio.run(main_async(sizes, systems))
    report(
        rows,
        args,
        f"commit log: {sizes.records:,} x 100 B batched, {sizes.singles:,} one at a time "
        f"(lokit fsync {args.fsync} over a Unix socket; Redis AOF everysec, NATS file, TCP)",
    )
    ratios(rows)


def ratios(rows: list[Row]) -> None:
    """Issue #12's targets as measured figures (information, not assertions)."""
    value = {(r.case, r.system, r.metric): r.value for r in rows}
    for metric, where in (
        ("p50_us", "server on the client's core"),
        ("p50_us_cross_core", "on another core"),
    ):
        lokit, redis = (
            value.get(("produce-one", "lokit", metric)),
            value.get(("produce-one", "redis", metric)),
        )
        if lokit and redis:
            print(
                f"produce-one/lokit / produce-one/redis, {where}: "
                f"{lokit / redis:.2f} (target <= 1.5)"
            )
    stream = value.get(("produce-stream-one", "lokit", "records_per_s"))
    if stream:
        print(f"produce-stream-one/lokit: {stream:,.0f} records/s (target >= 30,000)")


if __name__ == "__main__":
    main()
