"""gRPC server reflection: a lokit server describes what it serves to any client.

`buf curl`, grpcurl, Postman and friends ask the `ServerReflection` service
which services a server has and for the `.proto` files (FileDescriptorProtos)
that define them, so they can call a server without a schema file.

grpcio-reflection answers the protocol; this module gives it what to answer.
Its servicer reads one `DescriptorPool`, but a server's files live in several:
a derived service's schema in a pool of its own (`lokit.protobuf`), the
generated `pb.Add` / `log.v1.Log`, health and reflection in protobuf's default
pool. `reflection_pool` copies every served file and its imports into one new
pool per server (built once, at start).

The files of a service: its contract's `grpc_files` (the derived schema, or
the generated module's `DESCRIPTOR` of an explicit-codec service); for a
ServiceDef without a contract (routes listed by hand) or a contract without
files (`codec="json"`: its messages are no protobuf), the file protobuf's
default pool has for that service name, if any. A service with no file at all
is still listed (its name is true), but not described: a client needs a
schema file to call it.

grpcio-reflection ships only the `v1alpha` protocol; `v1` is the same protocol
renamed (identical messages and field numbers), so the one servicer is served
under both names, and `v1`'s file (v1alpha's, renamed) is in the pool too:
new clients ask v1 first and fall back to v1alpha on UNIMPLEMENTED.

protobuf's upb pool finds services, messages and enums by name, not a
service's method or a message's field (`log.v1.Log.Produce`), which the
protocol also allows (`grpcurl describe` sends them): `_Servicer` answers
those with the file of the service or message that holds them.

Reflection is served by a plain generic handler, outside lokit's method
handlers: like health, its calls are not request-logged, counted in metrics,
or checked by an ACL (middlewares wrap only a service's routes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import _async as reflection_aio  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection_pb2

from lokit.observability.logs import get_logger
from lokit.routes import ServiceDef

__all__ = [
    "HEALTH_SERVICE",
    "REFLECTION_SERVICES",
    "reflection_handlers",
    "reflection_pool",
    "served_files",
    "served_names",
]

HEALTH_SERVICE = "grpc.health.v1.Health"
_V1ALPHA = "grpc.reflection.v1alpha"
_V1 = "grpc.reflection.v1"
REFLECTION_SERVICES = (f"{_V1}.ServerReflection", f"{_V1ALPHA}.ServerReflection")
_METHOD = "ServerReflectionInfo"


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """`grpc/reflection/v1/reflection.proto`: v1alpha's file under v1's names."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = _V1
    proto.options.Clear()
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_outer_classname = "ServerReflectionProto"
    proto.options.java_multiple_files = True
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    old, new = f".{_V1ALPHA}.", f".{_V1}."
    for message in proto.message_type:
        for fld in message.field:
            if fld.type_name.startswith(old):
                fld.type_name = new + fld.type_name[len(old) :]
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old) :]
            method.output_type = new + method.output_type[len(old) :]
    return proto


def served_names(service: ServiceDef) -> list[str]:
    """The gRPC services `service` serves, in order: its routes' and its declared names."""
    names: list[str] = []
    for route in service.grpc:
        name = route.path.split("/")[1] if route.path.count("/") == 2 else ""
        if name and name not in names:
            names.append(name)
    for name in service.grpc_services:
        if name not in names:
            names.append(name)
    return names


def served_files(service: ServiceDef) -> list[FileDescriptor]:
    """The files describing `service`'s gRPC services (see the module docstring)."""
    files = list(service.contract.grpc_files) if service.contract is not None else []
    described = {s.full_name for f in files for s in f.services_by_name.values()}
    default = descriptor_pool.Default()
    for name in served_names(service):
        if name in described:
            continue
        try:
            files.append(default.FindServiceByName(name).file)
        except KeyError:
            pass  # listed, not described
    return files


def _with_imports(file: FileDescriptor, out: dict[str, FileDescriptor]) -> None:
    """`file` and everything it imports, imports first, into `out` (by file name)."""
    if file.name in out:
        return
    for dep in file.dependencies:
        _with_imports(dep, out)
    out[file.name] = file


def reflection_pool(files: Iterable[FileDescriptor]) -> descriptor_pool.DescriptorPool:
    """One new pool with `files`, their imports, health's and reflection's own files.

    A file whose name is already in the pool is taken once (the first one); a
    file that clashes with one already there (a symbol defined twice) is left
    out with a warning: its services stay listed, undescribed, and the server
    starts anyway.
    """
    ordered: dict[str, FileDescriptor] = {}
    for file in (*files, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        _with_imports(file, ordered)
    pool = descriptor_pool.DescriptorPool()
    for file in ordered.values():
        try:
            pool.AddSerializedFile(file.serialized_pb)
        except (TypeError, ValueError) as e:
            get_logger("lokit").warning(
                "reflection leaves out a file that clashes with another", file=file.name, err=str(e)
            )
    pool.AddSerializedFile(_v1_file().SerializeToString())
    return pool


class _Servicer(reflection_aio.ReflectionServicer):  # type: ignore[misc]
    """grpcio-reflection's servicer; a method or a field finds the file of what holds it."""

    def _file_containing_symbol(self, request: Any, name: str) -> Any:
        reply = super()._file_containing_symbol(request, name)
        if reply.HasField("error_response") and "." in name:
            outer, _, member = name.rpartition(".")
            if _has_member(self._pool, outer, member):
                return super()._file_containing_symbol(request, outer)
        return reply


def _has_member(pool: descriptor_pool.DescriptorPool, outer: str, member: str) -> bool:
    """Whether `outer` is a service with method `member` or a message with field `member`."""
    for find, members in (
        (pool.FindServiceByName, "methods_by_name"),
        (pool.FindMessageTypeByName, "fields_by_name"),
    ):
        try:
            return member in getattr(find(outer), members)
        except KeyError:
            continue
    return False


def reflection_handlers(service: ServiceDef) -> list[Any]:
    """Generic handlers serving reflection (v1 and v1alpha) for `service`, health included."""
    names = [*served_names(service), HEALTH_SERVICE, *REFLECTION_SERVICES]
    servicer = _Servicer(names, pool=reflection_pool(served_files(service)))
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return [
        grpc.method_handlers_generic_handler(n, {_METHOD: handler}) for n in REFLECTION_SERVICES
    ]
