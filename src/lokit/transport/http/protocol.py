"""uvicorn's httptools protocol with lokit's listener limits.

uvicorn closes a keep-alive connection that stays idle after a response but
nothing else: a connection that never sends a request, or sends its headers a
byte at a time (slowloris), is held forever, and every connection is accepted
however many there are. This protocol adds, per connection:

- a connection limit per listening socket: past `max_connections` a new
  connection is answered 503 in one sentence and closed at once, so idle
  clients cannot take every file descriptor from the other listeners;
- a header deadline: from the connection's start, or the first byte of a
  further request, the request line and headers must be complete within
  `header_timeout` seconds (checked by `sweep`, which the server runs once a
  second) or the connection gets 408 and is closed; headers over
  `MAX_HEADER_BYTES` get 431;
- the keep-alive timeout (`--idle-timeout`) by the same sweep: a connection
  idle since its last answer for longer is closed (uvicorn arms and cancels a
  timer per request instead, a tenth of a local request's server time);
- a body limit from Content-Length: a declared body over `max_body_bytes` is
  answered 413 before any of it is read, and the connection closed (a chunked
  body is counted as it is read, by the app: `Exchange.read_body`).

Its transport coalesces writes (`CoalescedWrites`): uvicorn writes a
response's head and body apart, and each write is a syscall on this side and a
wakeup and a read on the client's (over TLS also a record each); the writes of
one turn of the loop leave as one, and a complete response at once.

With lokit's app, unary routes that need nothing of ASGI are answered
straight from the parser's callbacks (`direct`).

It also works out, once per connection, who is calling (`transport.peer.connection_peer`:
the verified client certificate's CN, or the Unix peer's user from
SO_PEERCRED) and hands it to every request of the connection in its scope
(`exchange.PEER_KEY`).

Per request this costs one dict lookup per header as it arrives
(`direct.NOTED`: the body's framing, Expect and the request's context headers,
so nothing looks through the headers again) and a few attribute writes; uvicorn's
ASGI scope is built only for a request that takes the ASGI path. The timers are
one sweep a second over the connections.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lokit.context import Caller
from lokit.observability.logs import get_logger
from lokit.transport.http.direct import (
    CONTENT_LENGTH,
    EXPECT,
    NOTED,
    TRANSFER_ENCODING,
    DirectExchange,
)
from lokit.transport.http.wire import ERROR_HEADER, error_body
from lokit.transport.limits import (
    HTTP_REFUSED,
    MAX_HEADER_BYTES,
    PACE_FREE_BYTES,
    BodyTooLarge,
    Limits,
    ListenerState,
)
from lokit.transport.peer import PEER_KEY, connection_peer

if TYPE_CHECKING:
    from lokit.transport.http.app import HttpApp

__all__ = ["CoalescedWrites", "limited_protocol", "state_key", "sweep"]


class CoalescedWrites:
    """A connection's transport whose writes in one turn of the loop leave as one write.

    A write is held until the end of the current turn (one `call_soon`), until
    `flush` (the protocol flushes when a response is complete), or until
    `HOLD_BYTES` are held: a stream that produces without yielding to the loop
    still reaches the real transport, whose flow control then pauses it. Closing
    flushes first. Everything else goes to the real transport.
    """

    HOLD_BYTES = 64 * 1024

    __slots__ = ("_held", "_loop", "_pending", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._held = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._held += len(data)
        if self._held > self.HOLD_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn_over)

    def write_now(self, data: bytes) -> None:
        """Write `data` after whatever is held, at once."""
        if self._pending:
            self._pending.append(data)
            self.flush()
        elif not self._transport.is_closing():
            self._transport.write(data)

    def _turn_over(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what is held now, as one write."""
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self._held = 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _answer(
    status: int, reason: str, message: str, name: str = "lokit.RESOURCE_EXHAUSTED"
) -> bytes:
    body = error_body(message)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"%s: %s\r\nconnection: close\r\n\r\n%s"
        % (status, reason.encode(), len(body), ERROR_HEADER.encode(), name.encode(), body)
    )


_BUSY = _answer(
    503,
    "Service Unavailable",
    "the server has too many connections; try again later",
    "lokit.UNAVAILABLE",
)
_SLOW = _answer(
    408, "Request Timeout", "the request headers did not arrive in time", "lokit.DEADLINE_EXCEEDED"
)
_HUGE = _answer(
    431,
    "Request Header Fields Too Large",
    "the request headers are too large",
    "lokit.INVALID_ARGUMENT",
)
_log = get_logger("lokit")
_CLOSE = (b"connection", b"close")
# Stands in for a request cycle after a refusal, so uvicorn's callbacks ignore the rest.
_DONE = SimpleNamespace(response_complete=True, message_event=asyncio.Event())


def limited_protocol(
    limits: Limits, service: str, states: dict[Any, ListenerState], app: HttpApp | None = None
) -> type[HttpToolsProtocol]:
    """An HttpToolsProtocol class applying `limits`; `states` maps a socket's name to its state.

    With lokit's `app`, the unary requests it names by `direct_target` are
    answered without an ASGI cycle (`direct`: the conditions, and why).
    """
    max_body = limits.max_body_bytes
    direct_body = min(max_body, PACE_FREE_BYTES)
    body_refused = HTTP_REFUSED.labels(service, "body_too_large")
    too_large = _answer(
        413, "Content Too Large", BodyTooLarge.of(max_body).message, BodyTooLarge.error_name
    )

    class LimitedProtocol(HttpToolsProtocol):
        _state: ListenerState | None = None
        _accepted = False
        _refused = False
        waiting_since: float | None = None  # the start of the headers being waited for
        idle_since: float | None = None  # the end of the last answer, none since
        header_bytes = 0
        peer: tuple[Caller | None, str]

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            state = states.get(state_key(transport.get_extra_info("sockname")))
            if state is not None:
                if state.open >= state.limit:
                    self._refused = True
                    state.refused["max_connections"].inc()
                    transport.write(_BUSY)  # type: ignore[attr-defined]
                    transport.close()
                    return
                state.open += 1
                state.gauge.inc()
                self._state = state
            self._accepted = True
            self.peer = connection_peer(transport)
            coalesced = CoalescedWrites(transport, self.loop)  # type: ignore[arg-type]
            super().connection_made(coalesced)  # type: ignore[arg-type]
            self.waiting_since = self.loop.time()

        def on_message_begin(self) -> None:
            # uvicorn's scope waits for the headers: a direct request needs none.
            self.url = b""
            self.headers = []
            self.noted: list[bytes | None] = [None] * len(NOTED)

        def on_header(self, name: bytes, value: bytes) -> None:
            name = name.lower()
            self.headers.append((name, value))
            slot = NOTED.get(name)
            if slot is not None:
                self.noted[slot] = value

        def on_response_complete(self) -> None:
            # A complete answer leaves now, before the app's request line and metrics.
            self.transport.flush()  # type: ignore[attr-defined]
            # uvicorn's, but an idle connection is marked for `sweep` instead of
            # arming a keep-alive timer per response (and cancelling it per request).
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            if self.flow.read_paused:
                self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
            else:
                self.idle_since = self.loop.time()

        def _unset_keepalive_if_required(self) -> None:
            self.idle_since = None  # bytes arrived (or the connection ended)

        def idle_timeout(self) -> None:
            if not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self._accepted:
                return  # refused at once: uvicorn never saw it
            state, self._state = self._state, None
            if state is not None:
                state.open -= 1
                state.gauge.dec()
            self.waiting_since = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self.waiting_since is None and (self.cycle is None or self.cycle.response_complete):
                self.waiting_since = self.loop.time()
                self.header_bytes = 0
            super().data_received(data)
            if self.waiting_since is not None and not self._refused:
                self.header_bytes += len(data)
                if self.header_bytes > MAX_HEADER_BYTES:
                    self.refuse(_HUGE, "header_too_large")

        def on_headers_complete(self) -> None:
            self.waiting_since = None
            noted = self.noted
            declared = noted[CONTENT_LENGTH]
            length = 0 if declared is None else int(declared) if declared.isdigit() else -1
            if length > max_body:
                body_refused.inc()
                self.refuse(too_large, None)
                return
            expect = noted[EXPECT]
            if (
                app is not None
                and expect is None
                and noted[TRANSFER_ENCODING] is None  # chunked, whatever the header order
                and 0 <= length <= direct_body
                and self.serve_directly()
            ):
                return
            # The ASGI way: uvicorn's scope (its on_message_begin), with this request's.
            url, headers = self.url, self.headers
            super().on_message_begin()
            self.url, self.headers = url, headers
            self.scope["headers"] = headers
            self.scope[PEER_KEY] = self.peer  # type: ignore[literal-required]
            self.expect_100_continue = expect is not None and expect.lower() == b"100-continue"
            super().on_headers_complete()

        def serve_directly(self) -> bool:
            """Take this request off the ASGI path where `direct` can answer it."""
            assert app is not None
            parser = self.parser
            found = app.direct_target(parser.get_method(), self.url)
            if (
                found is None
                or not (self.cycle is None or self.cycle.response_complete)
                or parser.should_upgrade()
                or parser.get_http_version() != "1.1"
            ):
                return False
            self.cycle = app.exchange(  # type: ignore[assignment]
                *found,
                self.headers,
                self.noted,
                self.peer,
                parser.should_keep_alive(),
                self,
            )
            return True

        def on_body(self, body: bytes) -> None:
            cycle: Any = self.cycle
            if type(cycle) is DirectExchange:
                cycle.body += body
            else:
                super().on_body(body)

        def on_message_complete(self) -> None:
            cycle: Any = self.cycle
            if type(cycle) is not DirectExchange:
                super().on_message_complete()
                return
            cycle.task = task = self.loop.create_task(self.serve_direct(cycle))
            self.tasks.add(task)

        async def serve_direct(self, exchange: DirectExchange) -> None:
            """Serve a direct request (its answer leaves as soon as the app gives it).

            The endpoint's failures are answered by the app; a fault in the serving
            steps themselves is logged and answered 500 with the request id, and the
            connection closed, as uvicorn does for an app that raises.
            """
            assert app is not None
            try:
                await app.serve(exchange)
            except Exception as e:
                _log.error("request failed", request_id=exchange.ctx.request_id, exc_info=e)
                status, body, extra = exchange.error_answer(e)
                exchange.answer(status, body, (*extra, _CLOSE))
            finally:
                exchange.end()
                self.tasks.discard(exchange.task)

        def refuse(self, answer: bytes, reason: str | None) -> None:
            """Answer `answer` (a whole response) and close; uvicorn ignores what follows."""
            self._refused = True
            self.waiting_since = None
            if reason is not None and self._state is not None:
                self._state.refused[reason].inc()
            if self.cycle is None or self.cycle.response_complete:
                self.cycle = _DONE  # type: ignore[assignment]
                if not self.transport.is_closing():
                    self.transport.write(answer)
            self.transport.close()

        def header_timeout(self) -> None:
            if not self._refused:
                self.refuse(_SLOW, "header_timeout")

    return LimitedProtocol


def state_key(sockname: Any) -> Any:
    """What identifies a listening socket from a connection's local address: the path of a
    Unix socket, the port of a TCP one (a connection to 0.0.0.0:P has its own local host)."""
    return sockname[1] if isinstance(sockname, tuple) else sockname


def sweep(connections: set[Any], header_timeout: float, idle_timeout: float, now: float) -> None:
    """Close every connection whose headers are overdue or that idled too long.

    Run about once a second (more often for timeouts under a second), so a
    timeout ends within that tick after it is due.
    """
    late = now - header_timeout
    for conn in [c for c in connections if (w := c.waiting_since) is not None and w < late]:
        conn.header_timeout()
    idle = now - idle_timeout
    for conn in [c for c in connections if (i := c.idle_since) is not None and i < idle]:
        conn.idle_timeout()
