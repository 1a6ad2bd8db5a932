"""A service's unary methods called over lokit frames (`wire`), on one connection per loop.

Every call carries the request id, the caller hint, the remaining deadline
(also enforced here) and, with tracing on, a CLIENT span's trace context, as
lokit's HTTP client sends them. Calls share one connection and are answered by
id, so concurrent calls do not wait for each other. An error answer raises the
class the server raised; a socket that cannot be reached raises `Unavailable`
naming the address (`PermissionDenied` when its file permissions refuse this
user). A connection idle for longer than `KEEP_ALIVE_SECONDS` is replaced
before it is used, so the server's idle timeout never closes one under a call;
a connection that closes with calls in flight fails them with `Unavailable`
(whether the server ran them is unknown, so the retry middleware decides).
A client's connection belongs to the event loop it is used on; used on a later
one, it opens a new one there.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from typing import Any

from lokit import context, errors
from lokit.endpoint import Endpoint
from lokit.observability import propagation, tracing
from lokit.routes import HttpRoute
from lokit.transport import address
from lokit.transport.address import Address
from lokit.transport.expiry import Expiry
from lokit.transport.failures import cannot_connect
from lokit.transport.frames import wire

__all__ = ["KEEP_ALIVE_SECONDS", "FramesClient"]

# Half the server's default idle timeout (`--idle-timeout`, 60 s).
KEEP_ALIVE_SECONDS = 30.0

_trace = tracing.STATE  # `_trace.tracer is None`: tracing is off
_LENGTH = wire.LENGTH.size
# The wire's codecs, bound here for the per-call path.
_unpack_length, _pack_length = wire.LENGTH.unpack_from, wire.LENGTH.pack
_decode_answer, _encode = wire.ANSWERS.decode, wire.ENCODER.encode


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Closed(Exception):
    """The connection closed before the answer came."""


class _Connection(asyncio.Protocol):
    """One connection: requests out, answers matched to their callers by id."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self.pending: dict[int, asyncio.Future[wire.Reply]] = {}
        self.closed = False
        self.used = loop.time()
        self.expiry = Expiry(loop)  # the deadlines of calls in flight, on one timer
        self._next = 0
        self._buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(wire.PREFACE)  # type: ignore[attr-defined]

    def send(
        self,
        method: str,
        request_id: str,
        timeout_ms: int | None,
        hint: str | None,
        trace: dict[str, str] | None,
        body: bytes,
    ) -> tuple[int, asyncio.Future[wire.Reply]]:
        self._next = rid = self._next + 1
        waiter = self.pending[rid] = self.loop.create_future()
        payload = _encode((rid, method, request_id, timeout_ms, hint, trace, body))
        self.transport.write(_pack_length(len(payload)) + payload)
        return rid, waiter

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if not buf and len(data) >= _LENGTH:  # most answers: one frame, whole
            (size,) = _unpack_length(data)
            if len(data) == _LENGTH + size:
                self._answer(memoryview(data)[_LENGTH:])
                return
        buf += data
        start, end = 0, len(buf)
        while end - start >= _LENGTH:
            (size,) = _unpack_length(buf, start)
            if end - start - _LENGTH < size:
                break
            begin = start + _LENGTH
            start = begin + size
            self._answer(bytes(buf[begin:start]))
            if self.closed:
                return
        del buf[:start]

    def _answer(self, payload: bytes | memoryview) -> None:
        try:
            rid, code, body, name, retry_after = _decode_answer(payload)
        except wire.MALFORMED as e:
            self.fail(errors.Internal(f"the server sent a malformed answer frame: {e}"))
            return
        if rid == wire.CONNECTION:
            self.fail(errors.rebuild(code, body.decode("utf-8", "replace"), name))
            return
        waiter = self.pending.pop(rid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result((code, body, name, retry_after))
        if not self.pending:
            self.used = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(_Closed())

    def fail(self, exc: BaseException) -> None:
        """Fail every call in flight with `exc` and close."""
        self.closed = True
        pending, self.pending = self.pending, {}
        for waiter in pending.values():
            if not waiter.done():
                waiter.set_exception(exc)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class FramesClient:
    """Calls one lokit frames server (`unix:PATH.frames.sock`)."""

    def __init__(self, addr: str | Address, *, timeout: float | None = None) -> None:
        self._addr = addr if isinstance(addr, Address) else address.parse(addr)
        if self._addr.path is None:
            raise address.AddressError(f"lokit frames are for Unix sockets only, not {self._addr}")
        self._path = os.path.abspath(self._addr.path)
        self._timeout = timeout
        self._label = str(self._addr)
        self._conn: _Connection | None = None
        self._dialing: asyncio.Future[_Connection] | None = None

    @property
    def address(self) -> Address:
        return self._addr

    def endpoints(self, routes: list[HttpRoute]) -> dict[str, Endpoint]:
        """An endpoint per route frames carry (`wire.serves`), keyed by method name."""
        return {r.method.name: functools.partial(self.unary, r) for r in routes if wire.serves(r)}

    async def unary(
        self,
        route: HttpRoute,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (also sent on as the deadline)
        trace: dict[str, str] | None = None,
    ) -> Any:
        """Send one request for `route`'s method and return its decoded response.

        With tracing on, the call is a CLIENT span whose context travels as `trace`.
        """
        if trace is None and _trace.tracer is not None:
            return await self._traced(route, request, timeout)
        name = route.method.name
        body = route.codec.encode_request(request)
        request_id, seconds, hint = context.outgoing(timeout, self._timeout, name, self._label)
        timeout_ms = None if seconds is None else context.timeout_ms(seconds)
        conn = self._conn
        if (
            conn is None
            or conn.closed
            or not conn.loop.is_running()
            or (not conn.pending and conn.loop.time() - conn.used > KEEP_ALIVE_SECONDS)
        ):
            conn = await self._dial(seconds)
        rid, waiter = conn.send(name, request_id, timeout_ms, hint, trace, body)
        expiring = (
            None
            if seconds is None
            else conn.expiry.add(conn.loop.time() + seconds, _expire, waiter)
        )
        try:
            code, data, err, retry_after = await waiter
        except _Closed:
            raise errors.Unavailable(
                f"{self._label} is unavailable: the connection closed before {name} was answered"
            ) from None
        except TimeoutError:
            raise errors.DeadlineExceeded(
                f"{name} at {self._label} did not answer within {seconds:g}s"
            ) from None
        finally:
            conn.pending.pop(rid, None)
            if expiring is not None:
                conn.expiry.done(expiring)
        if code:
            error = errors.rebuild(code, data.decode("utf-8", "replace"), err)
            error.retry_after = retry_after
            raise error
        return route.codec.decode_response(data)

    async def _traced(self, route: HttpRoute, request: Any, timeout: float | None) -> Any:  # noqa: ASYNC109
        with tracing.client_span(f"frames {route.method.name}"):
            carrier: dict[str, str] = {}
            propagation.inject(carrier)
            return await self.unary(route, request, timeout=timeout, trace=carrier)

    async def _dial(self, seconds: float | None) -> _Connection:
        """The connection to use: a new one, or the one another call is dialing."""
        dialing = self._dialing
        if dialing is None:
            old = self._conn
            if old is not None and not old.pending:
                old.fail(_Closed())
            dialing = self._dialing = asyncio.ensure_future(self._connect())
            dialing.add_done_callback(self._dialed)
        try:
            if seconds is None:
                return await asyncio.shield(dialing)
            async with asyncio.timeout(seconds):
                return await asyncio.shield(dialing)
        except TimeoutError:
            raise errors.DeadlineExceeded(
                f"connecting to {self._label} took longer than {seconds:g}s"
            ) from None

    def _dialed(self, dialing: asyncio.Future[_Connection]) -> None:
        self._dialing = None
        if not dialing.cancelled() and dialing.exception() is None:
            self._conn = dialing.result()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, self._path)
            _, conn = await loop.create_unix_connection(lambda: _Connection(loop), sock=sock)
        except OSError as e:
            sock.close()
            raise cannot_connect(self._label, e, unix=True) from None
        except BaseException:
            sock.close()
            raise
        return conn

    async def close(self) -> None:
        """Close the connection; the client opens a new one if used again."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(_Closed())
