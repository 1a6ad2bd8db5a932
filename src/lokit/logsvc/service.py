"""The commit log service's business logic over `lokit.commitlog.Topics`.

proglog's log.v1 semantics (Produce, Consume, the two streams, GetServers) plus
lokit's topics, all-or-nothing batches, batched streams and consumer positions.
Nothing here knows about gRPC or HTTP; errors are `lokit.errors` classes, so
every transport maps them by itself. Only writes create topics (and a tailing
read of the default log, which always exists in proglog); tailing streams and long
polls wait on the log's append notification (`AsyncLog.wait_for`), or on a missing
topic for a produce to create it, never poll, and end cleanly when cancelled.

`LogService` implements the endpoints (`api.LogAPI`, from which the contract is
derived) and the read loop they share; the registry of open topics is
`topics.OpenTopics`, the waits a drain ends are `waiting.Waits`. Its other public
methods, `open_existing` and `drain`, are for the wiring, not endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from lokit.commitlog import DEFAULT_TOPIC, AsyncLog, LogError, Topics, validate_topic_name
from lokit.errors import Error, FailedPrecondition, InvalidArgument
from lokit.handoff import Handoff
from lokit.logsvc import messages as m
from lokit.logsvc.defaults import DEFAULT_CACHE_BYTES
from lokit.logsvc.errors import OffsetOutOfRangeError, ServerStoppingError
from lokit.logsvc.observer import LogObserver, NoObserver
from lokit.logsvc.positions import Positions
from lokit.logsvc.topics import OpenTopic, OpenTopics, mapped
from lokit.logsvc.waiting import Waits

DEFAULT_BATCH_RECORDS = 1_000
DEFAULT_BATCH_BYTES = 1 << 20
MAX_BATCH_RECORDS = 100_000
MAX_BATCH_BYTES = 32 << 20
MAX_WAIT_MS = 60_000
MAX_CONSUMER_NAME = 255
# ConsumeStream sends one record per message; it reads them from the log in chunks.
STREAM_CHUNK_RECORDS = 1_000
STREAM_CHUNK_BYTES = 1 << 20
# ProduceStream appends at most this many already-arrived requests together,
STREAM_GROUP = 256
# in runs (one write each) of at most this many bytes, or one record when larger.
RUN_BYTES = 1 << 20


def _limit(value: int, default: int, cap: int) -> int:
    return default if value <= 0 else min(value, cap)


class _Failed:
    """The request stream itself failed (e.g. a request that did not decode)."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_END = object()
_DRAINED = object()  # the server drains: an idle ProduceStream ends (ServerStoppingError)


async def _pump(requests: AsyncIterator[Any], queue: Handoff[Any]) -> None:
    """Move a request stream into `queue`, then `_END` (or `_Failed`)."""
    try:
        async for request in requests:
            await queue.put(request)
    except Exception as e:
        await queue.put(_Failed(e))
        return
    await queue.put(_END)


class LogService:
    """proglog's Log service over a set of topics, with batches and consumer positions.

    `servers` is what GetServers answers (on a single node: this node, the leader).
    `observer` receives appended-record counts and stream opens/closes.
    `cache_bytes` is the memory for the newest records of all topics together (0:
    read the store); `max_topics` bounds how many topics exist (None: no bound).
    """

    def __init__(
        self,
        topics: Topics,
        positions: Positions,
        *,
        servers: list[m.Server] | None = None,
        default_topic: str = DEFAULT_TOPIC,
        observer: LogObserver | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_topics: int | None = None,
    ) -> None:
        self._topics = topics
        self._positions = positions
        self._servers = list(servers or [])
        self._default = default_topic
        self._observer: LogObserver = observer or NoObserver()
        self._waits = Waits()
        self._open = OpenTopics(
            topics,
            self._waits,
            default=default_topic,
            cache_bytes=cache_bytes,
            max_topics=max_topics,
            on_count=self._observer.topics,
            on_refused=self._observer.topic_refused,
        )
        self._health = self._open.health

    @property
    def open_topics(self) -> OpenTopics:
        """The open topics (their caches' budget, their storage health)."""
        return self._open

    # --- wiring (not endpoints) ----------------------------------------------

    async def open_existing(self) -> list[tuple[str, AsyncLog]]:
        """Open (and recover) every topic on disk at startup; (name, log) of each.

        The wiring's lifespan calls it; it is no endpoint, as `LogAPI` lacks it.
        """
        return await self._open.open_existing()

    def drain(self) -> None:
        """End every tailing stream (with ServerStoppingError) and refuse new waits.

        Called when the server starts shutting down, before the transports drain,
        so idle followers do not hold the shutdown for the whole grace period.
        """
        self._waits.drain()

    def _write_failed(self, t: OpenTopic, e: LogError | OSError) -> Error:
        """The error for a failed append to `t` (the health check hears of it)."""
        self._health.failed(t.name, e)
        return mapped(e, t.name, t.path)

    # --- the read loop -------------------------------------------------------

    async def _chunks(
        self, topic: str, offset: int, max_records: int, max_bytes: int, follow: bool
    ) -> AsyncGenerator[tuple[int, list[bytes], int], None]:
        """(first offset, values, the log's next offset) from `offset` to the end of
        the topic, then (with `follow`) new records as they arrive: the body of
        every consuming stream, counted by the metrics while it is open."""
        observer = self._observer
        observer.stream_opened()
        try:
            t = await self._open.awaited(topic) if follow else await self._open.existing(topic)
            if t is None:
                return
            log = t.log
            read = t.read
            while True:
                offset, values = await read(offset, max_records, max_bytes)
                if values:
                    yield offset, values, log.next_offset
                    offset += len(values)
                elif follow:
                    await self._waits.for_offset(log, offset)
                else:
                    return
        finally:
            observer.stream_closed()

    # --- proglog's API -------------------------------------------------------

    async def produce(self, request: m.ProduceRequest) -> int:
        """Append one record; its offset."""
        t = self._open.get(request.topic) or await self._open.create(request.topic)
        value = request.value
        try:
            offset = await t.log.append(value)
        except (LogError, OSError) as e:
            raise self._write_failed(t, e) from None
        if self._health.failing:
            self._health.wrote(t.name)
        t.cache.add_one(offset, value)
        self._observer.appended(t.name, 1, len(value), offset)
        return offset

    async def consume(self, request: m.ConsumeRequest) -> m.Record:
        """The record at an offset (from the tail cache when it holds it); OUT_OF_RANGE
        (HTTP 404) when there is none."""
        t = await self._open.existing(request.topic)
        if t is None:
            raise OffsetOutOfRangeError.at(request.offset)
        return m.Record(await t.read_one(request.offset), request.offset)

    async def consume_stream(self, request: m.ConsumeRequest) -> AsyncIterator[m.Record]:
        """Every record from the offset on, one per message, then new ones as they arrive."""
        chunks = self._chunks(
            request.topic, request.offset, STREAM_CHUNK_RECORDS, STREAM_CHUNK_BYTES, True
        )
        async with contextlib.aclosing(chunks):
            async for offset, values, _ in chunks:
                for value in values:
                    yield m.Record(value, offset)
                    offset += 1

    async def produce_stream(self, requests: AsyncIterator[m.ProduceRequest]) -> AsyncIterator[int]:
        """One offset per record, in order; ends with OK when the client half-closes.

        Requests that have already arrived are appended together (`_produce_all`), so
        they share one write and, with `--fsync always`, one fsync; each still gets its
        own answer, in order, and the first failure ends the call after the answers
        before it. When the server drains, the stream ends with ServerStoppingError
        after the group being appended (requests behind it are neither appended nor
        answered): a client keeping its stream open must not hold the shutdown for the
        whole grace period.
        """
        queue: Handoff[Any] = Handoff(STREAM_GROUP)

        def drained() -> None:
            if queue.empty():  # wake the idle loop; a busy one sees `draining` itself
                queue.put_nowait(_DRAINED)

        waits = self._waits
        unregister = waits.on_drain(drained)
        pump = asyncio.ensure_future(_pump(requests, queue))
        try:
            while True:
                if waits.draining:
                    raise ServerStoppingError()
                group = [await queue.get()]
                while len(group) < STREAM_GROUP and not queue.empty():
                    group.append(queue.get_nowait())
                end = next(
                    (i for i, r in enumerate(group) if not isinstance(r, m.ProduceRequest)), None
                )
                todo = group if end is None else group[:end]
                offsets, error = await self._produce_all(todo) if todo else ([], None)
                for offset in offsets:
                    yield offset
                if error is not None:
                    raise error
                if end is not None:
                    last = group[end]
                    if isinstance(last, _Failed):
                        raise last.error
                    if last is _DRAINED:
                        raise ServerStoppingError()
                    return
        finally:
            unregister()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _produce_all(
        self, requests: list[m.ProduceRequest]
    ) -> tuple[list[int], BaseException | None]:
        """Append `requests` in order: (offsets of those appended, the error that stopped it).

        A run of two or more records bound for the same open topic, each within the
        size limit (up to `RUN_BYTES` in all), is appended as one batch (`_append`):
        one write, and under fsync `always` one fsync, for the run instead of one per
        record (a write per record was half the server's time on a pipelined stream).
        A failed write leaves none of the run behind, so nothing after the first
        failure is appended. A record that opens a topic or is refused goes alone,
        through `produce`.
        """
        offsets: list[int] = []
        limit = self._topics.config.record_limit
        opened = self._open.get
        i, n = 0, len(requests)
        while i < n:
            topic = requests[i].topic
            t = opened(topic)
            j, size = i, 0
            if t is not None:
                while j < n and requests[j].topic == topic and len(requests[j].value) <= limit:
                    size += len(requests[j].value)
                    if size > RUN_BYTES and j > i:
                        break
                    j += 1
            try:
                if t is not None and j - i > 1:
                    first = await self._append(t, [r.value for r in requests[i:j]])
                    offsets.extend(range(first, first + j - i))
                    i = j
                else:
                    offsets.append(await self.produce(requests[i]))
                    i += 1
            except Error as e:
                return offsets, e
        return offsets, None

    async def get_servers(self, request: m.GetServersRequest) -> list[m.Server]:
        """The cluster's servers: on a single node, this one, the leader."""
        return self._servers

    # --- batches -------------------------------------------------------------

    async def produce_batch(self, request: m.ProduceBatchRequest) -> m.Appended:
        """Append every value with consecutive offsets, or none (the error says why)."""
        values = request.values
        if not values:
            raise InvalidArgument("a batch needs at least one record")
        t = self._open.get(request.topic) or await self._open.create(request.topic)
        return m.Appended(await self._append(t, values), len(values))

    async def _append(self, t: OpenTopic, values: list[bytes]) -> int:
        """Append `values` to `t` at consecutive offsets, all or none; the first offset."""
        try:
            first = await t.log.append_batch(values)
        except (LogError, OSError) as e:
            raise self._write_failed(t, e) from None
        if self._health.failing:
            self._health.wrote(t.name)
        t.cache.add(first, values)
        n = len(values)
        self._observer.appended(t.name, n, sum(map(len, values)), first + n - 1)
        return first

    async def produce_batch_stream(
        self, requests: AsyncIterator[m.ProduceBatchRequest]
    ) -> AsyncIterator[m.Appended]:
        """ProduceBatch for each request of the stream, answered in order."""
        produce_batch = self.produce_batch
        async for request in requests:
            yield await produce_batch(request)

    async def consume_batch(self, request: m.ConsumeBatchRequest) -> m.RecordBatch:
        """Up to max_records / max_bytes records from an offset (empty at the end).

        At the end of the log it waits up to max_wait_ms for a record (a long
        poll); an offset beyond the end is OUT_OF_RANGE.
        """
        max_records = _limit(request.max_records, DEFAULT_BATCH_RECORDS, MAX_BATCH_RECORDS)
        max_bytes = _limit(request.max_bytes, DEFAULT_BATCH_BYTES, MAX_BATCH_BYTES)
        offset = request.offset
        t = await self._open.existing(request.topic)
        if request.max_wait_ms > 0 and offset == (0 if t is None else t.log.next_offset):
            # A missing topic is an empty one that a produce may create meanwhile.
            with contextlib.suppress(TimeoutError, ServerStoppingError):
                async with asyncio.timeout(min(request.max_wait_ms, MAX_WAIT_MS) / 1000):
                    t = await self._open.awaited(request.topic)
                    await self._waits.for_offset(t.log, offset)
        if t is None:
            if offset > 0:
                raise OffsetOutOfRangeError.at(offset)
            return m.RecordBatch(0, [], 0)
        log = t.log
        if offset > log.next_offset:
            raise OffsetOutOfRangeError.at(offset)
        offset, values = await t.read(offset, max_records, max_bytes)
        return m.RecordBatch(offset, values, log.next_offset)

    async def consume_batch_stream(
        self, request: m.ConsumeBatchRequest
    ) -> AsyncIterator[m.RecordBatch]:
        """Many records per message from the offset on, then new ones as they arrive.

        With stop_at_end the stream ends once it has caught up with the log (at
        once on a missing topic); otherwise it waits for a missing topic to be created.
        """
        max_records = _limit(request.max_records, DEFAULT_BATCH_RECORDS, MAX_BATCH_RECORDS)
        max_bytes = _limit(request.max_bytes, DEFAULT_BATCH_BYTES, MAX_BATCH_BYTES)
        chunks = self._chunks(
            request.topic, request.offset, max_records, max_bytes, not request.stop_at_end
        )
        async with contextlib.aclosing(chunks):
            async for first, values, end in chunks:
                yield m.RecordBatch(first, values, end)

    # --- consumer positions --------------------------------------------------

    def _consumer(self, name: str) -> str:
        if not name:
            raise InvalidArgument("a consumer name is required")
        if len(name) > MAX_CONSUMER_NAME:
            raise InvalidArgument(f"consumer name is longer than {MAX_CONSUMER_NAME} characters")
        if not name.isprintable():
            raise InvalidArgument(f"consumer name {name!r} has non-printable characters")
        return name

    async def commit_position(self, request: m.CommitPositionRequest) -> None:
        """Store a consumer's next offset for a topic (at most the topic's next offset)."""
        consumer = self._consumer(request.consumer)
        offset = request.offset
        if offset < 0:
            raise InvalidArgument("a position cannot be negative")
        t = await self._open.existing(request.topic)
        name = t.name if t is not None else (request.topic or self._default)
        end = t.log.next_offset if t is not None else 0
        if offset > end:
            raise FailedPrecondition(
                f"cannot commit offset {offset} for topic {name!r}: "
                f"it is past the end of the topic (next offset {end})"
            )
        await self._positions.commit(consumer, name, offset)

    async def fetch_position(self, request: m.FetchPositionRequest) -> m.Position:
        """A consumer's committed next offset for a topic (found=False when none)."""
        consumer = self._consumer(request.consumer)
        name = request.topic or self._default
        offset = self._positions.get(consumer, name)
        if offset is None:
            try:
                validate_topic_name(name)
            except LogError as e:
                raise mapped(e) from None
            return m.Position(0, False)
        return m.Position(offset, True)

    async def list_topics(self, request: m.ListTopicsRequest) -> m.LogInfo:
        """Every topic's offset range and size, and every committed consumer position."""
        topics = []
        for name in sorted(self._topics.names()):
            log = (self._open.get(name) or await self._open.create(name, admit=False)).log
            end = log.next_offset
            low = log.lowest_offset
            topics.append(m.TopicInfo(name, end if low is None else low, end, log.size_bytes))
        positions = [m.ConsumerPosition(c, t, o) for c, t, o in self._positions.all()]
        return m.LogInfo(topics, positions)
