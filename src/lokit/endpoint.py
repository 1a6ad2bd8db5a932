"""Endpoints and middlewares, Go kit's core made native to asyncio.

An endpoint is one async callable: request in, response out. Streams are
first class: a server-streaming endpoint returns an async iterator, a
client-streaming endpoint receives one, a bidi endpoint does both. A middleware
takes an endpoint and returns an endpoint, and `chain(a, b, c)(e) == a(b(c(e)))`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Endpoint = Callable[[Any], Awaitable[Any]]
Middleware = Callable[[Endpoint], Endpoint]


class Kind(enum.Enum):
    """How requests and responses flow through an endpoint."""

    UNARY = "unary"
    SERVER_STREAM = "server_stream"  # request -> AsyncIterator[response]
    CLIENT_STREAM = "client_stream"  # AsyncIterator[request] -> response
    BIDI = "bidi"  # AsyncIterator[request] -> AsyncIterator[response]

    @property
    def streams_requests(self) -> bool:
        return self in (Kind.CLIENT_STREAM, Kind.BIDI)

    @property
    def streams_responses(self) -> bool:
        return self in (Kind.SERVER_STREAM, Kind.BIDI)


@dataclass
class Method:
    """One endpoint with the facts transports need about it.

    `name` is the RPC-style name (`Sum`); `request_type` and `response_type` are
    the per-message types (the item type for streams).
    """

    name: str
    endpoint: Endpoint
    kind: Kind = Kind.UNARY
    request_type: Any = Any
    response_type: Any = Any
    wrap_response: bool = False  # derived JSON wraps a plain value as {"v": value}
    doc: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def with_endpoint(self, endpoint: Endpoint) -> Method:
        return Method(
            self.name,
            endpoint,
            self.kind,
            self.request_type,
            self.response_type,
            self.wrap_response,
            self.doc,
            self.options,
        )


def chain(*middlewares: Middleware) -> Middleware:
    """Compose middlewares; the first is outermost: chain(a, b)(e) == a(b(e))."""

    def apply(endpoint: Endpoint) -> Endpoint:
        for mw in reversed(middlewares):
            endpoint = mw(endpoint)
        return endpoint

    return apply


async def nop(request: Any) -> Any:
    """An endpoint that does nothing and answers None."""
    return None


def on_stream_end(
    stream: AsyncIterator[Any], done: Callable[[BaseException | None], None]
) -> AsyncIterator[Any]:
    """Wrap a response stream so `done(error)` runs once when it ends, fails or is closed.

    Middlewares that measure a call use it for streaming endpoints, whose work
    happens after the endpoint has returned its iterator.
    """

    async def wrapped() -> AsyncIterator[Any]:
        err: BaseException | None = None
        try:
            async for item in stream:
                yield item
        except BaseException as e:
            err = e
            raise
        finally:
            done(err)

    return wrapped()
