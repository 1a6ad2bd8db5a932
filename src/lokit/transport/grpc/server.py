"""`GrpcServer`: a ServiceDef's gRPC routes served by grpc.aio on Unix sockets and TCP.

Every route becomes a generic method handler with raw-bytes (de)serializers,
so decoding happens inside the observed region through `route.codec`. Per call
the handler builds the `RequestContext` (request id, deadline, caller), attaches
the caller's trace context, starts the observer's call, runs decode -> endpoint
-> encode under the deadline, and maps errors to a status (see `status`).

The deadline is grpc's (`time_remaining()`), tightened by the exact
`x-request-timeout-ms` lokit clients send alongside it, because grpc rounds the
wire timeout up; `lokit.context.scan_incoming` and `incoming` read the metadata
as the HTTP side reads its headers.

Where the request id is echoed: unary replies (unary and client-streaming) carry
`x-request-id` in the trailing metadata, which rides the final batch for free
(initial metadata would cost a separate batch, ~20 % of a unary call here);
streamed replies send it in the initial metadata before the first message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from lokit.context import (
    INCOMING_HEADERS,
    REQUEST_ID_HEADER,
    RequestContext,
    incoming,
    reset,
    scan_incoming,
    set_current,
)
from lokit.endpoint import Kind
from lokit.errors import Cancelled, Error
from lokit.observability.observer import Call, Observer
from lokit.observability.propagation import detach, extract_and_attach
from lokit.routes import GrpcRoute, ServiceDef
from lokit.transport import address
from lokit.transport.address import Address, AddressError
from lokit.transport.grpc.status import ERROR_TRAILER, grpc_status, server_error

_TRANSPORT = "grpc"
_KEYS = INCOMING_HEADERS  # gRPC metadata keys are str, lower-case

Handler = Callable[[Any, Any], Awaitable[Any]]


def _cancelled() -> Cancelled:
    """For the observer: the client went away, or the server stopped past its grace."""
    return Cancelled("the call was cancelled")


def _begin(
    sctx: Any, service: str, method: str, start: Callable[[RequestContext], Call]
) -> tuple[RequestContext, Any, object | None, Call, float | None, Error | None]:
    """Context, contextvar token, trace token, observer call, seconds left and bad input.

    The bad input (an invalid `x-request-timeout-ms`) is raised by the handler
    inside its observed region.
    """
    metadata = sctx.invocation_metadata()
    request_id, timeout_ms, caller, traced = scan_incoming(metadata, _KEYS)
    ctx, bad = incoming(
        service, method, _TRANSPORT, request_id, timeout_ms, caller, sctx.time_remaining()
    )
    token = set_current(ctx)
    trace_token = (
        extract_and_attach({k: v for k, v in metadata if isinstance(v, str)}) if traced else None
    )
    left = None if ctx.deadline is None else ctx.deadline - time.monotonic()
    return ctx, token, trace_token, start(ctx), left, bad


def _end(token: Any, trace_token: object | None) -> None:
    if trace_token is not None:
        detach(trace_token)
    reset(token)


async def _abort(sctx: Any, err: Error, request_id: str) -> None:
    """End the call with `err`'s status and the `lokit-error` trailer (raises AbortError)."""
    if sctx.done():
        return  # the call already ended (client gone, deadline passed in core)
    await sctx.abort(
        grpc_status(err.code),
        err.message,
        ((REQUEST_ID_HEADER, request_id), (ERROR_TRAILER, err.error_name)),
    )


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


def _single_reply(route: GrpcRoute, service: str, observer: Observer) -> Handler:
    """Unary and client-streaming: one reply, with the request id in the trailing metadata."""
    decode = route.codec.decode_request
    encode = route.codec.encode_response
    encode_error = route.codec.encode_error
    endpoint = route.method.endpoint
    method = route.method.name
    start = observer.start
    timeout = asyncio.timeout
    streams_requests = route.method.kind.streams_requests

    async def handle(request: Any, sctx: Any) -> bytes:
        ctx, token, trace_token, call, left, bad = _begin(sctx, service, method, start)
        requests = _decoded(request, decode) if streams_requests else None
        try:
            try:
                if bad is not None:
                    raise bad
                arg = decode(request) if requests is None else requests
                if left is None:
                    out: bytes = encode(await endpoint(arg))
                else:
                    async with timeout(left):
                        out = encode(await endpoint(arg))
            except asyncio.CancelledError:
                call.finish(_cancelled())
                raise
            except Exception as e:
                out = await _failed(e, call, sctx, encode_error, ctx.request_id)
            else:
                call.finish(None)
            sctx.set_trailing_metadata(((REQUEST_ID_HEADER, ctx.request_id),))
            return out
        finally:
            if requests is not None:
                await requests.aclose()
            _end(token, trace_token)

    return handle


async def _failed(
    e: Exception, call: Call, sctx: Any, encode_error: Callable[[Error], bytes | None], rid: str
) -> bytes:
    """Finish the observed call for a failed answer; the error reply's bytes, or abort.

    A codec may carry the error inside an OK reply (Go kit's addsvc); otherwise the
    call ends with the error's status and lokit's error trailer (b"" when the
    call had already ended). The observer gets `e` itself and maps it alike.
    """
    call.finish(e)
    err = server_error(e)
    blob = encode_error(err)
    if blob is None:
        await _abort(sctx, err, rid)
        return b""
    return blob


def _streaming(route: GrpcRoute, service: str, observer: Observer) -> Handler:
    """Server-streaming and bidi: the reader/writer API, so writes run under our deadline."""
    decode = route.codec.decode_request
    encode = route.codec.encode_response
    encode_error = route.codec.encode_error
    endpoint = route.method.endpoint
    method = route.method.name
    start = observer.start
    streams_requests = route.method.kind.streams_requests

    async def handle(request: Any, sctx: Any) -> None:
        ctx, token, trace_token, call, left, bad = _begin(sctx, service, method, start)
        requests = _decoded(request, decode) if streams_requests else None
        stream: Any = None
        try:
            try:
                await sctx.send_initial_metadata(((REQUEST_ID_HEADER, ctx.request_id),))
                if bad is not None:
                    raise bad
                async with asyncio.timeout(left):
                    stream = await endpoint(requests if requests is not None else decode(request))
                    write = sctx.write
                    async for item in stream:
                        await write(encode(item))
            except asyncio.CancelledError:
                call.finish(_cancelled())
                raise
            except Exception as e:
                blob = await _failed(e, call, sctx, encode_error, ctx.request_id)
                if not sctx.done():
                    await sctx.write(blob)
            else:
                call.finish(None)
        finally:
            if stream is not None:
                await _aclose(stream)
            if requests is not None:
                await requests.aclose()
            _end(token, trace_token)

    return handle


def method_handler(route: GrpcRoute, service: str, observer: Observer) -> Any:
    """The grpc RpcMethodHandler serving `route` (raw bytes in and out)."""
    kind = route.method.kind
    if kind is Kind.UNARY:
        return grpc.unary_unary_rpc_method_handler(_single_reply(route, service, observer))
    if kind is Kind.SERVER_STREAM:
        return grpc.unary_stream_rpc_method_handler(_streaming(route, service, observer))
    if kind is Kind.CLIENT_STREAM:
        return grpc.stream_unary_rpc_method_handler(_single_reply(route, service, observer))
    return grpc.stream_stream_rpc_method_handler(_streaming(route, service, observer))


def split_path(path: str) -> tuple[str, str]:
    """`/pb.Add/Sum` -> (`pb.Add`, `Sum`); anything else is refused in one sentence."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        raise ValueError(f"gRPC method path {path!r} is not of the form /package.Service/Method")
    return parts[1], parts[2]


def _precheck(addr: Address) -> int | None:
    """Refuse a live socket or busy port and replace a stale socket file, as `address.bind` does.

    grpcio would silently unlink a live server's socket file; binding here first
    (then closing) applies lokit's rules and leaves at most a stale file, which
    grpcio replaces. Returns that file's inode (None for TCP).
    """
    sock = address.bind(addr, backlog=1)
    try:
        return os.stat(addr.path).st_ino if addr.path is not None else None
    finally:
        sock.close()


class _GenericOnly:
    """Lets generated `add_*Servicer_to_server` register its handlers as generic ones only."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        return None  # the generic handler added alongside serves the same methods


class GrpcServer:
    """Serve a ServiceDef's gRPC routes, plus the standard health service."""

    def __init__(
        self, service: ServiceDef, observer: Observer, *, max_message_bytes: int = 64 << 20
    ) -> None:
        self.service = service
        self.observer = observer
        self.max_message_bytes = max_message_bytes
        self.addresses: list[Address] = []
        self._server: Any = None
        self._health: Any = None
        self._sockets: list[tuple[Address, int]] = []  # unix addresses and their inode

    def _handlers(self) -> dict[str, dict[str, Any]]:
        by_service: dict[str, dict[str, Any]] = {}
        for route in self.service.grpc:
            svc, name = split_path(route.path)
            by_service.setdefault(svc, {})[name] = method_handler(
                route, self.service.name, self.observer
            )
        return by_service

    async def start(self, addrs: list[Address]) -> list[Address]:
        """Listen on `addrs` and start serving; returns them with real ports for HOST:0."""
        if self._server is not None:
            raise RuntimeError("this GrpcServer is already started")
        parsed = [a if isinstance(a, Address) else address.parse(a) for a in addrs]
        handlers = self._handlers()
        checked: list[tuple[Address, int]] = []
        try:
            for addr in parsed:
                ino = _precheck(addr)
                if ino is not None:
                    checked.append((addr, ino))
        except AddressError:
            for addr, ino in checked:
                _remove_own_socket(addr, ino)
            raise
        limit = self.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # let lokit clients keep idle streams alive with pings
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ]
        )
        # Generic handlers only: grpc.aio keeps one pending request per *registered*
        # method and waits on all of them for every call, so registering would make
        # each call cost more the more methods a server has.
        for svc, methods in handlers.items():
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(svc, methods),))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, _GenericOnly(server))
        for name in self.service.grpc_services:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

        bound: list[Address] = []
        sockets: list[tuple[Address, int]] = []
        try:
            for addr in parsed:
                bound.append(self._add_port(server, addr))
                if addr.path is not None:
                    os.chmod(addr.path, 0o660)
                    sockets.append((addr, os.stat(addr.path).st_ino))
        except AddressError:
            await server.start()  # the only way to have grpcio release the ports it took
            await server.stop(None)
            for addr, ino in sockets:
                _remove_own_socket(addr, ino)
            raise
        await server.start()
        self._server = server
        self._sockets = sockets
        self.addresses = bound
        return bound

    @staticmethod
    def _add_port(server: Any, addr: Address) -> Address:
        try:
            port = server.add_insecure_port(addr.grpc_target())
        except RuntimeError:
            port = 0
        if addr.path is not None:
            if port == 0:
                raise AddressError(f"cannot listen on {addr}: grpc could not bind the socket")
            return addr
        if port == 0:
            raise AddressError(f"cannot listen on {addr}: the port is already in use")
        host = addr.host or "0.0.0.0"
        raw = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return Address(raw=raw, host=host, port=port)

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, stop accepting, let in-flight calls finish within `grace`."""
        server, self._server = self._server, None
        if server is None:
            return
        await self._health.enter_graceful_shutdown()
        await server.stop(grace)
        for addr, ino in self._sockets:
            _remove_own_socket(addr, ino)
        self._sockets = []


def _remove_own_socket(addr: Address, ino: int) -> None:
    """Remove the socket file at `addr` if it is still the one this server created."""
    assert addr.path is not None
    with contextlib.suppress(OSError):
        if os.lstat(addr.path).st_ino == ino:
            address.remove_socket_file(addr)
