"""The pure-Python wire codec of flat messages agrees with upb, and defers to it when unsure."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lokit
from lokit.errors import InvalidArgument
from lokit.protobuf import ProtoCodec, Schema
from lokit.protobuf.flat import Fallback, Flat, flat


class Scalars(msgspec.Struct):
    s: str
    b: bytes
    i: int
    ok: bool
    x: float
    maybe: str | None = None
    n: int = 7


class F(Protocol):
    async def echo(self, v: Scalars) -> Scalars: ...

    async def greet(self, name: str, times: int = 3) -> float: ...


CONTRACT = lokit.contract("flat", F)


def _schema() -> Schema:
    schema = CONTRACT.schema
    assert schema is not None
    return schema


SCHEMA = _schema()
UPB = SCHEMA.classes["flat.v1.Scalars"]


def _flat(schema: Schema, name: str) -> Flat:
    from lokit.protobuf.convert import defaults

    plan = schema.plans[name]
    made = flat(plan, defaults(plan.py_type) if plan.py_type else {})
    assert made is not None
    return made


FLAT = _flat(SCHEMA, "flat.v1.Scalars")
INT64 = st.integers(-(2**63), 2**63 - 1)
scalars = st.builds(
    Scalars,
    s=st.text(),
    b=st.binary(),
    i=INT64,
    ok=st.booleans(),
    x=st.floats(allow_nan=False),
    maybe=st.none() | st.text(),
    n=INT64,
)


def _upb_value(data: bytes) -> Scalars:
    """What the upb path of the codec makes of `data`."""
    value: Scalars = SCHEMA.converters.from_msg["flat.v1.Scalars"](UPB.FromString(data))
    return value


@settings(max_examples=300, deadline=None)
@given(scalars)
def test_flat_bytes_are_upbs(value: Scalars) -> None:
    data = FLAT.encode(value)
    assert data is not None
    assert _upb_value(data) == value
    upb = UPB(**{k: v for k, v in msgspec.structs.asdict(value).items() if v is not None})
    assert FLAT.decode(upb.SerializeToString()) == value
    assert data == upb.SerializeToString()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40) | scalars.map(lambda v: FLAT.encode(v) or b""), st.data())
def test_flat_decodes_what_upb_decodes_or_defers(data: bytes, draw: Any) -> None:
    if data and draw.draw(st.booleans()):  # damage a valid message
        at = draw.draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw.draw(st.integers(0, 255))]) + data[at + 1 :]
    try:
        got = FLAT.decode(data)
    except Fallback:
        return
    same = msgspec.msgpack.encode  # NaN is NaN, bit for bit
    assert same(got) == same(_upb_value(data))  # upb accepts it too, with the same value


def test_codec_falls_back_to_upb() -> None:
    codec = CONTRACT.grpc_route("Echo").codec
    assert isinstance(codec, ProtoCodec)
    # an unknown field (number 99) is skipped by upb
    known = FLAT.encode(Scalars("a", b"", 1, True, 0.5))
    assert known is not None
    extra = known + b"\x98\x06\x01"
    assert codec.decode_request(extra) == Scalars("a", b"", 1, True, 0.5)
    with pytest.raises(InvalidArgument, match="malformed protobuf"):
        codec.decode_request(b"\x0a\x02\xff\xfe")  # invalid UTF-8: upb refuses
    with pytest.raises(InvalidArgument, match="invalid Echo request"):
        codec.encode_request(Scalars("a", b"", 2**64, True, 0.5))  # out of int64: upb refuses
    greet = CONTRACT.grpc_route("Greet").codec
    req = CONTRACT.methods["Greet"].request_type
    assert greet.decode_request(greet.encode_request(req("ada"))) == req("ada", 3)
    assert greet.decode_request(b"") == req("", 3)
    assert greet.decode_response(greet.encode_response(-0.0)) == 0.0
    assert greet.encode_response(1) == greet.encode_response(1.0)  # an int for a double: upb
