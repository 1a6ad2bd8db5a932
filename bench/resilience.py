"""What resilience costs a call: limiters, breakers, balancers, and a client over three instances.

Micro cases, system `lokit`, metric `us_per_call` (the median of several timed
loops, in this process on uvloop):

- `ratelimit-memory`: one hit of the ingress limiter (`lokit.ratelimit`, the
  `limits` moving window) on in-memory storage, limit `2000/second`, in tight
  loops of 2,000 hits, each on a fresh window: a busy server at its limit, every
  hit accepted. Not one long loop under a huge limit: limits' memory window
  keeps an entry per accepted hit in a list it inserts at the front of, so a hit
  costs more the fuller the window (200,000 hits under `1000000/second` measure
  ~200 µs a hit, a window no real limit holds);
- `ratelimit-redis`: the same on Redis (Debian's redis-server, started here on a
  Unix socket in a tmp dir and stopped by its pid);
- `breaker`: a call through `lokit.circuitbreaker.middleware` (a closed breaker)
  less the same call to the bare endpoint;
- `balancer-p2c`, `balancer-round-robin`: one `pick` over three instances.

Targets: memory limiter <= 30 µs per call, breaker and balancer pick <= 5 µs.

Case `call-grpc-uds`, metrics `p50_us`, `p99_us`: stringsvc Uppercase over gRPC
on Unix sockets, one sequential client, against three real `lokit serve
stringsvc` processes whose sockets are in one directory. System `plain`: three
single-address clients (`lokit.connect(..., grpc="unix:DIR/a.grpc.sock")`, one
per instance) taken in turn by the bench's own loop; `resilient`: discovery +
p2c + per-instance breakers + budgeted retry (`grpc="dir:DIR"`) over the same
three. So both keep the same three server processes busy: one plain client on
one instance would leave two of them idle, and on a 2-core box waking three
processes in turn costs a few % by itself, which is the box, not the client.
(Not exactly alike either: a sequential caller never has a request
outstanding, so p2c decides by latency and sends most calls to the two
instances that answered fastest.) For reference, the figures of one plain
client on instance `a` alone, called in the same blocks, go to stderr. Calls
alternate between the clients in blocks, so they share whatever else the
machine is doing. Target: resilient p50 <= 1.10 x plain.

Case `kill-one-of-3`, metric `success_ratio`: sequential calls (1 s deadline
each) through the resilient client over three fresh instances; one is
SIGKILLed a third of the way in. Target: >= 0.998.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import Row, median, parser, percentile, report, stop

# bench/limits.py would shadow the `limits` library lokit.ratelimit loads: once
# `_common` is imported, this script's directory leaves the import path.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

INSTANCES = ("a", "b", "c")
LIMIT = "2000/second"  # the limiters' rate: a server's, which its load reaches
HITS = 2_000  # hits per timed loop: the limit, so every one is accepted


# --- processes --------------------------------------------------------------------------


def start_stringsvc(directory: Path, stem: str) -> subprocess.Popen[bytes]:
    """`lokit serve stringsvc` on `DIR/STEM.grpc.sock`, once it is listening."""
    addr = f"unix:{directory / stem}.grpc.sock"
    cmd = [sys.executable, "-m", "lokit", "serve", "stringsvc", "--grpc", addr]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    if b"listening on" not in proc.stdout.readline():
        raise SystemExit(f"lokit serve stringsvc did not start: {' '.join(cmd)}")
    return proc


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Debian's redis-server on a Unix socket only (no TCP port, no persistence)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed: run scripts/ensure-servers.sh")
    sock = directory / "redis.sock"
    cmd = [exe, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"redis-server did not start: {' '.join(cmd)}")
        time.sleep(0.02)
    return proc, sock


# --- micro cases ------------------------------------------------------------------------


async def per_call(fn: Callable[[], Awaitable[Any]], n: int, repeats: int) -> float:
    """The median over `repeats` loops of `n` awaited calls, in µs per call."""
    for _ in range(min(n, 1000)):
        await fn()
    runs: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return median(runs)


def per_pick(fn: Callable[[], Any], n: int, repeats: int) -> float:
    """The median over `repeats` loops of `n` plain calls, in µs per call."""
    for _ in range(min(n, 1000)):
        fn()
    runs: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return median(runs)


async def limiter_hit(storage: str | None, repeats: int) -> float:
    """µs per hit of the ingress limiter on `storage` (None: in memory)."""
    from lokit.ratelimit import RateLimit

    limiter = RateLimit.parse([LIMIT], storage=storage)
    await limiter.open()
    method = "stringsvc.v1.StringService/Uppercase"
    runs: list[float] = []
    try:
        for k in range(repeats + 1):  # the first loop warms up
            service = f"bench-{k}"  # its own window
            t0 = time.perf_counter()
            for _ in range(HITS):
                if not await limiter.hit(service, method):
                    raise SystemExit(f"the limiter refused one of {HITS} hits under {LIMIT}")
            runs.append((time.perf_counter() - t0) / HITS * 1e6)
    finally:
        await limiter.close()
    return median(runs[1:])


async def breaker_overhead(n: int, repeats: int) -> float:
    """µs a closed breaker's middleware adds to a call."""
    from lokit.circuitbreaker import Breaker, middleware

    async def bare(request: Any) -> Any:
        return request

    guarded = middleware(Breaker("bench"))(bare)
    plain = await per_call(lambda: bare(1), n, repeats)
    return await per_call(lambda: guarded(1), n, repeats) - plain


def balancer_pick(name: str, n: int, repeats: int) -> float:
    """µs per pick of the balancer `name` over three instances."""
    from lokit.circuitbreaker import Breaker
    from lokit.lb import Instance, balancer

    members = [Instance(f"unix:run/{s}.grpc.sock", Breaker("bench", s)) for s in INSTANCES]
    pick = balancer(name).pick
    return per_pick(lambda: pick(members, target="bench"), n, repeats)


def micro_rows(quick: bool, redis_sock: Path) -> list[Row]:
    import uvloop

    n, repeats = (20_000, 3) if quick else (200_000, 7)

    async def go() -> list[Row]:
        memory = await limiter_hit(None, repeats)
        rows = [Row("ratelimit-memory", "lokit", "us_per_call", memory, "µs")]
        redis = await limiter_hit(f"redis+unix://{redis_sock}", repeats)
        rows.append(Row("ratelimit-redis", "lokit", "us_per_call", redis, "µs"))
        rows.append(
            Row("breaker", "lokit", "us_per_call", await breaker_overhead(n, repeats), "µs")
        )
        for name in ("p2c", "round-robin"):
            us = balancer_pick(name, n, repeats)
            rows.append(Row(f"balancer-{name}", "lokit", "us_per_call", us, "µs"))
        return rows

    return uvloop.run(go())


# --- a client over three instances ------------------------------------------------------


class InTurn:
    """Single-address clients taken in turn: `plain` over the same instances as `resilient`."""

    def __init__(self, clients: list[Any]) -> None:
        self._clients = clients
        self._next = 0

    async def uppercase(self, s: str) -> str:
        client = self._clients[self._next]
        self._next = (self._next + 1) % len(self._clients)
        return str(await client.uppercase(s))

    async def close(self) -> None:
        for c in self._clients:
            await c.close()


async def calls(client: Any, n: int) -> list[float]:
    """`n` sequential Uppercase calls; their latencies in µs."""
    out: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        v = await client.uppercase("abc")
        out.append((time.perf_counter() - t0) * 1e6)
        if v != "ABC":
            raise SystemExit(f"Uppercase answered {v!r}")
    return out


def call_rows(directory: Path, n: int, warmup: int, blocks: int) -> list[Row]:
    import uvloop

    import lokit
    from lokit.examples.stringsvc.contract import stringsvc_contract

    async def go() -> dict[str, list[float]]:
        spec = stringsvc_contract()
        one = [f"unix:{directory}/{stem}.grpc.sock" for stem in INSTANCES]
        clients: dict[str, Any] = {
            "plain": InTurn([lokit.connect(spec, grpc=a, timeout=5.0) for a in one]),
            "resilient": lokit.connect(spec, grpc=f"dir:{directory}", timeout=5.0),
            "plain-on-a": lokit.connect(spec, grpc=one[0], timeout=5.0),  # stderr only
        }
        try:
            for c in clients.values():
                await calls(c, warmup)
            lat: dict[str, list[float]] = {s: [] for s in clients}
            per_block = max(1, n // blocks)
            for _ in range(blocks):
                for s, c in clients.items():
                    lat[s] += await calls(c, per_block)
            return lat
        finally:
            for c in clients.values():
                await c.close()

    lat = uvloop.run(go())
    rows: list[Row] = []
    for system in ("plain", "resilient"):
        rows.append(Row("call-grpc-uds", system, "p50_us", percentile(lat[system], 50), "µs"))
        rows.append(Row("call-grpc-uds", system, "p99_us", percentile(lat[system], 99), "µs"))
    alone = lat["plain-on-a"]
    print(
        f"call-grpc-uds: for reference, one plain client on instance a alone: p50"
        f" {percentile(alone, 50):.1f} µs, p99 {percentile(alone, 99):.1f} µs",
        file=sys.stderr,
    )
    return rows


def kill_one(directory: Path, procs: dict[str, subprocess.Popen[bytes]], n: int) -> Row:
    """`n` sequential calls through the resilient client; instance b is SIGKILLed at n/3."""
    import uvloop

    import lokit
    from lokit.examples.stringsvc.contract import stringsvc_contract

    async def go() -> tuple[int, float]:
        client = lokit.connect(stringsvc_contract(), grpc=f"dir:{directory}", timeout=1.0)
        ok, slowest = 0, 0.0
        try:
            for _ in range(50):  # every instance connected and warm
                await client.uppercase("abc")
            for i in range(n):
                if i == n // 3:
                    procs["b"].send_signal(signal.SIGKILL)
                t0 = time.perf_counter()
                try:
                    ok += await client.uppercase("abc") == "ABC"
                except Exception as e:
                    print(f"kill-one-of-3: call {i} failed: {e}", file=sys.stderr)
                slowest = max(slowest, time.perf_counter() - t0)
        finally:
            await client.close()
        return ok, slowest

    ok, slowest = uvloop.run(go())
    print(
        f"kill-one-of-3: {ok}/{n} calls succeeded, the slowest took {slowest * 1e3:.1f} ms;"
        f" the client's metrics:\n{client_metrics()}",
        file=sys.stderr,
    )
    return Row("kill-one-of-3", "lokit", "success_ratio", ok / n, "")


def client_metrics() -> str:
    """This process's retry, budget and breaker metrics: what the kill set off."""
    from prometheus_client import REGISTRY

    keep = {
        "lokit_retries_total",
        "lokit_retry_budget_exhausted_total",
        "lokit_breaker_transitions_total",
    }
    lines = []
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name in keep and sample.value:
                labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
                lines.append(f"  {sample.name}{{{labels}}} {sample.value:g}")
    return "\n".join(lines) or "  (none)"


def instances(directory: Path) -> dict[str, subprocess.Popen[bytes]]:
    directory.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for stem in INSTANCES:
            procs[stem] = start_stringsvc(directory, stem)
    except BaseException:
        for p in procs.values():
            stop(p)
        raise
    return procs


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n, warmup, blocks, kills = (2_000, 300, 4, 1_000) if args.quick else (20_000, 1_000, 20, 3_000)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        redis, redis_sock = start_redis(base)
        try:
            rows += micro_rows(args.quick, redis_sock)
        finally:
            stop(redis)
        print("micro cases: done", file=sys.stderr)
        procs = instances(base / "calls")
        try:
            rows += call_rows(base / "calls", n, warmup, blocks)
        finally:
            for p in procs.values():
                stop(p)
        print("call-grpc-uds: done", file=sys.stderr)
        procs = instances(base / "kill")
        try:
            rows.append(kill_one(base / "kill", procs, kills))
        finally:
            for p in procs.values():
                stop(p)
    report(
        rows,
        args,
        f"resilience: micro cases per call; stringsvc Uppercase over gRPC/UDS, {n} sequential"
        f" calls per system in {blocks} alternating blocks; {kills} calls with one of 3 killed",
    )
    by = {(r.case, r.system, r.metric): r.value for r in rows}
    ratio = by["call-grpc-uds", "resilient", "p50_us"] / by["call-grpc-uds", "plain", "p50_us"]
    print(
        f"memory limiter {by['ratelimit-memory', 'lokit', 'us_per_call']:.1f} µs (target <= 30);"
        f" breaker {by['breaker', 'lokit', 'us_per_call']:.2f} µs,"
        f" p2c {by['balancer-p2c', 'lokit', 'us_per_call']:.2f} µs,"
        f" round-robin {by['balancer-round-robin', 'lokit', 'us_per_call']:.2f} µs (target <= 5);"
        f" resilient / plain p50 {ratio:.2f}x (target <= 1.10);"
        f" success_ratio {by['kill-one-of-3', 'lokit', 'success_ratio']:.4f} (target >= 0.998)"
    )


if __name__ == "__main__":
    main()
