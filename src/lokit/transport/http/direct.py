"""Unary requests answered from the HTTP parser's callbacks, without an ASGI cycle.

On a local call, uvicorn's per-request ASGI machinery (a `RequestResponseCycle`,
its receive and send coroutines, the message dicts and its header checks) costs
about as much as everything lokit itself does for the request. uvicorn has no
lighter path and no other well-kept ASGI server is cheaper per request, so
lokit's protocol (`protocol.limited_protocol`) serves the requests that need
nothing of ASGI itself:

- a route of a unary method, its path without a query string (exact, or
  filling a route's `{name}` segments);
- HTTP/1.1, no `Expect`, no upgrade, and not pipelined behind another request;
- a body of a declared Content-Length (no chunks) of at most
  `limits.PACE_FREE_BYTES` (larger ones are read at the app's body rate).

The protocol notes the headers a request's context and framing need as they
arrive (`NOTED`), so neither it nor the `Exchange` looks through them again, and
uvicorn builds no ASGI scope for these requests.

Everything else (streams, query strings, Connect, chunked or large bodies,
other apps) takes the ASGI path as before. Both paths share the
app's `serve` and the `Exchange`'s steps, so an answer is the same either way:
the same status, body and headers (content type and length, the request id, the
server's Date; `connection: close` where the connection ends).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Protocol

from lokit import context
from lokit.transport.http.exchange import Exchange, Headers
from lokit.transport.http.router import Target
from lokit.transport.http.wire import JSON_TYPE
from lokit.transport.limits import BodyPacer
from lokit.transport.peer import PEER_KEY

__all__ = ["NOTED", "Connection", "DirectExchange", "direct_routes", "response"]

# The request headers lokit's protocol notes as they arrive (one dict lookup per
# header), by slot: how the body is framed, Expect, then `context.INCOMING_HEADERS`
# in `scan_incoming`'s order. A repeated header's last value wins.
NOTED = {
    name: slot
    for slot, name in enumerate(
        (
            b"content-length",
            b"transfer-encoding",
            b"expect",
            *map(str.encode, context.INCOMING_HEADERS),
        )
    )
}
CONTENT_LENGTH, TRANSFER_ENCODING, EXPECT, INCOMING = 0, 1, 2, 3

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_RESPONSE = (
    b"HTTP/1.1 %d %s\r\ncontent-type: "
    + JSON_TYPE.encode()
    + b"\r\ncontent-length: %d\r\n%sx-request-id: %s\r\n%s%s\r\n%s"
)
_CLOSE = (b"connection", b"close")
_CLOSE_LINE = b"connection: close\r\n"


def direct_routes(exact: Mapping[tuple[str, str], Target]) -> dict[tuple[bytes, bytes], Target]:
    """The exact routes (by verb and path, as the parser gives them) a direct answer serves."""
    return {
        (verb.encode(), path.encode()): target
        for (verb, path), target in exact.items()
        if not target.streams
    }


def _render(headers: Headers | list[tuple[bytes, bytes]]) -> bytes:
    return b"".join([b"%s: %s\r\n" % (name, value) for name, value in headers])


# The server's default headers (its Date) as rendered last: uvicorn replaces the list
# once a second. One tuple, assigned at once, so threads never see a torn pair.
_defaults: tuple[object, bytes] = (None, b"")


def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    global _defaults
    of, lines = _defaults
    if headers is not of:
        lines = _render(headers)
        _defaults = (headers, lines)
    return lines


def response(
    status: int,
    body: bytes,
    rid: bytes,
    extra: Headers,
    defaults: list[tuple[bytes, bytes]],
    keep_alive: bool,
) -> bytes:
    """A whole HTTP/1.1 JSON response, headers as uvicorn would write them."""
    close = b"" if keep_alive or _CLOSE in extra else _CLOSE_LINE
    return _RESPONSE % (
        status,
        _REASONS.get(status, b""),
        len(body),
        _default_lines(defaults),  # the server's Date
        rid,
        _render(extra) if extra else b"",
        close,
        body,
    )


async def _no_channel(*_: Any) -> Any:
    raise RuntimeError("a request served directly has no ASGI channel")


class _NoEvent:
    """uvicorn sets a cycle's message event on disconnect; a direct request waits on none."""

    __slots__ = ()

    def set(self) -> None:
        pass


class Connection(Protocol):
    """What a direct request needs of the connection it came on (lokit's protocol)."""

    transport: Any  # the connection's `CoalescedWrites`
    server_state: Any

    def on_response_complete(self) -> None: ...


class DirectExchange(Exchange):
    """A unary request served from the parser's callbacks; also the connection's request cycle.

    It is made when the headers are complete, from what the protocol noted of them
    (`NOTED`), collects the body, and is served when the message is complete. For
    uvicorn's protocol it stands in for a request cycle (`response_complete`,
    `keep_alive`, `disconnected`, `message_event`). `respond` writes the whole
    answer at once, before the app writes the request line and counts the request,
    so that work overlaps the client's; the connection then closes where it is not
    kept alive, and the protocol's response-complete step runs. `end`, once the app
    is done, closes a connection the app gave no answer on.
    """

    __slots__ = ("body", "conn", "disconnected", "keep_alive", "response_complete", "task")

    message_event = _NoEvent()

    def __init__(
        self,
        service: str,
        max_body: int,
        pacer: BodyPacer,
        target: Target,
        params: Mapping[str, str],
        headers: list[tuple[bytes, bytes]],
        noted: list[bytes | None],
        peer: Any,
        keep_alive: bool,
        conn: Connection,
    ) -> None:
        scope = {"type": "http", "headers": headers, "query_string": b"", PEER_KEY: peer}
        super().__init__(
            service,
            target,
            scope,
            _no_channel,
            _no_channel,
            params,
            max_body,
            pacer,
            (noted[INCOMING], noted[INCOMING + 1], noted[INCOMING + 2], noted[-1] is not None),
        )
        self.body = b""
        self.keep_alive = keep_alive
        self.conn = conn
        self.disconnected = False
        self.response_complete = False
        self.task: Any = None

    async def read_body(self) -> bytes:
        return self.body

    async def respond(self, status: int, body: bytes, extra: Headers = ()) -> None:
        self.answer(status, body, extra)

    def answer(self, status: int, body: bytes, extra: Headers = ()) -> None:
        """Write the whole answer now (once; a later one is ignored)."""
        if self.response_complete:
            return
        self.response_complete = True
        conn = self.conn
        if not self.disconnected:
            keep_alive = self.keep_alive and _CLOSE not in extra
            transport = conn.transport
            transport.write_now(
                response(
                    status, body, self.rid, extra, conn.server_state.default_headers, keep_alive
                )
            )
            if not keep_alive:
                transport.close()
        conn.on_response_complete()

    def end(self) -> None:
        """The app is done: without an answer, the connection closes."""
        if not self.response_complete:
            self.response_complete = True
            self.conn.transport.close()
            self.conn.on_response_complete()
