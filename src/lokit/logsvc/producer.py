"""Single produces over one open ProduceStream, acknowledged in order (`LogClient.produce`).

A unary Produce pays grpc.aio's whole per-call machinery (≈ 450 µs here); a message on
an open stream costs a fraction of it. So `StreamProducer` opens proglog's ProduceStream
on the first produce, keeps it open, and sends each record as one message: concurrent
produces pipeline on it (many in flight), one at a time each waits for its own ack.
The server answers in request order, so each produce's future waits in a FIFO and the
reader task resolves the head with each offset.

Failures (decided here; the server's `LogService.produce_stream` is the other half):

- The server ends the stream at the first record it refuses, after the answers before
  it; records behind that one are not appended. The refused record raises the server's
  error (same class: `RecordTooLargeError`, `InvalidArgument`, ...); every other record
  still in flight raises the same class, with a message saying it was not acknowledged.
- When the stream breaks (server gone, connection lost: `Unavailable`, `Cancelled`),
  records in flight may or may not have been appended, exactly as a unary produce whose
  answer was lost. They fail with that error and are **never resent**: a produce is not
  idempotent, and resending could append a record twice. An acknowledged record is
  never affected; the next produce opens a new stream.
- A produce that gets no ack within its timeout raises `DeadlineExceeded`; the record
  stays in flight (its ack, if it comes, is matched and dropped), so order holds.
- `close()` half-closes the stream and waits (briefly) for the acks still due.

The stream is opened outside the caller's request context: it outlives any one request,
so it carries no deadline and its own request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from lokit.context import bounded
from lokit.errors import Cancelled, DeadlineExceeded, Error, Unavailable
from lokit.handoff import Handoff
from lokit.logsvc.messages import ProduceRequest
from lokit.transport.expiry import Expiry

OpenStream = Callable[[AsyncIterator[Any]], AsyncIterator[int]]
"""Starts a produce stream over requests (ProduceRequest, or lists of them: `batches`)."""
CLOSE_WAIT = 5.0
"""Seconds `close()` waits for the acks still due before it cancels the stream."""

_END = ProduceRequest(b"")  # the queue's end marker (compared by identity)


class _Stream:
    """One open ProduceStream: its request queue, the futures awaiting acks, its reader."""

    __slots__ = ("_queue", "expiry", "failed", "pending", "reader")

    def __init__(self, open_stream: OpenStream, label: str, batches: bool) -> None:
        self._queue: Handoff[ProduceRequest] = Handoff(0)
        self.pending: deque[asyncio.Future[int]] = deque()
        self.failed = False
        empty = contextvars.Context()  # no caller's deadline or request id on the stream
        requests = self._batches() if batches else self._requests()
        responses = empty.run(open_stream, requests)
        loop = asyncio.get_running_loop()
        self.reader = loop.create_task(self._read(responses, label), context=empty)
        self.expiry = Expiry(loop)  # the acks' timeouts, on one timer

    async def _requests(self) -> AsyncIterator[ProduceRequest]:
        get = self._queue.get
        while (request := await get()) is not _END:
            yield request

    async def _batches(self) -> AsyncIterator[list[ProduceRequest]]:
        """The queued records, every one that is waiting at once (still a message each)."""
        queue = self._queue
        while (request := await queue.get()) is not _END:
            batch = [request]
            while not queue.empty():
                request = queue.get_nowait()
                if request is _END:
                    yield batch
                    return
                batch.append(request)
            yield batch

    def send(self, request: ProduceRequest) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        self._queue.put_nowait(request)
        return fut

    def end(self) -> None:
        """Half-close: no more requests; the reader ends once every ack is in."""
        self._queue.put_nowait(_END)

    async def _read(self, responses: AsyncIterator[int], label: str) -> None:
        try:
            await self._acks(responses, label)
        finally:
            self.failed = True  # however it ended, the next produce opens another stream
            aclose = getattr(responses, "aclose", None)
            if aclose is not None:  # its call closed now, not when collected
                with contextlib.suppress(Exception):
                    await aclose()

    async def _acks(self, responses: AsyncIterator[int], label: str) -> None:
        """Each ack to the oldest record waiting; a failure fails them all (`_fail`)."""
        pending = self.pending
        try:
            async for offset in responses:
                if not pending:  # an ack nobody waits for: the stream is out of step
                    raise Unavailable(f"ProduceStream at {label} sent an unexpected ack")
                fut = pending.popleft()
                if not fut.done():
                    fut.set_result(offset)
        except Error as e:
            self._fail(e)
            return
        except asyncio.CancelledError:
            self._fail(Cancelled(f"the ProduceStream to {label} was closed"))
            raise
        except Exception as e:  # not a status: report it as the stream's failure
            self._fail(Unavailable(f"ProduceStream at {label} failed: {e}"))
            return
        if pending:
            self._fail(Unavailable(f"ProduceStream at {label} ended before acknowledging"))

    def _fail(self, error: Error) -> None:
        """Fail every record in flight: the first with `error`, the others alike; end the
        request stream (grpc's task reading it would otherwise wait on it forever)."""
        self.failed = True
        queue = self._queue
        while not queue.empty():  # records not yet written are not sent at all
            queue.get_nowait()
        queue.put_nowait(_END)
        pending = self.pending
        first = True
        while pending:
            fut = pending.popleft()
            if not fut.done():
                fut.set_exception(error if first else _behind(error))
            first = False


def _expire(late: tuple[asyncio.Future[int], str, float]) -> None:
    """The ack did not come in time: the produce fails; a late ack is matched and dropped."""
    fut, label, timeout = late
    if not fut.done():
        fut.set_exception(
            DeadlineExceeded(
                f"produce to {label}: no acknowledgement within {timeout:g} s "
                "(the record may still be appended)"
            )
        )


def _behind(error: Error) -> Error:
    """The error for a record sent after the one that failed (same class)."""
    note = f"{error.message} (a record sent before this one failed; it was not acknowledged)"
    try:
        return type(error)(note)
    except Exception:  # an error class with another constructor: the error as it is
        return error


class StreamProducer:
    """Single produces over one lazily opened, long-lived ProduceStream (see the module).

    `open_stream(requests)` starts a ProduceStream call and yields its offsets;
    `label` names the server in errors. With `batches`, the requests are lists of
    the records waiting to be sent at once, for a wire that frames each record as
    its own message but can write many in one go (NDJSON lines: one write for all
    of them, where gRPC's stream takes one message at a time). Use from one event
    loop.
    """

    def __init__(self, open_stream: OpenStream, label: str, *, batches: bool = False) -> None:
        self._open = open_stream
        self._label = label
        self._batches = batches
        self._stream: _Stream | None = None

    async def produce(self, value: bytes, topic: str, timeout: float | None) -> int:  # noqa: ASYNC109
        """Append one record; its offset once the server acknowledged it.

        `timeout`: seconds to wait for the ack (bounded by the current request's deadline).
        """
        timeout = bounded(timeout)
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded(f"produce to {self._label} not sent: the deadline has passed")
        s = self._stream
        if s is None or s.failed:
            s = self._stream = _Stream(self._open, self._label, self._batches)
        fut = s.send(ProduceRequest(value, topic))
        if timeout is None:
            return await fut
        # A deadline that fails the ack's future, not asyncio.timeout (about a third of
        # the client's CPU per record when many produces are in flight), on the stream's
        # one timer (`Expiry`), not a loop timer per record.
        expiry = s.expiry
        late = expiry.add(fut.get_loop().time() + timeout, _expire, (fut, self._label, timeout))
        try:
            return await fut
        finally:
            expiry.done(late)

    async def close(self) -> None:
        """Half-close the stream and wait up to CLOSE_WAIT s for the acks due, then stop it."""
        s, self._stream = self._stream, None
        if s is None:
            return
        if not s.failed:
            s.end()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(s.reader), CLOSE_WAIT)
        if not s.reader.done():
            s.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await s.reader
