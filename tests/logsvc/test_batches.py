"""Batches are atomic: every record with consecutive offsets, or none and the reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lokit.commitlog import LogConfig, Topics
from lokit.errors import Code, InvalidArgument
from lokit.logsvc.client import LogClient
from lokit.logsvc.errors import RecordTooLargeError
from lokit.logsvc.messages import Appended, ProduceBatchRequest, ProduceRequest
from lokit.logsvc.observer import NoObserver
from lokit.logsvc.positions import Positions
from lokit.logsvc.service import RUN_BYTES, LogService
from tests.logsvc.conftest import start_in_process


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[LogClient]:
    """A server refusing records over 100 bytes; fsync always, so pipelined produces
    are appended together (the grouped path of `_produce_all`)."""
    srv = await start_in_process(tmp_path, max_record_bytes=100, fsync="always")
    c = LogClient(srv.grpc)
    try:
        yield c
    finally:
        await c.close()
        await srv.runtime.stop()


async def test_batch_gets_consecutive_offsets(client: LogClient) -> None:
    await client.produce(b"first")
    appended = await client.produce_batch([b"a", b"b", b"c"])
    assert appended == Appended(1, 3)
    batch = await client.consume_batch(0)
    assert batch.first_offset == 0 and batch.values == [b"first", b"a", b"b", b"c"]


async def test_a_failing_batch_appends_nothing(small: LogClient) -> None:
    await small.produce_batch([b"ok"] * 3)
    with pytest.raises(RecordTooLargeError) as e:
        await small.produce_batch([b"fine", b"x" * 101, b"fine"])
    assert e.value.code == Code.INVALID_ARGUMENT
    assert "record 1 of the batch is 101 bytes" in e.value.message
    assert "nothing was written" in e.value.message
    assert (await small.list_topics()).topics[0].next_offset == 3
    assert await small.produce_batch([b"next"]) == Appended(3, 1)
    assert (await small.consume_batch(0)).values == [b"ok"] * 3 + [b"next"]


async def test_an_empty_batch_is_refused(client: LogClient) -> None:
    with pytest.raises(InvalidArgument, match="at least one record"):
        await client.produce_batch([])


async def test_concurrent_batches_never_interleave(client: LogClient) -> None:
    async def batch(k: int) -> Appended:
        return await client.produce_batch([b"%d:%d" % (k, i) for i in range(200)], topic="c")

    results = await asyncio.gather(*(batch(k) for k in range(8)))
    values = [v async for b in client.consume_batches(0, "c", stop_at_end=True) for v in b.values]
    assert len(values) == 1600
    for k, a in enumerate(results):
        assert a.count == 200
        want = [b"%d:%d" % (k, i) for i in range(200)]
        assert values[a.first_offset : a.first_offset + 200] == want


async def test_produce_batch_stream_answers_in_order(client: LogClient) -> None:
    async def requests() -> AsyncIterator[ProduceBatchRequest]:
        for k in range(5):
            yield ProduceBatchRequest([b"%d" % k] * (k + 1), "s")

    answers = [a async for a in client.produce_batch_stream(requests())]
    assert answers == [Appended(f, n) for f, n in ((0, 1), (1, 2), (3, 3), (6, 4), (10, 5))]


async def test_a_failing_batch_in_a_stream_ends_it_with_the_reason(small: LogClient) -> None:
    async def requests() -> AsyncIterator[ProduceBatchRequest]:
        yield ProduceBatchRequest([b"a"])
        yield ProduceBatchRequest([b"b", b"y" * 200])
        yield ProduceBatchRequest([b"c"])

    got: list[Appended] = []
    with pytest.raises(RecordTooLargeError):
        async for a in small.produce_batch_stream(requests()):
            got.append(a)
    assert got == [Appended(0, 1)]
    assert (await small.consume_batch(0)).values == [b"a"]


async def test_produce_stream_stops_at_a_refused_record(small: LogClient) -> None:
    """Pipelined requests are appended together, but nothing after a refused one is."""

    async def requests() -> AsyncIterator[ProduceRequest]:
        for v in (b"a", b"b", b"z" * 101, b"c", b"d"):
            yield ProduceRequest(v)

    got: list[int] = []
    with pytest.raises(RecordTooLargeError):
        async for offset in small.produce_stream(requests()):
            got.append(offset)
    assert got == [0, 1]
    assert (await small.consume_batch(0)).values == [b"a", b"b"]


async def test_grouped_appends_stop_at_a_refused_record(tmp_path: Path) -> None:
    """Requests that arrived together go together (one fsync) up to a refused one;
    nothing after it is appended."""
    topics = Topics(tmp_path, LogConfig(fsync="always", max_record_bytes=100))
    service = LogService(topics, Positions(tmp_path / "positions.sqlite"))
    try:
        assert await service.produce(ProduceRequest(b"open")) == 0  # the topic is open

        async def requests() -> AsyncIterator[ProduceRequest]:
            for v in (b"a", b"b", b"z" * 101, b"c"):
                yield ProduceRequest(v)  # never suspends: they arrive as one group

        got: list[int] = []
        with pytest.raises(RecordTooLargeError):
            async for offset in service.produce_stream(requests()):
                got.append(offset)
        assert got == [1, 2]
        log = await topics.get()
        assert [v for _, v in await log.read_range(0)] == [b"open", b"a", b"b"]
    finally:
        await topics.close()


class _Appends(NoObserver):
    """Records each append the service reports: (topic, records in it)."""

    def __init__(self) -> None:
        self.appends: list[tuple[str, int]] = []

    def appended(self, topic: str, records: int, nbytes: int, last_offset: int) -> None:
        self.appends.append((topic, records))


async def test_records_that_arrive_together_are_appended_in_runs(tmp_path: Path) -> None:
    """Under the default fsync policy too, a run of records for one open topic is one
    append (one write); a record for a topic not open yet, or one refused, goes alone."""
    topics = Topics(tmp_path, LogConfig(max_record_bytes=100))
    seen = _Appends()
    service = LogService(topics, Positions(tmp_path / "positions.sqlite"), observer=seen)
    try:
        assert await service.produce(ProduceRequest(b"open")) == 0
        seen.appends.clear()
        values = [(b"a", ""), (b"b", ""), (b"c", ""), (b"n1", "new"), (b"n2", "new")]
        values += [(b"d", ""), (b"z" * 101, ""), (b"e", "")]

        async def requests() -> AsyncIterator[ProduceRequest]:
            for v, topic in values:
                yield ProduceRequest(v, topic)  # never suspends: they arrive as one group

        got: list[int] = []
        with pytest.raises(RecordTooLargeError):
            async for offset in service.produce_stream(requests()):
                got.append(offset)
        assert got == [1, 2, 3, 0, 1, 4]
        # "new" is opened by its first record; its second follows alone (a run of one).
        assert seen.appends == [("default", 3), ("new", 1), ("new", 1), ("default", 1)]
        log = await topics.get()
        assert [v for _, v in await log.read_range(0)] == [b"open", b"a", b"b", b"c", b"d"]
    finally:
        await topics.close()


async def test_a_run_of_appends_stops_at_run_bytes(tmp_path: Path) -> None:
    """A run takes records up to RUN_BYTES; the next starts a run of its own."""
    topics = Topics(tmp_path, LogConfig())
    seen = _Appends()
    service = LogService(topics, Positions(tmp_path / "positions.sqlite"), observer=seen)
    try:
        await service.produce(ProduceRequest(b"open"))
        seen.appends.clear()
        value = b"v" * (RUN_BYTES * 2 // 5)

        async def requests() -> AsyncIterator[ProduceRequest]:
            for _ in range(3):
                yield ProduceRequest(value)

        assert [o async for o in service.produce_stream(requests())] == [1, 2, 3]
        assert seen.appends == [("default", 2), ("default", 1)]
    finally:
        await topics.close()


async def test_pipelined_produce_stream_answers_every_record_in_order(client: LogClient) -> None:
    async def requests() -> AsyncIterator[ProduceRequest]:
        for i in range(2000):
            yield ProduceRequest(b"%d" % i, topic="p" if i % 2 else "")

    offsets = [o async for o in client.produce_stream(requests())]
    assert offsets == [i // 2 for i in range(2000)]
    assert (await client.consume_batch(0, "p", max_records=5)).values == [
        b"1",
        b"3",
        b"5",
        b"7",
        b"9",
    ]
