"""Endpoints and middlewares, Go kit's core made native to asyncio.

An endpoint is one async callable: request in, response out. Streams are
first class: a server-streaming endpoint returns an async iterator, a
client-streaming endpoint receives one, a bidi endpoint does both. A middleware
takes an endpoint and returns an endpoint, and `chain(a, b, c)(e) == a(b(c(e)))`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lokit.errors import Unimplemented

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


async def unbound(request: Any) -> Any:
    """The endpoint of a method described but not served here (a contract's, a client's)."""
    raise Unimplemented("this method is described here but has no implementation")


@dataclass
class Method:
    """One method of a service, with the facts transports, clients and middlewares need.

    `name` is the RPC-style name (`Sum`) and `py_name` the Python one (`sum`);
    `request_type` and `response_type` are the per-message types (the item type
    for streams). `spread` says the request is a struct built from the Python
    method's parameters (else the single parameter is the request itself).
    `action` is what an ACL checks (the Python name unless declared),
    `acl_object` reads the object an ACL checks from a request (None: `*`, the
    whole service) and `idempotent` whether a retry may run it twice. A method in a contract has no
    endpoint (`unbound`); `with_endpoint` gives the served or client-side one.
    """

    name: str
    endpoint: Endpoint = unbound
    kind: Kind = Kind.UNARY
    request_type: Any = Any
    response_type: Any = Any
    wrap_response: bool = False  # derived JSON wraps a plain value as {"v": value}
    doc: str = ""
    py_name: str = ""
    spread: bool = False
    action: str = ""
    idempotent: bool = False
    acl_object: Callable[[Any], str] | None = None

    def with_endpoint(self, endpoint: Endpoint) -> Method:
        return dataclasses.replace(self, endpoint=endpoint)


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
