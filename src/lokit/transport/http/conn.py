"""Lean HTTP/1.1 client connections: httptools' response parser on an asyncio.Protocol.

Why not aiohttp: on a local call it costs ~160 µs of lokit's ~230 µs
(request objects, multidicts, its connector and stream readers), while lokit
needs one thing of it — a keep-alive connection that sends bytes and parses
the answer. httptools (the parser uvicorn serves lokit with) does the parsing;
this module keeps what is left small:

- `Connection`: one socket, one request in flight. `send(data)` writes a whole
  request at once and returns a future for the complete answer (status,
  headers, body); a stream is read as it arrives instead (`start`, `head`,
  `chunk`), with reading paused while a slow consumer holds more than
  `READ_HIGH_WATER` bytes. `expire(exc)` ends the exchange with `exc` (a
  deadline) and closes the socket.
- `Pool`: the idle keep-alive connections to one address, most recent first,
  each dropped after `keep_alive` idle seconds, and checked before reuse for a
  close the loop has not seen yet (one `poll(0)`, under a µs: anything readable
  on an idle connection means the server closed it); at most `limit` open at
  once, further callers wait for one.
- `dial(addr, tls)`: a socket to a Unix path or TCP host (TCP_NODELAY), TLS with
  the client's SSLContext when given (the server checked as `localhost` on a
  Unix socket, as gRPC's clients do, else as the dialed host). Failures are
  `ConnectFailed` (the OSError) or `HandshakeFailed` (the TLS error).

What this does not do: redirects, cookies, compression, proxies, HTTP/2 —
lokit's wire has none of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import select
import socket
import ssl
from typing import Any

import httptools

from lokit.transport.address import Address
from lokit.transport.expiry import Expiry

__all__ = [
    "READ_HIGH_WATER",
    "Closed",
    "ConnectFailed",
    "Connection",
    "HandshakeFailed",
    "Pool",
    "dial",
]

# A stream's unread bytes past which the socket stops being read until they are consumed.
READ_HIGH_WATER = 256 * 1024
# A connection idle for less (seconds) is not polled before reuse: a close by the
# server would have to land in this moment, after the loop's last look at the
# socket (the same window a poll leaves before the write), so a busy client skips
# a syscall per request.
JUST_USED = 0.001


class ConnectFailed(Exception):
    """The socket could not be connected; `error` is the OSError."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class HandshakeFailed(Exception):
    """The TLS handshake failed; `error` is the ssl error, or the OSError of a closed socket."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Closed(Exception):
    """The connection ended before the answer was complete.

    `cause` is the transport's error (an ssl.SSLError, a reset), None for a
    plain close; `answered` says whether any byte of an answer had arrived,
    `sent` whether the request had been handed to the socket (a write that
    failed at once, as on a Unix socket the server closed, was not).
    """

    def __init__(
        self, detail: str, cause: BaseException | None, answered: bool, sent: bool = True
    ) -> None:
        super().__init__(detail)
        self.cause = cause
        self.answered = answered
        self.sent = sent


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection to a server, one request in flight."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_drain",
        "_error",
        "_paused_reading",
        "_paused_writing",
        "_poll",
        "_streaming",
        "_waiter",
        "answered",
        "body",
        "closed",
        "headers",
        "idle_since",
        "keep_alive",
        "loop",
        "parser",
        "pool",
        "sent",
        "status",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.pool: Pool | None = None
        self.closed = False
        self.idle_since = 0.0
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.keep_alive = False
        self.answered = False  # a byte of the current answer arrived
        self.sent = False  # the current request was handed to the socket (no write error)
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._complete = False
        self._streaming = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused_reading = False
        self._paused_writing = False
        self._drain: asyncio.Future[None] | None = None

    # --- sending -------------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[None]:
        """Write a whole request; the future is done once the whole answer is in `body`."""
        self._reset(streaming=False)
        waiter = self._waiter = self.loop.create_future()
        transport = self.transport
        transport.write(data)  # type: ignore[union-attr]
        self.sent = not transport.is_closing()  # type: ignore[union-attr]
        return waiter

    def start(self, data: bytes) -> None:
        """Write a request's head (and maybe body) and read the answer as a stream."""
        self._reset(streaming=True)
        self.transport.write(data)  # type: ignore[union-attr]
        self.sent = not self.transport.is_closing()  # type: ignore[union-attr]

    def write(self, data: bytes) -> None:
        """More of the request body (a streamed body's chunks)."""
        if self.closed:
            raise self._closed_error()
        self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait while the socket's write buffer is over its high-water mark."""
        if self._paused_writing and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain
        if self.closed:
            raise self._closed_error()

    @property
    def reused(self) -> bool:
        """It has been in the pool: the server may have closed it since (a retry is fair)."""
        return self.idle_since > 0.0

    def _reset(self, *, streaming: bool) -> None:
        self.status = 0
        self.headers = []
        self.body = []
        self.answered = False
        self._complete = False
        self._streaming = streaming
        self._error = None
        if self._chunks:  # what a stream left unread of a complete answer
            self._chunks.clear()
            self._buffered = 0
        if self._paused_reading:
            self._paused_reading = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    # --- reading a stream ----------------------------------------------------------

    async def head(self) -> int:
        """Wait for the answer's headers (of a `start`ed request); its status."""
        while not self.status:
            await self._wait()
        return self.status

    async def chunk(self) -> bytes | None:
        """The next piece of a streamed answer's body; None once it is complete."""
        while not self._chunks:
            if self._complete:
                return None
            await self._wait()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused_reading and self._buffered < READ_HIGH_WATER // 2:
            self._paused_reading = False
            if not self.closed:
                self.transport.resume_reading()  # type: ignore[union-attr]
        return data

    async def rest(self) -> bytes:
        """The whole remaining body of a streamed answer."""
        parts: list[bytes] = []
        while (data := await self.chunk()) is not None:
            parts.append(data)
        return b"".join(parts)

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    @property
    def complete(self) -> bool:
        """The current answer has arrived in full."""
        return self._complete

    def header(self, name: bytes) -> str | None:
        """The last value of header `name` (lower case) in the answer, if any."""
        found = None
        for key, value in self.headers:
            if key.lower() == name:
                found = value.decode("latin-1")
        return found

    # --- ending --------------------------------------------------------------------

    def expire(self, exc: BaseException) -> None:
        """End the exchange with `exc` (a deadline passed) and close the socket."""
        if not self._complete:
            self._fail(exc)
        self.abort()

    def timed_out(self) -> None:
        """The exchange's deadline passed: end it with TimeoutError (`Pool.expiry`)."""
        self.expire(TimeoutError())

    def abort(self) -> None:
        """Close at once: the connection is not reusable (half an exchange on it)."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
        if self.pool is not None:
            self.pool.forget(self)

    def reusable(self) -> bool:
        """The last answer is complete and the server keeps the connection open."""
        return self._complete and self.keep_alive and not self.closed

    def stale(self, poll: bool = True) -> bool:
        """Closing, or anything readable on it while idle: the server closed it (or misbehaves).

        The transport is asked first: once it is closing its descriptor may already
        be closed (and its number reused), so it is polled only while open, and
        only with `poll`.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return True
        return poll and bool(self._poll.poll(0))

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _closed_error(self) -> BaseException:
        return self._error or Closed("the server closed the connection", None, self.answered)

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            detail = str(e) or "a malformed answer"
            self._fail(Closed(f"the server sent a malformed answer: {detail}", None, True))
            self.abort()

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._complete:
            detail = "the server closed the connection"
            if exc is not None:
                detail = str(exc) or type(exc).__name__
            self._fail(Closed(detail, exc, self.answered, self.sent))
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        if self.pool is not None:
            self.pool.forget(self)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # --- httptools callbacks -------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self._streaming:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if not self._streaming:
            self.body.append(body)
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and not self._paused_reading:
            self._paused_reading = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Pool:
    """Idle keep-alive connections to one address, and how many are open."""

    __slots__ = (
        "_dial",
        "_idle",
        "_sweep",
        "_waiters",
        "closed",
        "expiry",
        "keep_alive",
        "limit",
        "loop",
        "open",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        dial: Any,
        *,
        keep_alive: float,
        limit: int,
    ) -> None:
        self.loop = loop
        self._dial = dial  # async () -> Connection
        self.keep_alive = keep_alive
        self.limit = limit
        self.open = 0
        self.closed = False
        self._idle: list[Connection] = []
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._sweep: asyncio.TimerHandle | None = None
        self.expiry = Expiry(loop)  # the deadlines of its calls in flight

    def take(self) -> Connection | None:
        """The most recently used idle connection still fit for a request, or None."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            idle_for = self.loop.time() - conn.idle_since
            if conn.closed or idle_for > self.keep_alive or conn.stale(idle_for > JUST_USED):
                conn.abort()
                continue
            return conn
        return None

    async def connect(self) -> Connection:
        """A new connection (waiting while `limit` are open); counted until forgotten."""
        while self.open >= self.limit:
            idle = self.take()
            if idle is not None:
                return idle
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the wakeup on
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.open += 1
        try:
            conn: Connection = await self._dial()
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise
        conn.pool = self
        return conn

    def release(self, conn: Connection) -> None:
        """Back to the idle list when its answer is complete and it is kept open; else closed."""
        if not conn.reusable() or self.closed:
            conn.abort()
            return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.keep_alive, self._expire)
        if self._waiters:
            self._wake_one()

    def forget(self, conn: Connection) -> None:
        """`conn` is closed: it no longer counts against the limit."""
        if conn.pool is self:
            conn.pool = None
            self.open -= 1
            if conn in self._idle:
                self._idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _expire(self) -> None:
        """Close the connections idle for `keep_alive` seconds; look again while any remain."""
        self._sweep = None
        cutoff = self.loop.time() - self.keep_alive
        for conn in [c for c in self._idle if c.idle_since <= cutoff]:
            conn.abort()
        if self._idle:
            oldest = min(c.idle_since for c in self._idle)
            self._sweep = self.loop.call_at(oldest + self.keep_alive, self._expire)

    def close(self) -> None:
        """Close every idle connection; connections in use close when their exchange ends."""
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self._idle):
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                conn.abort()
        self._idle.clear()


async def dial(
    loop: asyncio.AbstractEventLoop, addr: Address, context: ssl.SSLContext | None
) -> Connection:
    """A connection to `addr` (a dialable address), over TLS with `context` when given."""
    sock = await _connect(loop, addr)
    conn = Connection(loop, sock)
    if context is None:
        try:
            if addr.path is not None:
                await loop.create_unix_connection(lambda: conn, sock=sock)
            else:
                await loop.create_connection(lambda: conn, sock=sock)
        except OSError as e:
            sock.close()
            raise ConnectFailed(e) from None
        return conn
    hostname = "localhost" if addr.path is not None else addr.host
    try:
        if addr.path is not None:
            await loop.create_unix_connection(
                lambda: conn, sock=sock, ssl=context, server_hostname=hostname
            )
        else:
            await loop.create_connection(
                lambda: conn, sock=sock, ssl=context, server_hostname=hostname
            )
    except (ssl.SSLError, ssl.CertificateError, OSError) as e:
        sock.close()
        raise HandshakeFailed(e) from None
    return conn


async def _connect(loop: asyncio.AbstractEventLoop, addr: Address) -> socket.socket:
    """A connected non-blocking socket to `addr`; ConnectFailed with the last OSError."""
    if addr.path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, os.path.abspath(addr.path))
        except OSError as e:
            sock.close()
            raise ConnectFailed(e) from None
        except BaseException:
            sock.close()
            raise
        return sock
    try:
        infos = await loop.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise ConnectFailed(e) from None
    last: OSError = OSError(f"no address for {addr.host}")
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, sockaddr)
        except OSError as e:
            sock.close()
            last = e
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise ConnectFailed(last)
