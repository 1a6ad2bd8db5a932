"""What reflection describes, in-process: files from separate pools merged with their
imports, a clashing file left out, and hand-listed routes listed but not described."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
from google.protobuf.descriptor import FileDescriptor

import lokit
from lokit.derive import describe
from lokit.observability.observer import NullObserver
from lokit.routes import ServiceDef, grpc_routes
from lokit.transport.address import parse
from lokit.transport.grpc import GrpcServer
from lokit.transport.grpc.reflection import reflection_pool
from tests.reflection.reflect import Request, ask, services


def _own_pool_file(package: str, message: str = "Stamped") -> FileDescriptor:
    """A file in a pool of its own (as a derived schema is) importing Timestamp."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}/x.proto",
        package=package,
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    msg = proto.message_type.add(name=message)
    msg.field.add(
        name="at",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        type_name=".google.protobuf.Timestamp",
    )
    svc = proto.service.add(name="Clock")
    svc.method.add(
        name="Now", input_type=f".{package}.{message}", output_type=f".{package}.{message}"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(proto.SerializeToString())
    return pool.FindFileByName(proto.name)


def test_files_from_many_pools_in_one() -> None:
    a, b = _own_pool_file("a.v1"), _own_pool_file("b.v1")
    pool = reflection_pool([a, b])
    assert pool.FindServiceByName("a.v1.Clock").methods_by_name["Now"]
    assert pool.FindServiceByName("b.v1.Clock")
    assert pool.FindFileByName("google/protobuf/timestamp.proto")
    assert pool.FindServiceByName("grpc.health.v1.Health")
    assert pool.FindServiceByName("grpc.reflection.v1.ServerReflection")
    assert pool.FindServiceByName("grpc.reflection.v1alpha.ServerReflection")


def test_a_clashing_file_is_left_out() -> None:
    first = _own_pool_file("c.v1")
    clash = descriptor_pb2.FileDescriptorProto(name="other.proto", package="c.v1", syntax="proto3")
    clash.message_type.add(name="Stamped")  # c.v1.Stamped again, in another file
    own = descriptor_pool.DescriptorPool()
    own.AddSerializedFile(clash.SerializeToString())
    pool = reflection_pool([first, own.FindFileByName("other.proto")])
    assert pool.FindFileContainingSymbol("c.v1.Stamped").name == first.name


class Hand:
    async def echo(self, text: str) -> str:
        return text


async def test_hand_listed_routes_are_listed_not_described(tmp_path: Path) -> None:
    routes = grpc_routes("hand.Echo", describe(Hand()))
    server = GrpcServer(ServiceDef(name="hand", grpc=routes), NullObserver())
    (bound,) = await server.start([parse(f"unix:{tmp_path}/h.sock")])
    target = f"unix:{tmp_path}/h.sock"
    try:
        # the sync client runs in a thread: this loop serves
        assert "hand.Echo" in await asyncio.to_thread(services, target)
        reply = await asyncio.to_thread(ask, target, Request(file_containing_symbol="hand.Echo"))
        assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    finally:
        await server.stop(0)
    assert str(bound).startswith("unix:")


async def test_reflection_off(tmp_path: Path) -> None:
    routes = grpc_routes("hand.Echo", describe(Hand()))
    server = GrpcServer(ServiceDef(name="hand", grpc=routes), NullObserver(), reflection=False)
    await server.start([parse(f"unix:{tmp_path}/h.sock")])
    try:
        try:
            await asyncio.to_thread(services, f"unix:{tmp_path}/h.sock")
        except grpc.RpcError as e:
            assert e.code() is grpc.StatusCode.UNIMPLEMENTED
        else:
            raise AssertionError("reflection answered with reflection=False")
    finally:
        await server.stop(0)


class Clock:
    """A derived service whose schema imports Timestamp (from a pool of its own)."""

    async def later(self, at: datetime.datetime, seconds: int) -> datetime.datetime:
        return at + datetime.timedelta(seconds=seconds)


async def test_a_derived_schema_is_described(tmp_path: Path) -> None:
    service = lokit.define("clock", Clock())
    server = GrpcServer(service, NullObserver())
    target = f"unix:{tmp_path}/c.sock"
    await server.start([parse(target)])
    try:
        assert "clock.v1.Clock" in await asyncio.to_thread(services, target)
        reply = await asyncio.to_thread(
            ask, target, Request(file_containing_symbol="clock.v1.Clock")
        )
        files = {
            f.name: f
            for f in map(
                descriptor_pb2.FileDescriptorProto.FromString,
                reply.file_descriptor_response.file_descriptor_proto,
            )
        }
        assert set(files) == {"clock/v1/clock.proto", "google/protobuf/timestamp.proto"}
        (svc,) = files["clock/v1/clock.proto"].service
        assert [m.name for m in svc.method] == ["Later"]
    finally:
        await server.stop(0)


async def test_json_in_grpc_is_listed_not_described(tmp_path: Path) -> None:
    """codec="json" sends JSON inside gRPC messages: no protobuf schema to publish."""
    service = lokit.define(lokit.contract("clock", Clock, codec="json"), Clock())
    server = GrpcServer(service, NullObserver())
    target = f"unix:{tmp_path}/c.sock"
    await server.start([parse(target)])
    try:
        assert "clock.v1.Clock" in await asyncio.to_thread(services, target)
        reply = await asyncio.to_thread(
            ask, target, Request(file_containing_symbol="clock.v1.Clock")
        )
        assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    finally:
        await server.stop(0)
