"""The .proto source of a `FileDescriptorProto`, with comments from docstrings.

protobuf's Python runtime neither parses nor prints .proto text (protoc and buf
parse it; nothing prints it), so this small printer writes what `lokit proto`
shows: syntax, package, imports, services, messages (maps, proto3 `optional`,
oneofs, nested types) and enums.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import descriptor_pb2

__all__ = ["proto_text"]

FDP = descriptor_pb2.FieldDescriptorProto

_SCALAR_NAMES = {
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}


def proto_text(
    file: descriptor_pb2.FileDescriptorProto,
    docs: Mapping[str, str] = {},
    header: str = "written by `lokit proto`",
) -> str:
    """`file` as .proto source; `docs` maps full names (`pkg.Service.Method`) to comments,
    `header` follows the file name in the first comment line."""
    return _Printer(file, docs, header).render()


class _Printer:
    def __init__(
        self, file: descriptor_pb2.FileDescriptorProto, docs: Mapping[str, str], header: str
    ) -> None:
        self.header = header
        self.file = file
        self.docs = docs
        self.package = file.package
        self.lines: list[str] = []

    def render(self) -> str:
        f = self.file
        self.lines.append(f"// {f.name}: {self.header}.")
        self.lines.append(f'syntax = "{f.syntax or "proto2"}";')
        self.lines.append("")
        if f.package:
            self.lines += [f"package {f.package};", ""]
        if f.dependency:
            self.lines += [f'import "{dep}";' for dep in f.dependency] + [""]
        prefix = f".{f.package}" if f.package else ""
        for service in f.service:
            self.service(service, f"{prefix}.{service.name}".lstrip("."))
        for message in f.message_type:
            self.message(message, f"{prefix}.{message.name}".lstrip("."), 0)
        for enum in f.enum_type:
            self.enum(enum, f"{prefix}.{enum.name}".lstrip("."), 0)
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n"

    def comment(self, full_name: str, depth: int) -> None:
        doc = self.docs.get(full_name, "")
        pad = "  " * depth
        for line in doc.strip().splitlines():
            self.lines.append(f"{pad}// {line}".rstrip())

    def type_name(self, name: str) -> str:
        if self.package and name.startswith(f".{self.package}."):
            return name[len(self.package) + 2 :]
        return name.lstrip(".")

    def service(self, service: descriptor_pb2.ServiceDescriptorProto, full: str) -> None:
        self.comment(full, 0)
        self.lines.append(f"service {service.name} {{")
        for i, m in enumerate(service.method):
            if i:
                self.lines.append("")
            self.comment(f"{full}.{m.name}", 1)
            req = ("stream " if m.client_streaming else "") + self.type_name(m.input_type)
            resp = ("stream " if m.server_streaming else "") + self.type_name(m.output_type)
            self.lines.append(f"  rpc {m.name}({req}) returns ({resp});")
        self.lines += ["}", ""]

    def field_type(self, fd: descriptor_pb2.FieldDescriptorProto) -> str:
        if fd.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM, FDP.TYPE_GROUP):
            return self.type_name(fd.type_name)
        return _SCALAR_NAMES[fd.type]

    def message(self, message: descriptor_pb2.DescriptorProto, full: str, depth: int) -> None:
        pad = "  " * depth
        self.comment(full, depth)
        entries = {f".{full}.{n.name}": n for n in message.nested_type if n.options.map_entry}
        self.lines.append(f"{pad}message {message.name} {{")
        # proto3 `optional` is a synthetic oneof of one field: printed as `optional`
        synthetic = {f.oneof_index for f in message.field if f.proto3_optional}
        printed: set[int] = set()
        for fd in message.field:
            real = fd.HasField("oneof_index") and fd.oneof_index not in synthetic
            if not real:
                self.comment(f"{full}.{fd.name}", depth + 1)
                self.lines.append(f"{pad}  {self.field_line(fd, entries)}")
            elif fd.oneof_index not in printed:  # the whole oneof where its first field is
                printed.add(fd.oneof_index)
                self.lines.append(f"{pad}  oneof {message.oneof_decl[fd.oneof_index].name} {{")
                for member in message.field:
                    if member.HasField("oneof_index") and member.oneof_index == fd.oneof_index:
                        self.comment(f"{full}.{member.name}", depth + 2)
                        self.lines.append(f"{pad}    {self.field_line(member, entries)}")
                self.lines.append(f"{pad}  }}")
        for nested in message.nested_type:
            if not nested.options.map_entry:
                self.message(nested, f"{full}.{nested.name}", depth + 1)
        for enum in message.enum_type:
            self.enum(enum, f"{full}.{enum.name}", depth + 1)
        self.lines += [f"{pad}}}", ""] if depth == 0 else [f"{pad}}}"]

    def field_line(
        self,
        fd: descriptor_pb2.FieldDescriptorProto,
        entries: Mapping[str, descriptor_pb2.DescriptorProto],
    ) -> str:
        entry = entries.get(fd.type_name) if fd.type == FDP.TYPE_MESSAGE else None
        if entry is not None:
            key, value = entry.field[0], entry.field[1]
            kind = f"map<{self.field_type(key)}, {self.field_type(value)}>"
        else:
            kind = self.field_type(fd)
            if fd.label == FDP.LABEL_REPEATED:
                kind = "repeated " + kind
            elif fd.proto3_optional or self.file.syntax != "proto3":
                kind = ("optional " if fd.label == FDP.LABEL_OPTIONAL else "required ") + kind
        return f"{kind} {fd.name} = {fd.number};"

    def enum(self, enum: descriptor_pb2.EnumDescriptorProto, full: str, depth: int) -> None:
        pad = "  " * depth
        self.comment(full, depth)
        self.lines.append(f"{pad}enum {enum.name} {{")
        for v in enum.value:
            self.lines.append(f"{pad}  {v.name} = {v.number};")
        self.lines += [f"{pad}}}", ""] if depth == 0 else [f"{pad}}}"]
