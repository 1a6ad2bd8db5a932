"""stringsvc's wiring: its contract (derived JSON on both transports) and its ServiceDef."""

from __future__ import annotations

from lokit.contract import Contract, contract
from lokit.endpoint import Middleware
from lokit.examples.stringsvc.middleware import InstrumentingMiddleware, LoggingMiddleware
from lokit.examples.stringsvc.service import Service, StringService
from lokit.service import ServiceDef, define

GRPC_SERVICE = "stringsvc.v1.StringService"


def stringsvc_contract() -> Contract[Service]:
    """gRPC `stringsvc.v1.StringService`, HTTP `POST /uppercase`, `POST /count`; idempotent."""
    return contract("stringsvc", Service, grpc_service=GRPC_SERVICE, idempotent=True)


def stringsvc_definition(endpoint_middlewares: tuple[Middleware, ...] = ()) -> ServiceDef:
    """stringsvc ready to serve, with its logging and instrumenting service middlewares."""
    service = InstrumentingMiddleware(LoggingMiddleware(StringService()))
    return define(stringsvc_contract(), service, middlewares=endpoint_middlewares)
