"""Serving the routes that stream requests and/or responses, as NDJSON.

A streamed request's lines are each held to the body limit (`max_body`).
A streamed response starts once the endpoint's first item is ready and sends
one encoded item per line; an error after that first line ends the stream with
an error line (`wire.error_line`), an error before it is an ordinary error
answer. A streamed request body is split into lines as it arrives and fed to
the endpoint as an async iterator of decoded items.

A background task owns `receive`: it feeds a streamed request body to the
endpoint (`_pump`), or waits for the client to go away once a whole body was
read (`_watch`), and cancels the handler if the client leaves before the
response is complete, which closes the producing generator. That cancellation
is recorded as `Cancelled` (the client left), not as a server failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from lokit import errors
from lokit.handoff import Handoff
from lokit.observability.observer import Call
from lokit.transport.failures import stopping
from lokit.transport.http.exchange import (
    RID,
    ClientGone,
    Exchange,
    client_error,
    send_json,
)
from lokit.transport.http.router import Target
from lokit.transport.http.wire import NDJSON_TYPE, LineSplitter, error_line
from lokit.transport.limits import BodyPacer
from lokit.types import Receive, Scope, Send

__all__ = ["Stream", "serve"]

_CT_NDJSON = (b"content-type", NDJSON_TYPE.encode())
_END = object()


class Stream(Exchange):
    """A streaming request's exchange, shared with its body pump / disconnect watcher."""

    __slots__ = ("done", "gone", "task")

    def __init__(
        self,
        service: str,
        target: Target,
        scope: Scope,
        receive: Receive,
        send: Send,
        params: Mapping[str, str],
        max_body: int,
        pacer: BodyPacer,
    ) -> None:
        super().__init__(service, target, scope, receive, send, params, max_body, pacer)
        self.task = asyncio.current_task()
        self.done = False  # the response is complete: a disconnect now means nothing
        self.gone = False  # the client went away; the handler was cancelled for it

    def client_gone(self) -> None:
        if not self.done and self.task is not None:
            self.gone = True
            self.task.cancel()


async def serve(stream: Stream, call: Call) -> None:
    """Serve a streaming route and finish the observed `call`, however it ends."""
    try:
        err = await _serve(stream)
    except asyncio.CancelledError as exc:
        if not stream.gone:
            call.finish(exc)
            raise
        # Cancelled by us because the client left: not a server failure.
        if stream.task is not None:
            stream.task.uncancel()
        call.finish(errors.Cancelled("the client disconnected"))
        return
    except BaseException as exc:  # e.g. a send failed while reporting an error
        call.finish(exc)
        raise
    call.finish(err)


async def _serve(stream: Stream) -> BaseException | None:
    """Run the endpoint and send its answer; return the error to record."""
    target = stream.target
    send = stream.send
    watcher: asyncio.Task[None] | None = None
    items: AsyncIterator[Any] | None = None
    requests: AsyncIterator[Any] | None = None
    started = False
    try:
        if stream.bad is not None:
            raise stream.bad
        request: Any
        if target.streams_in:
            queue: Handoff[bytes | None] = Handoff(8)
            watcher = asyncio.create_task(_pump(stream.receive, queue, stream))
            request = requests = _request_items(queue, target.codec.decode_request, stream)
        else:
            request = stream.decode(await stream.read_body())
            watcher = asyncio.create_task(_watch(stream.receive, stream))
        deadline = stream.ctx.deadline
        async with asyncio.timeout(None if deadline is None else deadline - time.monotonic()):
            result = await target.endpoint(request)
            if not target.streams_out:
                out = target.codec.encode_response(result)
                stream.done = True
                await send_json(send, target.status, out, stream.rid)
                return None
            items = aiter(result)
            first = await anext(items, _END)
            await send(
                {
                    "type": "http.response.start",
                    "status": target.status,
                    "headers": [_CT_NDJSON, (RID, stream.rid)],
                }
            )
            started = True
            encode = target.codec.encode_response
            if first is not _END:
                await send(
                    {"type": "http.response.body", "body": encode(first) + b"\n", "more_body": True}
                )
                async for item in items:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": encode(item) + b"\n",
                            "more_body": True,
                        }
                    )
        stream.done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return None
    except ClientGone:
        return errors.Cancelled("the client disconnected")
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError) and stream.gone:
            raise
        failure = stopping(exc)
        stream.done = True
        if not started:
            await stream.send_error(failure)
            return failure
        err = client_error(failure)
        final = error_line(err if err is not None else errors.internal_error(stream.ctx.request_id))
        await send({"type": "http.response.body", "body": final + b"\n", "more_body": False})
        return failure
    finally:
        if watcher is not None:
            watcher.cancel()
        await _close(items)
        await _close(requests)


async def _close(it: AsyncIterator[Any] | None) -> None:
    """Close an async generator the handler no longer reads (runs its `finally`)."""
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        # A failure while closing a finished stream has nobody left to tell.
        with contextlib.suppress(Exception):
            await aclose()


async def _watch(receive: Receive, stream: Stream) -> None:
    """Wait for `http.disconnect` (after the body was read) and cancel the handler if early."""
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.client_gone()


async def _pump(receive: Receive, queue: Handoff[bytes | None], stream: Stream) -> None:
    """Move a streamed request body into `queue` (None ends it), then watch for disconnect."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            stream.client_gone()
            return
        body = message.get("body", b"")
        if body:
            await queue.put(body)
        if not message.get("more_body", False):
            await queue.put(None)
            break
    await _watch(receive, stream)


async def _request_items(
    queue: Handoff[bytes | None], decode: Callable[[bytes], Any], stream: Stream
) -> AsyncIterator[Any]:
    """The decoded lines of an NDJSON request body, as they arrive.

    A streamed body may be as long as it likes; each line (one item) is held to
    the body limit, like one message on gRPC.
    """
    lines = LineSplitter()
    limit = stream.max_body
    while True:
        chunk = await queue.get()
        if chunk is None:
            break
        for line in lines.feed(chunk):
            if len(line) > limit:
                raise stream.too_large()
            yield decode(line)
        if lines.pending() > limit:
            raise stream.too_large()
    last = lines.tail()
    if last is not None:
        yield decode(last)
