"""Tailing streams: records produced after a stream opened arrive; cancel ends cleanly."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lokit.logsvc.client import LogClient
from lokit.logsvc.errors import ServerStoppingError
from lokit.logsvc.messages import Record, RecordBatch
from lokit.logsvc.metrics import CONSUMER_STREAMS
from tests.logsvc.conftest import InProcess, start_in_process

# Guards against a hang, not timing assertions.
HANG = 15.0


def open_streams() -> float:
    return float(CONSUMER_STREAMS._value.get())


async def until(cond: object, what: str) -> None:
    """Wait (bounded) until `cond()` holds."""
    for _ in range(int(HANG / 0.02)):
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_consume_stream_receives_records_produced_after_it_opened(
    client: LogClient,
) -> None:
    await client.produce(b"before")
    stream = client.consume_stream(0)
    got: list[Record] = []

    async def read(n: int) -> None:
        async for r in stream:
            got.append(r)
            if len(got) == n:
                return

    before = open_streams()
    reader = asyncio.create_task(read(4))
    await until(lambda: len(got) == 1, "the existing record")
    assert open_streams() == before + 1  # the stream is now tailing, waiting for offset 1
    for v in (b"a", b"b", b"c"):
        await client.produce(v)
    await asyncio.wait_for(reader, HANG)
    assert got == [Record(b"before", 0), Record(b"a", 1), Record(b"b", 2), Record(b"c", 3)]
    await stream.aclose()  # type: ignore[attr-defined]
    await until(lambda: open_streams() == before, "the server to end the cancelled stream")


async def test_batch_stream_tails_and_carries_many_records_per_message(
    client: LogClient,
) -> None:
    await client.produce_batch([b"%d" % i for i in range(25)], topic="t")
    stream = client.consume_batches(0, topic="t", max_records=10)
    batches: list[RecordBatch] = []

    async def read() -> None:
        async for b in stream:
            batches.append(b)
            if b.first_offset + len(b.values) == 30:
                return

    reader = asyncio.create_task(read())
    await until(lambda: sum(len(b.values) for b in batches) == 25, "the first 25 records")
    assert [len(b.values) for b in batches] == [10, 10, 5]
    await client.produce_batch([b"x"] * 5, topic="t")
    await asyncio.wait_for(reader, HANG)
    assert batches[-1].first_offset == 25 and batches[-1].values == [b"x"] * 5
    values = [v for b in batches for v in b.values]
    assert values == [b"%d" % i for i in range(25)] + [b"x"] * 5
    await stream.aclose()  # type: ignore[attr-defined]


async def test_batch_stream_stop_at_end(client: LogClient) -> None:
    await client.produce_batch([b"r%d" % i for i in range(2500)])
    batches = [b async for b in client.consume_batches(100, stop_at_end=True)]
    assert batches[0].first_offset == 100
    values = [v for b in batches for v in b.values]
    assert values == [b"r%d" % i for i in range(100, 2500)]
    assert all(b.end_offset == 2500 for b in batches)


async def test_batch_stream_stop_at_end_on_a_missing_topic_is_empty(client: LogClient) -> None:
    assert [b async for b in client.consume_batches(0, topic="none", stop_at_end=True)] == []


async def test_stream_waits_for_an_offset_beyond_the_end(client: LogClient) -> None:
    """As proglog: a stream from a future offset starts when that offset exists."""
    stream = client.consume_stream(2)
    first: asyncio.Task[Record] = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    for v in (b"0", b"1", b"2"):
        await client.produce(v)
    assert await asyncio.wait_for(first, HANG) == Record(b"2", 2)
    await stream.aclose()  # type: ignore[attr-defined]


async def test_consume_batch_long_poll(client: LogClient, server: InProcess) -> None:
    empty = await client.consume_batch(0, topic="poll")
    assert empty.values == [] and empty.end_offset == 0

    def polls() -> float:  # the kit's RED gauge
        labels = {"service": "log", "method": "ConsumeBatch"}
        return REGISTRY.get_sample_value("lokit_requests_in_flight", labels) or 0.0

    before = polls()
    waiting = asyncio.create_task(client.consume_batch(0, topic="poll", max_wait_ms=10_000))
    await until(lambda: polls() == before + 1, "the long poll to wait")
    assert not waiting.done()
    assert not (server.data / "poll").exists()  # waiting for the topic creates nothing
    await client.produce(b"woke", topic="poll")
    batch = await asyncio.wait_for(waiting, HANG)
    assert batch == RecordBatch(0, [b"woke"], 1)


async def test_following_a_missing_topic_waits_for_a_produce_to_create_it(
    client: LogClient, server: InProcess
) -> None:
    """A tailing read creates no topic: it waits until a produce creates it."""
    before = open_streams()
    stream = client.consume_stream(0, topic="later")
    first: asyncio.Task[Record] = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    await until(lambda: open_streams() == before + 1, "the stream to open")
    assert not first.done()
    assert not (server.data / "later").exists()
    await client.produce(b"made", topic="later")
    assert await asyncio.wait_for(first, HANG) == Record(b"made", 0)
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_cancelled_follow_of_a_missing_topic_leaves_nothing(
    client: LogClient, server: InProcess
) -> None:
    before = open_streams()
    stream = client.consume_batches(0, topic="ghost")
    first: asyncio.Task[Any] = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    await until(lambda: open_streams() == before + 1, "the stream to open")
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    await stream.aclose()  # type: ignore[attr-defined]
    await until(lambda: open_streams() == before, "the server to end the cancelled stream")
    assert not (server.data / "ghost").exists()
    assert (await client.list_topics()).topics == []


async def test_a_long_poll_on_a_missing_topic_creates_nothing(
    client: LogClient, server: InProcess
) -> None:
    batch = await client.consume_batch(0, topic="ghost", max_wait_ms=20)
    assert batch == RecordBatch(0, [], 0)
    assert not (server.data / "ghost").exists()


async def test_drain_ends_a_stream_waiting_for_a_topic(tmp_path: Path) -> None:
    """log_definition carries the drain hook; it ends waits for a topic too."""
    srv = await start_in_process(tmp_path)
    c = LogClient(srv.grpc)
    try:
        drain = srv.runtime.service.drain
        assert drain is not None
        before = open_streams()
        stream = c.consume_batches(0, topic="never")
        first: asyncio.Task[Any] = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
        await until(lambda: open_streams() == before + 1, "the stream to open")
        drain()
        with pytest.raises(ServerStoppingError, match="shutting down"):
            await asyncio.wait_for(first, HANG)
    finally:
        await c.close()
        await srv.runtime.stop()
