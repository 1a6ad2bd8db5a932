"""The services `lokit serve` and `lokit call` know, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lokit.routes import ServiceDef


@dataclass(frozen=True)
class Entry:
    """How to build a service for serving, and its routes for calling it."""

    build: Callable[..., ServiceDef]
    client: Callable[[], ServiceDef]


def _addsvc(stringsvc: str | None = None, **_: Any) -> ServiceDef:
    from lokit.examples.addsvc.definition import addsvc_definition

    if not stringsvc:
        return addsvc_definition()
    from lokit.examples.stringsvc.service import StringService
    from lokit.proxy import proxy
    from lokit.transport.grpc.client import GrpcClient

    client = GrpcClient(stringsvc, timeout=2.0, name="stringsvc")
    remote = proxy(StringService, client.endpoints(_stringsvc_client().grpc))
    definition = addsvc_definition(uppercase=remote.uppercase)
    definition.on_stop.append(client.close)
    return definition


def _addsvc_client() -> ServiceDef:
    from lokit.examples.addsvc.definition import addsvc_client_definition

    return addsvc_client_definition()


def _stringsvc(**_: Any) -> ServiceDef:
    from lokit.examples.stringsvc.definition import stringsvc_definition

    return stringsvc_definition()


def _stringsvc_client() -> ServiceDef:
    from lokit.examples.stringsvc.definition import stringsvc_client_definition

    return stringsvc_client_definition()


CATALOG: dict[str, Entry] = {
    "addsvc": Entry(_addsvc, _addsvc_client),
    "stringsvc": Entry(_stringsvc, _stringsvc_client),
}
