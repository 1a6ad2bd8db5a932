"""addsvc's wire contract: go-kit's `pb.Add` (protobuf) on gRPC, derived JSON on HTTP.

Kept apart from the wiring so a client (`lokit call addsvc`) loads the codecs
and the interface, not the service middlewares and their logging and metrics.
"""

from __future__ import annotations

from lokit.contract import Contract, contract
from lokit.examples.addsvc.pb import PbCodec
from lokit.examples.addsvc.service import Service
from lokit.proto import addsvc_pb2

__all__ = ["GRPC_SERVICE", "addsvc_contract"]

GRPC_SERVICE = "pb.Add"


def addsvc_contract() -> Contract[Service]:
    """`pb.Add` with go-kit's protobuf codecs over gRPC, derived JSON over HTTP; all idempotent."""
    return contract(
        "addsvc",
        Service,
        grpc_service=GRPC_SERVICE,
        grpc_codecs=PbCodec,
        grpc_file=addsvc_pb2.DESCRIPTOR,
        idempotent=True,
    )
