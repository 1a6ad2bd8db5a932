"""Serving one gRPC call: the method handlers behind `GrpcServer`.

Every route becomes a generic method handler with raw-bytes (de)serializers,
so decoding happens inside the observed region through `route.codec`. A route
is prepared once (`_Route`); per call its handler reads the metadata into a
`_Request`: the `RequestContext` (request id, deadline, caller), made current,
with the caller's trace context attached and the observer's call started. It
then runs decode -> endpoint -> encode under the deadline (a unary endpoint's
timer armed only once it waits: `transport.deadline`), and maps errors to a
status (see `status`).

The deadline is grpc's (`time_remaining()`), tightened by the exact
`x-request-timeout-ms` lokit clients send alongside it, because grpc rounds the
wire timeout up; `lokit.context.scan_incoming` and `incoming` read the metadata
as the HTTP side reads its headers.

Who is calling (`context.Caller`): the CN of a verified client certificate, from
grpc's `auth_context()` (mTLS, on TCP and Unix sockets alike). grpc.aio gives a
handler no access to the connection's socket (`peer()` of a Unix connection is
just `unix:`), so there is no SO_PEERCRED identity on gRPC: a gRPC Unix socket
authenticates its callers only with mTLS (`--tls-unix`). `auth_context()` costs
about 2 µs per call in plaintext and 6 µs with TLS (it copies the peer's PEM);
grpc has no per-connection hook to do it once per connection, so a server
without TLS skips it (no certificate can arrive) and only names why there is
no caller: fixed when all its listeners are of one kind (Unix sockets or TCP),
else from `peer()` per call.

The metadata is read once per call: grpc.aio builds the metadata tuple to look
up the method handler (`HandlerCallDetails`) and builds it again for each
`invocation_metadata()` (~3 µs for two entries). `MethodTable`, the generic
handler `GrpcServer` registers, keeps the tuple it was given for the call's task,
and the handler takes it from there (else it asks `invocation_metadata()`).

Where the request id is echoed: unary replies (unary and client-streaming) carry
`x-request-id` in the trailing metadata, which rides the final batch for free
(initial metadata would cost a separate batch, ~20 % of a unary call here);
streamed replies send it in the initial metadata before the first message.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from lokit.codec import JsonCodec, malformed
from lokit.context import (
    INCOMING_HEADERS,
    NO_TRANSPORT_SECURITY,
    REQUEST_ID_HEADER,
    Caller,
    incoming,
    reset,
    scan_incoming,
    set_current,
)
from lokit.endpoint import Kind
from lokit.errors import Cancelled, Error
from lokit.observability.observer import Call, Observer
from lokit.observability.propagation import detach, extract_and_attach
from lokit.routes import GrpcRoute
from lokit.transport.deadline import within
from lokit.transport.failures import server_error
from lokit.transport.grpc.status import ERROR_TRAILER, grpc_status

__all__ = ["MethodTable", "method_handler", "peer_identity", "plaintext_identity"]

_TRANSPORT = "grpc"
_KEYS = INCOMING_HEADERS  # gRPC metadata keys are str, lower-case
_NO_CLIENT_CERT = "no client certificate was presented"
_NO_COMMON_NAME = "the client certificate has no common name (CN) to go by"
_UNIX_PLAINTEXT = (
    "a plaintext gRPC Unix socket gives no caller identity (use mTLS: --tls-unix with "
    "--tls-client-ca)"
)
_SSL = [b"ssl"]
# Caller per certificate CN (verified certificates: as many as a CA issued); bounded anyway.
_CALLERS: dict[bytes, Caller] = {}
_MAX_CALLERS = 4096


# The metadata grpc.aio handed `MethodTable.service` for the call its task is serving.
_CALL_METADATA: contextvars.ContextVar[tuple[object, Any] | None] = contextvars.ContextVar(
    "lokit_grpc_call_metadata", default=None
)
_current_task = asyncio.current_task


class MethodTable:
    """A grpc generic RPC handler: method handlers by full path (`/pkg.Service/Method`)
    that keeps each call's metadata.

    grpc.aio looks the handler up and runs it in the same task, so the metadata
    tuple it passes here is stored (with that task) for the handler to read
    instead of building it a second time.
    """

    __slots__ = ("_by_path",)

    def __init__(self, by_path: Mapping[str, Any]) -> None:
        self._by_path = dict(by_path)

    def service(self, handler_call_details: Any) -> Any:
        """The handler for the call's method (None: not ours); keeps the call's metadata."""
        handler = self._by_path.get(handler_call_details.method)
        if handler is not None:
            metadata = handler_call_details.invocation_metadata
            if metadata is not None:
                _CALL_METADATA.set((_current_task(), metadata))
        return handler


def _call_metadata(sctx: Any) -> Any:
    """This call's metadata: the tuple `MethodTable` kept for this task, else grpc's."""
    kept = _CALL_METADATA.get()
    if kept is not None and kept[0] is _current_task():
        # Let go of it: the task's own context holding the task would be a cycle.
        _CALL_METADATA.set(None)
        return kept[1]
    return sctx.invocation_metadata()


def peer_identity(sctx: Any) -> tuple[Caller | None, str]:
    """The call's authenticated caller (a client certificate's CN), or None and why not."""
    auth = sctx.auth_context()
    names = auth.get("x509_common_name")
    if names and names[0]:  # grpc gives [b""] for a certificate without one
        raw = names[0]
        caller = _CALLERS.get(raw)
        if caller is None:
            if len(_CALLERS) >= _MAX_CALLERS:
                _CALLERS.clear()
            caller = _CALLERS[raw] = Caller(raw.decode("utf-8", "replace"), "cert")
        return caller, ""
    if auth.get("transport_security_type") == _SSL:
        return None, _NO_COMMON_NAME if "x509_subject" in auth else _NO_CLIENT_CERT
    return plaintext_identity(sctx)


def plaintext_identity(sctx: Any) -> tuple[Caller | None, str]:
    """No caller, and why not, on a server without TLS (no certificate can arrive)."""
    if sctx.peer().startswith("unix:"):
        return None, _UNIX_PLAINTEXT
    return None, NO_TRANSPORT_SECURITY


def method_handler(
    route: GrpcRoute,
    service: str,
    observer: Observer,
    secure: bool = True,
    unix: bool | None = None,
) -> Any:
    """The grpc RpcMethodHandler serving `route` (raw bytes in and out).

    `secure`: some listener of the server uses TLS, so a call may carry a certificate.
    `unix`: without TLS, whether every listener is a Unix socket (True) or none is
    (False), which fixes why a call has no caller; None (mixed) reads `peer()`.
    """
    kind = route.method.kind
    prepared = _Route(route, service, observer, secure, unix)
    if kind is Kind.UNARY:
        return grpc.unary_unary_rpc_method_handler(prepared.single_reply)
    if kind is Kind.SERVER_STREAM:
        return grpc.unary_stream_rpc_method_handler(prepared.streaming)
    if kind is Kind.CLIENT_STREAM:
        return grpc.stream_unary_rpc_method_handler(prepared.single_reply)
    return grpc.stream_stream_rpc_method_handler(prepared.streaming)


def _guarded(codec: Any) -> Callable[[bytes], Any]:
    """The codec's request decoder; a codec of someone else's that lets invalid UTF-8 or
    too deep nesting escape as UnicodeError / RecursionError gets INVALID_ARGUMENT too
    (the derived `JsonCodec` maps them itself and is used as is)."""
    decode: Callable[[bytes], Any] = codec.decode_request
    if isinstance(codec, JsonCodec):
        return decode

    def guarded(data: bytes) -> Any:
        try:
            return decode(data)
        except (UnicodeError, RecursionError) as e:
            raise malformed(e) from None

    return guarded


def _cancelled() -> Cancelled:
    """For the observer: the client went away, or the server stopped past its grace."""
    return Cancelled("the call was cancelled")


class _Route:
    """One gRPC route prepared for serving (once): what both handler kinds read per call."""

    __slots__ = (
        "decode",
        "encode",
        "encode_error",
        "endpoint",
        "identify",
        "method",
        "nobody",
        "service",
        "start",
        "streams_requests",
    )

    def __init__(
        self,
        route: GrpcRoute,
        service: str,
        observer: Observer,
        secure: bool = True,
        unix: bool | None = None,
    ) -> None:
        # Who is calling: read per call (TLS, or plaintext on mixed listeners), else fixed.
        self.identify: Callable[[Any], tuple[Caller | None, str]] | None = None
        if secure:
            self.identify = peer_identity
        elif unix is None:
            self.identify = plaintext_identity
        self.nobody = _UNIX_PLAINTEXT if unix else NO_TRANSPORT_SECURITY
        self.decode = _guarded(route.codec)
        self.encode = route.codec.encode_response
        self.encode_error = route.codec.encode_error
        self.endpoint = route.method.endpoint
        self.method = route.method.name
        self.service = service
        self.start = observer.start
        self.streams_requests = route.method.kind.streams_requests

    async def single_reply(self, request: Any, sctx: Any) -> bytes:
        """Unary and client-streaming: one reply, the request id in the trailing metadata."""
        req = _Request(sctx, self)
        ctx = req.ctx
        call = req.call
        requests = _decoded(request, self.decode) if self.streams_requests else None
        try:
            try:
                if req.bad is not None:
                    raise req.bad
                arg = self.decode(request) if requests is None else requests
                deadline = ctx.deadline
                if deadline is None:
                    out: bytes = self.encode(await self.endpoint(arg))
                else:  # a timer only if the endpoint waits
                    out = self.encode(await within(self.endpoint, arg, deadline))
            except asyncio.CancelledError:
                call.finish(_cancelled())
                raise
            except Exception as e:
                out = await _failed(e, call, sctx, self.encode_error, ctx.request_id)
            else:
                call.finish(None)
            sctx.set_trailing_metadata(((REQUEST_ID_HEADER, ctx.request_id),))
            return out
        finally:
            if requests is not None:
                await requests.aclose()
            req.end()

    async def streaming(self, request: Any, sctx: Any) -> None:
        """Server-streaming and bidi: the reader/writer API, so writes run under our deadline."""
        req = _Request(sctx, self)
        ctx = req.ctx
        call = req.call
        requests = _decoded(request, self.decode) if self.streams_requests else None
        stream: Any = None
        try:
            try:
                await sctx.send_initial_metadata(((REQUEST_ID_HEADER, ctx.request_id),))
                if req.bad is not None:
                    raise req.bad
                async with asyncio.timeout(req.left):
                    stream = await self.endpoint(
                        requests if requests is not None else self.decode(request)
                    )
                    write = sctx.write
                    encode = self.encode
                    async for item in stream:
                        await write(encode(item))
            except asyncio.CancelledError:
                call.finish(_cancelled())
                raise
            except Exception as e:
                blob = await _failed(e, call, sctx, self.encode_error, ctx.request_id)
                if not sctx.done():
                    await sctx.write(blob)
            else:
                call.finish(None)
        finally:
            if stream is not None:
                await _aclose(stream)
            if requests is not None:
                await requests.aclose()
            req.end()


class _Request:
    """One call being served, from its metadata: made current on creation, undone by `end`.

    Holds the call's context, the contextvar and trace tokens to undo, the
    observer's call, the seconds left and the bad input (an invalid
    `x-request-timeout-ms`), which the handler raises inside its observed region.
    """

    __slots__ = ("bad", "call", "ctx", "left", "token", "trace_token")

    def __init__(self, sctx: Any, route: _Route) -> None:
        metadata = _call_metadata(sctx)
        request_id, timeout_ms, hint, traced = scan_incoming(metadata, _KEYS)
        identify = route.identify
        caller, anonymous = (None, route.nobody) if identify is None else identify(sctx)
        ctx, self.bad = incoming(
            route.service,
            route.method,
            _TRANSPORT,
            request_id,
            timeout_ms,
            hint,
            sctx.time_remaining(),
            caller,
            anonymous,
        )
        self.ctx = ctx
        self.token = set_current(ctx)
        self.trace_token = (
            extract_and_attach({k: v for k, v in metadata if isinstance(v, str)})
            if traced
            else None
        )
        self.left = None if ctx.deadline is None else ctx.deadline - time.monotonic()
        self.call = route.start(ctx)

    def end(self) -> None:
        if self.trace_token is not None:
            detach(self.trace_token)
        reset(self.token)


async def _abort(sctx: Any, err: Error, request_id: str) -> None:
    """End the call with `err`'s status and the `lokit-error` trailer (raises AbortError)."""
    if sctx.done():
        return  # the call already ended (client gone, deadline passed in core)
    trailers: tuple[tuple[str, str], ...] = (
        (REQUEST_ID_HEADER, request_id),
        (ERROR_TRAILER, err.error_name),
    )
    if err.retry_after is not None:
        trailers += (("retry-after", str(max(1, math.ceil(err.retry_after)))),)
    await sctx.abort(grpc_status(err.code), err.message, trailers)


async def _decoded(
    raw: AsyncIterator[bytes], decode: Callable[[bytes], Any]
) -> AsyncGenerator[Any, None]:
    async for data in raw:
        yield decode(data)


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


async def _failed(
    e: Exception, call: Call, sctx: Any, encode_error: Callable[[Error], bytes | None], rid: str
) -> bytes:
    """Finish the observed call for a failed answer; the error reply's bytes, or abort.

    A codec may carry the error inside an OK reply (Go kit's addsvc); otherwise the
    call ends with the error's status and lokit's error trailer (b"" when the
    call had already ended). The observer gets `e` itself and maps it alike.
    """
    call.finish(e)
    err = server_error(e, rid)
    blob = encode_error(err)
    if blob is None:
        await _abort(sctx, err, rid)
        return b""
    return blob
