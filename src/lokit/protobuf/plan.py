"""From type hints to protobuf descriptors: the mapping, field numbering and refusals.

`build` walks a service's methods (their request and response types, nested
Structs, dataclasses and enums) into one `FileDescriptorProto` and a plan per
message, which `lokit.protobuf.convert` turns into fast converters. A type with
no protobuf form is refused here, when the contract is made, in one sentence
naming the field.

Mapping: str→string, int→int64, float→double, bool→bool, bytes→bytes,
list[T]→repeated T, dict[str, T]→map<string, T>, `T | None` or a default→proto3
`optional`, enum.Enum→enum, datetime→google.protobuf.Timestamp,
timedelta→google.protobuf.Duration, msgspec.Struct or dataclass→message.
Field numbers follow declaration order (1, 2, 3... over the unpinned fields,
skipping pinned numbers); `Annotated[T, lokit.field(n)]` pins one.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from google.protobuf import descriptor_pb2

from lokit.derive import is_record_type
from lokit.endpoint import Method
from lokit.protobuf.numbers import FieldNumber

__all__ = ["FieldPlan", "MessagePlan", "SchemaError", "build", "is_message_type"]

FDP = descriptor_pb2.FieldDescriptorProto

SCALARS: dict[Any, int] = {
    str: FDP.TYPE_STRING,
    int: FDP.TYPE_INT64,
    float: FDP.TYPE_DOUBLE,
    bool: FDP.TYPE_BOOL,
    bytes: FDP.TYPE_BYTES,
}
WELL_KNOWN: dict[Any, tuple[str, str]] = {
    datetime.datetime: ("timestamp", "google/protobuf/timestamp.proto"),
    datetime.timedelta: ("duration", "google/protobuf/duration.proto"),
}
WKT_NAMES = {"timestamp": "google.protobuf.Timestamp", "duration": "google.protobuf.Duration"}
MAP_KEYS: dict[Any, int] = {str: FDP.TYPE_STRING, int: FDP.TYPE_INT64, bool: FDP.TYPE_BOOL}

MAPPABLE = (
    "str, int, float, bool, bytes, list[T], dict[str, T], T | None, an enum.Enum, "
    "datetime, timedelta, a msgspec.Struct or a dataclass"
)


class SchemaError(TypeError):
    """A type hint with no protobuf form, or numbers that clash; the message is one sentence."""


@dataclass
class FieldPlan:
    """One field of a message: how its Python value and its protobuf value relate."""

    name: str
    number: int
    shape: str  # "scalar", "enum", "message", "timestamp", "duration"
    element: Any  # the scalar type, enum class or message type of one element
    container: str | None = None  # None, "list" or "map"
    presence: bool = False  # absence is seen (HasField): proto3 optional or a message
    has_default: bool = False  # absent: the Python type's own default applies
    nullable: bool = False  # `T | None`: None is not sent
    element_name: str = ""  # full protobuf name of an enum or message element


@dataclass
class MessagePlan:
    """One message: a Struct or dataclass (`py_type`), or a wrapper holding a plain value in `v`."""

    full_name: str
    py_type: Any = None
    fields: list[FieldPlan] = field(default_factory=list)
    wrapper: bool = False
    validate: bool = False  # a field has msgspec.Meta constraints: decode through msgspec


@dataclass
class EnumPlan:
    full_name: str
    numbers: dict[Any, int]


def is_message_type(tp: Any) -> bool:
    """True for the types that become a message of their own (msgspec.Struct, dataclass)."""
    return isinstance(tp, type) and (issubclass(tp, msgspec.Struct) or dataclasses.is_dataclass(tp))


def _in(tp: type) -> Callable[[str], str]:
    """How a refusal names a field of `tp`: `field Point.x`."""
    return lambda name: f"field {tp.__name__}.{name}"


def _show(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "")


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p)


def _pinned(hint: Any) -> tuple[Any, int | None]:
    """The hint without `Annotated`, and the number `lokit.field` pins in it."""
    number = None
    while typing.get_origin(hint) is typing.Annotated:
        for meta in hint.__metadata__:
            if isinstance(meta, FieldNumber):
                number = meta.number
        hint = hint.__origin__
    return hint, number


_CONSTRAINTS = (
    "gt", "ge", "lt", "le", "multiple_of", "pattern", "min_length", "max_length", "tz",
)  # fmt: skip


def _meta(hint: Any) -> tuple[str, bool]:
    """A hint's `msgspec.Meta` description, and whether it carries constraints (anywhere in it)."""
    described = ""
    constrained = False
    stack = [hint]
    while stack:
        tp = stack.pop()
        if typing.get_origin(tp) is typing.Annotated:
            for meta in tp.__metadata__:
                if isinstance(meta, msgspec.Meta):
                    described = described or (meta.description or "")
                    constrained = constrained or any(
                        getattr(meta, c) is not None for c in _CONSTRAINTS
                    )
            stack.append(tp.__origin__)
        else:
            stack.extend(typing.get_args(tp))
    return described, constrained


def _record_fields(tp: type) -> Iterator[tuple[str, Any, bool]]:
    """(name, hint, has a default) of a Struct's or dataclass's fields, in declaration order."""
    hints = typing.get_type_hints(tp, include_extras=True)
    if issubclass(tp, msgspec.Struct):
        for f in msgspec.structs.fields(tp):
            yield f.name, hints.get(f.name, f.type), f.required is False
    else:
        for d in dataclasses.fields(typing.cast(Any, tp)):
            if not d.init:
                continue
            defaulted = (
                d.default is not dataclasses.MISSING or d.default_factory is not dataclasses.MISSING
            )
            yield d.name, hints.get(d.name, d.type), defaulted


class _Builder:
    """Builds one file's messages and enums, once per Python type."""

    def __init__(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self.file = file
        self.package = file.package
        self.messages: dict[Any, MessagePlan] = {}
        self.enums: dict[Any, EnumPlan] = {}
        self.names: dict[str, Any] = {}
        self.deps: set[str] = set()
        self.docs: dict[str, str] = {}

    def full(self, name: str) -> str:
        return f"{self.package}.{name}" if self.package else name

    def claim(self, name: str, owner: Any, where: str) -> None:
        held = self.names.get(name)
        if held is not None and held != owner:
            raise SchemaError(
                f"{where} needs a protobuf message or enum named {name}, "
                "which another type of this service already uses: rename one of them"
            )
        self.names[name] = owner

    # Messages -----------------------------------------------------------------

    def record(self, tp: type, label: Callable[[str], str], where: str) -> MessagePlan:
        """The message of a Struct or dataclass (built once; recursive types are fine)."""
        plan = self.messages.get(tp)
        if plan is not None:
            return plan
        name = tp.__name__
        self.claim(name, tp, where)
        plan = MessagePlan(self.full(name), py_type=tp)
        self.messages[tp] = plan
        desc = self.file.message_type.add(name=name)
        doc = _own_doc(tp)
        if doc:
            self.docs[plan.full_name] = doc
        entries = [(n, h, _pinned(h)[1], d) for n, h, d in _record_fields(tp)]
        numbers = _numbers([(label(n), pin) for n, _, pin, _ in entries])
        for (fname, hint, _, defaulted), number in zip(entries, numbers, strict=True):
            plan.fields.append(
                self.field(desc, plan.full_name, fname, hint, number, defaulted, label(fname))
            )
            described, constrained = _meta(hint)
            if described:
                self.docs[f"{plan.full_name}.{fname}"] = described
            plan.validate = plan.validate or constrained
        return plan

    def wrapper(self, name: str, tp: Any, where: str) -> MessagePlan:
        """`<Method>Request` / `<Method>Response` holding a plain value in field `v` = 1."""
        self.claim(name, ("wrapper", name), where)
        plan = MessagePlan(self.full(name), wrapper=True)
        desc = self.file.message_type.add(name=name)
        hint, pin = _pinned(tp)
        if hint is not type(None) and hint is not None:
            plan.fields.append(self.field(desc, plan.full_name, "v", hint, pin or 1, False, where))
        return plan

    def field(
        self,
        desc: descriptor_pb2.DescriptorProto,
        owner: str,
        name: str,
        hint: Any,
        number: int,
        defaulted: bool,
        where: str,
    ) -> FieldPlan:
        tp, nullable = _strip_none(hint, where)
        fd = desc.field.add(name=name, number=number, json_name=_json_name(name))
        origin = typing.get_origin(tp)
        if origin is list:
            if nullable:
                raise SchemaError(
                    f"{where} has type {_show(hint)}: protobuf cannot tell None from an empty "
                    "list, so give it a default instead of None"
                )
            (item,) = typing.get_args(tp) or (Any,)
            shape, elem, elem_name = self.element(item, where, hint)
            fd.label = FDP.LABEL_REPEATED
            self.set_type(fd, shape, elem, elem_name)
            return FieldPlan(name, number, shape, elem, "list", element_name=elem_name)
        if origin is dict:
            if nullable:
                raise SchemaError(
                    f"{where} has type {_show(hint)}: protobuf cannot tell None from an empty "
                    "map, so give it a default instead of None"
                )
            key, value = typing.get_args(tp) or (Any, Any)
            if key not in MAP_KEYS:
                raise SchemaError(
                    f"{where} has type {_show(hint)}: a protobuf map's keys are str, int or bool"
                )
            shape, elem, elem_name = self.element(value, where, hint)
            entry = desc.nested_type.add(name=_camel(name) + "Entry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, label=FDP.LABEL_OPTIONAL, type=MAP_KEYS[key])
            vd = entry.field.add(name="value", number=2, label=FDP.LABEL_OPTIONAL)
            self.set_type(vd, shape, elem, elem_name)
            fd.label = FDP.LABEL_REPEATED
            fd.type = FDP.TYPE_MESSAGE
            fd.type_name = f".{owner}.{entry.name}"
            return FieldPlan(name, number, shape, elem, "map", element_name=elem_name)
        shape, elem, elem_name = self.element(tp, where, hint)
        fd.label = FDP.LABEL_OPTIONAL
        self.set_type(fd, shape, elem, elem_name)
        presence = shape not in ("scalar", "enum")
        if shape in ("scalar", "enum") and (nullable or defaulted):
            fd.proto3_optional = True
            fd.oneof_index = len(desc.oneof_decl)
            desc.oneof_decl.add(name=f"_{name}")
            presence = True
        return FieldPlan(
            name,
            number,
            shape,
            elem,
            presence=presence and (nullable or defaulted),
            has_default=defaulted,
            nullable=nullable,
            element_name=elem_name,
        )

    def set_type(self, fd: Any, shape: str, elem: Any, elem_name: str) -> None:
        if shape == "scalar":
            fd.type = SCALARS[elem]
        elif shape == "enum":
            fd.type = FDP.TYPE_ENUM
            fd.type_name = "." + elem_name
        else:
            fd.type = FDP.TYPE_MESSAGE
            fd.type_name = "." + elem_name

    def element(self, tp: Any, where: str, hint: Any) -> tuple[str, Any, str]:
        """(shape, element type, full protobuf name) of one value of type `tp`."""
        tp, _ = _pinned(tp)
        if tp in SCALARS:
            return "scalar", tp, ""
        if tp in WELL_KNOWN:
            shape, dep = WELL_KNOWN[tp]
            self.deps.add(dep)
            return shape, tp, WKT_NAMES[shape]
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return "enum", tp, self.enum(tp, where).full_name
        if is_message_type(tp):
            plan = self.record(tp, _in(tp), where)
            return "message", tp, plan.full_name
        raise SchemaError(
            f"{where} has type {_show(hint)}, which has no protobuf form "
            f'(use {MAPPABLE}, or keep JSON on gRPC with codec="json")'
        )

    def enum(self, tp: type[enum.Enum], where: str) -> EnumPlan:
        plan = self.enums.get(tp)
        if plan is not None:
            return plan
        self.claim(tp.__name__, tp, where)
        members = list(tp)
        if not members:
            raise SchemaError(f"{where} has type {tp.__name__}, an enum without members")
        values = [m.value for m in members]
        if all(
            isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31 for v in values
        ):
            numbers = {m: int(m.value) for m in members}
        else:
            numbers = {m: i for i, m in enumerate(members, 1)}
        prefix = _upper_snake(tp.__name__)
        ed = self.file.enum_type.add(name=tp.__name__)
        if 0 not in numbers.values():
            ed.value.add(name=f"{prefix}_UNSPECIFIED", number=0)
        for m, n in sorted(numbers.items(), key=lambda kv: kv[1] != 0):
            ed.value.add(name=f"{prefix}_{_upper_snake(m.name)}", number=n)
        plan = EnumPlan(self.full(tp.__name__), numbers)
        self.enums[tp] = plan
        doc = _own_doc(tp)
        if doc:
            self.docs[plan.full_name] = doc
        return plan


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _own_doc(tp: type) -> str:
    """A class's own docstring (not a dataclass's generated signature, not an Enum's default)."""
    doc = tp.__dict__.get("__doc__") or ""
    if not doc or doc.startswith(tp.__name__ + "(") or doc == "An enumeration.":
        return ""
    return inspect.cleandoc(doc)


def _strip_none(hint: Any, where: str) -> tuple[Any, bool]:
    """(the type without None, whether None was allowed); a union of two real types is refused."""
    tp, _ = _pinned(hint)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise SchemaError(
                f"{where} has type {_show(hint)}: a protobuf field holds one type "
                "(only T | None is allowed)"
            )
        return args[0], True
    return tp, False


def _numbers(entries: list[tuple[str, int | None]]) -> list[int]:
    """Field numbers: pinned ones as given; the others 1, 2, 3... in declaration order,
    skipping the numbers that are pinned. Two pins on one number are refused."""
    pinned: dict[int, str] = {}
    for where, pin in entries:
        if pin is not None:
            if pin in pinned:
                raise SchemaError(
                    f"{where} pins protobuf field number {pin}, which {pinned[pin]} "
                    "already pins: give one of them another number"
                )
            pinned[pin] = where
    out: list[int] = []
    auto = 0
    for _, pin in entries:
        if pin is None:
            auto += 1
            while auto in pinned:
                auto += 1
            out.append(auto)
        else:
            out.append(pin)
    return out


@dataclass
class Built:
    """What `build` returns: the file, the plans of every method's messages, comments."""

    file: descriptor_pb2.FileDescriptorProto
    methods: dict[str, tuple[MessagePlan, MessagePlan]]
    messages: dict[str, MessagePlan]
    enums: dict[str, EnumPlan]
    docs: dict[str, str]


def build(name: str, service_name: str, methods: list[Method], interface: Any = None) -> Built:
    """The file `<package>/<name>.proto` describing `service_name` and its methods' messages."""
    package, _, short = service_name.rpartition(".")
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}/{name}.proto" if package else f"{name}.proto",
        package=package,
        syntax="proto3",
    )
    b = _Builder(file)
    owner = getattr(interface, "__name__", short)
    service = file.service.add(name=short)
    if interface is not None:
        doc = _own_doc(interface)
        if doc:
            b.docs[service_name] = doc
    plans: dict[str, tuple[MessagePlan, MessagePlan]] = {}
    for m in methods:
        at = f"{owner}.{m.py_name or m.name}"
        req = _request(b, m, at)
        resp = _response(b, m, at)
        plans[m.name] = (req, resp)
        service.method.add(
            name=m.name,
            input_type="." + req.full_name,
            output_type="." + resp.full_name,
            client_streaming=m.kind.streams_requests,
            server_streaming=m.kind.streams_responses,
        )
        if m.doc:
            b.docs[f"{service_name}.{m.name}"] = m.doc
    file.dependency.extend(sorted(b.deps))
    return Built(
        file,
        plans,
        {p.full_name: p for p in b.messages.values()},
        {p.full_name: p for p in b.enums.values()},
        b.docs,
    )


def _request(b: _Builder, m: Method, at: str) -> MessagePlan:
    tp = m.request_type
    if m.spread:
        plan = b.record(tp, lambda n: f"{at}: parameter {n!r}", at)
        b.docs.setdefault(plan.full_name, f"The parameters of {m.name}.")
        return plan
    if is_message_type(tp):
        return b.record(tp, _in(tp), at)
    if is_record_type(tp):
        raise SchemaError(
            f"{at}: the request type {_show(tp)} has no protobuf form "
            "(use a msgspec.Struct or a dataclass)"
        )
    what = "the request stream's item" if m.kind.streams_requests else "the request"
    plan = b.wrapper(f"{m.name}Request", tp, f"{at}: {what}")
    b.docs.setdefault(plan.full_name, f"The request of {m.name}, in `v`.")
    return plan


def _response(b: _Builder, m: Method, at: str) -> MessagePlan:
    tp = m.response_type
    what = "the response stream's item" if m.kind.streams_responses else "the return type"
    if not m.wrap_response and is_message_type(tp):
        return b.record(tp, _in(tp), f"{at}: {what}")
    if not m.wrap_response:
        raise SchemaError(
            f"{at}: {what} {_show(tp)} has no protobuf form (use a msgspec.Struct or a dataclass)"
        )
    plan = b.wrapper(f"{m.name}Response", tp, f"{at}: {what}")
    b.docs.setdefault(
        plan.full_name,
        f"The result of {m.name}, in `v`." if plan.fields else f"The (empty) result of {m.name}.",
    )
    return plan
