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

Everything else (streams, query strings, Connect, chunked or large bodies,
other apps) takes the ASGI path as before. Both paths share the
app's `serve` and the `Exchange`'s steps, so an answer is the same either way:
the same status, body and headers (content type and length, the request id, the
server's Date; `connection: close` where the connection ends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from lokit.transport.http.exchange import Exchange, Headers
from lokit.transport.http.router import Target
from lokit.transport.http.wire import JSON_TYPE
from lokit.transport.limits import BodyPacer
from lokit.types import Scope

__all__ = ["DirectCycle", "DirectExchange", "Respond", "direct_routes", "response"]

# How a direct request's answer leaves: status, body, request id, extra headers.
Respond = Callable[[int, bytes, bytes, Headers], None]

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_HEAD = b"HTTP/1.1 %d %s\r\ncontent-type: " + JSON_TYPE.encode() + b"\r\ncontent-length: %d\r\n"
_CLOSE = (b"connection", b"close")


def direct_routes(exact: Mapping[tuple[str, str], Target]) -> dict[tuple[bytes, bytes], Target]:
    """The exact routes (by verb and path, as the parser gives them) a direct answer serves."""
    return {
        (verb.encode(), path.encode()): target
        for (verb, path), target in exact.items()
        if not target.streams
    }


def response(
    status: int,
    body: bytes,
    rid: bytes,
    extra: Headers,
    defaults: list[tuple[bytes, bytes]],
    keep_alive: bool,
) -> bytes:
    """A whole HTTP/1.1 JSON response, headers as uvicorn would write them."""
    parts = [_HEAD % (status, _REASONS.get(status, b""), len(body))]
    for name, value in defaults:  # the server's Date
        parts += (name, b": ", value, b"\r\n")
    parts += (b"x-request-id: ", rid, b"\r\n")
    for name, value in extra:
        parts += (name, b": ", value, b"\r\n")
    if not keep_alive and _CLOSE not in extra:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", body)
    return b"".join(parts)


async def _no_channel(*_: Any) -> Any:
    raise RuntimeError("a request served directly has no ASGI channel")


class DirectExchange(Exchange):
    """An `Exchange` whose body was read by the protocol and whose answer goes to it."""

    __slots__ = ("_body", "_respond")

    def __init__(
        self,
        service: str,
        target: Target,
        scope: Scope,
        params: Mapping[str, str],
        body: bytes,
        respond: Respond,
        max_body: int,
        pacer: BodyPacer,
    ) -> None:
        super().__init__(service, target, scope, _no_channel, _no_channel, params, max_body, pacer)
        self._body = body
        self._respond = respond

    async def read_body(self) -> bytes:
        return self._body

    async def respond(self, status: int, body: bytes, extra: Headers = ()) -> None:
        self._respond(status, body, self.rid, extra)


class _NoEvent:
    """uvicorn sets a cycle's message event on disconnect; a direct request waits on none."""

    __slots__ = ()

    def set(self) -> None:
        pass


class DirectCycle:
    """What uvicorn's protocol reads of a request cycle, for a request served directly.

    The app's `respond` (through `DirectExchange`) writes the answer to
    `transport` (the connection's `CoalescedWrites`) at once, before the app
    writes the request line and counts the request, so that work overlaps the
    client's; the connection then closes where it is not kept alive, and `done`
    (the protocol's response-complete step) runs. `end`, once the app is done,
    closes a connection the app gave no answer on.
    """

    __slots__ = (
        "body",
        "defaults",
        "disconnected",
        "done",
        "keep_alive",
        "params",
        "response_complete",
        "target",
        "transport",
    )

    message_event = _NoEvent()

    def __init__(
        self,
        target: Target,
        params: Mapping[str, str],
        keep_alive: bool,
        transport: Any,
        defaults: list[tuple[bytes, bytes]],
        done: Callable[[], None],
    ) -> None:
        self.target = target
        self.params = params
        self.keep_alive = keep_alive
        self.transport = transport
        self.defaults = defaults
        self.done = done
        self.body = b""
        self.disconnected = False
        self.response_complete = False

    def respond(self, status: int, body: bytes, rid: bytes, extra: Headers) -> None:
        if self.response_complete:
            return
        self.response_complete = True
        if not self.disconnected:
            keep_alive = self.keep_alive and _CLOSE not in extra
            data = response(status, body, rid, extra, self.defaults, keep_alive)
            self.transport.write_now(data)
            if not keep_alive:
                self.transport.close()
        self.done()

    def end(self) -> None:
        """The app is done: without an answer, the connection closes."""
        if not self.response_complete:
            self.response_complete = True
            self.transport.close()
            self.done()
