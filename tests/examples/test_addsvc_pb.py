"""addsvc's protobuf codecs and the wire contract of the generated `pb.Add` code."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor

from lokit.derive import describe
from lokit.errors import DeadlineExceeded, Internal, InvalidArgument, Unavailable, Unknown
from lokit.examples.addsvc.pb import PbCodec
from lokit.examples.addsvc.service import (
    AddService,
    IntOverflowError,
    MaxSizeExceededError,
    NonFiniteError,
    TeapotError,
    TwoZeroesError,
)
from lokit.proto import addsvc_pb2

METHODS = {m.name: m for m in describe(AddService())}
CODECS = {name: PbCodec(m) for name, m in METHODS.items()}


def test_one_codec_per_method() -> None:
    assert sorted(CODECS) == ["Concat", "Mult", "Sum"]
    assert all(isinstance(c, PbCodec) for c in CODECS.values())


@pytest.mark.parametrize(
    ("name", "a", "b", "v"),
    [
        ("Sum", 1, -2, -1),
        ("Sum", 2**40, 2**41, 2**40),
        ("Concat", "ab", "é", "abé"),
        ("Mult", 2.5, -4.0, -10.0),
    ],
)
def test_round_trip(name: str, a: object, b: object, v: object) -> None:
    codec, method = CODECS[name], METHODS[name]
    req = method.request_type(a=a, b=b)
    decoded = codec.decode_request(codec.encode_request(req))
    assert isinstance(decoded, method.request_type) and (decoded.a, decoded.b) == (a, b)
    assert codec.decode_response(codec.encode_response(v)) == v


def test_request_bytes_are_go_kit_messages() -> None:
    req = METHODS["Sum"].request_type(a=1, b=2)
    assert CODECS["Sum"].encode_request(req) == addsvc_pb2.SumRequest(a=1, b=2).SerializeToString()
    reply = addsvc_pb2.ConcatReply.FromString(CODECS["Concat"].encode_response("xy"))
    assert (reply.v, reply.err) == ("xy", "")
    empty = CODECS["Sum"].decode_request(b"")  # proto3 defaults
    assert (empty.a, empty.b) == (0, 0)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("Sum", TwoZeroesError()),
        ("Sum", IntOverflowError()),
        ("Concat", MaxSizeExceededError()),
        ("Concat", TeapotError()),
        ("Mult", NonFiniteError()),
    ],
)
def test_business_error_travels_in_err(name: str, error: Exception) -> None:
    codec = CODECS[name]
    data = codec.encode_error(error)  # type: ignore[arg-type]
    assert data is not None
    reply = getattr(addsvc_pb2, name + "Reply").FromString(data)
    assert reply.err == str(error) and not reply.v
    with pytest.raises(type(error)) as e:
        codec.decode_response(data)
    assert e.value.message == str(error)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "error",
    [Unavailable("down"), DeadlineExceeded("late"), InvalidArgument("bad"), Internal("boom")],
)
def test_other_errors_become_statuses(error: Exception) -> None:
    for codec in CODECS.values():
        assert codec.encode_error(error) is None  # type: ignore[arg-type]


def test_unknown_err_string_is_unknown() -> None:
    data = addsvc_pb2.SumReply(err="something else broke").SerializeToString()
    with pytest.raises(Unknown) as e:
        CODECS["Sum"].decode_response(data)
    assert e.value.message == "something else broke"


def test_malformed_bytes() -> None:
    with pytest.raises(InvalidArgument) as e:
        CODECS["Sum"].decode_request(b"\xff\xff\xff")
    assert "malformed Sum request" in e.value.message
    with pytest.raises(Unknown):
        CODECS["Concat"].decode_response(b"\xff\xff\xff")
    with pytest.raises(InvalidArgument):
        CODECS["Sum"].encode_request(METHODS["Sum"].request_type(a=2**70, b=1))


def test_descriptors_match_go_kit() -> None:
    fd = addsvc_pb2.DESCRIPTOR
    assert fd.package == "pb"
    service = fd.services_by_name["Add"]
    assert service.full_name == "pb.Add"
    rpcs = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods}
    assert rpcs == {
        "Sum": ("pb.SumRequest", "pb.SumReply"),
        "Concat": ("pb.ConcatRequest", "pb.ConcatReply"),
        "Mult": ("pb.MultRequest", "pb.MultReply"),
    }
    types = {
        "Sum": FieldDescriptor.TYPE_INT64,
        "Concat": FieldDescriptor.TYPE_STRING,
        "Mult": FieldDescriptor.TYPE_DOUBLE,
    }
    for name, tp in types.items():
        req = fd.message_types_by_name[name + "Request"]
        assert [(f.name, f.number, f.type) for f in req.fields] == [("a", 1, tp), ("b", 2, tp)]
        rep = fd.message_types_by_name[name + "Reply"]
        assert [(f.name, f.number, f.type) for f in rep.fields] == [
            ("v", 1, tp),
            ("err", 2, FieldDescriptor.TYPE_STRING),
        ]
