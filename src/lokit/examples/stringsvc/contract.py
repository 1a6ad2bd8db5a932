"""stringsvc's wire contract: derived JSON on both transports (kept apart from the wiring,
so a client loads no service middlewares)."""

from __future__ import annotations

from lokit.contract import Contract, contract
from lokit.examples.stringsvc.service import Service

__all__ = ["GRPC_SERVICE", "stringsvc_contract"]

GRPC_SERVICE = "stringsvc.v1.StringService"


def stringsvc_contract() -> Contract[Service]:
    """gRPC `stringsvc.v1.StringService`, HTTP `POST /uppercase`, `POST /count`; idempotent."""
    return contract("stringsvc", Service, grpc_service=GRPC_SERVICE, idempotent=True)
