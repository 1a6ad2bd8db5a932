"""Explicit protobuf codecs for `pb.Add`, wire-compatible with go-kit's addsvc.

A request decodes into the derived request struct the endpoint expects; a
result encodes into the reply's `v`. An addsvc business error travels inside
the reply's `err` string with status OK, as Go kit does (so it never trips a
client's circuit breaker); every other error becomes a real gRPC status. On
the client side a non-empty `err` is raised again as the same business
exception, matched by message (Go kit's str2err).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from lokit.endpoint import Method
from lokit.errors import Error, InvalidArgument, Unknown
from lokit.examples.addsvc.service import AddServiceError, error_from_message
from lokit.proto import addsvc_pb2

# RPC method name -> (request message, reply message).
MESSAGES: dict[str, tuple[Any, Any]] = {
    "Sum": (addsvc_pb2.SumRequest, addsvc_pb2.SumReply),
    "Concat": (addsvc_pb2.ConcatRequest, addsvc_pb2.ConcatReply),
    "Mult": (addsvc_pb2.MultRequest, addsvc_pb2.MultReply),
}


class PbCodec:
    """The codec of one `pb.Add` method: `{a, b}` request, `{v, err}` reply."""

    __slots__ = ("_make", "_name", "_reply", "_request")

    def __init__(self, method: Method) -> None:
        if method.name not in MESSAGES:
            raise ValueError(f"pb.Add has no method {method.name!r}")
        self._name = method.name
        self._request, self._reply = MESSAGES[method.name]
        self._make = method.request_type

    def decode_request(self, data: bytes) -> Any:
        try:
            msg = self._request.FromString(data)
        except DecodeError as e:
            raise InvalidArgument(f"malformed {self._name} request: {e}") from None
        return self._make(msg.a, msg.b)

    def encode_request(self, request: Any) -> bytes:
        try:
            data: bytes = self._request(a=request.a, b=request.b).SerializeToString()
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"invalid {self._name} request: {e}") from None
        return data

    def encode_response(self, response: Any) -> bytes:
        data: bytes = self._reply(v=response).SerializeToString()
        return data

    def decode_response(self, data: bytes) -> Any:
        try:
            reply = self._reply.FromString(data)
        except DecodeError as e:
            raise Unknown(f"undecodable {self._name} reply: {e}") from None
        if reply.err:
            raise error_from_message(reply.err)
        return reply.v

    def encode_error(self, error: Error) -> bytes | None:
        """A reply carrying an addsvc business error; None for any other error."""
        if isinstance(error, AddServiceError):
            data: bytes = self._reply(err=error.message).SerializeToString()
            return data
        return None
