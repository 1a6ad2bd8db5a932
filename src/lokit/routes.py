"""Where a service's methods live on each transport: gRPC method paths and HTTP routes.

`grpc_routes` and `http_routes` derive the usual exposure from `Method`s
(`/<package.Service>/<Method>` and `POST /<method-name>` with JSON); a service
that must match someone else's wire (a `.proto`, a REST layout) gives explicit
codecs and lists its HTTP routes with decoders instead. A `Contract` holds a
service's routes; the same route objects serve (with the method's endpoint)
and call (a client reads its path and codec). A `ServiceDef` bundles bound
routes with the service's lifespan for the runtime (built by `lokit.define`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from lokit.codec import Codec, JsonCodec
from lokit.derive import http_path
from lokit.endpoint import Endpoint, Method, Middleware

if TYPE_CHECKING:
    from lokit.contract import Contract

__all__ = [
    "Codecs",
    "GrpcRoute",
    "HttpInput",
    "HttpRoute",
    "Lifespan",
    "MethodMiddleware",
    "ServiceDef",
    "bound_routes",
    "codec_for",
    "grpc_routes",
    "http_routes",
    "wrap_service",
]


@dataclass(frozen=True)
class HttpInput:
    """What an HTTP route's decoder sees of a request."""

    body: bytes
    query: Mapping[str, str]
    path_params: Mapping[str, str]
    headers: Mapping[str, str]


@dataclass
class GrpcRoute:
    """One method served at a full gRPC method name such as `/pb.Add/Sum`."""

    path: str
    method: Method
    codec: Codec


@dataclass
class HttpRoute:
    """One method served at `verb path`; `path` may hold `{name}` segments.

    The request comes from `decode(HttpInput)` when given, else from the codec's
    `decode_request(body)`. A unary response is `codec.encode_response(value)`
    with `status`; a streamed one is NDJSON, one encoded item per line.
    """

    verb: str
    path: str
    method: Method
    codec: Codec
    decode: Callable[[HttpInput], Any] | None = None
    status: int = 200


Lifespan = Callable[[], AbstractAsyncContextManager[Any]]


@dataclass
class ServiceDef:
    """Everything the runtime needs to serve one service."""

    name: str
    grpc: list[GrpcRoute] = field(default_factory=list)
    http: list[HttpRoute] = field(default_factory=list)
    grpc_services: list[str] = field(default_factory=list)  # names for the health service
    lifespan: Lifespan | None = None
    drain: Callable[[], None] | None = None
    # None while the service can serve, else one sentence saying why not: the
    # health service and /healthz then report NOT_SERVING with it.
    health: Callable[[], str | None] | None = None
    contract: Contract[Any] | None = None  # what it serves (None: routes listed by hand)


Codecs = Mapping[str, Codec] | Callable[[Method], Codec]
"""Codecs by RPC method name (JSON for the others), or a factory taking each `Method`."""


def codec_for(method: Method, codecs: Codecs | None) -> Codec:
    """The codec `codecs` gives `method`, else derived JSON."""
    if codecs is None:
        return JsonCodec(method)
    if callable(codecs):
        return codecs(method)
    return codecs.get(method.name) or JsonCodec(method)


def grpc_routes(
    service_name: str, methods: list[Method], codecs: Codecs | None = None
) -> list[GrpcRoute]:
    """Routes at `/<service_name>/<Method>`, JSON unless `codecs` names one."""
    return [GrpcRoute(f"/{service_name}/{m.name}", m, codec_for(m, codecs)) for m in methods]


def http_routes(
    methods: list[Method], codecs: Codecs | None = None, verb: str = "POST"
) -> list[HttpRoute]:
    """Routes at `POST /<method-name>` (`get_servers` -> `/get-servers`) with JSON bodies."""
    return [
        HttpRoute(verb, http_path(m.py_name or m.name), m, codec_for(m, codecs)) for m in methods
    ]


R = TypeVar("R", GrpcRoute, HttpRoute)


def bound_routes(routes: Iterable[R], endpoints: Mapping[str, Endpoint]) -> list[R]:
    """Copies of `routes` whose methods call `endpoints` (by RPC method name)."""
    return [
        dataclasses.replace(r, method=r.method.with_endpoint(endpoints[r.method.name]))
        for r in routes
    ]


MethodMiddleware = Callable[[Method], Middleware | None]
"""A middleware made for one method (it sees the method's name, kind and action); None skips it."""


def wrap_service(service: ServiceDef, *factories: MethodMiddleware) -> ServiceDef:
    """A copy of `service` whose endpoints are wrapped by what `factories` make for each method.

    The first factory's middleware is outermost, and all of them sit outside the
    middlewares the service was defined with: this is how serve-time concerns
    (an ACL, a rate limit) reach every method of any service. A method served on
    both transports is wrapped once, so both share one wrapped endpoint.
    """
    if not factories:
        return service
    wrapped: dict[str, Endpoint] = {}

    def endpoint(method: Method) -> Endpoint:
        hit = wrapped.get(method.name)
        if hit is None:
            hit = method.endpoint
            for make in reversed(factories):
                mw = make(method)
                if mw is not None:
                    hit = mw(hit)
            wrapped[method.name] = hit
        return hit

    def rebind(routes: list[R]) -> list[R]:
        return [
            dataclasses.replace(r, method=r.method.with_endpoint(endpoint(r.method)))
            for r in routes
        ]

    return dataclasses.replace(service, grpc=rebind(service.grpc), http=rebind(service.http))
