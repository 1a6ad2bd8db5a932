"""The services `lokit serve` and `lokit call` know, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lokit.codec import Codec
from lokit.routes import GrpcRoute, HttpRoute, ServiceDef, grpc_routes, http_routes
from lokit.service import describe


@dataclass(frozen=True)
class Entry:
    """How to build a service for serving, and its routes for calling it."""

    build: Callable[..., ServiceDef]
    service_cls: Callable[[], type]
    grpc_name: str
    grpc_codecs: Callable[[], dict[str, Codec]] = dict


def _addsvc(stringsvc: str | None = None, **_: Any) -> ServiceDef:
    from lokit.services.addsvc.definition import addsvc_definition

    if not stringsvc:
        return addsvc_definition()
    from lokit.proxy import proxy
    from lokit.services.stringsvc.service import StringService
    from lokit.transport.grpc.client import GrpcClient

    client = GrpcClient(stringsvc, timeout=2.0, name="stringsvc")
    remote = proxy(StringService, client.endpoints(client_routes("stringsvc")[0]))
    definition = addsvc_definition(uppercase=remote.uppercase)
    definition.on_stop.append(client.close)
    return definition


def _stringsvc(**_: Any) -> ServiceDef:
    from lokit.services.stringsvc.definition import stringsvc_definition

    return stringsvc_definition()


def _addsvc_cls() -> type:
    from lokit.services.addsvc.service import AddService

    return AddService


def _addsvc_codecs() -> dict[str, Codec]:
    from lokit.services.addsvc.pb import CODECS

    return dict(CODECS)


def _stringsvc_cls() -> type:
    from lokit.services.stringsvc.service import StringService

    return StringService


def client_routes(name: str) -> tuple[list[GrpcRoute], list[HttpRoute]]:
    """A service's routes for calling it, without building its server-side middlewares."""
    entry = CATALOG[name]
    service = entry.service_cls()()
    methods = describe(service)
    codecs = entry.grpc_codecs()
    grpc = grpc_routes(entry.grpc_name, methods, codecs)
    return grpc, http_routes(methods)


CATALOG: dict[str, Entry] = {
    "addsvc": Entry(_addsvc, _addsvc_cls, "pb.Add", lambda: _addsvc_codecs()),
    "stringsvc": Entry(_stringsvc, _stringsvc_cls, "stringsvc.v1.StringService"),
}
