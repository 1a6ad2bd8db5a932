"""Converters between lokit's Python values and protobuf messages, built once per message.

Each `MessagePlan` becomes a pair of functions: `to_msg(value)` builds the
message from a Struct, a dataclass or (for a wrapper) a plain value, and
`from_msg(message)` builds the value back. Nested messages are looked up by
name when called, so recursive types work. A Struct's or dataclass's pair is
compiled from source made for its fields (as `dataclasses` makes `__init__`):
one constructor call each way, no per-field loop, which halves the codec's
time on small messages.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import msgspec

from lokit.errors import InvalidArgument
from lokit.protobuf.plan import EnumPlan, FieldPlan, MessagePlan

__all__ = ["Converters", "defaults"]

Conv = Callable[[Any], Any]
UTC = datetime.UTC


class Converters:
    """`to_msg` / `from_msg` by message full name, over the message classes of one pool."""

    def __init__(
        self,
        classes: dict[str, Any],
        messages: dict[str, MessagePlan],
        enums: dict[str, EnumPlan],
    ) -> None:
        self.classes = classes
        self.enums = enums
        self.to_msg: dict[str, Conv] = {}
        self.from_msg: dict[str, Conv] = {}
        for plan in messages.values():
            self.add(plan)

    def add(self, plan: MessagePlan) -> None:
        if plan.full_name in self.to_msg:
            return
        cls = self.classes[plan.full_name]
        self.to_msg[plan.full_name] = self._encoder(cls, plan)
        self.from_msg[plan.full_name] = self._decoder(plan)

    # Python -> protobuf --------------------------------------------------------

    def _encoder(self, cls: Any, plan: MessagePlan) -> Conv:
        if plan.wrapper:
            if not plan.fields:
                return lambda value: cls()
            conv = self._encode_field(plan.fields[0])
            if conv is None:
                return lambda value: cls() if value is None else cls(v=value)
            return lambda value: cls() if value is None else cls(v=conv(value))
        return _compiled_encoder(cls, plan, {f.name: self._encode_field(f) for f in plan.fields})

    def _encode_field(self, f: FieldPlan) -> Conv | None:
        one = self._encode_one(f)
        if one is None:
            return None
        if f.container == "list":
            return lambda v: [one(x) for x in v]
        if f.container == "map":
            return lambda v: {k: one(x) for k, x in v.items()}
        return one

    def _encode_one(self, f: FieldPlan) -> Conv | None:
        if f.shape == "scalar":
            return None
        if f.shape == "enum":
            return self.enums[f.element_name].numbers.__getitem__
        if f.shape == "timestamp":
            ts_cls = self.classes["google.protobuf.Timestamp"]

            def timestamp(dt: datetime.datetime) -> Any:
                msg = ts_cls()
                msg.FromDatetime(dt)
                return msg

            return timestamp
        if f.shape == "duration":
            d_cls = self.classes["google.protobuf.Duration"]

            def duration(td: datetime.timedelta) -> Any:
                msg = d_cls()
                msg.FromTimedelta(td)
                return msg

            return duration
        table = self.to_msg
        name = f.element_name
        return lambda v: table[name](v)

    # protobuf -> Python --------------------------------------------------------

    def _decoder(self, plan: MessagePlan) -> Conv:
        if plan.wrapper:
            if not plan.fields:
                return lambda msg: None
            f = plan.fields[0]
            conv = self._decode_field(f)
            if f.presence:
                if conv is None:
                    return lambda msg: msg.v if msg.HasField("v") else None
                return lambda msg: conv(msg.v) if msg.HasField("v") else None
            if conv is None:
                return lambda msg: msg.v
            return lambda msg: conv(msg.v)
        return _compiled_decoder(plan, {f.name: self._decode_field(f) for f in plan.fields})

    def _decode_field(self, f: FieldPlan) -> Conv | None:
        one = self._decode_one(f)
        if f.container == "list":
            if one is None:
                return list
            return lambda v: [one(x) for x in v]
        if f.container == "map":
            if one is None:
                return dict
            return lambda v: {k: one(x) for k, x in v.items()}
        return one

    def _decode_one(self, f: FieldPlan) -> Conv | None:
        if f.shape == "scalar":
            return None
        if f.shape == "enum":
            members = {n: m for m, n in self.enums[f.element_name].numbers.items()}
            enum_name = f.element_name.rpartition(".")[2]

            def member(n: int) -> Any:
                try:
                    return members[n]
                except KeyError:
                    raise InvalidArgument(
                        f"field {f.name!r}: {n} is no {enum_name} value"
                        + (" (the field is unset)" if n == 0 else "")
                    ) from None

            return member
        if f.shape == "timestamp":
            return lambda ts: ts.ToDatetime(tzinfo=UTC)
        if f.shape == "duration":
            return lambda d: d.ToTimedelta()
        table = self.from_msg
        name = f.element_name
        return lambda v: table[name](v)


def _compiled_encoder(cls: Any, plan: MessagePlan, convs: dict[str, Conv | None]) -> Conv:
    """`to_msg` for a Struct or dataclass: `cls(a=value.a, b=conv_b(value.b), **maybe)`."""
    env: dict[str, Any] = {"cls": cls}
    args: list[str] = []
    lines = ["def to_msg(value):"]
    nullable = [f for f in plan.fields if f.nullable]
    if nullable:
        lines.append("    kw = {}")
    for i, f in enumerate(plan.fields):
        conv = convs[f.name]
        if conv is not None:
            env[f"c{i}"] = conv
        read = f"value.{f.name}"
        if f.nullable:
            put = "v" if conv is None else f"c{i}(v)"
            lines += [f"    v = {read}", f"    if v is not None: kw[{f.name!r}] = {put}"]
        else:
            args.append(f"{f.name}={read if conv is None else f'c{i}({read})'}")
    if nullable:
        args.append("**kw")
    lines.append(f"    return cls({', '.join(args)})")
    return _compile(lines, env, "to_msg")


def _compiled_decoder(plan: MessagePlan, convs: dict[str, Conv | None]) -> Conv:
    """`from_msg` for a Struct or dataclass: one `py_type(a=msg.a, b=...)` call."""
    env: dict[str, Any] = {"py_type": plan.py_type}
    field_defaults = defaults(plan.py_type)
    args: list[str] = []
    for i, f in enumerate(plan.fields):
        conv = convs[f.name]
        if conv is not None:
            env[f"c{i}"] = conv
        read = f"msg.{f.name}" if conv is None else f"c{i}(msg.{f.name})"
        if f.presence:
            if f.has_default:
                env[f"d{i}"] = field_defaults[f.name]
                absent = f"d{i}()"
            else:
                absent = "None"
            read = f"({read} if msg.HasField({f.name!r}) else {absent})"
        args.append(f"{f.name}={read}")
    if not plan.validate:
        lines = ["def from_msg(msg):", f"    return py_type({', '.join(args)})"]
        return _compile(lines, env, "from_msg")
    # msgspec.Meta constraints (ge=0, max_length=...) are checked as the JSON codec checks them
    env |= {"convert": msgspec.convert, "ValidationError": msgspec.ValidationError}
    env["InvalidArgument"] = InvalidArgument
    lines = [
        "def from_msg(msg):",
        "    try:",
        f"        return convert(dict({', '.join(args)}), type=py_type)",
        "    except ValidationError as e:",
        "        raise InvalidArgument(f'invalid request: {e}') from None",
    ]
    return _compile(lines, env, "from_msg")


def _compile(lines: list[str], env: dict[str, Any], name: str) -> Conv:
    exec("\n".join(lines), env)
    fn: Conv = env[name]
    return fn


def defaults(tp: Any) -> dict[str, Callable[[], Any]]:
    """Each defaulted field's default, as a function making it (a factory's fresh value)."""
    out: dict[str, Callable[[], Any]] = {}
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        for f in msgspec.structs.fields(tp):
            if f.default_factory is not msgspec.NODEFAULT:
                out[f.name] = f.default_factory
            elif f.default is not msgspec.NODEFAULT:
                out[f.name] = _constant(f.default)
    else:
        for d in dataclasses.fields(tp):
            if d.default_factory is not dataclasses.MISSING:
                out[d.name] = d.default_factory
            elif d.default is not dataclasses.MISSING:
                out[d.name] = _constant(d.default)
    return out


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value
