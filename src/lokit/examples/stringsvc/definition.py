"""stringsvc's wiring: the service, wrapped in its service middlewares, bound to its contract."""

from __future__ import annotations

from lokit.endpoint import Middleware
from lokit.examples.stringsvc.contract import stringsvc_contract
from lokit.examples.stringsvc.middleware import InstrumentingMiddleware, LoggingMiddleware
from lokit.examples.stringsvc.service import StringService
from lokit.service import ServiceDef, define


def stringsvc_definition(endpoint_middlewares: tuple[Middleware, ...] = ()) -> ServiceDef:
    """stringsvc ready to serve, with its logging and instrumenting service middlewares."""
    service = InstrumentingMiddleware(LoggingMiddleware(StringService()))
    return define(stringsvc_contract(), service, middlewares=endpoint_middlewares)
