"""stringsvc's wiring: service + service middlewares -> endpoints -> gRPC and HTTP routes."""

from __future__ import annotations

from lokit.app import define
from lokit.endpoint import Middleware
from lokit.examples.stringsvc.middleware import InstrumentingMiddleware, LoggingMiddleware
from lokit.examples.stringsvc.service import StringService
from lokit.routes import ServiceDef

GRPC_SERVICE = "stringsvc.v1.StringService"


def stringsvc_definition(endpoint_middlewares: tuple[Middleware, ...] = ()) -> ServiceDef:
    """stringsvc ready to serve: derived JSON over gRPC and `POST /uppercase`, `POST /count`."""
    service = InstrumentingMiddleware(LoggingMiddleware(StringService()))
    return define("stringsvc", service, grpc_name=GRPC_SERVICE, middlewares=endpoint_middlewares)


def stringsvc_client_definition() -> ServiceDef:
    """stringsvc's routes for clients: the same paths and codecs over the bare service."""
    return define("stringsvc", StringService(), grpc_name=GRPC_SERVICE)
