"""`GrpcClient`: call a lokit (or any gRPC) server and get lokit values and exceptions back.

One grpc.aio channel per client, created lazily inside the running loop. Every
call sends the request id, the caller identity, the W3C trace context and a
timeout no later than the current request's deadline (as the gRPC timeout and,
exactly, as `x-request-timeout-ms`); with tracing on, each call is a CLIENT span
the server's span is parented on.

What a call costs lokit is kept to what it carries: a call without a timeout
(none per call, no client default, no current deadline) sets no gRPC deadline
(a deadline is a grpc-core timer on both sides) and sends only `x-request-id`;
with tracing off and no trace context attached there is no propagation work;
the metadata is a tuple built directly (`context.outgoing_metadata`) and handed
to grpc.aio as a `Metadata` it only iterates (`CallMetadata`). Calls fail fast (no
wait_for_ready): a dependency that is down raises `Unavailable` at once, with a
sentence naming its address. `endpoints(routes)` turns the client back into
Go-kit endpoints so the same middlewares wrap both sides.

With `tls` (a `ClientTLS`) the channel is a TLS one (mTLS with a client
certificate) for TCP addresses, and for Unix sockets with `tls.unix`. A server
whose certificate does not verify, or that refuses ours, is `Unavailable`:
`TLS handshake with HOST:PORT failed: REASON`; a Unix socket whose file
permissions refuse this user is `PermissionDenied`: `permission denied
connecting to unix:PATH`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Iterator
from typing import Any

import grpc
from opentelemetry.trace import Span

from lokit.codec import Codec
from lokit.context import outgoing_metadata
from lokit.endpoint import Endpoint, Kind
from lokit.errors import Error, PermissionDenied, Unavailable
from lokit.observability import tracing
from lokit.observability.propagation import with_trace
from lokit.observability.tracing import client_span, end_span, start_client_span
from lokit.routes import GrpcRoute
from lokit.security.tls import ClientTLS
from lokit.transport import address
from lokit.transport.address import Address
from lokit.transport.grpc.ended import Ended
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

_trace = tracing.STATE  # `_trace.tracer is None`: tracing is off


class CallMetadata(grpc.aio.Metadata):  # type: ignore[misc]  # grpc has no type stubs
    """One call's metadata for grpc.aio, wrapping a tuple of pairs without copying it.

    Given a tuple, grpc.aio builds a `Metadata` (an OrderedDict of lists) and turns
    it back into a tuple on every call (~2 µs here); a `Metadata` it is given is only
    iterated. The mapping the rest of the `Metadata` API works on (an interceptor
    reading or changing it) is built on first use, and from then on is the truth.
    """

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self._pairs = pairs

    @property
    def _metadata(self) -> OrderedDict[str, list[str | bytes]]:
        built: OrderedDict[str, list[str | bytes]] | None = self.__dict__.get("_built")
        if built is None:
            built = OrderedDict()
            for key, value in self._pairs:
                built.setdefault(key, []).append(value)
            self.__dict__["_built"] = built
        return built

    def __len__(self) -> int:
        if "_built" in self.__dict__:
            return int(super().__len__())
        return len(self._pairs)

    def __iter__(self) -> Iterator[tuple[str, str | bytes]]:
        if "_built" in self.__dict__:
            return iter(list(super().__iter__()))
        return iter(self._pairs)


class _Requests:
    """Encodes a request stream for grpc; keeps the exception the caller's iterator
    raised and the status the call first ended with (`ended`).

    grpc.aio swallows such an exception and cancels the call; the client re-raises
    it instead of a puzzling CANCELLED.
    """

    __slots__ = ("ended", "error")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.ended = Ended()

    async def encode(self, requests: AsyncIterable[Any], codec: Codec) -> AsyncIterator[bytes]:
        encode = codec.encode_request
        try:
            async for request in requests:
                yield encode(request)
        except Exception as e:
            self.error = e
            raise


def handshake_failure(details: str) -> str | None:
    """The reason in grpc's text for a failed TLS handshake, or None for another failure.

    `...: Ssl handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL
    routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: self signed certificate in
    certificate chain` -> `certificate verify failed: self signed certificate in certificate
    chain`.
    """
    low = details.lower()
    if "hostname verification check failed" in low:
        return "the server's certificate is not for this host name or address (its SANs)"
    if "handshake" not in low and "ssl" not in low and "tls" not in low:
        return None
    if "openssl_internal:" in low:
        tail = details[low.rindex("openssl_internal:") + len("openssl_internal:") :]
        words = [w.strip() for w in tail.split(":") if w.strip()]
        if words:
            head = words[0].replace("_", " ").lower()
            if head.startswith("sslv3 alert ") or head.startswith("tlsv1 alert "):
                head = "the server refused it: " + head.split(" alert ", 1)[1]
            while len(words) > 1 and words[-1] == "OK":  # grpc appends its status
                words.pop()
            return ": ".join([head, *words[1:]])
    if "handshake" in low:
        return details.rsplit(": ", 1)[-1].strip().rstrip(".") or "handshake failed"
    return None


async def _in_span(path: str, call: Coroutine[Any, Any, Any]) -> Any:
    """Await a single-reply call inside its CLIENT span (tracing on)."""
    with client_span(path):
        return await call


class GrpcClient:
    """A client for one gRPC server address (`unix:PATH` or `HOST:PORT`).

    `timeout` is the default per-call timeout in seconds; `name` names the remote
    service in error messages (`service stringsvc at unix:... is unavailable`).
    """

    def __init__(
        self,
        addr: str | Address,
        *,
        timeout: float | None = None,
        name: str = "",
        tls: ClientTLS | None = None,
    ) -> None:
        self.address = addr if isinstance(addr, Address) else address.parse(addr)
        self.name = name
        self.tls = tls if tls is not None and tls.applies_to(self.address.is_unix) else None
        self.timeout = timeout
        self._label = str(self.address)
        self._target = self.address.dialable().grpc_target()
        self._channel: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callables: dict[str, tuple[str, Any]] = {}  # path -> (kind, multicallable)

    def _chan(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._channel is None:
            self._loop = loop
            if self.tls is None:
                self._channel = grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
            else:
                options: list[tuple[str, int | str]] = list(_CHANNEL_OPTIONS)
                if self.address.is_unix:  # grpc would check the socket's path as the host
                    options = [*options, ("grpc.ssl_target_name_override", "localhost")]
                self._channel = grpc.aio.secure_channel(
                    self._target, self.tls.grpc_credentials(), options=options
                )
        elif loop is not self._loop:
            raise RuntimeError(
                f"GrpcClient for {self._label} was first used on another event loop; "
                "use one client per loop"
            )
        return self._channel

    def _callable(self, kind: str, path: str) -> Any:
        """The cached multicallable of `kind` for `path` (raw bytes in and out)."""
        channel = self._chan()
        hit = self._callables.get(path)
        if hit is not None and hit[0] == kind:
            return hit[1]
        mc = getattr(channel, kind)(path, _registered_method=True)
        self._callables[path] = (kind, mc)
        return mc

    def _outgoing(
        self, timeout: float | None, path: str, stream: bool = False
    ) -> tuple[CallMetadata, float | None, Span | None]:
        """Metadata, timeout and (for a traced stream) the client span of one call.

        The exact milliseconds ride along because grpc rounds its own timeout
        header up on the wire.
        """
        metadata, seconds = outgoing_metadata(timeout, self.timeout, path, self._label)
        span = start_client_span(path) if stream and _trace.tracer is not None else None
        return CallMetadata(with_trace(metadata, span)), seconds, span

    def _failure(self, exc: BaseException, sent: _Requests, path: str) -> BaseException:
        """What a failed streaming call raises (`exc` is an AioRpcError or a CancelledError).

        The exception the caller's request stream raised, if any (grpc reports it
        as a cancellation); else the lokit error for the server's status (not grpc's
        placeholder for a write it refused, `ended`); else `exc`.
        """
        if sent.error is not None:
            return sent.error
        if isinstance(exc, grpc.aio.AioRpcError):
            return self._rpc_error(sent.ended.settle(exc), path)
        return exc

    def _rpc_error(self, exc: Any, path: str) -> Error:
        """The lokit error for a failed call: a failed handshake or a refused socket file in
        one sentence of their own, anything else as `status.client_error` says."""
        if exc.code() == grpc.StatusCode.UNAVAILABLE and not exc.trailing_metadata():
            details = exc.details() or ""
            reason = handshake_failure(details)
            if reason is None and self.tls is not None and "socket closed" in details.lower():
                reason = self.tls.refused_reason()
            if reason is not None:
                return Unavailable(f"TLS handshake with {self._label} failed: {reason}")
            if self.address.is_unix and "permission denied" in details.lower():
                return PermissionDenied(f"permission denied connecting to {self._label}")
        return client_error(exc, self._label, path, self.name)

    async def unary(
        self,
        path: str,
        request: Any,
        codec: Codec,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- sent to the server as the gRPC deadline
    ) -> Any:
        """One request, one response."""
        call = self._unary(path, request, codec, timeout)
        return await (call if _trace.tracer is None else _in_span(path, call))

    async def _unary(self, path: str, request: Any, codec: Codec, per_call: float | None) -> Any:
        metadata, seconds, _ = self._outgoing(per_call, path)
        mc = self._callable("unary_unary", path)
        try:
            data = await mc(codec.encode_request(request), timeout=seconds, metadata=metadata)
        except grpc.aio.AioRpcError as e:
            raise self._rpc_error(e, path) from None
        return codec.decode_response(data)

    def server_stream(
        self, path: str, request: Any, codec: Codec, *, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """One request, a stream of responses (the call starts on the first iteration)."""
        data = codec.encode_request(request)
        metadata, seconds, span = self._outgoing(timeout, path, stream=True)
        return self._responses("unary_stream", path, data, None, codec, metadata, seconds, span)

    async def client_stream(
        self,
        path: str,
        requests: AsyncIterable[Any],
        codec: Codec,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- sent to the server as the gRPC deadline
    ) -> Any:
        """A stream of requests, one response."""
        call = self._client_stream(path, requests, codec, timeout)
        return await (call if _trace.tracer is None else _in_span(path, call))

    async def _client_stream(
        self, path: str, requests: AsyncIterable[Any], codec: Codec, per_call: float | None
    ) -> Any:
        metadata, seconds, _ = self._outgoing(per_call, path)
        mc = self._callable("stream_unary", path)
        sent = _Requests()
        call = mc(sent.encode(requests, codec), timeout=seconds, metadata=metadata)
        sent.ended.watch(call)
        try:
            data = await call
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
            raise self._failure(e, sent, path) from None
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
        metadata, seconds, span = self._outgoing(timeout, path, stream=True)
        return self._responses(
            "stream_stream", path, None, requests, codec, metadata, seconds, span
        )

    async def _responses(
        self,
        kind: str,
        path: str,
        data: bytes | None,
        requests: AsyncIterable[Any] | None,
        codec: Codec,
        metadata: CallMetadata,
        seconds: float | None,
        span: Span | None,
    ) -> AsyncIterator[Any]:
        mc = self._callable(kind, path)
        sent = _Requests()
        if requests is None:
            call = mc(data, timeout=seconds, metadata=metadata)
        else:
            call = mc(sent.encode(requests, codec), timeout=seconds, metadata=metadata)
            sent.ended.watch(call)
        decode = codec.decode_response
        error: BaseException | None = None
        try:
            async for item in call:
                yield decode(item)
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
            error = self._failure(e, sent, path)
            raise error from None
        finally:
            call.cancel()  # no-op once the call has ended; stops it when the caller stops early
            if span is not None:
                end_span(span, error)

    async def close(self) -> None:
        """Close the channel (pending calls are cancelled)."""
        channel, self._channel = self._channel, None
        self._callables.clear()
        if channel is not None:
            await channel.close()

    def endpoints(self, routes: list[GrpcRoute]) -> dict[str, Endpoint]:
        """One client endpoint per route, keyed by `route.method.name`."""
        return {route.method.name: self._endpoint(route) for route in routes}

    def _endpoint(self, route: GrpcRoute) -> Endpoint:
        path, codec, kind = route.path, route.codec, route.method.kind
        if kind is Kind.UNARY:
            trace_state = _trace

            async def unary(request: Any) -> Any:
                if trace_state.tracer is None:  # one coroutine less per call
                    return await self._unary(path, request, codec, None)
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
