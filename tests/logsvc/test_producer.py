"""`LogClient.produce` over one open produce stream: acks matched in order, failures of
the records in flight with the server's error class, a new stream after a failure, no
record resent; and a SIGKILLed `--fsync always` server keeps every acknowledged one.

Each test runs twice: over `POST /produce-stream` on the HTTP socket beside the gRPC
one (the client's default there) and over gRPC's ProduceStream (`local_http=False`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lokit.context import reset, with_deadline
from lokit.errors import DeadlineExceeded, Error, Unavailable
from lokit.logsvc.client import LogClient
from lokit.logsvc.errors import RecordTooLargeError

from .conftest import InProcess, start_in_process

SERVE = ("--data", "data", "--grpc", "unix:log.grpc.sock", "--http", "unix:log.http.sock")
"""A spawned log server's listeners, side by side as `lokit serve log` lays them out."""


@pytest.fixture(params=[True, False], ids=["http", "grpc"])
def over_http(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def client(server: InProcess, over_http: bool) -> AsyncIterator[LogClient]:
    c = LogClient(server.grpc, timeout=10, local_http=over_http)
    try:
        yield c
    finally:
        await c.close()


async def _all(c: LogClient) -> list[bytes]:
    return [v async for b in c.consume_batches(0, stop_at_end=True) for v in b.values]


async def test_one_at_a_time_and_concurrent_produces_share_one_stream(
    server: InProcess, client: LogClient, over_http: bool
) -> None:
    assert (client._http is not None) is over_http
    assert [await client.produce(b"a%d" % i) for i in range(5)] == list(range(5))
    stream = client._producer._stream  # type: ignore[union-attr]
    values = [b"c%d" % i for i in range(200)]
    offsets = await asyncio.gather(*(client.produce(v) for v in values))
    assert client._producer._stream is stream  # type: ignore[union-attr]
    assert sorted(offsets) == list(range(5, 205))
    for off, v in zip(offsets, values, strict=True):  # each call got its own record's offset
        assert (await client.consume(off)).value == v
    assert await client.produce(b"t", "other") == 0  # one stream serves every topic


async def test_a_refused_record_fails_it_and_those_behind_it_then_a_new_stream(
    tmp_path: Path, over_http: bool
) -> None:
    srv = await start_in_process(tmp_path, max_record_bytes=100)
    c = LogClient(srv.grpc, timeout=10, local_http=over_http)
    try:
        await c.produce(b"first")
        sent = [c.produce(b"ok-1"), c.produce(b"x" * 200), c.produce(b"ok-2"), c.produce(b"ok-3")]
        results = await asyncio.gather(*sent, return_exceptions=True)
        assert results[0] == 1
        assert isinstance(results[1], RecordTooLargeError)
        for r in results[2:]:  # sent behind it on the same stream: not appended, same class
            assert isinstance(r, RecordTooLargeError) and "not acknowledged" in str(r)
        assert await c.produce(b"after") == 2  # a new stream; nothing was resent
        assert await _all(c) == [b"first", b"ok-1", b"after"]
    finally:
        await c.close()
        await srv.runtime.stop()


async def test_a_server_gone_fails_the_produce_and_a_restarted_one_is_used(
    tmp_path: Path, over_http: bool
) -> None:
    srv = await start_in_process(tmp_path)
    c = LogClient(srv.grpc, timeout=10, local_http=over_http)
    try:
        assert await c.produce(b"one") == 0
        await srv.runtime.stop()
        with pytest.raises(Unavailable):
            await c.produce(b"lost")
        srv = await start_in_process(tmp_path)
        for _ in range(100):  # until the channel's reconnect backoff (0.1-1 s) lets it in
            try:
                assert await c.produce(b"two") == 1
                break
            except Unavailable:
                await asyncio.sleep(0.05)
        assert await _all(c) == [b"one", b"two"]
    finally:
        await c.close()
        await srv.runtime.stop()


async def test_a_passed_deadline_sends_nothing(server: InProcess, client: LogClient) -> None:
    token = with_deadline(-1)
    try:
        with pytest.raises(DeadlineExceeded, match="not sent"):
            await client.produce(b"late")
    finally:
        reset(token)
    assert await client.produce(b"on time") == 0


async def test_an_ack_that_comes_late_fails_the_produce_and_is_dropped(
    tmp_path: Path, spawn: Any, over_http: bool
) -> None:
    server = spawn(*SERVE, "--fsync", "never")
    c = LogClient(f"unix:{tmp_path}/log.grpc.sock", timeout=0.3, local_http=over_http)
    try:
        assert await c.produce(b"first") == 0
        server.proc.send_signal(signal.SIGSTOP)  # a server that stalls
        try:
            with pytest.raises(DeadlineExceeded, match=r"no acknowledgement within 0\.3 s"):
                await c.produce(b"late")
        finally:
            server.proc.send_signal(signal.SIGCONT)
        assert await c.produce(b"after") == 2  # the late ack was matched and dropped
        assert await _all(c) == [b"first", b"late", b"after"]
    finally:
        await c.close()


async def test_sigkill_after_acknowledged_single_produces_keeps_them(
    tmp_path: Path, spawn: Any, over_http: bool
) -> None:
    server = spawn(*SERVE, "--fsync", "always")
    c = LogClient(f"unix:{tmp_path}/log.grpc.sock", timeout=10, local_http=over_http)
    acked: dict[int, bytes] = {}
    try:
        for i in range(150):  # one at a time
            acked[await c.produce(b"one-%d" % i)] = b"one-%d" % i
        values = [b"many-%d" % i for i in range(300)]  # pipelined
        for off, v in zip(await asyncio.gather(*map(c.produce, values)), values, strict=True):
            acked[off] = v
        server.proc.send_signal(signal.SIGKILL)  # right after the last ack
        server.proc.wait(30)
        with pytest.raises(Error):
            await c.produce(b"no server")
    finally:
        await c.close()
    assert sorted(acked) == list(range(450))

    spawn(*SERVE, "--fsync", "always")
    c = LogClient(f"unix:{tmp_path}/log.grpc.sock", timeout=10, local_http=over_http)
    try:
        stored = await _all(c)
        assert await c.produce(b"after restart") == len(stored)
    finally:
        await c.close()
    assert len(stored) == 450
    assert {off: stored[off] for off in acked} == acked


@pytest.mark.parametrize("fsync", ["always", "interval:1000"])
async def test_an_open_idle_produce_stream_does_not_hold_the_shutdown(
    tmp_path: Path, spawn: Any, over_http: bool, fsync: str
) -> None:
    # Without the drain the server would wait out the 60 s grace for the client's stream.
    server = spawn(*SERVE, "--grace", "60", "--fsync", fsync)
    c = LogClient(f"unix:{tmp_path}/log.grpc.sock", timeout=10, local_http=over_http)
    try:
        assert await c.produce(b"kept") == 0  # the stream stays open, idle
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.proc.wait, 30) == 0
        with pytest.raises(Unavailable):  # the stream ended; nothing answers any more
            await c.produce(b"after")
    finally:
        await c.close()
