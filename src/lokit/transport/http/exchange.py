"""One HTTP request in flight: its state and the steps every serving path shares.

An `Exchange` is built per request, once routing found its target (one
slotted allocation, in place of passing a request's ten facts from step to
step). Building it makes lokit's one pass over the headers
(`context.scan_incoming`, or the values lokit's protocol noted as they
arrived: `scanned`): the request id, the timeout, the caller and whether
a trace context came along give the request's `RequestContext`, and a bad
timeout header becomes the error the request is answered with, inside the
observed region.

The steps here are shared by the unary pipeline (`app`) and streams
(`streams`): reading the body, decoding the request, answering with JSON or
with an error (`send_error`: a lokit error's status and `X-Lokit-Error` name, or
a 500 `internal error (request id RID)` that tells nothing else of an
unexpected failure).

The caller the connection authenticated (`context.Caller`: its client
certificate's CN, or its Unix peer's user) comes in the scope under
`PEER_KEY`, put there by lokit's protocol once per connection; an ASGI server
that is not lokit's gives none.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from lokit import context, errors
from lokit.codec import malformed
from lokit.routes import HttpInput
from lokit.transport.http.router import Target
from lokit.transport.http.wire import ERROR_HEADER, JSON_TYPE, error_body
from lokit.transport.limits import HTTP_REFUSED, PACE_FREE_BYTES, BodyPacer, BodyTooLarge
from lokit.transport.peer import NO_PEER, PEER_KEY
from lokit.types import Receive, Scope, Send

__all__ = [
    "CT_JSON",
    "RID",
    "ClientGone",
    "Exchange",
    "Headers",
    "client_error",
    "request_headers",
    "send_json",
]

CT_JSON = (b"content-type", JSON_TYPE.encode())
RID = context.REQUEST_ID_HEADER.encode()
# `context.INCOMING_HEADERS` as ASGI header names.
_KEYS = (
    RID,
    context.TIMEOUT_HEADER.encode(),
    context.CALLER_HEADER.encode(),
    context.TRACEPARENT_HEADER.encode(),
)
_CLOSE = (b"connection", b"close")

_INTERNAL = ((ERROR_HEADER.encode(), errors.Internal.error_name.encode()),)

Headers = tuple[tuple[bytes, bytes], ...]  # extra response headers


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


class Exchange:
    """One request being served: its target, the ASGI triple and its context."""

    __slots__ = (
        "bad",
        "ctx",
        "headers",
        "max_body",
        "pacer",
        "params",
        "receive",
        "rid",
        "scope",
        "send",
        "target",
    )

    def __init__(
        self,
        service: str,
        target: Target,
        scope: Scope,
        receive: Receive,
        send: Send,
        params: Mapping[str, str],
        max_body: int,
        pacer: BodyPacer,
        scanned: tuple[bytes | None, bytes | None, bytes | None, bool] | None = None,
    ) -> None:
        self.target = target
        self.max_body = max_body
        self.pacer = pacer
        self.scope = scope
        self.receive = receive
        self.send = send
        self.params = params
        rid_b, timeout_b, hint_b, traced = (
            context.scan_incoming(scope["headers"], _KEYS) if scanned is None else scanned
        )
        rid = rid_b.decode("latin-1") if rid_b else None
        caller, anonymous = scope.get(PEER_KEY, NO_PEER)
        ctx, self.bad = context.incoming(
            service,
            target.name,
            "http",
            rid,
            timeout_b,
            hint_b.decode("latin-1") if hint_b else None,
            None,
            caller,
            anonymous,
        )
        self.ctx = ctx
        # The request id to echo, as bytes: the client's own when it was kept.
        self.rid: bytes = (
            rid_b if rid_b is not None and ctx.request_id is rid else ctx.request_id.encode()
        )
        # Built at most once: for the trace context now, or later by a route's decoder.
        self.headers: dict[str, str] | None = request_headers(scope) if traced else None

    async def read_body(self) -> bytes:
        """The whole request body; raises ClientGone if the client leaves first.

        A body over `max_body` bytes (counted as it arrives: a declared
        Content-Length over it was refused before the app saw the request) stops
        the reading with BodyTooLarge (413, and the connection is closed). Past
        its first MiB a body is read at the pace of `pacer` (`--max-body-rate`).
        """
        receive = self.receive
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body: bytes = message.get("body", b"")
        size = len(body)
        if size > self.max_body:
            raise self.too_large()
        if not message.get("more_body", False):
            return body
        chunks = [body]
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self.too_large()
            chunks.append(chunk)
            if size > PACE_FREE_BYTES:  # a large body: at the app's body rate
                await self.pacer.take(len(chunk))
            if not message.get("more_body", False):
                return b"".join(chunks)

    def too_large(self) -> BodyTooLarge:
        """The refusal of a body over the limit (counted in lokit_http_requests_refused_total)."""
        HTTP_REFUSED.labels(self.ctx.service, "body_too_large").inc()
        return BodyTooLarge.of(self.max_body)

    def decode(self, body: bytes) -> Any:
        """The endpoint's request: the route's decoder on the whole request, else the codec."""
        target = self.target
        if target.decode is None:
            return target.codec.decode_request(body)
        scope = self.scope
        query = scope.get("query_string") or b""
        inp = HttpInput(
            body=body,
            query=dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {},
            path_params=self.params,
            headers=_Headers(scope) if self.headers is None else self.headers,
        )
        try:
            return target.decode(inp)
        except errors.Error:
            raise
        except orjson.JSONDecodeError as e:
            raise errors.InvalidArgument(f"malformed JSON: {e}") from None
        except KeyError as e:
            raise errors.InvalidArgument(f"invalid request: {e.args[0]!s} is missing") from None
        except (ValueError, TypeError, RecursionError) as e:  # UnicodeError is a ValueError
            raise malformed(e) from None

    async def respond(self, status: int, body: bytes, extra: Headers = ()) -> None:
        """A complete JSON answer with this request's id and `extra` headers."""
        await send_json(self.send, status, body, self.rid, *extra)

    async def send_error(self, exc: BaseException) -> None:
        """Answer with the error's status and body (an unexpected failure: 500, its request id)."""
        await self.respond(*self.error_answer(exc))

    def error_answer(self, exc: BaseException) -> tuple[int, bytes, Headers]:
        """The status, body and extra headers that answer `exc`."""
        err = client_error(exc)
        if err is None:
            return 500, error_body(errors.internal_error(self.ctx.request_id).message), _INTERNAL
        if isinstance(err, BodyTooLarge):  # the rest of the body is not read: close
            name = (ERROR_HEADER.encode(), err.error_name.encode("latin-1"))
            return 413, error_body(err.message), (name, _CLOSE)
        target = self.target
        reply = target.codec.encode_error(err)
        if reply is not None:
            return target.status, reply, ()
        name = (ERROR_HEADER.encode(), err.error_name.encode("latin-1"))
        if err.retry_after is None:
            return err.status, error_body(err.message), (name,)
        after = (b"retry-after", b"%d" % max(1, math.ceil(err.retry_after)))
        return err.status, error_body(err.message), (name, after)


def request_headers(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names (repeated ones joined by ', ')."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


class _Headers(Mapping[str, str]):
    """`request_headers(scope)`, decoded on first use: most route decoders (the log's
    single-record read among them) never look at a header."""

    __slots__ = ("_decoded", "_scope")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._decoded: dict[str, str] | None = None

    def _all(self) -> dict[str, str]:
        if self._decoded is None:
            self._decoded = request_headers(self._scope)
        return self._decoded

    def __getitem__(self, name: str) -> str:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


async def send_json(
    send: Send, status: int, body: bytes, rid: bytes, *extra: tuple[bytes, bytes]
) -> None:
    """A complete JSON answer: status, content type and length, request id, `extra` headers."""
    headers = [CT_JSON, (b"content-length", b"%d" % len(body)), (RID, rid), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def client_error(exc: BaseException) -> errors.Error | None:
    """The lokit error to show the client, or None for an unexpected failure (500).

    The observer gets the exception itself and maps it the same way (`as_error`).
    """
    err = errors.as_error(exc)
    return err if err is exc or not isinstance(err, errors.Internal) else None
