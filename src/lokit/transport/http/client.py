"""A service's HTTP client: routes back into endpoints, on lean keep-alive connections.

Every call carries the request id, the caller identity, the W3C trace context
and the remaining deadline (`X-Request-Timeout-Ms`, also enforced locally), so
context propagates without the caller doing anything; with tracing on, each call
is a CLIENT span the server's span is parented on. A non-2xx answer raises
the error class the server raised (`X-Lokit-Error`); a server that cannot be
reached raises `Unavailable` at once, naming the address.

The connections are lokit's own (`conn`: httptools on an asyncio.Protocol, a
small keep-alive pool per client): a unary call writes one prepared request
(the head of each route built once) and parses one answer, about a third of
what aiohttp cost per call. Before reuse, an idle connection is checked for a
close the loop has not seen yet. A request that still fails on a reused
connection before any answer came is sent again, once, on a new connection
when that is safe: it never reached the socket, or its verb is idempotent
(GET, PUT, DELETE, OPTIONS). NDJSON streams are read as they arrive; a stream
left early closes its connection rather than give a half-read one back to the
pool. Streamed requests are sent chunked. A client's connections belong to the event
loop it is used on; used on a later one (another `asyncio.run`), it opens new ones
there. Like any asyncio object it is not shared between threads' loops.

With `tls` (a `ClientTLS`) the client speaks HTTPS (with a client certificate:
mTLS) to TCP addresses, and to Unix sockets with `tls.unix`; one SSLContext
serves every connection. A failed handshake is `Unavailable`: `TLS handshake
with HOST:PORT failed: REASON`; a Unix socket whose file permissions refuse
this user is `PermissionDenied`: `permission denied connecting to unix:PATH`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson
from opentelemetry.trace import Span

from lokit import context, errors
from lokit.endpoint import Endpoint, Kind
from lokit.observability import propagation, tracing
from lokit.routes import HttpRoute
from lokit.security.tls import ClientTLS
from lokit.transport import address
from lokit.transport.address import Address
from lokit.transport.expiry import Entry
from lokit.transport.failures import cannot_connect
from lokit.transport.http.conn import Closed, ConnectFailed, Connection, HandshakeFailed, Pool, dial
from lokit.transport.http.wire import (
    ERROR_HEADER,
    JSON_TYPE,
    NDJSON_TYPE,
    STREAM_ERROR_KEY,
    STREAM_ERROR_PREFIX,
    LineSplitter,
)

__all__ = ["KEEP_ALIVE_SECONDS", "MAX_CONNECTIONS", "HttpClient"]

# Shorter than the server's keep-alive, so the client drops an idle connection
# before the server closes it under a request.
KEEP_ALIVE_SECONDS = 30.0
# Connections open at once per client (aiohttp's default); more callers wait for one.
MAX_CONNECTIONS = 100

_trace = tracing.STATE  # `_trace.tracer is None`: tracing is off
_ERROR_HEADER = ERROR_HEADER.encode()
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS"})
_LAST_CHUNK = b"0\r\n\r\n"
_PREFIXES_KEPT = 256  # request heads cached per client (paths without {name} segments)


class HttpClient:
    """Calls one lokit HTTP server (`unix:PATH` or `HOST:PORT`) with keep-alive connections."""

    def __init__(
        self,
        addr: str | Address,
        *,
        timeout: float | None = None,
        tls: ClientTLS | None = None,
    ) -> None:
        self._addr = addr if isinstance(addr, Address) else address.parse(addr)
        self._timeout = timeout
        self._label = str(self._addr)
        self._tls = tls if tls is not None and tls.applies_to(self._addr.is_unix) else None
        self._dial_addr = self._addr.dialable()
        dialed = self._dial_addr
        self._host = "localhost" if dialed.path is not None else str(dialed)
        self._pool: Pool | None = None
        self._prefixes: dict[tuple[str, str, str], bytes] = {}
        self._templates: dict[str, list[tuple[bool, str]]] = {}

    @property
    def address(self) -> Address:
        return self._addr

    # --- calls -----------------------------------------------------------------------

    async def unary(
        self,
        route: HttpRoute,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (also sent on as the deadline)
    ) -> Any:
        """Send one request to `route` and return its decoded response."""
        path = self._path(route, request)
        body = route.codec.encode_request(request)
        if _trace.tracer is None:  # no span to open: one coroutine fewer per call
            _, data = await self._roundtrip(route.verb, path, route.path, body, JSON_TYPE, timeout)
        else:
            _, data = await self._exchange(route.verb, path, route.path, body, JSON_TYPE, timeout)
        return route.codec.decode_response(data)

    def server_stream(
        self, route: HttpRoute, request: Any, *, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """Send one request and iterate the NDJSON response stream."""
        path = self._path(route, request)
        body = route.codec.encode_request(request)
        return self._open_stream(route, path, body, None, JSON_TYPE, timeout)

    async def client_stream(
        self,
        route: HttpRoute,
        requests: AsyncIterable[Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (also sent on as the deadline)
    ) -> Any:
        """Stream `requests` as an NDJSON body and return the decoded response."""
        items = _ndjson(requests, route.codec.encode_request)
        _, data = await self._exchange(
            route.verb, route.path, route.path, items, NDJSON_TYPE, timeout
        )
        return route.codec.decode_response(data)

    def bidi(
        self, route: HttpRoute, requests: AsyncIterable[Any], *, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """Stream `requests` as NDJSON while iterating the NDJSON responses."""
        items = _ndjson(requests, route.codec.encode_request)
        return self._open_stream(route, route.path, None, items, NDJSON_TYPE, timeout)

    async def request(
        self,
        verb: str,
        path: str,
        body: bytes = b"",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (also sent on as the deadline)
    ) -> tuple[int, bytes]:
        """A raw call: (status, body) whatever the status, for tests and tools (not HEAD)."""
        verb = verb.upper()
        if verb == "HEAD":
            raise errors.InvalidArgument("HEAD requests are not supported; use GET")
        if not path.startswith("/") or any(c in path for c in " \r\n"):
            raise errors.InvalidArgument(f"invalid request path {path!r}")
        return await self._exchange(verb, path, path, body, JSON_TYPE, timeout, check=False)

    def endpoints(self, routes: list[HttpRoute]) -> dict[str, Endpoint]:
        """An endpoint per route, keyed by method name, for client-side middlewares."""
        out: dict[str, Endpoint] = {}
        for route in routes:
            out[route.method.name] = self._endpoint(route)
        return out

    async def close(self) -> None:
        """Close the idle connections; the client opens new ones if used again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # --- internals -------------------------------------------------------------------

    def _endpoint(self, route: HttpRoute) -> Endpoint:
        kind = route.method.kind
        if kind is Kind.UNARY:
            return functools.partial(self.unary, route)
        if kind is Kind.CLIENT_STREAM:
            return functools.partial(self.client_stream, route)
        if kind is Kind.SERVER_STREAM:

            async def server_stream(request: Any) -> AsyncIterator[Any]:
                return self.server_stream(route, request)

            return server_stream

        async def bidi(requests: Any) -> AsyncIterator[Any]:
            return self.bidi(route, requests)

        return bidi

    def _path(self, route: HttpRoute, request: Any) -> str:
        """The route's path, `{name}` segments filled from the request's fields."""
        path = route.path
        if "{" not in path:
            return path
        template = self._templates.get(path)
        if template is None:
            template = [
                (True, seg[1:-1]) if seg.startswith("{") and seg.endswith("}") else (False, seg)
                for seg in path.split("/")
            ]
            self._templates[path] = template
        parts: list[str] = []
        for is_param, text in template:
            if not is_param:
                parts.append(text)
                continue
            try:
                value = request[text] if isinstance(request, Mapping) else getattr(request, text)
            except (KeyError, AttributeError):
                raise errors.InvalidArgument(
                    f"the request has no field {text!r} to fill the path {path}"
                ) from None
            parts.append(quote(str(value), safe=""))
        return "/".join(parts)

    def _head(
        self,
        verb: str,
        path: str,
        template: str,
        content_type: str,
        per_call: float | None,
        span: Span | None = None,
    ) -> tuple[bytes, float | None]:
        """The request head up to its framing header, and the call's timeout in seconds.

        The fixed part (request line, host, content type) is built once per route
        (per call for a path filled from the request: `path` is not `template`);
        per call come the context headers (`context.outgoing_metadata`) and the trace
        context, when there is one (`span`'s, else the current one).
        """
        key = (verb, path, content_type)
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = (
                f"{verb} {path} HTTP/1.1\r\nhost: {self._host}\r\ncontent-type: {content_type}\r\n"
            ).encode()
            if path == template and len(self._prefixes) < _PREFIXES_KEPT:
                self._prefixes[key] = prefix
        pairs, seconds = context.outgoing_metadata(per_call, self._timeout, path, self._label)
        pairs = propagation.with_trace(pairs, span)
        if len(pairs) == 1:  # the request id alone: most local calls
            ((name, value),) = pairs
            text = f"{name}: {value}\r\n"
        elif len(pairs) == 2:  # and a deadline (or a caller hint)
            ((name, value), (name2, value2)) = pairs
            text = f"{name}: {value}\r\n{name2}: {value2}\r\n"
        else:
            text = "".join([f"{name}: {value}\r\n" for name, value in pairs])
        if text.count("\n") != len(pairs):
            raise errors.InvalidArgument("a request header value has a line break")
        return prefix + text.encode(), seconds

    async def _exchange(
        self,
        verb: str,
        path: str,
        template: str,
        body: bytes | AsyncIterator[bytes],
        content_type: str,
        timeout: float | None,  # noqa: ASYNC109 (also sent on as the deadline)
        *,
        check: bool = True,
    ) -> tuple[int, bytes]:
        """One request and its whole answer, in a client span `VERB template` when tracing."""
        if _trace.tracer is not None:
            with tracing.client_span(f"{verb} {template}"):
                return await self._roundtrip(
                    verb, path, template, body, content_type, timeout, check
                )
        return await self._roundtrip(verb, path, template, body, content_type, timeout, check)

    def _get_pool(self, loop: asyncio.AbstractEventLoop) -> Pool:
        pool = self._pool
        if pool is None or pool.loop is not loop:
            if pool is not None:
                pool.close()  # made on another loop (its connections cannot move)
            context = None if self._tls is None else self._tls.ssl_context()
            pool = self._pool = Pool(
                loop,
                functools.partial(dial, loop, self._dial_addr, context),
                keep_alive=KEEP_ALIVE_SECONDS,
                limit=MAX_CONNECTIONS,
            )
        return pool

    async def _roundtrip(
        self,
        verb: str,
        path: str,
        template: str,
        body: bytes | AsyncIterator[bytes],
        content_type: str,
        per_call: float | None,
        check: bool = True,
    ) -> tuple[int, bytes]:
        head, seconds = self._head(verb, path, template, content_type, per_call)
        pool = self._pool
        if pool is None or not pool.loop.is_running():  # none yet, or made on another loop
            pool = self._get_pool(asyncio.get_running_loop())
        deadline = None if seconds is None else pool.loop.time() + seconds
        if isinstance(body, bytes):
            data = b"%scontent-length: %d\r\n\r\n%s" % (head, len(body), body)
            # A whole request, once more on another connection if a reused one was stale.
            conn = pool.take() or await self._connect(pool, deadline, verb, path)
            for last in (False, True):
                waiter = conn.send(data)
                expiring = None
                if deadline is not None:
                    expiring = pool.expiry.add(deadline, Connection.timed_out, conn)
                try:
                    await waiter
                except Closed as e:
                    conn.abort()
                    if (
                        last
                        or not conn.reused
                        or e.answered
                        or (e.sent and verb not in _IDEMPOTENT)
                    ):
                        raise self._transport_error(e, verb, path, fresh=not conn.reused) from None
                    # The server had closed this keep-alive connection: once more, on another.
                    conn = await self._connect(pool, deadline, verb, path)
                    continue
                except TimeoutError as e:
                    conn.abort()
                    raise self._transport_error(e, verb, path) from None
                except BaseException:
                    conn.abort()  # cancelled: the answer may still come, to no one
                    raise
                finally:
                    if expiring is not None:
                        pool.expiry.done(expiring)
                break
            chunks = conn.body
            answer = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            status = conn.status
            pool.release(conn)
        else:
            conn, status, answer = await self._upload(pool, verb, path, head, body, deadline)
        if check and status >= 300:
            raise _http_error(status, answer, conn.header(_ERROR_HEADER))
        return status, answer

    async def _upload(
        self,
        pool: Pool,
        verb: str,
        path: str,
        head: bytes,
        items: AsyncIterator[bytes],
        deadline: float | None,
    ) -> tuple[Connection, int, bytes]:
        """Send a request whose body is streamed (chunked) and read the whole answer."""
        conn = pool.take() or await self._connect(pool, deadline, verb, path)
        fresh = not conn.reused
        expiring = None
        if deadline is not None:
            expiring = pool.expiry.add(deadline, Connection.timed_out, conn)
        writer: asyncio.Task[None] | None = None
        try:
            writer = _start(conn, head, None, items)
            status = await conn.head()
            answer = await conn.rest()
        except (Closed, TimeoutError) as e:
            raise self._transport_error(e, verb, path, fresh=fresh) from None
        finally:
            _end(pool, conn, expiring, writer, read=False)
        return conn, status, answer

    async def _connect(
        self, pool: Pool, deadline: float | None, verb: str, path: str
    ) -> Connection:
        """A new connection from `pool`, within the call's deadline."""
        try:
            if deadline is None:
                return await pool.connect()
            async with asyncio.timeout_at(deadline):
                return await pool.connect()
        except (ConnectFailed, HandshakeFailed, TimeoutError) as e:
            raise self._transport_error(e, verb, path) from None

    def _open_stream(
        self,
        route: HttpRoute,
        path: str,
        body: bytes | None,
        items: AsyncIterator[bytes] | None,
        content_type: str,
        timeout: float | None,
    ) -> AsyncIterator[Any]:
        """A stream call: its head (context, trace) made now, in the caller's context.

        A traced stream's span is not made current (it outlives this call) and is
        ended by `_stream`.
        """
        span = None
        if _trace.tracer is not None:
            span = tracing.start_client_span(f"{route.verb} {route.path}")
        try:
            head, seconds = self._head(route.verb, path, route.path, content_type, timeout, span)
        except BaseException as e:
            if span is not None:
                tracing.end_span(span, e)
            raise
        return self._stream(route, path, head, seconds, body, items, span)

    async def _stream(
        self,
        route: HttpRoute,
        path: str,
        head: bytes,
        seconds: float | None,
        body: bytes | None,
        items: AsyncIterator[bytes] | None,
        span: Span | None,
    ) -> AsyncIterator[Any]:
        """A streamed answer's items; the request is sent on the first iteration.

        The connection goes back to the pool only when the answer was read to its
        end; a stream left early (closed, cancelled, failed) closes it.
        """
        verb = route.verb
        decode = route.codec.decode_response
        error: BaseException | None = None
        conn: Connection | None = None
        pool: Pool | None = None
        expiring: Entry | None = None
        writer: asyncio.Task[None] | None = None
        finished = False
        try:
            loop = asyncio.get_running_loop()
            deadline = None if seconds is None else loop.time() + seconds
            pool = self._get_pool(loop)
            conn = pool.take() or await self._connect(pool, deadline, verb, path)
            fresh = not conn.reused
            if deadline is not None:
                expiring = pool.expiry.add(deadline, Connection.timed_out, conn)
            try:
                writer = _start(conn, head, body, items)
                status = await conn.head()
                if status >= 300:
                    data = await conn.rest()
                    finished = True
                    raise _http_error(status, data, conn.header(_ERROR_HEADER))
                lines = LineSplitter()
                while (chunk := await conn.chunk()) is not None:
                    for line in lines.feed(chunk):
                        yield _stream_item(line, decode)
                finished = True
                last = lines.tail()
                if last is not None:
                    yield _stream_item(last, decode)
            except (Closed, TimeoutError) as e:
                error = self._transport_error(e, verb, path, fresh=fresh)
                raise error from None
        except errors.Error as e:
            error = e
            raise
        finally:
            if conn is not None and pool is not None:
                _end(pool, conn, expiring, writer, read=finished)
            if span is not None:
                tracing.end_span(span, error)

    def _transport_error(
        self, exc: BaseException, verb: str, path: str, *, fresh: bool = True
    ) -> errors.Error:
        """One sentence naming the address for a call that did not get an answer."""
        if isinstance(exc, TimeoutError):
            return errors.DeadlineExceeded(
                f"{verb} {path} on {self._addr} did not finish before its deadline"
            )
        if isinstance(exc, HandshakeFailed):
            inner = exc.error
            if isinstance(inner, (ssl.SSLError, ssl.CertificateError)):
                reason = _ssl_reason(inner)
            elif self._tls is not None:
                reason = self._tls.refused_reason()
            else:
                reason = str(inner) or type(inner).__name__
            return errors.Unavailable(f"TLS handshake with {self._label} failed: {reason}")
        if isinstance(exc, Closed) and self._tls is not None:
            # The server's refusal of a client certificate can come after the client
            # finished its side of the handshake: as the SSL error of the first read,
            # or as a close before any answer.
            if isinstance(exc.cause, ssl.SSLError):
                reason = _ssl_reason(exc.cause)
                return errors.Unavailable(f"TLS handshake with {self._label} failed: {reason}")
            if fresh and not exc.answered:
                reason = self._tls.refused_reason()
                return errors.Unavailable(f"TLS handshake with {self._label} failed: {reason}")
        if isinstance(exc, ConnectFailed):
            return cannot_connect(self._label, exc.error, self._addr.is_unix)
        detail = str(exc) or type(exc).__name__
        return errors.Unavailable(f"{self._label} is unavailable: {verb} {path} failed ({detail})")


def _start(
    conn: Connection, head: bytes, body: bytes | None, items: AsyncIterator[bytes] | None
) -> asyncio.Task[None] | None:
    """Send a request whose answer is read as it comes: its head and `body`, or its head
    and then `items` as a chunked body (by the task returned)."""
    if body is not None:
        conn.start(b"%scontent-length: %d\r\n\r\n%s" % (head, len(body), body))
        return None
    assert items is not None
    conn.start(head + b"transfer-encoding: chunked\r\n\r\n")
    return _start_writer(conn, items)


def _end(
    pool: Pool,
    conn: Connection,
    expiring: Entry | None,
    writer: asyncio.Task[None] | None,
    *,
    read: bool,
) -> None:
    """After a `_start`ed exchange: its deadline and writer stopped, `conn` back to `pool`.

    A request body left unterminated (the server answered before it ended) or an
    answer left unread (`read` false and not complete) never goes to the pool.
    """
    if expiring is not None:
        pool.expiry.done(expiring)
    body_cut = writer is not None and not writer.done()
    if writer is not None and body_cut:
        writer.cancel()
    if body_cut or (not read and not conn.complete):
        conn.abort()
    pool.release(conn)


def _start_writer(conn: Connection, items: AsyncIterator[bytes]) -> asyncio.Task[None]:
    """A task sending `items` as the chunked request body of `conn`'s exchange.

    If the items fail, the exchange ends with their error (the server gets a cut
    body and the connection is closed).
    """

    async def write() -> None:
        try:
            async for item in items:
                if item:
                    conn.write(b"%x\r\n%s\r\n" % (len(item), item))
                    await conn.drain()
            conn.write(_LAST_CHUNK)
        except Closed:
            return  # the answer (or its absence) tells the caller
        except Exception as e:
            conn.expire(e)

    return asyncio.create_task(write(), name="lokit-http-request-body")


def _ssl_reason(e: BaseException) -> str:
    """`CERTIFICATE_VERIFY_FAILED` + `certificate has expired` -> one phrase, lower case."""
    verify = getattr(e, "verify_message", None)
    reason = getattr(e, "reason", None)
    head = reason.replace("_", " ").lower() if isinstance(reason, str) and reason else ""
    if head.startswith(("sslv3 alert ", "tlsv1 alert ", "tlsv13 alert ")):
        head = "the server refused it: " + head.split(" alert ", 1)[1]
    if isinstance(verify, str) and verify:
        return f"{head}: {verify}" if head else verify
    return head or str(e) or type(e).__name__


def _http_error(status: int, data: bytes, name: str | None) -> errors.Error:
    """The lokit error for a non-2xx answer."""
    message: str | None = None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        message = payload["error"]
    if message is None:
        message = data[:200].decode("utf-8", "replace").strip() or f"HTTP status {status}"
    return errors.from_http_status(status, message, name)


def _stream_item(line: bytes, decode: Callable[[bytes], Any]) -> Any:
    """One NDJSON response line: an item, or the error that ended the stream."""
    if line.startswith(STREAM_ERROR_PREFIX):
        payload = orjson.loads(line)
        if isinstance(payload, dict) and STREAM_ERROR_KEY in payload:
            status = payload.get("status")
            raise errors.from_http_status(
                status if isinstance(status, int) else 500,
                str(payload.get("error", "")),
                str(payload[STREAM_ERROR_KEY]),
            )
    return decode(line)


async def _ndjson(
    requests: AsyncIterable[Any], encode: Callable[[Any], bytes]
) -> AsyncIterator[bytes]:
    async for item in requests:
        yield encode(item) + b"\n"
