"""`Schema`: a service's protobuf file, built from its type hints when its contract is made.

The descriptors go into a `DescriptorPool` of the schema's own, and the message
classes come from protobuf's message factory: no generated code at run time and
no codegen step for the user. Servers publish `file` (reflection), codecs use
the classes, `lokit proto` prints `proto_text()`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, timestamp_pb2
from google.protobuf.message_factory import GetMessageClass

from lokit.endpoint import Method
from lokit.protobuf.convert import Converters
from lokit.protobuf.plan import build
from lokit.protobuf.text import proto_text

if TYPE_CHECKING:
    from google.protobuf.descriptor import FileDescriptor

    from lokit.contract import Contract

__all__ = ["Schema", "schema_of"]

_WELL_KNOWN = {
    "google/protobuf/timestamp.proto": timestamp_pb2.DESCRIPTOR,
    "google/protobuf/duration.proto": duration_pb2.DESCRIPTOR,
}


class Schema:
    """The protobuf schema of one derived gRPC service.

    `file_proto` (package `<name>.v1`, file `<name>/v1/<name>.proto`), `pool`
    (a DescriptorPool holding it), `file` (its FileDescriptor), `service_name`
    (e.g. `stringsvc.v1.StringService`), `proto_text()` (the .proto source).
    """

    def __init__(
        self, name: str, service_name: str, methods: Iterable[Method], interface: Any = None
    ) -> None:
        built = build(name, service_name, list(methods), interface)
        self.name = name
        self.service_name = service_name
        self.file_proto: descriptor_pb2.FileDescriptorProto = built.file
        self.docs = built.docs
        self.pool = descriptor_pool.DescriptorPool()
        classes: dict[str, Any] = {}
        for dep in built.file.dependency:
            self.pool.AddSerializedFile(_WELL_KNOWN[dep].serialized_pb)
        self.pool.AddSerializedFile(built.file.SerializeToString())
        self.file: FileDescriptor = self.pool.FindFileByName(built.file.name)
        for dep in built.file.dependency:
            for short in self.pool.FindFileByName(dep).message_types_by_name.values():
                classes[short.full_name] = GetMessageClass(short)
        wrappers = [plan for pair in built.methods.values() for plan in pair]
        for full in {*built.messages, *(plan.full_name for plan in wrappers)}:
            classes[full] = GetMessageClass(self.pool.FindMessageTypeByName(full))
        self.classes = classes
        self.plans = {p.full_name: p for p in [*built.messages.values(), *wrappers]}
        self.converters = Converters(classes, built.messages, built.enums)
        for req, resp in built.methods.values():
            self.converters.add(req)
            self.converters.add(resp)
        self._methods = {
            name: (req.full_name, resp.full_name) for name, (req, resp) in built.methods.items()
        }

    def messages(self, method: str) -> tuple[str, str]:
        """The full names of `method`'s request and response messages."""
        return self._methods[method]

    def proto_text(self) -> str:
        """The .proto source of this schema, with comments from the docstrings."""
        return proto_text(
            self.file_proto,
            self.docs,
            "written by `lokit proto` from the type hints (edit those, not this file)",
        )

    def __repr__(self) -> str:
        return f"<Schema {self.file_proto.name} service {self.service_name}>"


def schema_of(contract: Contract[Any]) -> Schema | None:
    """The contract's schema when its gRPC side is derived protobuf (None for explicit
    codecs such as `pb.Add`, whose FileDescriptor is in `contract.grpc_files`, and for
    `codec="json"`)."""
    schema: Schema | None = getattr(contract, "schema", None)
    return schema
