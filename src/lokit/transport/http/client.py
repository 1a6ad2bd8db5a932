"""A lokit service's HTTP client: routes back into endpoints, over aiohttp.

Every call carries the request id, the caller identity, the W3C trace context
and the remaining deadline (`X-Request-Timeout-Ms`, also enforced locally), so
context propagates without the caller doing anything; with tracing on, each call
is a CLIENT span the server's span is parented on. A non-2xx answer raises
the error class the server raised (`X-Lokit-Error`); a server that cannot be
reached raises `Unavailable` at once, naming the address.

With `tls` (a `ClientTLS`) the client speaks HTTPS (with a client certificate:
mTLS) to TCP addresses, and to Unix sockets with `tls.unix`; one SSLContext
serves every connection. A failed handshake is `Unavailable`: `TLS handshake
with HOST:PORT failed: REASON`; a Unix socket whose file permissions refuse
this user is `PermissionDenied`: `permission denied connecting to unix:PATH`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp.client_exceptions import UnixClientConnectorError
from opentelemetry.trace import Span

from lokit import context, errors
from lokit.endpoint import Endpoint, Kind
from lokit.observability import propagation, tracing
from lokit.routes import HttpRoute
from lokit.security.tls import ClientTLS
from lokit.transport import address
from lokit.transport.address import Address
from lokit.transport.http.wire import (
    ERROR_HEADER,
    JSON_TYPE,
    NDJSON_TYPE,
    STREAM_ERROR_KEY,
    STREAM_ERROR_PREFIX,
    LineSplitter,
)

# Shorter than the server's keep-alive, so the client drops an idle connection
# before the server closes it under a request.
KEEP_ALIVE_SECONDS = 30.0

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)
_trace = tracing.STATE  # `_trace.tracer is None`: tracing is off


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
        self._session: aiohttp.ClientSession | None = None
        self._tls = tls if tls is not None and tls.applies_to(self._addr.is_unix) else None
        dial = self._addr.dialable()
        scheme = "http" if self._tls is None else "https"
        self._base = f"{scheme}://localhost" if dial.path is not None else f"{scheme}://{dial}"
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
        _, data = await self._exchange(route.verb, path, route.path, body, JSON_TYPE, timeout)
        return route.codec.decode_response(data)

    def server_stream(
        self, route: HttpRoute, request: Any, *, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """Send one request and iterate the NDJSON response stream."""
        path = self._path(route, request)
        body = route.codec.encode_request(request)
        headers, client_timeout, span = self._headers(timeout, JSON_TYPE, path, route)
        return self._stream(
            route.verb, path, body, headers, client_timeout, route.codec.decode_response, span
        )

    async def client_stream(
        self,
        route: HttpRoute,
        requests: AsyncIterable[Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (also sent on as the deadline)
    ) -> Any:
        """Stream `requests` as an NDJSON body and return the decoded response."""
        body = _ndjson(requests, route.codec.encode_request)
        _, data = await self._exchange(
            route.verb, route.path, route.path, body, NDJSON_TYPE, timeout
        )
        return route.codec.decode_response(data)

    def bidi(
        self, route: HttpRoute, requests: AsyncIterable[Any], *, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """Stream `requests` as NDJSON while iterating the NDJSON responses."""
        headers, client_timeout, span = self._headers(timeout, NDJSON_TYPE, route.path, route)
        body = _ndjson(requests, route.codec.encode_request)
        return self._stream(
            route.verb, route.path, body, headers, client_timeout, route.codec.decode_response, span
        )

    async def request(
        self,
        verb: str,
        path: str,
        body: bytes = b"",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (also sent on as the deadline)
    ) -> tuple[int, bytes]:
        """A raw call: (status, body) whatever the status, for tests and tools."""
        return await self._exchange(verb, path, path, body, JSON_TYPE, timeout, check=False)

    def endpoints(self, routes: list[HttpRoute]) -> dict[str, Endpoint]:
        """An endpoint per route, keyed by method name, for client-side middlewares."""
        out: dict[str, Endpoint] = {}
        for route in routes:
            out[route.method.name] = self._endpoint(route)
        return out

    async def close(self) -> None:
        """Close the connections; the client opens new ones if used again."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

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

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector: aiohttp.BaseConnector
            context = None if self._tls is None else self._tls.ssl_context()
            if self._addr.path is not None:
                path = os.path.abspath(self._addr.path)
                if context is None:
                    connector = aiohttp.UnixConnector(
                        path=path, keepalive_timeout=KEEP_ALIVE_SECONDS
                    )
                else:
                    connector = _TLSUnixConnector(
                        context, path=path, keepalive_timeout=KEEP_ALIVE_SECONDS
                    )
            else:
                connector = aiohttp.TCPConnector(
                    keepalive_timeout=KEEP_ALIVE_SECONDS, ssl=context if context else True
                )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=_NO_TIMEOUT,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                auto_decompress=False,
            )
            self._session = session
        return session

    def _headers(
        self, timeout: float | None, content_type: str, path: str, stream: HttpRoute | None = None
    ) -> tuple[dict[str, str], aiohttp.ClientTimeout, Span | None]:
        """Headers and local timeout of a call to `path`, and the client span of a traced stream.

        A stream's span is not made current (it outlives this call) and is ended
        by `_stream`; other calls run inside `_exchange`'s current span.
        """
        headers, seconds = context.outgoing_headers(timeout, self._timeout, path, self._label)
        headers["content-type"] = content_type
        span = None
        if stream is not None and _trace.tracer is not None:
            span = tracing.start_client_span(f"{stream.verb} {stream.path}")
        propagation.inject(headers, span)
        client_timeout = _NO_TIMEOUT if seconds is None else aiohttp.ClientTimeout(total=seconds)
        return headers, client_timeout, span

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

    async def _exchange(
        self,
        verb: str,
        path: str,
        template: str,
        body: Any,
        content_type: str,
        timeout: float | None,  # noqa: ASYNC109 (also sent on as the deadline)
        *,
        check: bool = True,
    ) -> tuple[int, bytes]:
        """One request and its whole answer, in a client span `VERB template` when tracing."""
        if _trace.tracer is not None:
            with tracing.client_span(f"{verb} {template}"):
                return await self._roundtrip(verb, path, body, content_type, timeout, check)
        return await self._roundtrip(verb, path, body, content_type, timeout, check)

    async def _roundtrip(
        self,
        verb: str,
        path: str,
        body: Any,
        content_type: str,
        per_call: float | None,
        check: bool,
    ) -> tuple[int, bytes]:
        headers, client_timeout, _ = self._headers(per_call, content_type, path)
        session = self._get_session()
        try:
            async with session.request(
                verb, self._base + path, data=body, headers=headers, timeout=client_timeout
            ) as resp:
                data = await resp.read()
                status = resp.status
                if check and status >= 300:
                    raise _http_error(status, data, resp.headers.get(ERROR_HEADER))
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._transport_error(e, verb, path) from None
        return status, data

    async def _stream(
        self,
        verb: str,
        path: str,
        body: Any,
        headers: dict[str, str],
        client_timeout: aiohttp.ClientTimeout,
        decode: Callable[[bytes], Any],
        span: Span | None,
    ) -> AsyncIterator[Any]:
        session = self._get_session()
        error: BaseException | None = None
        try:
            async with session.request(
                verb, self._base + path, data=body, headers=headers, timeout=client_timeout
            ) as resp:
                if resp.status >= 300:
                    data = await resp.read()
                    raise _http_error(resp.status, data, resp.headers.get(ERROR_HEADER))
                lines = LineSplitter()
                async for chunk in resp.content.iter_any():
                    for line in lines.feed(chunk):
                        yield _stream_item(line, decode)
                last = lines.tail()
                if last is not None:
                    yield _stream_item(last, decode)
        except (aiohttp.ClientError, TimeoutError) as e:
            error = self._transport_error(e, verb, path)
            raise error from None
        except errors.Error as e:
            error = e
            raise
        finally:
            if span is not None:
                tracing.end_span(span, error)

    def _transport_error(self, exc: BaseException, verb: str, path: str) -> errors.Error:
        """One sentence naming the address for a call that did not get an answer."""
        if isinstance(exc, TimeoutError):
            return errors.DeadlineExceeded(
                f"{verb} {path} on {self._addr} did not finish before its deadline"
            )
        if self._tls is not None:
            reason = handshake_failure(exc)
            if reason is None and _closed(exc):
                reason = self._tls.refused_reason()
            if reason is not None:
                return errors.Unavailable(f"TLS handshake with {self._label} failed: {reason}")
        if isinstance(exc, aiohttp.ClientConnectorError):
            if self._addr.is_unix and exc.os_error.errno == errno.EACCES:
                return errors.PermissionDenied(f"permission denied connecting to {self._label}")
            reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
            return errors.Unavailable(f"{self._label} is unavailable: cannot connect ({reason})")
        detail = str(exc) or type(exc).__name__
        return errors.Unavailable(f"{self._label} is unavailable: {verb} {path} failed ({detail})")


class _TLSUnixConnector(aiohttp.UnixConnector):
    """HTTPS over a Unix socket (aiohttp's UnixConnector has no TLS): the server is
    checked as `localhost`, what Unix-socket clients of grpc check too."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._context = context

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109 (aiohttp's signature)
        try:
            async with asyncio.timeout(timeout.sock_connect):
                _, proto = await self._loop.create_unix_connection(
                    self._factory, self.path, ssl=self._context, server_hostname="localhost"
                )
        except ssl.SSLError as exc:
            raise aiohttp.ClientConnectorError(req.connection_key, exc) from exc
        except OSError as exc:
            raise UnixClientConnectorError(self.path, req.connection_key, exc) from exc
        return proto


def handshake_failure(exc: BaseException) -> str | None:
    """The reason of a failed TLS handshake behind an aiohttp error, or None for another failure.

    The server's own refusal (no or a bad client certificate) can arrive after the
    client finished its side of the handshake: as the SSL error of the first read.
    """
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, aiohttp.ClientConnectorCertificateError):
            cert_error = seen.certificate_error
            return _ssl_reason(cert_error)
        if isinstance(seen, ssl.SSLError):
            return _ssl_reason(seen)
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    return None


def _closed(exc: BaseException) -> bool:
    """A connection the server closed or reset before answering."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno == errno.ECONNRESET


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
