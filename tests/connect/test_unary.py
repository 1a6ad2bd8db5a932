"""Connect unary calls over raw HTTP: JSON and protobuf bodies, deadlines, errors and statuses."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

import lokit
from lokit.proto import addsvc_pb2
from lokit.runtime import Listeners, Runtime
from lokit.transport.http.connect import _schema_tools
from tests.connect.conftest import Served
from tests.connect.servers import Probe

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("via", ["unix", "tcp"])
async def test_unary_json_on_a_derived_service(probe_server: Served, via: str) -> None:
    r = await probe_server.post("/probe.v1.Probe/Greet", b'{"name":"ada"}', via=via)
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert orjson.loads(r.body) == {"v": "hello, ada"}


async def test_the_plain_route_is_unchanged(probe_server: Served) -> None:
    no_version = {"connect-protocol-version": ""}
    r = await probe_server.post("/greet", b'{"name":"ada"}', headers=no_version)
    assert (r.status, orjson.loads(r.body)) == (200, {"v": "hello, ada"})


async def test_camel_case_names_and_int64_strings_are_accepted(probe_server: Served) -> None:
    body = b'{"shelfName":"top","maxItems":"7","tags":{"some_key":"1"}}'
    r = await probe_server.post("/probe.v1.Probe/Describe", body)
    assert r.status == 200, r.body
    assert orjson.loads(r.body) == {"shelf_name": "top", "max_items": 7, "tags": {"some_key": 1}}
    r = await probe_server.post("/probe.v1.Probe/Describe", b'{"shelf_name":"a","max_items":1}')
    assert orjson.loads(r.body)["shelf_name"] == "a"


async def test_the_version_header_may_be_missing_but_must_be_1(probe_server: Served) -> None:
    ok = await probe_server.post(
        "/probe.v1.Probe/Greet", b'{"name":"a"}', headers={"connect-protocol-version": ""}
    )
    assert ok.status == 200
    bad = await probe_server.post(
        "/probe.v1.Probe/Greet", b'{"name":"a"}', headers={"connect-protocol-version": "2"}
    )
    assert bad.status == 400
    assert orjson.loads(bad.body)["code"] == "invalid_argument"


async def test_request_id_and_caller_come_through(probe_server: Served) -> None:
    r = await probe_server.post(
        "/probe.v1.Probe/Whoami",
        b"{}",
        headers={"x-request-id": "rid-connect-1", "connect-timeout-ms": "5000"},
    )
    who = orjson.loads(r.body)
    assert r.headers["x-request-id"] == "rid-connect-1"
    assert who["request_id"] == "rid-connect-1"
    assert who["caller"]  # the Unix peer's user
    assert 0 < who["remaining"] <= 5.0


async def test_a_business_error_is_connects_error_body(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Greet", b'{"name":""}')
    assert r.status == 400
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-lokit-error"] == "lokit.INVALID_ARGUMENT"
    assert orjson.loads(r.body) == {"code": "invalid_argument", "message": "name is required"}


async def test_malformed_json_is_invalid_argument(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Greet", b'{"name":')
    assert r.status == 400
    assert orjson.loads(r.body)["code"] == "invalid_argument"


async def test_an_unexpected_failure_tells_only_the_request_id(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Crash", b"{}", headers={"x-request-id": "rid-x"})
    assert r.status == 500
    assert orjson.loads(r.body) == {
        "code": "internal",
        "message": "internal error (request id rid-x)",
    }


async def test_connect_timeout_is_the_deadline(probe_server: Served) -> None:
    r = await probe_server.post(
        "/probe.v1.Probe/Slow", b'{"ms":2000}', headers={"connect-timeout-ms": "50"}
    )
    assert r.status == 504
    assert orjson.loads(r.body)["code"] == "deadline_exceeded"
    assert r.headers["x-lokit-error"] == "lokit.DEADLINE_EXCEEDED"
    after = REGISTRY.get_sample_value(
        "lokit_requests_total",
        {"service": "probe", "method": "Slow", "transport": "http", "code": "DEADLINE_EXCEEDED"},
    )
    assert after is not None and after >= 1  # observed as any request is


@pytest.mark.parametrize("value", ["abc", "-5", "12345678901", "1.5"])
async def test_a_bad_timeout_header_is_invalid_argument(probe_server: Served, value: str) -> None:
    r = await probe_server.post(
        "/probe.v1.Probe/Greet", b'{"name":"a"}', headers={"connect-timeout-ms": value}
    )
    assert r.status == 400
    assert "connect-timeout-ms" in orjson.loads(r.body)["message"]


async def test_an_unknown_method_is_404(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Nope", b"{}")
    assert r.status == 404


async def test_get_is_405(probe_server: Served) -> None:
    import aiohttp

    conn = aiohttp.UnixConnector(path=probe_server.unix.removeprefix("unix:"))
    async with (
        aiohttp.ClientSession(connector=conn) as s,
        s.get("http://localhost/probe.v1.Probe/Greet") as r,
    ):
        assert r.status == 405
        assert r.headers["allow"] == "POST"


async def test_an_unsupported_content_type_is_415(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Greet", b"x", "text/plain")
    assert r.status == 415
    assert "application/json" in r.headers["accept-post"]
    # a unary method does not take the streaming content types
    r = await probe_server.post("/probe.v1.Probe/Greet", b"x", "application/connect+json")
    assert r.status == 415


async def test_compressed_requests_are_unimplemented(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Greet", b"x", headers={"content-encoding": "gzip"})
    assert r.status == 501
    assert orjson.loads(r.body)["code"] == "unimplemented"


async def test_proto_on_a_derived_service(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Greet", b"\n\x03ada", "application/proto")
    assert _schema_tools() is not None
    assert r.status == 200
    assert r.headers["content-type"] == "application/proto"
    assert r.body == b"\n\nhello, ada"  # field v = 1, a string


async def test_addsvc_proto(addsvc_server: Served) -> None:
    body = addsvc_pb2.SumRequest(a=2, b=3).SerializeToString()
    r = await addsvc_server.post("/pb.Add/Sum", body, "application/proto", via="tcp")
    assert r.status == 200
    assert r.headers["content-type"] == "application/proto"
    assert addsvc_pb2.SumReply.FromString(r.body).v == 5


async def test_addsvc_json_is_the_protobuf_json_mapping(addsvc_server: Served) -> None:
    r = await addsvc_server.post("/pb.Add/Sum", b'{"a":"2","b":3}')
    assert (r.status, orjson.loads(r.body)) == (200, {"v": "5"})  # int64 as a string
    r = await addsvc_server.post("/pb.Add/Concat", b'{"a":"2","b":"3"}')
    assert orjson.loads(r.body) == {"v": "23"}
    r = await addsvc_server.post("/pb.Add/Sum", b'{"a":1,"c":2}')
    assert r.status == 400
    assert orjson.loads(r.body)["code"] == "invalid_argument"


async def test_addsvc_business_errors_travel_in_the_reply_as_on_grpc(
    addsvc_server: Served,
) -> None:
    r = await addsvc_server.post("/pb.Add/Sum", b'{"a":0,"b":0}')
    assert r.status == 200
    assert orjson.loads(r.body)["err"]
    body = addsvc_pb2.SumRequest(a=0, b=0).SerializeToString()
    r = await addsvc_server.post("/pb.Add/Sum", body, "application/proto")
    assert r.status == 200
    assert addsvc_pb2.SumReply.FromString(r.body).err


async def test_proto_without_a_protobuf_schema_is_415(tmp_path: Path) -> None:
    """A derived service on the old JSON-in-gRPC codec has no protobuf schema to speak."""
    spec = lokit.contract("probe", Probe, codec="json")
    sock = f"unix:{tmp_path}/json.sock"
    rt = Runtime(lokit.define(spec, Probe()), Listeners([], [sock], None, 1.0))
    await rt.start()
    try:
        served = Served(rt, "", sock)
        r = await served.post("/probe.v1.Probe/Greet", b"\n\x03ada", "application/proto")
        assert r.status == 415
        assert r.headers["accept-post"] == "application/json"
        r = await served.post("/probe.v1.Probe/Greet", b'{"name":"ada"}')
        assert (r.status, orjson.loads(r.body)) == (200, {"v": "hello, ada"})
    finally:
        await rt.stop()
