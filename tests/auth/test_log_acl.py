"""proglog's ACL server tests on the log service, through real mTLS channels on both transports.

`root` may produce and consume; `nobody` gets PERMISSION_DENIED on every data method (unary
and streams, gRPC and HTTP) with proglog's sentence; a per-topic policy grants one topic;
health stays open; no certificate over plaintext TCP is UNAUTHENTICATED."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import lokit
from lokit.errors import PermissionDenied, Unauthenticated
from lokit.logsvc import messages as m
from lokit.logsvc.client import LogClient
from lokit.logsvc.config import ServerConfig
from lokit.logsvc.contract import log_contract
from lokit.logsvc.definition import log_definition
from tests.auth.acl_files import POLICY, write_acl
from tests.auth.servers import Served, client_tls, http_call, serving
from tests.security.pki import PKI

TOPIC = "t1"


def log_service(tmp: Path) -> Any:
    return log_definition(ServerConfig(data=str(tmp / "data"), fsync="never"))


@pytest.fixture
async def secured(tmp_path: Path, pki: PKI) -> AsyncIterator[Served]:
    model, policy = write_acl(tmp_path, POLICY + "p, nobody, public, produce\n")
    async with serving(log_service(tmp_path), tmp_path, model, policy, pki) as served:
        yield served


async def _items(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


# A request for every method of the log (gRPC): the object each names is TOPIC, or * for none.
REQUESTS: dict[str, tuple[Any, str]] = {
    "Produce": (m.ProduceRequest(b"x", TOPIC), TOPIC),
    "Consume": (m.ConsumeRequest(0, TOPIC), TOPIC),
    "ProduceStream": (lambda: _items(m.ProduceRequest(b"x", TOPIC)), TOPIC),
    "ConsumeStream": (m.ConsumeRequest(0, TOPIC), TOPIC),
    "ProduceBatch": (m.ProduceBatchRequest([b"x"], TOPIC), TOPIC),
    "ProduceBatchStream": (lambda: _items(m.ProduceBatchRequest([b"x"], TOPIC)), TOPIC),
    "ConsumeBatch": (m.ConsumeBatchRequest(0, TOPIC), TOPIC),
    "ConsumeBatchStream": (m.ConsumeBatchRequest(0, TOPIC, stop_at_end=True), TOPIC),
    "CommitPosition": (m.CommitPositionRequest("c", 0, TOPIC), TOPIC),
    "FetchPosition": (m.FetchPositionRequest("c", TOPIC), TOPIC),
    "ListTopics": (m.ListTopicsRequest(), "*"),
    "GetServers": (m.GetServersRequest(), "*"),
}


async def call(conn: Any, name: str, request: Any) -> Any:
    """Call the RPC `name` through a lokit connection; a stream's items as a list."""
    method = log_contract().methods[name]
    if callable(request):
        request = request()
    out = await conn.endpoints[name](request)
    if method.kind.streams_responses:
        return [item async for item in out]
    return out


def test_every_data_method_is_covered() -> None:
    assert set(REQUESTS) == set(log_contract().methods)


async def test_root_may_produce_and_consume_over_grpc(secured: Served, pki: PKI) -> None:
    client = LogClient(secured.tcp("grpc"), timeout=5, tls=client_tls(pki, "root"))
    try:
        offset = await client.produce(b"hello world")
        assert (await client.consume(offset)).value == b"hello world"
        got = [
            o async for o in client.produce_stream(_items(*(m.ProduceRequest(b"s") for _ in "ab")))
        ]
        assert got == [offset + 1, offset + 2]
        values = []
        async for record in client.consume_stream(offset):  # tails: leave after three
            values.append(record.value)
            if len(values) == 3:
                break
        assert values == [b"hello world", b"s", b"s"]
        assert [s.is_leader for s in await client.get_servers()] == [True]
    finally:
        await client.close()


async def test_root_may_produce_and_consume_over_http(secured: Served, pki: PKI) -> None:
    addr, tls = secured.tcp("http"), client_tls(pki, "root")
    value = base64.b64encode(b"hello world").decode()
    status, body = await http_call(addr, "POST", "/", tls=tls, json={"record": {"value": value}})
    assert (status, body) == (200, {"offset": 0})
    status, body = await http_call(addr, "GET", "/", tls=tls, json={"offset": 0})
    assert (status, body["record"]["value"]) == (200, value)
    status, line = await http_call(addr, "GET", "/topics/default/stream?follow=false", tls=tls)
    assert (status, line) == (200, {"offset": 0, "value": value})  # the one NDJSON line


@pytest.mark.parametrize("name", sorted(REQUESTS))
async def test_nobody_is_denied_every_method_over_grpc(
    secured: Served, pki: PKI, name: str
) -> None:
    request, obj = REQUESTS[name]
    action = log_contract().methods[name].action
    conn = lokit.connect(log_contract(), grpc=secured.tcp("grpc"), tls=client_tls(pki, "nobody"))
    try:
        with pytest.raises(PermissionDenied) as info:
            await call(conn, name, request)
        assert info.value.message == f"nobody not permitted to {action} to {obj}"
    finally:
        await conn.close()


# The log's HTTP routes: (verb, path, body) and the action and object each checks.
HTTP_ROUTES = [
    ("POST", "/", {"record": {"value": "eA=="}}, "produce", "default"),
    ("GET", "/", {"offset": 0}, "consume", "default"),
    ("GET", "/topics", None, "consume", "*"),
    ("POST", f"/topics/{TOPIC}/records", {"values": ["eA=="]}, "produce", TOPIC),
    ("GET", f"/topics/{TOPIC}/records", None, "consume", TOPIC),
    ("GET", f"/topics/{TOPIC}/records/0", None, "consume", TOPIC),
    ("GET", f"/topics/{TOPIC}/stream", None, "consume", TOPIC),
    ("PUT", f"/consumers/c/positions/{TOPIC}", {"offset": 0}, "produce", TOPIC),
    ("GET", f"/consumers/c/positions/{TOPIC}", None, "consume", TOPIC),
    ("GET", "/servers", None, "consume", "*"),
    ("POST", "/produce-stream", {"value": "eA=="}, "produce", "default"),
]


def test_every_http_route_is_covered() -> None:
    assert len(HTTP_ROUTES) == len(log_contract().http)


@pytest.mark.parametrize(("verb", "path", "body", "action", "obj"), HTTP_ROUTES)
async def test_nobody_is_denied_every_route_over_http(
    secured: Served, pki: PKI, verb: str, path: str, body: Any, action: str, obj: str
) -> None:
    tls = client_tls(pki, "nobody")
    status, answer = await http_call(secured.tcp("http"), verb, path, tls=tls, json=body)
    assert (status, answer) == (403, {"error": f"nobody not permitted to {action} to {obj}"})


async def test_a_topic_rule_grants_that_topic_only(secured: Served, pki: PKI) -> None:
    """`p, nobody, public, produce`: nobody writes to public, nowhere else, on every method."""
    client = LogClient(secured.tcp("grpc"), timeout=5, tls=client_tls(pki, "nobody"))
    try:
        assert await client.produce(b"x", topic="public") == 0
        assert (await client.produce_batch([b"y", b"z"], topic="public")).count == 2
        with pytest.raises(PermissionDenied, match=r"^nobody not permitted to produce to secret$"):
            await client.produce(b"x", topic="secret")
        with pytest.raises(PermissionDenied, match=r"^nobody not permitted to consume to public$"):
            await client.consume(0, topic="public")
        # A request stream is checked item by item: public goes through, secret ends it.
        answers: list[int] = []
        items = _items(m.ProduceRequest(b"a", "public"), m.ProduceRequest(b"b", "secret"))
        with pytest.raises(PermissionDenied, match=r"^nobody not permitted to produce to secret$"):
            async for offset in client.produce_stream(items):
                answers.append(offset)
        assert answers == [3]
    finally:
        await client.close()
    status, _ = await http_call(
        secured.tcp("http"),
        "POST",
        "/topics/public/records",
        tls=client_tls(pki, "nobody"),
        json={"values": ["eA=="]},
    )
    assert status == 200


async def test_health_stays_open_to_nobody(secured: Served, pki: PKI) -> None:
    """proglog ch10: a Health client on the nobody connection gets SERVING."""
    creds = client_tls(pki, "nobody").grpc_credentials()
    async with grpc.aio.secure_channel(secured.tcp("grpc"), creds) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_no_transport_security_is_unauthenticated(tmp_path: Path) -> None:
    model, policy = write_acl(tmp_path)
    async with serving(log_service(tmp_path), tmp_path, model, policy) as served:
        conn = lokit.connect(log_contract(), grpc=served.tcp("grpc"))
        try:
            with pytest.raises(Unauthenticated, match=r"^no transport security being used$"):
                await conn.endpoints["Produce"](m.ProduceRequest(b"x"))
            with pytest.raises(Unauthenticated, match=r"^no transport security being used$"):
                await call(conn, "ConsumeStream", m.ConsumeRequest(0))
        finally:
            await conn.close()
        status, body = await http_call(served.tcp("http"), "GET", "/servers")
        assert (status, body) == (401, {"error": "no transport security being used"})
        # gRPC over a plaintext Unix socket has no peer credentials to go by.
        conn = lokit.connect(log_contract(), grpc=served.unix("grpc"))
        try:
            with pytest.raises(Unauthenticated, match=r"^a plaintext gRPC Unix socket gives no"):
                await conn.endpoints["Produce"](m.ProduceRequest(b"x"))
        finally:
            await conn.close()
