"""A service's HTTP side: a raw ASGI app that routes requests to endpoints.

No framework underneath: Starlette costs 5-25 % per request, and lokit aims to
stay within 15 % of a bare ASGI callable. Everything a request needs is prepared
when the app is built (route table, codecs, header tuples); a request costs one
dict lookup, one pass over the headers, one `RequestContext` and the codec.

The wire format (media types, the error header, NDJSON error lines) is in `wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from lokit import context, errors
from lokit.codec import malformed
from lokit.observability import propagation
from lokit.observability.observer import Observer
from lokit.routes import HttpInput, ServiceDef
from lokit.transport.http.router import NO_PARAMS, Router, Target
from lokit.transport.http.wire import (
    ERROR_HEADER,
    INTERNAL_ERROR_BODY,
    INTERNAL_ERROR_LINE,
    JSON_TYPE,
    NDJSON_TYPE,
    LineSplitter,
    error_body,
    error_line,
)
from lokit.types import ASGIApp, Receive, Scope, Send

_CT_JSON = (b"content-type", JSON_TYPE.encode())
_CT_NDJSON = (b"content-type", NDJSON_TYPE.encode())
_RID = context.REQUEST_ID_HEADER.encode()
# `context.INCOMING_HEADERS` as ASGI header names.
_KEYS = (
    _RID,
    context.TIMEOUT_HEADER.encode(),
    context.CALLER_HEADER.encode(),
    context.TRACEPARENT_HEADER.encode(),
)
_INTERNAL_NAME = (ERROR_HEADER.encode(), errors.Internal.error_name.encode())
_END = object()


# --- the app -------------------------------------------------------------------------


class _Stream:
    """Shared between a streaming request's handler and its body pump/disconnect watcher."""

    __slots__ = ("done", "gone", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.done = False  # the response is complete: a disconnect now means nothing
        self.gone = False  # the client went away; the handler was cancelled for it

    def client_gone(self) -> None:
        if not self.done and self.task is not None:
            self.gone = True
            self.task.cancel()


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


def asgi_app(service: ServiceDef, observer: Observer) -> ASGIApp:
    """The ASGI app serving `service.http` routes, observed by `observer`."""
    return HttpApp(service, observer)


class HttpApp:
    """The ASGI callable behind `asgi_app` (one per service, shared by all requests)."""

    __slots__ = ("_exact", "_observer", "_router", "_service")

    def __init__(self, service: ServiceDef, observer: Observer) -> None:
        self._service = service.name
        self._observer = observer
        self._router = Router(service.http)
        self._exact = self._router.exact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off: the runtime runs start/stop hooks itself
        verb: str = scope["method"]
        path: str = scope["path"]
        target = self._exact.get((verb, path))
        params = NO_PARAMS
        if target is None:
            target, params, allow = self._router.match(verb, path, scope.get("raw_path"))
            if target is None:
                await _no_route(scope, send, verb, path, allow)
                return

        rid_b, timeout_b, caller_b, traced = context.scan_incoming(scope["headers"], _KEYS)
        rid = rid_b.decode("latin-1") if rid_b else None
        ctx, bad = context.incoming(
            self._service,
            target.name,
            "http",
            rid,
            timeout_b,
            caller_b.decode("latin-1") if caller_b else None,
        )
        if rid_b is None or ctx.request_id is not rid:
            rid_b = ctx.request_id.encode()
        deadline = ctx.deadline
        token = context.set_current(ctx)
        # Built at most once: for the trace context here, or later by a route's decoder.
        headers = _headers(scope) if traced else None
        trace_token = propagation.extract_and_attach(headers) if headers is not None else None
        try:
            call = self._observer.start(ctx)
            if target.streams_in or target.streams_out:
                stream = _Stream(asyncio.current_task())
                try:
                    err = await _serve_stream(
                        target, scope, receive, send, rid_b, deadline, params, bad, stream, headers
                    )
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
                return
            try:
                if bad is not None:
                    raise bad
                body = await _read_body(receive)
                request = _decode(target, body, scope, params, headers)
                if deadline is None:
                    response = await target.endpoint(request)
                else:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        response = await target.endpoint(request)
                out = target.codec.encode_response(response)
            except _ClientGone:
                call.finish(errors.Cancelled("the client disconnected"))
                return
            except (Exception, asyncio.CancelledError) as exc:
                failure = _stopping(exc)
                try:
                    await _send_error(send, failure, target, rid_b)
                finally:
                    call.finish(failure)
                return
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": target.status,
                        "headers": [
                            _CT_JSON,
                            (b"content-length", b"%d" % len(out)),
                            (_RID, rid_b),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": out})
            except BaseException as exc:  # the answer did not go out (cancelled, connection lost)
                call.finish(exc)
                raise
            call.finish(None)
        finally:
            propagation.detach(trace_token)
            context.reset(token)


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names (repeated ones joined by ', ')."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _decode(
    target: Target,
    body: bytes,
    scope: Scope,
    params: Mapping[str, str],
    headers: dict[str, str] | None,
) -> Any:
    """The endpoint's request: the route's decoder on the whole request, else the codec.

    `headers` are the request's headers if already built (for the trace context).
    """
    if target.decode is None:
        return target.codec.decode_request(body)
    query = scope.get("query_string") or b""
    inp = HttpInput(
        body=body,
        query=dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {},
        path_params=params,
        headers=_headers(scope) if headers is None else headers,
    )
    try:
        return target.decode(inp)
    except errors.Error:
        raise
    except orjson.JSONDecodeError as e:
        raise errors.InvalidArgument(f"malformed JSON: {e}") from None
    except KeyError as e:
        raise errors.InvalidArgument(f"invalid request: {e.args[0]!s} is missing") from None
    except (ValueError, TypeError) as e:
        raise malformed(e) from None


def _stopping(exc: BaseException) -> BaseException:
    """What a cancelled request tells its client.

    uvicorn cancels requests still running when the grace period of a stop is
    over: the client gets `Unavailable` (503, or a final stream line) instead of
    a dropped connection, and the task ends normally. A CancelledError that did
    not come from cancelling this task is an ordinary internal failure.
    """
    if not isinstance(exc, asyncio.CancelledError):
        return exc
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()
        return errors.Unavailable("the server is shutting down")
    return exc


def _client_error(exc: BaseException) -> errors.Error | None:
    """The lokit error to show the client, or None for an unexpected failure (500).

    The observer gets the exception itself and maps it the same way (`as_error`).
    """
    err = errors.as_error(exc)
    return err if err is exc or not isinstance(err, errors.Internal) else None


async def _send_error(send: Send, exc: BaseException, target: Target, rid: bytes) -> None:
    """Answer with the error's status and body (an unexpected failure is a bare 500)."""
    err = _client_error(exc)
    if err is None:
        await _send_json(send, 500, INTERNAL_ERROR_BODY, rid, _INTERNAL_NAME)
        return
    reply = target.codec.encode_error(err)
    if reply is not None:
        await _send_json(send, target.status, reply, rid)
    else:
        name = (ERROR_HEADER.encode(), err.error_name.encode("latin-1"))
        await _send_json(send, err.status, error_body(err.message), rid, name)


async def _send_json(
    send: Send, status: int, body: bytes, rid: bytes, *extra: tuple[bytes, bytes]
) -> None:
    headers = [_CT_JSON, (b"content-length", b"%d" % len(body)), (_RID, rid), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _no_route(scope: Scope, send: Send, verb: str, path: str, allow: list[str]) -> None:
    rid_b: bytes | None = None
    for name, value in scope["headers"]:
        if name == _RID:
            rid_b = value
            break
    if not rid_b or len(rid_b) > context.MAX_REQUEST_ID:
        rid_b = context.new_request_id().encode()
    if not allow:
        await _send_json(
            send,
            404,
            error_body(f"no route for {path}"),
            rid_b,
            (ERROR_HEADER.encode(), errors.NotFound.error_name.encode()),
        )
        return
    allowed = ", ".join(sorted(set(allow)))
    await _send_json(
        send,
        405,
        error_body(f"method {verb} is not allowed for {path}; use {allowed}"),
        rid_b,
        (b"allow", allowed.encode()),
        (ERROR_HEADER.encode(), errors.Unimplemented.error_name.encode()),
    )


# --- streams -------------------------------------------------------------------------


async def _serve_stream(
    target: Target,
    scope: Scope,
    receive: Receive,
    send: Send,
    rid: bytes,
    deadline: float | None,
    params: Mapping[str, str],
    bad: errors.Error | None,
    stream: _Stream,
    headers: dict[str, str] | None,
) -> BaseException | None:
    """Serve a route that streams requests and/or responses; return the error to record.

    A background task owns `receive`: it feeds a streamed request body to the
    endpoint and then waits for the client to go away, cancelling this task if it
    does before the response is complete (which closes the producing generator).
    """
    watcher: asyncio.Task[None] | None = None
    items: AsyncIterator[Any] | None = None
    requests: AsyncIterator[Any] | None = None
    started = False
    try:
        if bad is not None:
            raise bad
        request: Any
        if target.streams_in:
            queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
            watcher = asyncio.create_task(_pump(receive, queue, stream))
            request = requests = _request_items(queue, target.codec.decode_request)
        else:
            body = await _read_body(receive)
            request = _decode(target, body, scope, params, headers)
            watcher = asyncio.create_task(_watch(receive, stream))
        async with asyncio.timeout(None if deadline is None else deadline - time.monotonic()):
            result = await target.endpoint(request)
            if not target.streams_out:
                out = target.codec.encode_response(result)
                stream.done = True
                await _send_json(send, target.status, out, rid)
                return None
            items = aiter(result)
            first = await anext(items, _END)
            await send(
                {
                    "type": "http.response.start",
                    "status": target.status,
                    "headers": [_CT_NDJSON, (_RID, rid)],
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
    except _ClientGone:
        return errors.Cancelled("the client disconnected")
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError) and stream.gone:
            raise
        failure = _stopping(exc)
        stream.done = True
        if not started:
            await _send_error(send, failure, target, rid)
            return failure
        err = _client_error(failure)
        final = error_line(err) if err is not None else INTERNAL_ERROR_LINE
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


async def _watch(receive: Receive, stream: _Stream) -> None:
    """Wait for `http.disconnect` (after the body was read) and cancel the handler if early."""
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.client_gone()


async def _pump(receive: Receive, queue: asyncio.Queue[bytes | None], stream: _Stream) -> None:
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
    queue: asyncio.Queue[bytes | None], decode: Callable[[bytes], Any]
) -> AsyncIterator[Any]:
    """The decoded lines of an NDJSON request body, as they arrive."""
    lines = LineSplitter()
    while True:
        chunk = await queue.get()
        if chunk is None:
            break
        for line in lines.feed(chunk):
            yield decode(line)
    last = lines.tail()
    if last is not None:
        yield decode(last)
