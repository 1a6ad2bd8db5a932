"""How a service's endpoints are exposed: gRPC method paths and HTTP routes.

`grpc_routes` and `http_routes` derive the usual exposure from `Method`s
(`/<package.Service>/<Method>` and `POST /<method-name>` with JSON); a service
that must match someone else's wire (a `.proto`, a REST layout) lists routes
with explicit codecs and decoders instead. A `ServiceDef` bundles them for the
runtime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lokit.codec import Codec, JsonCodec
from lokit.endpoint import Method


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


@dataclass
class ServiceDef:
    """Everything the runtime needs to serve one service."""

    name: str
    grpc: list[GrpcRoute] = field(default_factory=list)
    http: list[HttpRoute] = field(default_factory=list)
    grpc_services: list[str] = field(default_factory=list)  # names for the health service
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Called when shutdown begins, before the transports drain: end work that would
    # otherwise hold the grace period (e.g. idle tailing streams).
    on_drain: list[Callable[[], None]] = field(default_factory=list)


def grpc_routes(
    service_name: str, methods: list[Method], codecs: Mapping[str, Codec] | None = None
) -> list[GrpcRoute]:
    """Routes at `/<service_name>/<Method>`, JSON unless `codecs` names one."""
    codecs = codecs or {}
    return [
        GrpcRoute(f"/{service_name}/{m.name}", m, codecs.get(m.name) or JsonCodec(m))
        for m in methods
    ]


def http_routes(
    methods: list[Method], codecs: Mapping[str, Codec] | None = None, verb: str = "POST"
) -> list[HttpRoute]:
    """Routes at `POST /<method-name>` with JSON bodies."""
    codecs = codecs or {}
    return [
        HttpRoute(
            verb,
            m.options.get("http_path", "/" + m.name.lower()),
            m,
            codecs.get(m.name) or JsonCodec(m),
        )
        for m in methods
    ]
