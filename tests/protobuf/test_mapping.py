"""Protobuf from type hints: each mapped type, numbering, pins, refusals, codec round trips."""

from __future__ import annotations

import datetime
import typing
from typing import Annotated, Any, Protocol

import msgspec
import pytest
from google.protobuf.descriptor import FieldDescriptor as FD

import lokit
from lokit.errors import InvalidArgument
from lokit.protobuf import ProtoCodec, Schema, SchemaError, schema_of
from tests.protobuf.services import Everything, Kitchen, everything

KITCHEN = lokit.contract("kitchen", Kitchen)


class Pinned(msgspec.Struct):
    a: int
    b: Annotated[str, lokit.field(2)]  # the unpinned skip it: c is 3
    c: bool
    d: Annotated[float, lokit.field(10)]
    e: int


class P(Protocol):
    async def f(self, p: Pinned) -> Pinned: ...


class Params(Protocol):
    async def f(self, a: int, b: Annotated[int, lokit.field(7)]) -> int: ...


class Holder(msgspec.Struct):
    ok: int
    when: datetime.date


class Svc(Protocol):
    async def f(self, h: Holder) -> int: ...


class Twice(msgspec.Struct):
    a: Annotated[int, lokit.field(3)]
    b: Annotated[int, lokit.field(3)]


class A(Protocol):
    async def f(self, t: Twice) -> int: ...


class FRequest(msgspec.Struct):  # the name of B.f's own request message
    x: int


class B(Protocol):
    async def f(self, x: int) -> FRequest: ...


class Limited(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(description="What it is called.", max_length=5)]
    n: Annotated[int, msgspec.Meta(ge=0)] = 0


class L(Protocol):
    async def add(self, item: Limited) -> int: ...

    async def take(self, n: Annotated[int, msgspec.Meta(ge=1)]) -> int: ...


def schema() -> Schema:
    s = schema_of(KITCHEN)
    assert s is not None
    return s


def fields(message: str) -> dict[str, Any]:
    desc = schema().pool.FindMessageTypeByName(f"kitchen.v1.{message}")
    return {f.name: f for f in desc.fields}


def test_schema_names_and_file() -> None:
    s = schema()
    assert s.service_name == "kitchen.v1.Kitchen"
    assert s.file_proto.package == "kitchen.v1"
    assert s.file_proto.name == "kitchen/v1/kitchen.proto"
    assert s.file is s.pool.FindFileByName("kitchen/v1/kitchen.proto")
    assert KITCHEN.grpc_files == (s.file,)
    service = s.file.services_by_name["Kitchen"]
    shapes = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert shapes == {
        "Echo": (False, False),
        "Greet": (False, False),
        "Countdown": (False, True),
        "Total": (True, False),
        "Shout": (True, True),
        "Nothing": (False, False),
        "Maybe": (False, False),
    }
    greet = service.methods_by_name["Greet"]
    assert (greet.input_type.name, greet.output_type.name) == ("GreetRequest", "GreetResponse")
    assert service.methods_by_name["Echo"].input_type.name == "Everything"
    assert service.methods_by_name["Total"].input_type.name == "TotalRequest"


def test_each_type_maps() -> None:
    f = fields("Everything")
    scalar = {"s": FD.TYPE_STRING, "i": FD.TYPE_INT64, "f": FD.TYPE_DOUBLE, "b": FD.TYPE_BOOL}
    scalar["raw"] = FD.TYPE_BYTES
    for name, kind in scalar.items():
        assert f[name].type == kind, name
        assert not f[name].has_presence, name  # required: proto3 implicit presence
    assert f["tags"].is_repeated and f["tags"].type == FD.TYPE_STRING
    entry = f["scores"].message_type
    assert entry.GetOptions().map_entry
    assert [x.type for x in entry.fields] == [FD.TYPE_STRING, FD.TYPE_INT64]
    assert f["inner"].message_type.full_name == "kitchen.v1.Inner"
    assert f["inners"].is_repeated
    assert f["by_name"].message_type.fields_by_name["value"].message_type.name == "Inner"
    assert f["color"].enum_type.full_name == "kitchen.v1.Color"
    assert f["colors"].is_repeated and f["colors"].type == FD.TYPE_ENUM
    assert f["at"].message_type.full_name == "google.protobuf.Timestamp"
    assert f["took"].message_type.full_name == "google.protobuf.Duration"
    assert f["box"].message_type.full_name == "kitchen.v1.Box"  # a dataclass
    # `T | None` and defaults are proto3 optional
    for name in ("maybe", "count", "pinned"):
        assert f[name].has_presence, name
    assert "google/protobuf/timestamp.proto" in schema().file_proto.dependency


def test_field_numbers_follow_declaration_order_and_pins() -> None:
    f = fields("Everything")
    names = list(typing.get_type_hints(Everything))
    assert [f[n].number for n in names] == [*range(1, 19), 20]
    assert [f.number for f in fields("GreetRequest").values()] == [1, 2]

    desc = schema_of(lokit.contract("p", P))
    assert desc is not None
    got = {x.name: x.number for x in desc.pool.FindMessageTypeByName("p.v1.Pinned").fields}
    assert got == {"a": 1, "b": 2, "c": 3, "d": 10, "e": 4}

    spread = schema_of(lokit.contract("q", Params))
    assert spread is not None
    req = spread.pool.FindMessageTypeByName("q.v1.FRequest")
    assert {x.name: x.number for x in req.fields} == {"a": 1, "b": 7}


def test_enum_numbers() -> None:
    color = schema().pool.FindEnumTypeByName("kitchen.v1.Color")
    assert [(v.name, v.number) for v in color.values] == [
        ("COLOR_UNSPECIFIED", 0),
        ("COLOR_RED", 1),
        ("COLOR_GREEN", 2),
    ]
    level = schema().pool.FindEnumTypeByName("kitchen.v1.Level")  # int values are kept
    assert [(v.name, v.number) for v in level.values] == [("LEVEL_LOW", 0), ("LEVEL_HIGH", 5)]


def codec(method: str) -> ProtoCodec:
    c = KITCHEN.grpc_route(method).codec
    assert isinstance(c, ProtoCodec)
    return c


def test_round_trip_of_every_type() -> None:
    c = codec("Echo")
    e = everything()
    assert c.decode_request(c.encode_request(e)) == e
    assert c.decode_response(c.encode_response(e)) == e
    # the protobuf bytes are what a generated message class reads
    msg = schema().classes["kitchen.v1.Everything"].FromString(c.encode_request(e))
    assert msg.by_name["k"].label == "v" and msg.took.ToTimedelta() == e.took
    assert msg.pinned == 3 and msg.colors == [1, 2] and msg.level == 5


def test_absent_fields_take_defaults_and_none() -> None:
    greet = codec("Greet")
    req = greet.decode_request(b"")
    assert (req.name, req.excited) == ("", False)
    assert greet.decode_response(b"") == ""
    maybe = codec("Maybe")
    assert maybe.decode_request(b"").s is None
    assert maybe.decode_response(maybe.encode_response(None)) is None
    assert maybe.decode_response(maybe.encode_response("")) == ""  # presence: "" is not None
    nothing = codec("Nothing")
    assert nothing.encode_response(None) == b""
    assert nothing.decode_response(b"") is None
    e = everything()
    e.maybe, e.count = None, 7
    echo = codec("Echo")
    back = echo.decode_request(echo.encode_request(e))
    assert back.maybe is None and back.count == 7


def test_stream_items_are_wrapped() -> None:
    assert codec("Countdown").decode_response(codec("Countdown").encode_response(3)) == 3
    total = codec("Total")
    assert total.decode_request(total.encode_request(41)) == 41
    assert codec("Shout").decode_response(codec("Shout").encode_response("HI")) == "HI"


def test_bad_bytes_and_values_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="malformed protobuf: Greet request"):
        codec("Greet").decode_request(b"\xff\xff\xff")
    with pytest.raises(InvalidArgument, match="invalid Echo request"):
        codec("Echo").encode_request(msgspec.structs.replace(everything(), i=2**70))
    # an enum number the Python enum does not have
    cls = schema().classes["kitchen.v1.Everything"]
    data = cls(color=9).SerializeToString()
    with pytest.raises(InvalidArgument, match="'color': 9 is no Color value"):
        codec("Echo").decode_request(data)


class Unmapped:
    pass


@pytest.mark.parametrize(
    ("hint", "sentence"),
    [
        (tuple[int, int], "Bad.f: parameter 'x' has type tuple[int, int], which has no protobuf"),
        (Any, "Bad.f: parameter 'x' has type Any, which has no protobuf form"),
        (int | str, "Bad.f: parameter 'x' has type int | str: a protobuf field holds one type"),
        (list[list[int]], "Bad.f: parameter 'x' has type list[list[int]], which has no protobuf"),
        (set[int], "Bad.f: parameter 'x' has type set[int], which has no protobuf form"),
        (dict[float, int], "Bad.f: parameter 'x' has type dict[float, int]: a protobuf map's"),
        (list[int] | None, "Bad.f: parameter 'x' has type list[int] | None: protobuf cannot"),
        (Unmapped, "Bad.f: parameter 'x' has type Unmapped, which has no protobuf form"),
    ],
)
def test_unmapped_types_are_refused_naming_the_field(hint: Any, sentence: str) -> None:
    async def f(self: Any, x: Any, y: int) -> int:
        raise NotImplementedError

    f.__annotations__ = {"x": hint, "y": int, "return": int}
    bad = type("Bad", (), {"f": f})
    with pytest.raises(SchemaError) as info:
        lokit.contract("bad", bad)
    text = str(info.value)
    assert text.startswith(sentence)
    assert "\n" not in text and text.count(". ") == 0


def test_nested_refusal_names_the_struct_field() -> None:
    with pytest.raises(SchemaError, match=r"^field Holder.when has type date, which has no"):
        lokit.contract("svc", Svc)


def test_clashes_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"field Twice\.b pins protobuf field number 3, which"):
        lokit.contract("a", A)

    with pytest.raises(SchemaError, match="named FRequest, which another type"):
        lokit.contract("b", B)
    with pytest.raises(ValueError, match="out of range"):
        lokit.field(19500)
    with pytest.raises(TypeError):
        lokit.field("3")  # type: ignore[arg-type]


def test_json_codec_has_no_schema() -> None:
    json_contract = lokit.contract("kitchen", Kitchen, codec="json")
    assert schema_of(json_contract) is None
    assert json_contract.grpc_files == ()
    assert json_contract.grpc_route("Greet").codec.encode_response("hi") == b'{"v":"hi"}'
    with pytest.raises(ValueError, match='codec is "protobuf" or "json"'):
        lokit.contract("kitchen", Kitchen, codec="xml")  # type: ignore[arg-type]


def test_explicit_codecs_publish_their_generated_file() -> None:
    from lokit.examples.addsvc.contract import addsvc_contract
    from lokit.logsvc.contract import log_contract
    from lokit.proto import addsvc_pb2, log_pb2

    assert schema_of(addsvc_contract()) is None
    assert addsvc_contract().grpc_files == (addsvc_pb2.DESCRIPTOR,)
    assert log_contract().grpc_files == (log_pb2.DESCRIPTOR,)


def test_import_lokit_loads_no_protobuf_runtime() -> None:
    import subprocess
    import sys

    code = "import sys, lokit; lokit.field(3); print('google.protobuf' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_msgspec_constraints_hold_and_descriptions_become_comments() -> None:
    c = lokit.contract("l", L)
    assert c.schema is not None
    assert "  // What it is called.\n  string name = 1;" in c.schema.proto_text()
    add = c.grpc_route("Add").codec
    assert add.decode_request(add.encode_request(Limited("ab", 3))) == Limited("ab", 3)
    with pytest.raises(InvalidArgument, match=r"invalid request: Expected `str` of length <= 5"):
        add.decode_request(add.encode_request(Limited("too long")))
    take = c.grpc_route("Take").codec
    with pytest.raises(InvalidArgument, match=r"Expected `int` >= 1 - at `\$.n`"):
        take.decode_request(take.encode_request(c.methods["Take"].request_type(0)))
