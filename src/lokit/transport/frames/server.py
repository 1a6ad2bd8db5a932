"""A service's unary methods served over lokit frames (`wire`) on Unix sockets.

Each request is served as the HTTP app serves it: its context from the
request id, timeout and caller hint it carries (and the Unix peer's user from
SO_PEERCRED), observed from start to answer (the request line with
`transport=frames`, RED metrics, a span when tracing is on), the endpoint run
under its deadline, its errors answered by code, name and message. A
connection carries many requests at once; each is answered as it finishes.

The listener limits (`lokit.transport.limits.Limits`) apply as on HTTP:
- `max_connections` per socket: past it a connection is closed at once;
- `header_timeout`: the client's `PREFACE` must arrive within it;
- `idle_timeout`: a connection with no request in flight for that long is
  closed (lokit's client dials again when it next calls);
- `max_body_bytes`: a larger request is answered ResourceExhausted by its id
  and skipped unread; the calls beside it on the connection go on;
- `max_streams`: the requests in flight per connection; past it the
  connection stops reading until one finishes.

A client that does not open with the preface (curl, a browser) gets a plain
HTTP/1.1 400 naming the HTTP socket beside this one, and the connection closes.

asyncio protocols rather than a library: no well-kept library serves a
length-prefixed msgpack exchange with lokit's context and observer, and the
whole protocol is this module and `wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from typing import Any

from lokit import context, errors
from lokit.endpoint import Endpoint
from lokit.observability import propagation
from lokit.observability.logs import get_logger
from lokit.observability.observer import Observer
from lokit.routes import ServiceDef
from lokit.transport import address
from lokit.transport.address import Address
from lokit.transport.deadline import within
from lokit.transport.failures import server_error, stopping
from lokit.transport.frames import wire
from lokit.transport.limits import Limits, ListenerState
from lokit.transport.peer import connection_peer

__all__ = ["FramesServer"]

_log = get_logger("lokit")
_LENGTH = wire.LENGTH.size
_PREFACE = len(wire.PREFACE)
# The wire's codecs, bound here for the per-request path.
_unpack_length, _pack_length = wire.LENGTH.unpack_from, wire.LENGTH.pack
_decode_request, _encode = wire.REQUESTS.decode, wire.ENCODER.encode


class _Target:
    """One unary method, prepared for serving."""

    __slots__ = ("codec", "endpoint")

    def __init__(self, endpoint: Endpoint, codec: Any) -> None:
        self.endpoint = endpoint
        self.codec = codec


class _Listener(ListenerState):
    """One socket's state (as HTTP's), its connections and the HTTP socket beside it."""

    __slots__ = ("connections", "http_beside")

    def __init__(self, addr: Address, limit: int, http_beside: str) -> None:
        super().__init__("frames", str(addr), limit)
        self.connections: set[_Connection] = set()
        self.http_beside = http_beside


class _Serving:
    """What every connection of one server shares."""

    __slots__ = ("limits", "max_frame", "observer", "service", "targets", "unknown")

    def __init__(self, service: ServiceDef, observer: Observer, limits: Limits) -> None:
        self.service = service.name
        self.observer = observer
        self.limits = limits
        self.max_frame = limits.max_body_bytes + wire.FRAME_OVERHEAD
        self.targets: dict[str, _Target] = {}
        self.unknown: dict[str, str] = {}  # method name -> why frames do not serve it
        for route in service.http:
            method = route.method
            if wire.serves(route):
                self.targets[method.name] = _Target(method.endpoint, route.codec)
            elif method.kind.streams_requests or method.kind.streams_responses:
                self.unknown[method.name] = (
                    f"{service.name}.{method.name} streams; call it over HTTP or gRPC"
                )
            else:
                self.unknown[method.name] = (
                    f"{service.name}.{method.name} reads its request from the HTTP path or"
                    " query; call it over HTTP or gRPC"
                )


class _Connection(asyncio.Protocol):
    """One client's connection: frames in, answers out, requests served concurrently."""

    def __init__(self, serving: _Serving, listener: _Listener, loop: Any) -> None:
        self._serving = serving
        self._listener = listener
        self._loop = loop
        self._transport: Any = None
        self._buf = bytearray()
        self._skip = 0  # bytes of a refused frame still to come
        self._greeted = False
        self._closed = False
        self._paused = False
        self.tasks: dict[int, asyncio.Task[None]] = {}  # by request id
        self._peer: tuple[Any, str] = (None, "")
        self.since = 0.0  # waiting for the preface, or idle, since (as the sweep saw it)
        self.count = 0  # requests so far (the sweep's sign of activity)
        self._seen = 0

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        listener = self._listener
        if listener.open >= listener.limit:
            listener.refused["max_connections"].inc()
            self._closed = True
            transport.close()
            return
        listener.connections.add(self)
        listener.open += 1
        listener.gauge.inc()
        self._peer = connection_peer(transport)
        self.since = self._loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed and self not in self._listener.connections:
            return  # refused at once
        self._closed = True
        if self in self._listener.connections:
            self._listener.connections.discard(self)
            self._listener.open -= 1
            self._listener.gauge.dec()
        for task in self.tasks.values():
            task.cancel()  # nobody is left to answer

    def data_received(self, data: bytes) -> None:
        if self._skip:  # the rest of a refused frame
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data, self._skip = data[self._skip :], 0
        buf = self._buf
        if not buf and self._greeted and len(data) > _LENGTH:  # most requests: one frame, whole
            (size,) = _unpack_length(data)
            if len(data) == _LENGTH + size and size <= self._serving.max_frame:
                self._request(memoryview(data)[_LENGTH:])
                return
        buf += data
        if not self._greeted:
            if len(buf) < _PREFACE:
                if not wire.PREFACE.startswith(bytes(buf)):
                    self._not_frames()
                return
            if buf[:_PREFACE] != wire.PREFACE:
                self._not_frames()
                return
            del buf[:_PREFACE]
            self._greeted = True
        start = 0
        end = len(buf)
        max_frame = self._serving.max_frame
        while end - start >= _LENGTH:
            (size,) = _unpack_length(buf, start)
            begin = start + _LENGTH
            if size > max_frame:
                if end - begin < wire.ID_BYTES:
                    break  # its id is still to come
                if not self._refuse_frame(buf, begin, size, end):
                    return
                start = min(end, begin + size)
                continue
            if end - begin < size:
                break
            start = begin + size
            if not self._request(bytes(buf[begin:start])):
                return
        del buf[:start]

    def _refuse_frame(self, buf: bytearray, begin: int, size: int, end: int) -> bool:
        """Answer a request frame over the size limit by its id and skip it, keeping the
        connection for the calls beside it; False when its id cannot be read (the
        connection then ends)."""
        rid = wire.frame_id(bytes(buf[begin : begin + wire.ID_BYTES]))
        limit = self._serving.max_frame
        if rid is None or rid == wire.CONNECTION:
            self._fail(
                errors.ResourceExhausted(
                    f"a frame of {size} bytes is over this server's limit of {limit}"
                )
            )
            return False
        self._answer_error(
            rid,
            errors.ResourceExhausted(
                f"the request of {size} bytes is over this server's limit of {limit}"
            ),
        )
        self._skip = max(0, begin + size - end)
        return True

    # --- requests ----------------------------------------------------------------------

    def _request(self, payload: bytes | memoryview) -> bool:
        try:
            rid, method, request_id, timeout_ms, hint, trace, body = _decode_request(payload)
        except wire.MALFORMED as e:
            self._fail(errors.InvalidArgument(f"malformed request frame: {e}"))
            return False
        if rid == wire.CONNECTION:
            self._fail(errors.InvalidArgument("a request frame must not use id 0"))
            return False
        if rid in self.tasks:
            self._fail(errors.InvalidArgument(f"request id {rid} is already in flight"))
            return False
        self.count += 1
        self.tasks[rid] = self._loop.create_task(
            self._serve(rid, method, request_id, timeout_ms, hint, trace, body)
        )
        if len(self.tasks) >= self._serving.limits.max_streams and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        return True

    async def _serve(
        self,
        rid: int,
        method: str,
        request_id: str,
        timeout_ms: int | None,
        hint: str | None,
        trace: Mapping[str, str] | None,
        body: bytes,
    ) -> None:
        try:
            serving = self._serving
            target = serving.targets.get(method)
            if target is None:
                why = serving.unknown.get(method) or f"{serving.service} has no method {method}"
                self._answer_error(rid, errors.Unimplemented(why))
                return
            caller, anonymous = self._peer
            ctx, bad = context.incoming(
                serving.service,
                method,
                "frames",
                request_id,
                None if timeout_ms is None else str(timeout_ms),
                hint,
                peer=caller,
                anonymous=anonymous or context.NO_TRANSPORT_SECURITY,
            )
            token = context.set_current(ctx)
            trace_token = None if trace is None else propagation.extract_and_attach(trace)
            try:
                call = serving.observer.start(ctx)
                try:
                    if bad is not None:
                        raise bad
                    request = target.codec.decode_request(body)
                    deadline = ctx.deadline
                    if deadline is None:
                        response = await target.endpoint(request)
                    else:
                        response = await within(target.endpoint, request, deadline)
                    out = target.codec.encode_response(response)
                except (Exception, asyncio.CancelledError) as exc:
                    failure = stopping(exc)
                    if not self._closed:
                        self._answer_error(rid, failure, target.codec, ctx.request_id)
                    elif isinstance(exc, asyncio.CancelledError):  # the connection closed
                        failure = errors.Cancelled("the client disconnected")
                    call.finish(failure)
                    return
                if self._closed:
                    call.finish(errors.Cancelled("the client disconnected"))
                    return
                answer = _encode((rid, 0, out, None, None))
                self._transport.write(_pack_length(len(answer)) + answer)
                call.finish(None)
            finally:
                if trace_token is not None:
                    propagation.detach(trace_token)
                context.reset(token)
        finally:
            self._finished(rid)

    def _answer_error(
        self, rid: int, exc: BaseException, codec: Any = None, request_id: str = ""
    ) -> None:
        err = server_error(exc, request_id or context.new_request_id())
        if codec is not None:
            reply = codec.encode_error(err)
            if reply is not None:  # the method answers this error in its response
                self._transport.write(wire.encode_answer(rid, 0, reply))
                return
        self._transport.write(
            wire.encode_answer(
                rid, int(err.code), err.message.encode(), err.error_name, err.retry_after
            )
        )

    def _finished(self, rid: int) -> None:
        self.tasks.pop(rid, None)
        if self._paused and len(self.tasks) < self._serving.limits.max_streams:
            self._paused = False
            if not self._closed:
                self._transport.resume_reading()

    # --- the connection ending ---------------------------------------------------------

    def _fail(self, err: errors.Error) -> None:
        """Answer `err` about the connection itself, and close it."""
        if not self._closed:
            self._transport.write(
                wire.encode_answer(
                    wire.CONNECTION, int(err.code), err.message.encode(), err.error_name
                )
            )
        self.close()

    def _not_frames(self) -> None:
        if not self._closed:
            self._transport.write(wire.not_frames(self._listener.http_beside))
        self.close()

    def close(self) -> None:
        self._closed = True
        self._buf.clear()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def overdue(self, now: float, limits: Limits) -> None:
        """Close this connection if its preface is overdue or it idled too long.

        Idle time counts from the first sweep that finds no request in flight and
        none new since the sweep before, so the per-request path keeps no clock.
        """
        if self.tasks or self.count != self._seen:  # busy
            self._seen = self.count
            self.since = now
            return
        since = self.since
        if not self._greeted:
            if now - since > limits.header_timeout:
                self._listener.refused["header_timeout"].inc()
                self.close()
        elif now - since > limits.idle_timeout:
            self.close()


class FramesServer:
    """A service's unary methods over lokit frames, on any number of Unix sockets.

    `http_beside(addr)` names the HTTP listener a non-frames client is sent to.
    """

    def __init__(
        self,
        service: ServiceDef,
        observer: Observer,
        *,
        limits: Limits | None = None,
        graceful_timeout: float = 5.0,
        socket_mode: int = address.SOCKET_MODE,
        socket_group: int | None = None,
    ) -> None:
        self._serving = _Serving(service, observer, limits or Limits())
        self._graceful_timeout = graceful_timeout
        self._socket_mode = socket_mode
        self._socket_group = socket_group
        self._servers: list[tuple[Address, asyncio.Server, _Listener]] = []
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def addresses(self) -> list[Address]:
        """The bound addresses; empty when not serving."""
        return [addr for addr, _, _ in self._servers]

    async def start(self, addrs: list[Address]) -> list[Address]:
        """Bind `addrs` (Unix sockets only), start serving, and return them."""
        if self._servers:
            raise RuntimeError("the frames server is already running")
        for addr in addrs:
            if addr.path is None:
                raise address.AddressError(
                    f"cannot serve lokit frames on {addr}: they are for Unix sockets only"
                )
        loop = asyncio.get_running_loop()
        limits = self._serving.limits
        started: list[tuple[Address, asyncio.Server, _Listener]] = []
        try:
            for addr in addrs:
                sock = address.bind(addr, mode=self._socket_mode, group=self._socket_group)
                listener = _Listener(addr, limits.connections, _http_beside(addr))
                try:
                    server = await loop.create_unix_server(
                        functools.partial(_Connection, self._serving, listener, loop), sock=sock
                    )
                except BaseException:
                    sock.close()
                    raise
                started.append((addr, server, listener))
        except BaseException:
            for addr, server, _ in started:
                server.close()
                address.remove_socket_file(addr)
            raise
        self._servers = started
        self._sweeper = loop.create_task(self._sweep(), name="lokit-frames-sweep")
        return self.addresses

    async def _sweep(self) -> None:
        limits = self._serving.limits
        tick = min(1.0, limits.header_timeout / 2, limits.idle_timeout / 2)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for _, _, listener in self._servers:
                for conn in list(listener.connections):
                    conn.overdue(now, limits)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish within the grace period, clean up."""
        servers, self._servers = self._servers, []
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if not servers:
            return
        for _, server, _ in servers:
            server.close()
        tasks = {t for _, _, lst in servers for c in lst.connections for t in c.tasks.values()}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._graceful_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        for _, _, listener in servers:
            for conn in list(listener.connections):
                conn.close()
        for addr, server, _ in servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
            address.remove_socket_file(addr)


def _http_beside(addr: Address) -> str:
    """The HTTP socket beside a frames one, by the one-box naming (else the service's)."""
    return address.beside(str(addr), "http", of="frames") or "the service's HTTP socket"
