"""Breaking changes between two versions of a protobuf file: what `lokit proto --check` refuses.

lokit numbers fields in declaration order, so inserting or removing a field
renumbers the ones after it; this check, on two `FileDescriptorProto`s, is the
guard. It refuses what would break a caller built from the old file: a field
renumbered, retyped, renamed or removed; an enum value renumbered or removed;
a message or method removed; a method's messages or streaming changed. Adding
is always fine. (`buf breaking` with its WIRE_JSON rules says much the same;
`lokit proto --check` uses it when it is installed.)
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import descriptor_pb2

__all__ = ["breaking_changes"]

FDP = descriptor_pb2.FieldDescriptorProto
Messages = dict[str, descriptor_pb2.DescriptorProto]

_SCALARS = {
    v: k.removeprefix("TYPE_").lower()
    for k, v in FDP.Type.items()
    if k not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}


def breaking_changes(
    old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto
) -> list[str]:
    """One sentence per change in `new` that would break a caller built from `old`."""
    problems: list[str] = []
    old_messages, old_enums = _index(old)
    new_messages, new_enums = _index(new)
    problems += _services(old, new)
    for name, message in old_messages.items():
        now = new_messages.get(name)
        if now is None:
            problems.append(f"message {name} was removed.")
            continue
        problems += _fields(name, message, now, old_messages, new_messages)
    for name, enum in old_enums.items():
        now_enum = new_enums.get(name)
        if now_enum is None:
            problems.append(f"enum {name} was removed.")
            continue
        numbers = {v.name: v.number for v in now_enum.value}
        for v in enum.value:
            if v.name not in numbers:
                problems.append(f"enum value {name}.{v.name} = {v.number} was removed.")
            elif numbers[v.name] != v.number:
                problems.append(
                    f"enum value {name}.{v.name} was {v.number} and is now {numbers[v.name]}."
                )
    return problems


def _index(
    file: descriptor_pb2.FileDescriptorProto,
) -> tuple[Messages, dict[str, descriptor_pb2.EnumDescriptorProto]]:
    """Every message (map entries too) and enum of `file`, by full name."""
    messages: Messages = {}
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
    prefix = f"{file.package}." if file.package else ""

    def walk(items: Iterator[descriptor_pb2.DescriptorProto], scope: str) -> None:
        for m in items:
            full = scope + m.name
            messages[full] = m
            for e in m.enum_type:
                enums[f"{full}.{e.name}"] = e
            walk(iter(m.nested_type), full + ".")

    walk(iter(file.message_type), prefix)
    for e in file.enum_type:
        enums[prefix + e.name] = e
    return messages, enums


def _services(
    old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto
) -> list[str]:
    problems: list[str] = []
    prefix = f"{old.package}." if old.package else ""
    now = {s.name: {m.name: m for m in s.method} for s in new.service}
    for service in old.service:
        full = prefix + service.name
        if service.name not in now:
            problems.append(f"service {full} was removed.")
            continue
        for m in service.method:
            n = now[service.name].get(m.name)
            if n is None:
                problems.append(f"method {full}.{m.name} was removed.")
                continue
            if _rpc(m) != _rpc(n):
                problems.append(f"method {full}.{m.name} was {_rpc(m)} and is now {_rpc(n)}.")
    return problems


def _rpc(m: descriptor_pb2.MethodDescriptorProto) -> str:
    req = ("stream " if m.client_streaming else "") + m.input_type.lstrip(".")
    resp = ("stream " if m.server_streaming else "") + m.output_type.lstrip(".")
    return f"({req}) returns ({resp})"


def _type(fd: descriptor_pb2.FieldDescriptorProto, messages: Messages) -> str:
    """A field's wire type as .proto spells it: `int64`, `repeated string`, `map<string, Point>`."""
    if fd.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM, FDP.TYPE_GROUP):
        entry = messages.get(fd.type_name.lstrip("."))
        if entry is not None and entry.options.map_entry:
            key, value = entry.field[0], entry.field[1]
            return f"map<{_type(key, messages)}, {_type(value, messages)}>"
        base = fd.type_name.lstrip(".")
    else:
        base = _SCALARS[fd.type]
    return f"repeated {base}" if fd.label == FDP.LABEL_REPEATED else base


def _fields(
    name: str,
    old: descriptor_pb2.DescriptorProto,
    new: descriptor_pb2.DescriptorProto,
    old_messages: Messages,
    new_messages: Messages,
) -> list[str]:
    if old.options.map_entry:
        return []  # its key and value are checked as the map field's type
    problems: list[str] = []
    by_name = {f.name: f for f in new.field}
    by_number = {f.number: f for f in new.field}
    for f in old.field:
        was = _type(f, old_messages)
        now = by_name.get(f.name)
        if now is not None:
            if now.number != f.number:
                problems.append(
                    f"field {name}.{f.name} was number {f.number} and is now {now.number}: "
                    "old callers would read it as another field."
                )
            elif _type(now, new_messages) != was:
                problems.append(
                    f"field {name}.{f.name} = {f.number} changed type from {was} "
                    f"to {_type(now, new_messages)}."
                )
            continue
        other = by_number.get(f.number)
        if other is not None:
            problems.append(
                f"field number {f.number} of {name} was {f.name} ({was}) and is now "
                f"{other.name} ({_type(other, new_messages)})."
            )
        else:
            problems.append(
                f"field {name}.{f.name} = {f.number} ({was}) was removed: old callers send it."
            )
    return problems
