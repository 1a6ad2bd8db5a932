"""lokit's own HTTP client connections against real servers: keep-alive, stale and killed
servers, streams left early, deadlines, flow control, limits, TLS and mTLS.

The servers are lokit HTTP servers on Unix sockets and 127.0.0.1:0 (in this process,
or as their own process where one is killed mid-call), plus a raw asyncio server
where a misbehaving peer is the point (it drops keep-alive connections under a request).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lokit.errors import DeadlineExceeded, Unavailable
from lokit.security.tls import ClientTLS, ServerTLS
from lokit.transport.address import parse
from lokit.transport.http import HttpClient, HttpServer
from lokit.transport.http import client as client_module
from lokit.transport.http.conn import Pool, dial
from lokit.transport.limits import Limits
from tests.security.pki import PKI, pki  # noqa: F401 (the session PKI fixture)
from tests.transport.http_client_server import Svc, routes, start

ROOT = Path(__file__).resolve().parents[2]
R = routes(Svc())


def req(name: str, **fields: Any) -> Any:
    return R[name].method.request_type(**fields)


def open_connections(bound: str) -> float:
    """What the server's `lokit_connections_open` gauge says for its listener at `bound`."""
    value = REGISTRY.get_sample_value(
        "lokit_connections_open", {"listener": "http", "address": bound}
    )
    return value or 0.0


async def until(cond: Callable[[], bool]) -> None:
    """Wait (up to 5 s) for `cond`, a value another task or process changes."""
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def items(values: list[Any], fail_after: int | None = None) -> AsyncIterator[Any]:
    for i, v in enumerate(values):
        if fail_after is not None and i == fail_after:
            raise ValueError("the caller's items failed")
        yield v


class Dials:
    """Counts the connections lokit's HTTP clients open (the real `dial`, counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = client_module.dial  # type: ignore[attr-defined]

        async def counted(*args: Any) -> Any:
            self.count += 1
            return await real(*args)

        monkeypatch.setattr(client_module, "dial", counted)


@pytest.fixture
def dials(monkeypatch: pytest.MonkeyPatch) -> Dials:
    return Dials(monkeypatch)


class Served:
    """A lokit HTTP server (in this process) and the clients made for it."""

    def __init__(self) -> None:
        self.svc = Svc()
        self.servers: list[HttpServer] = []
        self.clients: list[HttpClient] = []

    async def start(self, addr: str, **kwargs: Any) -> str:
        server, bound = await start(self.svc, addr, **kwargs)
        self.servers.append(server)
        return bound

    def client(self, addr: str, **kwargs: Any) -> HttpClient:
        c = HttpClient(addr, **kwargs)
        self.clients.append(c)
        return c

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
        for s in self.servers:
            await s.stop()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    s = Served()
    yield s
    await s.close()


@pytest.fixture(params=["unix", "tcp"])
async def addr(request: pytest.FixtureRequest, tmp_path: Path, served: Served) -> str:
    """A lokit server's bound address, on a Unix socket and on TCP."""
    where = f"unix:{tmp_path}/c.sock" if request.param == "unix" else "127.0.0.1:0"
    return await served.start(where)


# --- keep-alive ----------------------------------------------------------------------


async def test_calls_share_one_keep_alive_connection(
    served: Served, addr: str, dials: Dials
) -> None:
    client = served.client(addr)
    for i in range(20):
        assert await client.unary(R["Sum"], req("Sum", a=i, b=1)) == i + 1
    assert [x async for x in client.server_stream(R["Count"], req("Count", n=3))] == [
        "0",
        "1",
        "2",
    ]
    assert await client.client_stream(R["Total"], items([1, 2, 3])) == 6
    assert [x async for x in client.bidi(R["Echo"], items(["a", "b"]))] == ["a", "b"]
    assert await client.unary(R["Sum"], req("Sum", a=1, b=1)) == 2
    assert dials.count == 1  # every exchange above went over the same connection
    assert open_connections(addr) == 1


async def test_a_server_that_closed_idle_connections_is_reconnected(
    served: Served, tmp_path: Path
) -> None:
    bound = await served.start(f"unix:{tmp_path}/idle.sock", limits=Limits(idle_timeout=0.1))
    client = served.client(bound)
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3
    await until(lambda: open_connections(bound) == 0)  # the server closed it after 0.1 s
    assert await client.unary(R["Sum"], req("Sum", a=2, b=2)) == 4
    assert served.svc.calls == 2


async def test_idle_connections_expire_on_the_client(
    served: Served, addr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "KEEP_ALIVE_SECONDS", 0.1)
    client = served.client(addr)
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3
    assert open_connections(addr) == 1
    await until(lambda: open_connections(addr) == 0)  # closed by the client's pool
    assert await client.unary(R["Sum"], req("Sum", a=1, b=3)) == 4


async def test_connections_are_limited_and_callers_wait(
    served: Served, addr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "MAX_CONNECTIONS", 2)
    client = served.client(addr)
    most = 0.0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, open_connections(addr))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        calls = [client.unary(R["Slow"], req("Slow", seconds=0.05)) for _ in range(6)]
        assert await asyncio.gather(*calls) == ["done"] * 6
    finally:
        watcher.cancel()
    assert 1 <= most <= 2


async def test_a_waiter_woken_then_cancelled_passes_the_connection_on(addr: str) -> None:
    """At the limit, a caller cancelled just after its wakeup (its deadline) hands it on."""
    loop = asyncio.get_running_loop()
    where = parse(addr).dialable()
    pool = Pool(loop, lambda: dial(loop, where, None), keep_alive=30, limit=1)
    first = await pool.connect()
    b, c = asyncio.create_task(pool.connect()), asyncio.create_task(pool.connect())
    for _ in range(3):
        await asyncio.sleep(0)  # both wait for the one connection
    first.abort()
    pool.forget(first)  # wakes b...
    b.cancel()  # ...which is cancelled before it runs
    got = await asyncio.wait_for(c, 5)  # c gets the free slot, not a lost wakeup
    with pytest.raises(asyncio.CancelledError):
        await b
    got.abort()
    pool.close()


async def test_an_answer_that_closes_the_connection_is_not_pooled(
    served: Served, tmp_path: Path
) -> None:
    bound = await served.start(f"unix:{tmp_path}/small.sock", limits=Limits(max_body_bytes=64))
    client = served.client(bound)
    status, _ = await client.request("POST", "/sum", b'{"a": 1, "b": 2}' + b" " * 100)
    assert status == 413  # answered with `connection: close`
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3


# --- a peer that drops a keep-alive connection under a request -----------------------


class Dropper:
    """A raw HTTP/1.1 server: answers each connection's first request, then closes the
    connection when its second request arrives, without answering (the race of a server
    closing an idle keep-alive connection just as the client reuses it)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.requests.append(head.split(b" ", 2)[1])
                if served:
                    return  # close under the request
                served += 1
                writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{"v":1}')
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def dropper(tmp_path: Path) -> AsyncIterator[tuple[Dropper, str]]:
    peer = Dropper()
    path = tmp_path / "drop.sock"
    server = await asyncio.start_unix_server(peer.handle, path=str(path))
    yield peer, f"unix:{path}"
    server.close()
    await server.wait_closed()


async def test_an_idempotent_request_is_resent_once_on_a_new_connection(
    dropper: tuple[Dropper, str],
) -> None:
    peer, addr = dropper
    client = HttpClient(addr)
    try:
        assert await client.request("GET", "/a") == (200, b'{"v":1}')
        assert await client.request("GET", "/b") == (200, b'{"v":1}')  # resent on a new one
        assert (peer.connections, peer.requests) == (2, [b"/a", b"/b", b"/b"])
    finally:
        await client.close()


async def test_a_post_is_not_resent_and_the_client_recovers(
    dropper: tuple[Dropper, str],
) -> None:
    peer, addr = dropper
    client = HttpClient(addr)
    try:
        assert await client.request("POST", "/a") == (200, b'{"v":1}')
        with pytest.raises(Unavailable, match=rf"^{addr} is unavailable: POST /b failed \(") as e:
            await client.request("POST", "/b")
        assert "\n" not in str(e.value)
        assert peer.requests == [b"/a", b"/b"]  # sent once: it may have had an effect
        assert await client.request("POST", "/c") == (200, b'{"v":1}')
        assert peer.connections == 2
    finally:
        await client.close()


# --- a server killed mid-call ------------------------------------------------------


def spawn(addr: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.transport.http_client_server", addr],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready "), line
    return proc, line.split(" ", 1)[1].strip()


@pytest.mark.parametrize("kind", ["unix", "tcp"])
async def test_a_server_killed_mid_call_is_unavailable_and_a_restart_is_reached(
    tmp_path: Path, kind: str
) -> None:
    where = f"unix:{tmp_path}/k.sock" if kind == "unix" else "127.0.0.1:0"
    proc, bound = spawn(where)
    client = HttpClient(bound)
    try:
        assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3
        call = asyncio.create_task(client.unary(R["Slow"], req("Slow", seconds=30)))
        await asyncio.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with pytest.raises(Unavailable, match=rf"^{bound} is unavailable: POST /slow failed"):
            await asyncio.wait_for(call, 10)
        with pytest.raises(Unavailable, match=rf"^{bound} is unavailable: cannot connect \("):
            await client.unary(R["Sum"], req("Sum", a=1, b=2))
        proc, _ = spawn(bound)  # the same address again
        assert await client.unary(R["Sum"], req("Sum", a=2, b=2)) == 4
    finally:
        await client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_client_used_on_a_later_loop_opens_its_connections_there(tmp_path: Path) -> None:
    """Its pool is tied to the loop it was made on: a later asyncio.run gets a new one."""
    proc, bound = spawn(f"unix:{tmp_path}/l.sock")
    client = HttpClient(bound)
    pools: list[Any] = []

    async def call(a: int) -> int:
        v: int = await client.unary(R["Sum"], req("Sum", a=a, b=1))
        pools.append(client._pool)
        return v

    try:
        assert asyncio.run(call(1)) == 2  # the first loop is closed after it
        assert asyncio.run(call(2)) == 3
        assert pools[0] is not pools[1] and pools[1].loop is not pools[0].loop
        asyncio.run(client.close())
    finally:
        proc.kill()
        proc.wait(10)


# --- streams ---------------------------------------------------------------------


async def test_a_stream_closed_early_closes_its_connection_and_the_next_call_is_clean(
    served: Served, addr: str, dials: Dials
) -> None:
    client = served.client(addr)
    stream = client.server_stream(R["Forever"], req("Forever"))
    assert [await anext(stream) for _ in range(3)] == [0, 1, 2]
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(served.svc.closed.wait(), 10)  # the server saw the client leave
    await asyncio.sleep(0.05)  # more items would have arrived on a half-read connection
    for i in range(3):
        assert await client.unary(R["Sum"], req("Sum", a=i, b=i)) == 2 * i
    assert dials.count == 2  # the stream's connection was closed, not pooled
    await until(lambda: open_connections(addr) == 1)


async def test_a_stream_left_after_its_answer_was_complete_keeps_its_connection(
    served: Served, addr: str, dials: Dials
) -> None:
    client = served.client(addr)
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3
    stream = client.server_stream(R["Count"], req("Count", n=3))
    assert await anext(stream) == "0"
    await asyncio.sleep(0.05)  # the rest of the (short) answer is in by now, unread
    await stream.aclose()  # type: ignore[attr-defined]
    assert await client.unary(R["Sum"], req("Sum", a=2, b=2)) == 4  # not an unread "1"
    assert [x async for x in client.server_stream(R["Count"], req("Count", n=2))] == ["0", "1"]
    assert dials.count == 1


async def test_a_slow_reader_pauses_the_socket_and_gets_every_item(
    served: Served, addr: str, dials: Dials
) -> None:
    client = served.client(addr)
    stream = client.server_stream(R["Count"], req("Count", n=20000, size=30))
    first = await anext(stream)
    await asyncio.sleep(0.3)  # ~700 KB arrive meanwhile: more than the read high-water mark
    rest = [x async for x in stream]
    assert [first, *rest] == [f"{i}{'x' * 30}" for i in range(20000)]
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3
    assert dials.count == 1  # read to its end: the connection went back to the pool


async def test_large_request_streams_and_bidi(served: Served, addr: str) -> None:
    client = served.client(addr)
    assert await client.client_stream(R["Total"], items(list(range(5000)))) == sum(range(5000))
    words = [f"{i:04d}" + "y" * 500 for i in range(2000)]  # ~1 MB each way, interleaved
    assert [x async for x in client.bidi(R["Echo"], items(words))] == words


async def test_failing_request_items_raise_their_own_error(served: Served, addr: str) -> None:
    client = served.client(addr)
    with pytest.raises(ValueError, match="the caller's items failed"):
        await client.client_stream(R["Total"], items([1, 2, 3], fail_after=2))
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3


# --- deadlines -------------------------------------------------------------------


async def test_a_deadline_cuts_the_call_and_the_connection_is_not_reused(
    served: Served, addr: str
) -> None:
    client = served.client(addr)
    with pytest.raises(DeadlineExceeded, match=rf"^POST /slow on {addr} did not finish before"):
        await client.unary(R["Slow"], req("Slow", seconds=0.3), timeout=0.1)
    await asyncio.sleep(0.4)  # the late answer would now sit on that connection
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3
    stream = client.server_stream(R["Forever"], req("Forever"), timeout=0.2)
    got: list[int] = []
    with pytest.raises(DeadlineExceeded, match="did not finish before its deadline"):
        async for x in stream:
            got.append(x)
    assert got and got == list(range(len(got)))
    assert await client.unary(R["Sum"], req("Sum", a=2, b=2)) == 4


async def test_concurrent_deadlines_each_cut_their_own_call(served: Served, addr: str) -> None:
    """One timer for the pool's calls: each call still ends at its own deadline."""
    client = served.client(addr)
    loop = asyncio.get_running_loop()

    async def timed(seconds: float, within: float) -> tuple[str, float]:
        t0 = loop.time()
        try:
            await client.unary(R["Slow"], req("Slow", seconds=seconds), timeout=within)
        except DeadlineExceeded:
            return "cut", loop.time() - t0
        return "answered", loop.time() - t0

    late, early, quick = await asyncio.gather(timed(3, 0.6), timed(3, 0.15), timed(0.05, 5))
    assert late[0] == early[0] == "cut" and quick[0] == "answered"
    # Not before its own deadline (a millisecond of timer slack), and in order.
    assert 0.149 <= early[1] < late[1] and late[1] >= 0.599
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2), timeout=5) == 3


# --- TLS -------------------------------------------------------------------------


def server_tls(pki: PKI, *, unix: bool = False) -> ServerTLS:  # noqa: F811
    return ServerTLS.load(str(pki.server.cert), str(pki.server.key), str(pki.ca), unix=unix)


def root_tls(pki: PKI, *, unix: bool = False) -> ClientTLS:  # noqa: F811
    return ClientTLS.load(str(pki.ca), str(pki.root.cert), str(pki.root.key), unix=unix)


async def test_mtls_over_tcp_keeps_one_connection(
    served: Served,
    pki: PKI,  # noqa: F811
    dials: Dials,
) -> None:
    bound = await served.start("127.0.0.1:0", tls=server_tls(pki))
    port = bound.rsplit(":", 1)[1]
    for target in (bound, f"localhost:{port}"):  # checked against the IP and the name SANs
        client = served.client(target, tls=root_tls(pki))
        for i in range(5):
            assert await client.unary(R["Sum"], req("Sum", a=i, b=1)) == i + 1
        assert [x async for x in client.server_stream(R["Count"], req("Count", n=2))] == [
            "0",
            "1",
        ]
        await client.close()
    assert dials.count == 2  # one connection per client, whatever it carried
    await until(lambda: open_connections(bound) == 0)


async def test_tls_over_a_unix_socket_only_with_tls_unix(
    served: Served,
    pki: PKI,  # noqa: F811
    tmp_path: Path,
) -> None:
    secure = await served.start(f"unix:{tmp_path}/tls.sock", tls=server_tls(pki, unix=True))
    client = served.client(secure, tls=root_tls(pki, unix=True))  # checked as localhost
    assert await client.unary(R["Sum"], req("Sum", a=1, b=2)) == 3
    assert await client.client_stream(R["Total"], items([1, 2])) == 3
    nobody = ClientTLS.load(str(pki.ca), unix=True)  # no client certificate
    with pytest.raises(Unavailable, match=rf"^TLS handshake with {secure} failed: "):
        await served.client(secure, tls=nobody).unary(R["Sum"], req("Sum", a=1, b=2))
    # Without tls.unix, a client's TLS settings leave Unix sockets plaintext.
    plain = await served.start(f"unix:{tmp_path}/plain.sock", tls=server_tls(pki))
    assert await served.client(plain, tls=root_tls(pki)).unary(R["Sum"], req("Sum", a=2, b=2)) == 4


# --- imports -----------------------------------------------------------------------


def test_the_runtime_http_paths_do_not_import_aiohttp() -> None:
    """`lokit call --http` and `lokit.connect(http=)` paid ~285 ms importing aiohttp."""
    code = (
        "import sys, lokit, lokit.cli.main, lokit.cli.call, lokit.balanced, "
        "lokit.transport.http.client, lokit.transport.http.server\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
