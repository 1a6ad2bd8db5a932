"""Converters between lokit's Python values and protobuf messages, built once per message.

Each `MessagePlan` becomes a pair of closures: `to_msg(value)` builds the
message from a Struct, a dataclass or (for a wrapper) a plain value, and
`from_msg(message)` builds the value back. Nested messages are looked up by
name when called, so recursive types work.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from lokit.errors import InvalidArgument
from lokit.protobuf.plan import EnumPlan, FieldPlan, MessagePlan

__all__ = ["Converters"]

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
        convs = [(f.name, self._encode_field(f)) for f in plan.fields]

        def to_msg(value: Any) -> Any:
            kw = {}
            for name, conv in convs:
                v = getattr(value, name)
                if v is not None:
                    kw[name] = v if conv is None else conv(v)
            return cls(**kw)

        return to_msg

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
        py_type = plan.py_type
        fields = [(f.name, self._decode_field(f), f.presence, f.has_default) for f in plan.fields]

        def from_msg(msg: Any) -> Any:
            kw: dict[str, Any] = {}
            for name, conv, presence, has_default in fields:
                if presence and not msg.HasField(name):
                    if not has_default:
                        kw[name] = None
                    continue
                v = getattr(msg, name)
                kw[name] = v if conv is None else conv(v)
            return py_type(**kw)

        return from_msg

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
