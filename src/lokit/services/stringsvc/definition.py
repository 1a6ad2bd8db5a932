"""stringsvc's wiring: service + service middlewares -> endpoints -> gRPC and HTTP routes."""

from __future__ import annotations

from lokit.endpoint import Middleware
from lokit.routes import ServiceDef, grpc_routes, http_routes
from lokit.service import describe
from lokit.services.stringsvc.middleware import InstrumentingMiddleware, LoggingMiddleware
from lokit.services.stringsvc.service import StringService

GRPC_SERVICE = "stringsvc.v1.StringService"


def stringsvc_definition(endpoint_middlewares: tuple[Middleware, ...] = ()) -> ServiceDef:
    """stringsvc ready to serve: derived JSON over gRPC and `POST /uppercase`, `POST /count`."""
    service = InstrumentingMiddleware(LoggingMiddleware(StringService()))
    methods = describe(service, middlewares=endpoint_middlewares)
    return ServiceDef(
        name="stringsvc",
        grpc=grpc_routes(GRPC_SERVICE, methods),
        http=http_routes(methods),
        grpc_services=[GRPC_SERVICE],
    )


def stringsvc_client_definition() -> ServiceDef:
    """stringsvc's routes for clients: the same paths and codecs over the bare service."""
    methods = describe(StringService())
    return ServiceDef(
        name="stringsvc",
        grpc=grpc_routes(GRPC_SERVICE, methods),
        http=http_routes(methods),
        grpc_services=[GRPC_SERVICE],
    )
