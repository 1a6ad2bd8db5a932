"""Server reflection on real `lokit serve` processes: what it lists and describes, and
that it stays out of the request log, the metrics and (with --no-reflection) the server."""

from __future__ import annotations

import json
import urllib.request

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.e2e.procs import LokitProcess
from tests.reflection.conftest import Buf, url
from tests.reflection.reflect import Request, ask, services

OWN = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_lists_every_service(
    addsvc: LokitProcess, logsvc: LokitProcess, stringsvc: LokitProcess, version: str
) -> None:
    assert services(addsvc.addr("grpc"), version) == {"pb.Add", *OWN}
    assert services(logsvc.addr("grpc"), version) == {"log.v1.Log", *OWN}
    assert services(stringsvc.addr("grpc"), version) == {"stringsvc.v1.StringService", *OWN}


def test_describes_pb_add_as_go_kit_does(addsvc: LokitProcess) -> None:
    """grpcio-reflection's own client builds go-kit's `pb.Add` from the server alone."""
    with grpc.insecure_channel(addsvc.addr("grpc")) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        add = pool.FindServiceByName("pb.Add")
        assert [m.name for m in add.methods] == ["Sum", "Concat", "Mult"]
        sum_request = add.methods_by_name["Sum"].input_type
        assert [(f.name, f.number) for f in sum_request.fields] == [("a", 1), ("b", 2)]
        assert pool.FindServiceByName("grpc.health.v1.Health").methods_by_name["Check"]
        v1 = pool.FindServiceByName("grpc.reflection.v1.ServerReflection")
        assert v1.methods_by_name["ServerReflectionInfo"].input_type.full_name == (
            "grpc.reflection.v1.ServerReflectionRequest"
        )


def test_describes_log_v1(logsvc: LokitProcess) -> None:
    reply = ask(logsvc.addr("grpc"), Request(file_containing_symbol="log.v1.Log.Produce"))
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    log = next(f for f in files if f.package == "log.v1")
    assert "Produce" in [m.name for m in log.service[0].method]


def test_unknown_symbol_is_not_found(addsvc: LokitProcess) -> None:
    for symbol in ("pb.Nope", "pb.Add.Nope", "pb.SumRequest.c"):
        reply = ask(addsvc.addr("grpc"), Request(file_containing_symbol=symbol))
        assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], symbol
    reply = ask(addsvc.addr("grpc"), Request(file_containing_symbol="pb.SumRequest.a"))
    assert reply.file_descriptor_response.file_descriptor_proto


def test_buf_curl_pb_add(buf: Buf, addsvc: LokitProcess) -> None:
    """go-kit's pb.Add with no .proto: a sum, a concatenation, and its business error,
    which go-kit sends inside the reply's `err` with status OK."""
    out = buf.curl(url(addsvc, "/pb.Add/Sum"), {"a": 2, "b": 40})
    assert out.returncode == 0, out.stderr
    assert '"v": "42"' in out.stdout
    out = buf.curl(url(addsvc, "/pb.Add/Concat"), {"a": "go", "b": "kit"})
    assert out.returncode == 0, out.stderr
    assert '"v": "gokit"' in out.stdout
    big = str(1 << 62)
    out = buf.curl(url(addsvc, "/pb.Add/Sum"), {"a": big, "b": big})
    assert out.returncode == 0, out.stderr
    assert '"err": "integer overflow"' in out.stdout


def test_buf_curl_derived_stringsvc(buf: Buf, stringsvc: LokitProcess) -> None:
    """A derived service's schema (from its type hints) is all buf needs; its business
    error (an empty string) comes back as INVALID_ARGUMENT with the message."""
    svc = "/stringsvc.v1.StringService"
    out = buf.curl(url(stringsvc, f"{svc}/Uppercase"), {"s": "hello"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"v": "HELLO"}
    out = buf.curl(url(stringsvc, f"{svc}/Count"), {"s": "héllo"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"v": "5"}  # int64 is a string in protobuf's JSON
    out = buf.curl(url(stringsvc, f"{svc}/Uppercase"), {"s": ""})
    assert out.returncode == grpc.StatusCode.INVALID_ARGUMENT.value[0] << 3, out.stderr
    assert json.loads(out.stderr) == {"code": "invalid_argument", "message": "empty string"}


def test_buf_curl_over_a_unix_socket(buf: Buf, addsvc: LokitProcess) -> None:
    sock = addsvc.addr("grpc", 1).removeprefix("unix:")
    out = buf.curl("http://localhost/pb.Add/Mult", {"a": 1.5, "b": 4}, "--unix-socket", sock)
    assert out.returncode == 0, out.stderr
    assert '"v": 6' in out.stdout


def test_buf_curl_lists_methods(buf: Buf, addsvc: LokitProcess) -> None:
    out = buf.curl(url(addsvc, ""), None, "--list-methods")
    assert out.returncode == 0, out.stderr
    assert {"pb.Add/Sum", "pb.Add/Concat", "pb.Add/Mult"} <= set(out.stdout.split())


def test_buf_curl_log_v1(buf: Buf, logsvc: LokitProcess) -> None:
    """Produce over TCP, Consume it over the Unix socket, and an offset past the end:
    OUT_OF_RANGE, which buf curl exits with (the gRPC code shifted left by 3)."""
    out = buf.curl(url(logsvc, "/log.v1.Log/Produce"), {"record": {"value": "aGk="}})
    assert out.returncode == 0, out.stderr
    offset = int(json.loads(out.stdout).get("offset", 0))
    sock = logsvc.addr("grpc", 1).removeprefix("unix:")
    out = buf.curl("http://localhost/log.v1.Log/Consume", {"offset": offset}, "--unix-socket", sock)
    assert out.returncode == 0, out.stderr
    assert '"value": "aGk="' in out.stdout
    out = buf.curl(url(logsvc, "/log.v1.Log/Consume"), {"offset": offset + 1000})
    assert out.returncode == grpc.StatusCode.OUT_OF_RANGE.value[0] << 3, out.stderr
    assert '"code": "out_of_range"' in out.stderr


def test_unknown_method_is_unimplemented(addsvc: LokitProcess) -> None:
    with grpc.insecure_channel(addsvc.addr("grpc")) as channel:
        for path in ("/pb.Add/Nope", "/pb.Nope/Sum"):
            with pytest.raises(grpc.RpcError) as e:
                channel.unary_unary(path)(b"", timeout=10)
            assert e.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_reflection_stays_out_of_request_log_and_metrics(buf: Buf, addsvc: LokitProcess) -> None:
    out = buf.curl(url(addsvc, "/pb.Add/Sum"), {"a": 1, "b": 1})
    assert out.returncode == 0, out.stderr
    lines = addsvc.wait_stderr(lambda line: "event=request" in line and "method=Sum" in line)
    assert [ln for ln in lines if "event=request" in ln and "method=Sum" in ln]
    assert not [ln for ln in lines if "Reflection" in ln]
    with urllib.request.urlopen(f"http://{addsvc.addr('debug')}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert 'method="Sum"' in metrics
    assert "Reflection" not in metrics


def test_no_reflection(buf: Buf, unreflected: LokitProcess) -> None:
    """--no-reflection: both protocols UNIMPLEMENTED, buf curl needs a schema, calls still work."""
    target = unreflected.addr("grpc")
    for version in ("v1", "v1alpha"):
        with pytest.raises(grpc.RpcError) as e:
            services(target, version)
        assert e.value.code() is grpc.StatusCode.UNIMPLEMENTED
    out = buf.curl(url(unreflected, "/pb.Add/Sum"), {"a": 1, "b": 2})
    assert out.returncode != 0
    assert 'failed to find service named "pb.Add"' in out.stderr  # the symptom
    from lokit.proto import addsvc_pb2

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/pb.Add/Sum",
            request_serializer=addsvc_pb2.SumRequest.SerializeToString,
            response_deserializer=addsvc_pb2.SumReply.FromString,
        )
        assert call(addsvc_pb2.SumRequest(a=1, b=2), timeout=10).v == 3
