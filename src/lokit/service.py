"""Serve a service: `define` binds an implementation to its contract as a `ServiceDef`.

    lokit.define("greeter", Greeter())                  # contract derived from Greeter
    lokit.define(greeter_contract, Greeter(), middlewares=(a, b))

A `ServiceDef` is everything the runtime needs: the routes with their
endpoints, the names for the health service, one `lifespan` (an async context
manager entered before the listeners start and left after they stopped, as in
Starlette: what it opened it closes, also when a later step fails) and an
optional `drain` called when shutdown begins, before the transports drain
(to end work that would hold the grace period, such as idle tailing streams),
and an optional `health` check: None while the service can serve, else one
sentence saying why not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lokit.contract import Contract, GrpcCodec, contract
from lokit.derive import bind
from lokit.endpoint import Middleware
from lokit.routes import Codecs, Lifespan, ServiceDef, bound_routes

__all__ = ["Lifespan", "ServiceDef", "define"]  # ServiceDef lives in routes (transports read it)


def define(
    name: str | Contract[Any],
    service: object,
    *,
    interface: type | None = None,
    grpc_service: str | None = None,
    grpc_codecs: Codecs | None = None,
    http_codecs: Codecs | None = None,
    codec: GrpcCodec = "protobuf",
    middlewares: tuple[Middleware, ...] = (),
    lifespan: Lifespan | None = None,
    drain: Callable[[], None] | None = None,
    health: Callable[[], str | None] | None = None,
) -> ServiceDef:
    """`service` served by its contract over gRPC and HTTP.

    Give a `Contract` (shared with the service's clients), or a name: the
    contract is then derived from `interface` (default: the service's class),
    with gRPC at `/<name>.v1.<Interface>/<Method>` unless `grpc_service` says
    otherwise, protobuf derived from the type hints on gRPC (`codec="json"`: lokit's
    JSON-in-gRPC) and derived JSON on HTTP unless `grpc_codecs` / `http_codecs` give others.
    `middlewares` wrap every endpoint, the first outermost.
    """
    if isinstance(name, Contract):
        if interface or grpc_service or grpc_codecs or http_codecs or codec != "protobuf":
            raise TypeError("define takes either a contract or the options to derive one, not both")
        spec = name
    else:
        spec = contract(
            name,
            interface or type(service),
            grpc_service=grpc_service,
            grpc_codecs=grpc_codecs,
            http_codecs=http_codecs,
            codec=codec,
        )
    endpoints = bind(spec.methods.values(), service, middlewares)
    return ServiceDef(
        name=spec.name,
        grpc=bound_routes(spec.grpc, endpoints),
        http=bound_routes(spec.http, endpoints),
        grpc_services=[spec.grpc_service],
        lifespan=lifespan,
        drain=drain,
        health=health,
        contract=spec,
    )
