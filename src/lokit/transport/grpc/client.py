"""`GrpcClient`: call a lokit (or any gRPC) server and get lokit values and exceptions back.

One grpc.aio channel per client, created lazily inside the running loop. Every
call sends the request id, the caller identity, the W3C trace context and a
timeout no later than the current request's deadline (as the gRPC timeout and,
exactly, as `x-request-timeout-ms`). Calls fail fast (no
wait_for_ready): a dependency that is down raises `Unavailable` at once, with a
sentence naming its address. `endpoints(routes)` turns the client back into
Go-kit endpoints so the same middlewares wrap both sides.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc

from lokit.codec import Codec
from lokit.context import CALLER_HEADER, REQUEST_ID_HEADER, TIMEOUT_HEADER, outgoing
from lokit.endpoint import Endpoint, Kind
from lokit.errors import DeadlineExceeded
from lokit.observability.propagation import inject
from lokit.routes import GrpcRoute
from lokit.transport import address
from lokit.transport.address import Address
from lokit.transport.grpc.status import client_error

_CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # A restarted local dependency should be reachable again within a second,
    # not after grpc's default backoff of up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


def grpc_target(addr: Address) -> str:
    """The target grpcio understands: `unix:///abs/path`, `host:port` or `[v6]:port`."""
    if addr.path is not None:
        return addr.grpc_target()
    host = addr.host or "127.0.0.1"
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{addr.port}"


class _Requests:
    """Encodes a request stream for grpc and keeps the exception the caller's iterator raised.

    grpc.aio swallows such an exception and cancels the call; the client re-raises
    it instead of a puzzling CANCELLED.
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None

    async def encode(self, requests: AsyncIterable[Any], codec: Codec) -> AsyncIterator[bytes]:
        encode = codec.encode_request
        try:
            async for request in requests:
                yield encode(request)
        except Exception as e:
            self.error = e
            raise


class GrpcClient:
    """A client for one gRPC server address (`unix:PATH` or `HOST:PORT`).

    `timeout` is the default per-call timeout in seconds; `name` names the remote
    service in error messages (`service stringsvc at unix:... is unavailable`).
    """

    def __init__(
        self, addr: str | Address, *, timeout: float | None = None, name: str = ""
    ) -> None:
        self.address = addr if isinstance(addr, Address) else address.parse(addr)
        self.name = name
        self.timeout = timeout
        self._label = str(self.address)
        self._target = grpc_target(self.address)
        self._channel: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unary: dict[str, Any] = {}
        self._server_stream: dict[str, Any] = {}
        self._client_stream: dict[str, Any] = {}
        self._bidi: dict[str, Any] = {}

    def _chan(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._channel is None:
            self._loop = loop
            self._channel = grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
        elif loop is not self._loop:
            raise RuntimeError(
                f"GrpcClient for {self._label} was first used on another event loop; "
                "use one client per loop"
            )
        return self._channel

    def _callable(self, cache: dict[str, Any], kind: str, path: str) -> Any:
        """The cached multicallable for `path` (raw bytes in and out)."""
        channel = self._chan()
        mc = cache.get(path)
        if mc is None:
            mc = cache[path] = getattr(channel, kind)(path, _registered_method=True)
        return mc

    def _outgoing(self, timeout: float | None, path: str) -> tuple[tuple[Any, ...], float | None]:
        """Metadata and timeout for one call (deadline, request id, caller, trace context)."""
        default = self.timeout
        if default is not None:
            timeout = default if timeout is None else min(timeout, default)
        request_id, timeout, identity = outgoing(timeout)
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded(
                f"call to {path} at {self._label} not started: the deadline has passed"
            )
        carrier = {REQUEST_ID_HEADER: request_id}
        if identity:
            carrier[CALLER_HEADER] = identity
        if timeout is not None:
            # exact; grpc's own timeout header is rounded up on the wire
            carrier[TIMEOUT_HEADER] = str(int(timeout * 1000))
        inject(carrier)
        return tuple(carrier.items()), timeout

    async def unary(
        self,
        path: str,
        request: Any,
        codec: Codec,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- sent to the server as the gRPC deadline
    ) -> Any:
        """One request, one response."""
        metadata, timeout = self._outgoing(timeout, path)
        mc = self._callable(self._unary, "unary_unary", path)
        try:
            data = await mc(codec.encode_request(request), timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as e:
            raise client_error(e, self._label, path, self.name) from None
        return codec.decode_response(data)

    def server_stream(
        self, path: str, request: Any, codec: Codec, *, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """One request, a stream of responses (the call starts on the first iteration)."""
        metadata, timeout = self._outgoing(timeout, path)
        data = codec.encode_request(request)
        return self._responses("unary_stream", path, data, None, codec, metadata, timeout)

    async def client_stream(
        self,
        path: str,
        requests: AsyncIterable[Any],
        codec: Codec,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- sent to the server as the gRPC deadline
    ) -> Any:
        """A stream of requests, one response."""
        metadata, timeout = self._outgoing(timeout, path)
        mc = self._callable(self._client_stream, "stream_unary", path)
        sent = _Requests()
        try:
            data = await mc(sent.encode(requests, codec), timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as e:
            if sent.error is not None:
                raise sent.error from None
            raise client_error(e, self._label, path, self.name) from None
        except asyncio.CancelledError:
            if sent.error is not None:
                raise sent.error from None
            raise
        return codec.decode_response(data)

    def bidi(
        self,
        path: str,
        requests: AsyncIterable[Any],
        codec: Codec,
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[Any]:
        """Streams both ways (the call starts on the first iteration)."""
        metadata, timeout = self._outgoing(timeout, path)
        return self._responses("stream_stream", path, None, requests, codec, metadata, timeout)

    async def _responses(
        self,
        kind: str,
        path: str,
        data: bytes | None,
        requests: AsyncIterable[Any] | None,
        codec: Codec,
        metadata: tuple[Any, ...],
        seconds: float | None,
    ) -> AsyncIterator[Any]:
        cache = self._server_stream if requests is None else self._bidi
        mc = self._callable(cache, kind, path)
        sent = _Requests()
        if requests is None:
            call = mc(data, timeout=seconds, metadata=metadata)
        else:
            call = mc(sent.encode(requests, codec), timeout=seconds, metadata=metadata)
        decode = codec.decode_response
        try:
            async for item in call:
                yield decode(item)
        except grpc.aio.AioRpcError as e:
            if sent.error is not None:
                raise sent.error from None
            raise client_error(e, self._label, path, self.name) from None
        except asyncio.CancelledError:
            if sent.error is not None:
                raise sent.error from None
            raise
        finally:
            call.cancel()  # no-op once the call has ended; stops it when the caller stops early

    async def close(self) -> None:
        """Close the channel (pending calls are cancelled)."""
        channel, self._channel = self._channel, None
        self._unary.clear()
        self._server_stream.clear()
        self._client_stream.clear()
        self._bidi.clear()
        if channel is not None:
            await channel.close()

    def endpoints(self, routes: list[GrpcRoute]) -> dict[str, Endpoint]:
        """One client endpoint per route, keyed by `route.method.name`."""
        return {route.method.name: self._endpoint(route) for route in routes}

    def _endpoint(self, route: GrpcRoute) -> Endpoint:
        path, codec, kind = route.path, route.codec, route.method.kind
        if kind is Kind.UNARY:

            async def unary(request: Any) -> Any:
                return await self.unary(path, request, codec)

            return unary
        if kind is Kind.SERVER_STREAM:

            async def server_stream(request: Any) -> AsyncIterator[Any]:
                return self.server_stream(path, request, codec)

            return server_stream
        if kind is Kind.CLIENT_STREAM:

            async def client_stream(requests: AsyncIterable[Any]) -> Any:
                return await self.client_stream(path, requests, codec)

            return client_stream

        async def bidi(requests: AsyncIterable[Any]) -> AsyncIterator[Any]:
            return self.bidi(path, requests, codec)

        return bidi
