"""`ProtoCodec`: one derived method's messages as protobuf bytes, from and to lokit's values.

Flat messages (singular scalars only, the Greeter kind) go through a small
pure-Python wire codec first, which hands anything unusual to upb
(`lokit.protobuf.flat`). The values are the ones `JsonCodec` gives endpoints
(the request Struct built from parameters, a plain value for a wrapped
response), so a service sees no
difference between the two codecs. Business errors travel as a gRPC status with
the `lokit-error` trailer, as with JSON (`encode_error` gives None).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from lokit.endpoint import Method
from lokit.errors import Error, InvalidArgument, Unknown
from lokit.protobuf.convert import defaults
from lokit.protobuf.flat import Fallback, Flat, flat
from lokit.protobuf.schema import Schema

__all__ = ["ProtoCodec"]

_UNENCODABLE = (TypeError, ValueError, KeyError, AttributeError, OverflowError)


class ProtoCodec:
    """The protobuf codec of one method of a derived service (see `Schema`)."""

    __slots__ = (
        "_name",
        "_req_flat",
        "_req_from",
        "_req_parse",
        "_req_to",
        "_resp_flat",
        "_resp_from",
        "_resp_parse",
        "_resp_to",
    )

    def __init__(self, method: Method, schema: Schema) -> None:
        req, resp = schema.messages(method.name)
        conv = schema.converters
        self._name = method.name
        self._req_parse = schema.classes[req].FromString
        self._req_to = conv.to_msg[req]
        self._req_from = conv.from_msg[req]
        self._resp_parse = schema.classes[resp].FromString
        self._resp_to = conv.to_msg[resp]
        self._resp_from = conv.from_msg[resp]
        self._req_flat = _flat(schema, req)
        self._resp_flat = _flat(schema, resp)

    def decode_request(self, data: bytes) -> Any:
        if self._req_flat is not None:
            try:
                return self._req_flat.decode(data)
            except Fallback:
                pass
        try:
            msg = self._req_parse(data)
        except DecodeError as e:
            raise InvalidArgument(f"malformed protobuf: {self._name} request: {e}") from None
        return self._req_from(msg)

    def encode_request(self, request: Any) -> bytes:
        if self._req_flat is not None:
            out = self._req_flat.encode(request)
            if out is not None:
                return out
        try:
            data: bytes = self._req_to(request).SerializeToString()
        except _UNENCODABLE as e:
            raise InvalidArgument(f"invalid {self._name} request: {e}") from None
        return data

    def encode_response(self, response: Any) -> bytes:
        if self._resp_flat is not None:
            out = self._resp_flat.encode(response)
            if out is not None:
                return out
        data: bytes = self._resp_to(response).SerializeToString()
        return data

    def decode_response(self, data: bytes) -> Any:
        if self._resp_flat is not None:
            try:
                return self._resp_flat.decode(data)
            except Fallback:
                pass
        try:
            return self._resp_from(self._resp_parse(data))
        except DecodeError as e:
            raise Unknown(f"undecodable {self._name} response: {e}") from None
        except InvalidArgument as e:
            raise Unknown(f"undecodable {self._name} response: {e.message}") from None

    def encode_error(self, error: Error) -> bytes | None:
        return None


def _flat(schema: Schema, full_name: str) -> Flat | None:
    """The pure-Python wire codec of a flat message (see `lokit.protobuf.flat`), else None."""
    plan = schema.plans[full_name]
    return flat(plan, defaults(plan.py_type) if plan.py_type is not None else {})
