"""proglog's server tests (server_test.go, minus TLS/ACL), with a client built from
proglog's own `.proto` (compiled here, in a separate descriptor pool) over a plain
grpc.aio channel: wire compatibility, not just lokit talking to itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc  # type: ignore[import-untyped]

from tests.logsvc.conftest import InProcess

# proglog's api/v1/log.proto (ch9+), verbatim but for comments.
PROGLOG_PROTO = """
syntax = "proto3";
package log.v1;
option go_package = "github.com/travisjeffery/api/log_v1";
service Log {
  rpc Produce(ProduceRequest) returns (ProduceResponse) {}
  rpc Consume(ConsumeRequest) returns (ConsumeResponse) {}
  rpc ConsumeStream(ConsumeRequest) returns (stream ConsumeResponse) {}
  rpc ProduceStream(stream ProduceRequest) returns (stream ProduceResponse) {}
  rpc GetServers(GetServersRequest) returns (GetServersResponse) {}
}
message ProduceRequest  { Record record = 1; }
message ProduceResponse { uint64 offset = 1; }
message ConsumeRequest  { uint64 offset = 1; }
message ConsumeResponse { Record record = 2; }
message Record { bytes value = 1; uint64 offset = 2; uint64 term = 3; uint32 type = 4; }
message GetServersRequest {}
message GetServersResponse { repeated Server servers = 1; }
message Server { string id = 1; string rpc_addr = 2; bool is_leader = 3; }
"""


class Proglog:
    """proglog's message classes and a raw channel calling /log.v1.Log/<Method>."""

    def __init__(self, messages: dict[str, Any], channel: grpc.aio.Channel) -> None:
        self.m = messages
        self.channel = channel

    def _call(self, kind: str, method: str, req: str, resp: str) -> Any:
        return getattr(self.channel, kind)(
            f"/log.v1.Log/{method}",
            request_serializer=self.m[req].SerializeToString,
            response_deserializer=self.m[resp].FromString,
        )

    def produce(self) -> Any:
        return self._call("unary_unary", "Produce", "ProduceRequest", "ProduceResponse")

    def consume(self) -> Any:
        return self._call("unary_unary", "Consume", "ConsumeRequest", "ConsumeResponse")

    def consume_stream(self) -> Any:
        return self._call("unary_stream", "ConsumeStream", "ConsumeRequest", "ConsumeResponse")

    def produce_stream(self) -> Any:
        return self._call("stream_stream", "ProduceStream", "ProduceRequest", "ProduceResponse")

    def get_servers(self) -> Any:
        return self._call("unary_unary", "GetServers", "GetServersRequest", "GetServersResponse")


@pytest.fixture(scope="module")
def proglog_messages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("proglog")
    (d / "api").mkdir()
    (d / "api" / "log.proto").write_text(PROGLOG_PROTO)
    out = d / "log.desc"
    assert protoc.main(["protoc", f"-I{d}", f"--descriptor_set_out={out}", "api/log.proto"]) == 0
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    names = [
        "ProduceRequest",
        "ProduceResponse",
        "ConsumeRequest",
        "ConsumeResponse",
        "Record",
        "GetServersRequest",
        "GetServersResponse",
    ]
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"log.v1.{n}")) for n in names
    }


@pytest.fixture
async def proglog(server: InProcess, proglog_messages: dict[str, Any]) -> AsyncIterator[Proglog]:
    path = server.grpc.removeprefix("unix:")
    channel = grpc.aio.insecure_channel(f"unix://{Path(path).resolve()}")
    try:
        yield Proglog(proglog_messages, channel)
    finally:
        await channel.close()


async def test_produce_consume_a_message_succeeds(proglog: Proglog) -> None:
    m = proglog.m
    want = m["Record"](value=b"hello world")
    produce = await proglog.produce()(m["ProduceRequest"](record=want))
    consume = await proglog.consume()(m["ConsumeRequest"](offset=produce.offset))
    assert consume.record.value == want.value
    assert produce.offset == 0
    assert consume.record.offset == produce.offset


async def test_consume_past_log_boundary_fails(proglog: Proglog) -> None:
    m = proglog.m
    produce = await proglog.produce()(m["ProduceRequest"](record=m["Record"](value=b"hello world")))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await proglog.consume()(m["ConsumeRequest"](offset=produce.offset + 1))
    # proglog sends the invalid code 404; lokit sends the standard OUT_OF_RANGE
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert e.value.details() == f"offset out of range: {produce.offset + 1}"


async def test_produce_consume_stream_succeeds(proglog: Proglog) -> None:
    m = proglog.m
    records = [
        m["Record"](value=b"first message", offset=0),
        m["Record"](value=b"second message", offset=1),
    ]
    stream = proglog.produce_stream()()
    for i, record in enumerate(records):
        await stream.write(m["ProduceRequest"](record=record))
        res = await stream.read()
        assert res.offset == i
    await stream.done_writing()
    assert await stream.read() == grpc.aio.EOF
    # proglog ends this call with UNKNOWN "EOF"; lokit ends it with OK
    assert await stream.code() == grpc.StatusCode.OK

    consume = proglog.consume_stream()(m["ConsumeRequest"](offset=0))
    for i, record in enumerate(records):
        res = await consume.read()
        assert res.record == m["Record"](value=record.value, offset=i)
    consume.cancel()


async def test_healthcheck_succeeds(server: InProcess) -> None:
    path = Path(server.grpc.removeprefix("unix:")).resolve()
    async with grpc.aio.insecure_channel(f"unix://{path}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "log.v1.Log"):
            res = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert res.status == health_pb2.HealthCheckResponse.SERVING


async def test_get_servers_is_this_node_as_leader(proglog: Proglog, server: InProcess) -> None:
    res = await proglog.get_servers()(proglog.m["GetServersRequest"]())
    assert len(res.servers) == 1
    assert res.servers[0].is_leader
    assert res.servers[0].rpc_addr == server.grpc
    assert res.servers[0].id


async def test_lokit_topics_are_invisible_to_proglog_clients(
    proglog: Proglog, server: InProcess
) -> None:
    """A record produced to another topic does not show up in proglog's (default) log."""
    from lokit.logsvc.client import LogClient

    c = LogClient(server.grpc)
    try:
        await c.produce(b"elsewhere", topic="other")
        await c.produce(b"here")
    finally:
        await c.close()
    m = proglog.m
    res = await proglog.consume()(m["ConsumeRequest"](offset=0))
    assert res.record.value == b"here"
