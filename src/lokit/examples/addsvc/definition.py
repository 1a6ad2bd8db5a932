"""addsvc's wiring: service + service middlewares -> endpoints -> gRPC and HTTP routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lokit.derive import describe
from lokit.endpoint import Middleware
from lokit.examples.addsvc.middleware import (
    ConcatTransform,
    InstrumentingMiddleware,
    LoggingMiddleware,
)
from lokit.examples.addsvc.pb import pb_codecs
from lokit.examples.addsvc.service import AddService
from lokit.routes import ServiceDef, grpc_routes, http_routes

GRPC_SERVICE = "pb.Add"


def addsvc_definition(
    uppercase: Callable[[str], Awaitable[str]] | None = None,
    endpoint_middlewares: tuple[Middleware, ...] = (),
) -> ServiceDef:
    """addsvc ready to serve: `pb.Add` over gRPC (protobuf) and `POST /sum` etc. (JSON).

    `uppercase`, when given, post-processes Concat's results (the workshop's
    remote stringsvc dependency); without it Concat is plain.
    """
    service = InstrumentingMiddleware(LoggingMiddleware(ConcatTransform(AddService(), uppercase)))
    return _definition(service, endpoint_middlewares)


def addsvc_client_definition() -> ServiceDef:
    """addsvc's routes for clients (`lokit call`): the same paths and codecs, no middlewares.

    A client uses a route's path and codec (encode_request / decode_response);
    the local endpoints behind these routes are the bare service and go unused.
    """
    return _definition(AddService())


def _definition(service: object, middlewares: tuple[Middleware, ...] = ()) -> ServiceDef:
    """`pb.Add` with go-kit's protobuf codecs over gRPC, derived JSON over HTTP."""
    methods = describe(service, middlewares=middlewares)
    return ServiceDef(
        name="addsvc",
        grpc=grpc_routes(GRPC_SERVICE, methods, codecs=pb_codecs(methods)),
        http=http_routes(methods),
        grpc_services=[GRPC_SERVICE],
    )
