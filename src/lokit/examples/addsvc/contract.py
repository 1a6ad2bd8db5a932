"""addsvc's wire contract: go-kit's `pb.Add` (protobuf) on gRPC, derived JSON on HTTP.

The HTTP routes (`POST /sum`, `/concat`, `/mult`) decode request keys
case-insensitively (`JsonCodec(method, fold_case=True)`, the rule is in
`lokit.codec`), as go-kit's addsvc does: its Go client sends untagged struct
fields, `{"A":1,"B":2}`. Replies stay `{"v":3}` and errors `{"error":"..."}`
with a 4xx/5xx status, which go-kit's client reads as `errors.New(r.Status)`.

Kept apart from the wiring so a client (`lokit call addsvc`) loads the codecs
and the interface, not the service middlewares and their logging and metrics.
"""

from __future__ import annotations

from lokit.codec import JsonCodec
from lokit.contract import Contract, contract
from lokit.endpoint import Method
from lokit.examples.addsvc.pb import PbCodec
from lokit.examples.addsvc.service import Service
from lokit.proto import addsvc_pb2

__all__ = ["GRPC_SERVICE", "addsvc_contract"]

GRPC_SERVICE = "pb.Add"


def addsvc_contract() -> Contract[Service]:
    """`pb.Add` with go-kit's protobuf codecs over gRPC, Go-style JSON over HTTP; all idempotent."""
    return contract(
        "addsvc",
        Service,
        grpc_service=GRPC_SERVICE,
        grpc_codecs=PbCodec,
        grpc_file=addsvc_pb2.DESCRIPTOR,
        http_codecs=go_json,
        idempotent=True,
    )


def go_json(method: Method) -> JsonCodec:
    """JSON whose request keys match case-insensitively, as Go's `encoding/json` decodes."""
    return JsonCodec(method, fold_case=True)
