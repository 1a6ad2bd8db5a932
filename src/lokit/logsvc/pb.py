"""Protobuf codecs for `log.v1.Log`, wire-compatible with proglog's `.proto`.

Each codec turns one method's protobuf messages into the service's values
(`messages`) and back, on both sides: the server decodes requests and encodes
responses, a client the other way round. A request that does not parse is an
INVALID_ARGUMENT naming the method.

The conversions are derived, by field name, from `MESSAGES` (each method's
request and response value types) and the protobuf messages of the service's
descriptor, once per process; one value type and one message pair up as:

- where their shapes differ, as an entry in `_OVERRIDES` says (ProduceRequest's
  value travels inside a nested `record`);
- a struct whose every field the message has: field by field, recursing into
  nested and repeated messages (struct fields of struct or `list[struct]` types);
  message fields the struct lacks (Record's Raft `term` and `type`) stay unset;
- `None` and a message without fields (CommitPosition's response);
- any other value and a message of exactly one field: the value is that field
  (`int` and ProduceResponse's `offset`, `Record` and ConsumeResponse's `record`,
  `list[Server]` and GetServersResponse's `servers`).

A pair that fits none of these fails at import, not on the first call. Against
the hand-written converters these replaced, an encode plus decode costs within
0.5 µs either way: less for nested messages, a little more for flat ones.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

import msgspec
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from lokit.codec import Codec
from lokit.errors import Error, InvalidArgument, Unknown
from lokit.logsvc import messages as m
from lokit.proto import log_pb2 as pb

GRPC_SERVICE = "log.v1.Log"
_SERVICE = pb.DESCRIPTOR.services_by_name["Log"]

# RPC method name -> (request value type, response value type). The protobuf
# messages come from the service descriptor (`log.proto`).
MESSAGES: dict[str, tuple[Any, Any]] = {
    "Produce": (m.ProduceRequest, int),
    "ProduceStream": (m.ProduceRequest, int),
    "Consume": (m.ConsumeRequest, m.Record),
    "ConsumeStream": (m.ConsumeRequest, m.Record),
    "GetServers": (m.GetServersRequest, list[m.Server]),
    "ProduceBatch": (m.ProduceBatchRequest, m.Appended),
    "ProduceBatchStream": (m.ProduceBatchRequest, m.Appended),
    "ConsumeBatch": (m.ConsumeBatchRequest, m.RecordBatch),
    "ConsumeBatchStream": (m.ConsumeBatchRequest, m.RecordBatch),
    "CommitPosition": (m.CommitPositionRequest, None),
    "FetchPosition": (m.FetchPositionRequest, m.Position),
    "ListTopics": (m.ListTopicsRequest, m.LogInfo),
}

Encode = Callable[[Any], Message]  # a value -> its protobuf message
Decode = Callable[[Any], Any]  # a protobuf message -> its value


class PbCodec:
    """One method's codec: protobuf bytes <-> the service's request and response values."""

    __slots__ = ("_from_req", "_from_resp", "_name", "_req", "_resp", "_to_req", "_to_resp")

    def __init__(
        self,
        name: str,
        req: Any,
        resp: Any,
        to_req: Decode,
        from_req: Encode,
        to_resp: Decode,
        from_resp: Encode,
    ) -> None:
        self._name = name
        self._req = req.FromString
        self._resp = resp.FromString
        self._to_req = to_req  # protobuf request -> value
        self._from_req = from_req  # value -> protobuf request
        self._to_resp = to_resp  # protobuf response -> value
        self._from_resp = from_resp  # value -> protobuf response

    def decode_request(self, data: bytes) -> Any:
        try:
            msg = self._req(data)
        except DecodeError as e:
            raise InvalidArgument(f"malformed {self._name} request: {e}") from None
        return self._to_req(msg)

    def encode_request(self, request: Any) -> bytes:
        try:
            data: bytes = self._from_req(request).SerializeToString()
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"invalid {self._name} request: {e}") from None
        return data

    def decode_response(self, data: bytes) -> Any:
        try:
            msg = self._resp(data)
        except DecodeError as e:
            raise Unknown(f"undecodable {self._name} response: {e}") from None
        return self._to_resp(msg)

    def encode_response(self, response: Any) -> bytes:
        data: bytes = self._from_resp(response).SerializeToString()
        return data

    def encode_error(self, error: Error) -> bytes | None:
        return None  # every error is a real gRPC status


# --- conversions by field name ---------------------------------------------------------
#
# Encoding builds the keyword arguments of the message's constructor; nested
# messages go in as dicts of their fields (upb builds them in C, faster than a
# nested message built in Python). Decoding reads the struct's fields from the
# message with one attrgetter and builds the struct positionally.

Convert = Callable[[Any], Any]  # one field's value, either way
ToFields = Callable[[Any], dict[str, Any]]  # a value -> its message's constructor arguments

_asdict = msgspec.structs.asdict


def _produce_request_fields(r: m.ProduceRequest) -> dict[str, Any]:
    return {"record": {"value": r.value}, "topic": r.topic}


def _produce_request(msg: Any) -> m.ProduceRequest:
    return m.ProduceRequest(msg.record.value, msg.topic)


# value type -> (value -> message's constructor arguments, message -> value), where
# the shapes differ. Keyed by value type, so Produce and ProduceStream share one.
_OVERRIDES: dict[Any, tuple[ToFields, Decode]] = {
    m.ProduceRequest: (_produce_request_fields, _produce_request),
}


def _same_shape(tp: Any, message: Any) -> bool:
    """True when `tp` is a struct all of whose fields `message` has."""
    return (
        isinstance(tp, type)
        and issubclass(tp, msgspec.Struct)
        and set(tp.__struct_fields__) <= set(message.DESCRIPTOR.fields_by_name)
    )


def _struct(cls: Any, message: Any) -> tuple[ToFields, Decode]:
    """(struct -> message's constructor arguments, message -> struct), field by field."""
    if cls in _OVERRIDES:
        return _OVERRIDES[cls]
    if not _same_shape(cls, message):
        raise TypeError(f"{cls!r} and {message.DESCRIPTOR.full_name} differ in shape")
    names: tuple[str, ...] = cls.__struct_fields__
    hints = typing.get_type_hints(cls)
    fields = message.DESCRIPTOR.fields_by_name
    to_args: list[tuple[str, Convert]] = []
    from_attrs: list[tuple[int, Convert]] = []
    for i, name in enumerate(names):
        to, from_ = _field(hints[name], fields[name])
        if to is not None:
            to_args.append((name, to))
        if from_ is not None:
            from_attrs.append((i, from_))
    return _to_fields(to_args), _from_message(cls, names, from_attrs)


def _field(tp: Any, fd: FieldDescriptor) -> tuple[Convert | None, Convert | None]:
    """How one field's value travels: (to its constructor argument, from the message's
    attribute); None where it is the value itself (a scalar)."""
    if fd.message_type is None:
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            raise TypeError(f"{tp!r} cannot be the scalar field {fd.full_name}")
        return None, (list if fd.is_repeated else None)  # a repeated scalar becomes a list
    message = GetMessageClass(fd.message_type)
    if not fd.is_repeated:
        return _struct(tp, message)
    (item,) = typing.get_args(tp) or (None,)
    to_fields, from_message = _struct(item, message)
    return (
        lambda values: [to_fields(v) for v in values],
        lambda msgs: [from_message(x) for x in msgs],
    )


def _to_fields(converted: list[tuple[str, Convert]]) -> ToFields:
    if not converted:
        return _asdict

    def to_fields(value: Any) -> dict[str, Any]:
        args = _asdict(value)
        for name, convert in converted:
            args[name] = convert(args[name])
        return args

    return to_fields


def _from_message(cls: Any, names: tuple[str, ...], converted: list[tuple[int, Convert]]) -> Decode:
    if not names:
        return lambda _: cls()
    if len(names) == 1:  # attrgetter of one name answers the value, not a tuple
        get = attrgetter(names[0])
        if not converted:
            return lambda msg: cls(get(msg))
        convert = converted[0][1]
        return lambda msg: cls(convert(get(msg)))
    gets = attrgetter(*names)
    if not converted:
        return lambda msg: cls(*gets(msg))

    def from_message(msg: Any) -> Any:
        values = list(gets(msg))
        for i, convert in converted:
            values[i] = convert(values[i])
        return cls(*values)

    return from_message


def _conversion(tp: Any, message: Any) -> tuple[Encode, Decode]:
    """(value -> message, message -> value) for one value type and one message."""
    fields = message.DESCRIPTOR.fields
    if tp is None and not fields:
        return (lambda _: message()), (lambda _: None)
    if tp in _OVERRIDES or _same_shape(tp, message):
        if not tp.__struct_fields__:
            return (lambda _: message()), (lambda _: tp())
        to_fields, from_message = _struct(tp, message)
        return (lambda value: message(**to_fields(value))), from_message
    if len(fields) != 1:
        raise TypeError(f"{tp!r} and {message.DESCRIPTOR.full_name} differ in shape")
    # The value is the message's only field.
    (fd,) = fields
    name = fd.name
    to, from_ = _field(tp, fd)
    get = attrgetter(name)
    encode: Encode
    if to is None:
        encode = lambda value: message(**{name: value})  # noqa: E731
    else:
        encode = lambda value: message(**{name: to(value)})  # noqa: E731
    return encode, (get if from_ is None else lambda msg: from_(get(msg)))


def _codec(name: str) -> PbCodec:
    method = _SERVICE.methods_by_name[name]
    req, resp = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
    req_type, resp_type = MESSAGES[name]
    from_req, to_req = _conversion(req_type, req)
    from_resp, to_resp = _conversion(resp_type, resp)
    return PbCodec(name, req, resp, to_req, from_req, to_resp, from_resp)


_CODECS = {name: _codec(name) for name in MESSAGES}


def codec(name: str) -> PbCodec:
    """The protobuf codec of one `log.v1.Log` method."""
    if name not in MESSAGES:
        raise ValueError(f"log.v1.Log has no method {name!r}")
    return _CODECS[name]


def pb_codecs(names: list[str] | None = None) -> Mapping[str, Codec]:
    """The codec of every (or each named) `log.v1.Log` method, by RPC method name."""
    return {n: codec(n) for n in (names or list(MESSAGES))}
