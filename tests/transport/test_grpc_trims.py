"""What the trimmed gRPC path still carries: request ids, deadlines only when there is one,
trace context passed on with tracing off, and why a plaintext call has no caller."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate

from lokit import context
from lokit.context import RequestContext, scope
from lokit.observability import propagation, tracing
from lokit.observability.observer import NullObserver
from lokit.routes import ServiceDef
from lokit.transport.address import parse
from lokit.transport.grpc import GrpcClient, GrpcServer
from lokit.transport.grpc.client import CallMetadata
from tests.transport.test_grpc_transport import SERVICE, Svc, routes_of

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_request_ids_are_32_hex_and_distinct() -> None:
    ids = {context.new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_child_draws_its_own_request_id_prefix() -> None:
    parent = context.new_request_id()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(w, context.new_request_id().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child[:16] != parent[:16]


@pytest.mark.parametrize(
    ("ctx", "timeout", "default"),
    [
        (None, None, None),
        (None, 2.5, None),
        (None, 30.0, 2.0),
        (RequestContext("rid-1", caller_hint="alice"), None, None),
        (RequestContext("rid-1", caller_hint="alice", deadline=None), 1.0, None),
        (RequestContext("rid-2", deadline=10.0**12), None, None),
    ],
)
def test_outgoing_metadata_sends_a_timeout_only_with_a_deadline(
    ctx: RequestContext | None, timeout: float | None, default: float | None
) -> None:
    if ctx is None:
        pairs, seconds = context.outgoing_metadata(timeout, default, "/p", "unix:x")
    else:
        with scope(ctx):
            pairs, seconds = context.outgoing_metadata(timeout, default, "/p", "unix:x")
    meta = dict(pairs)
    assert pairs[0][0] == context.REQUEST_ID_HEADER  # the request id first
    if ctx is None:
        assert len(meta[context.REQUEST_ID_HEADER]) == 32
    else:
        assert meta[context.REQUEST_ID_HEADER] == ctx.request_id
        assert meta.get(context.CALLER_HEADER) == ctx.caller_hint
    if timeout is None and default is None and (ctx is None or ctx.deadline is None):
        assert seconds is None and context.TIMEOUT_HEADER not in meta  # no deadline: none sent
    else:
        assert seconds is not None
        assert meta[context.TIMEOUT_HEADER] == str(max(1, int(seconds * 1000)))


def test_inject_writes_nothing_when_nothing_is_attached_and_passes_a_parent_on() -> None:
    assert not propagation.attached()
    carrier: dict[str, str] = {}
    propagation.inject(carrier)
    assert carrier == {}
    token = otel_context.attach(propagate.extract({"traceparent": TRACEPARENT}))
    try:
        assert propagation.attached()
        propagation.inject(carrier)
    finally:
        otel_context.detach(token)
    assert carrier["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]


class _Seen:
    """What a generic gRPC server received: each call's metadata and whether it had a deadline."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bool]] = []

    def handler(self) -> grpc.GenericRpcHandler:
        async def sum_(raw: bytes, sctx: grpc.aio.ServicerContext) -> bytes:
            md = {k: v for k, v in sctx.invocation_metadata() if isinstance(v, str)}
            self.calls.append((md, sctx.time_remaining() is not None))
            return b'{"v": 3}'

        return grpc.method_handlers_generic_handler(
            SERVICE, {"Sum": grpc.unary_unary_rpc_method_handler(sum_)}
        )


@pytest.fixture
async def seen(tmp_path: Path) -> AsyncIterator[tuple[_Seen, str]]:
    recorder = _Seen()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((recorder.handler(),))
    path = tmp_path / "seen.sock"
    server.add_insecure_port(f"unix://{path}")
    await server.start()
    try:
        yield recorder, f"unix:{path}"
    finally:
        await server.stop(None)


async def test_client_sends_a_deadline_only_when_there_is_one(seen: tuple[_Seen, str]) -> None:
    recorder, addr = seen
    client = GrpcClient(addr)
    route = next(r for r in routes_of(Svc()) if r.method.name == "Sum")
    req = route.method.request_type(a=1, b=2)
    try:
        await client.unary(route.path, req, route.codec)
        await client.unary(route.path, req, route.codec, timeout=5.0)
        with scope(RequestContext("rid-up", caller_hint="bob")):
            await client.unary(route.path, req, route.codec)
    finally:
        await client.close()
    (plain, plain_dl), (timed, timed_dl), (inner, inner_dl) = recorder.calls
    assert not plain_dl and context.TIMEOUT_HEADER not in plain and "traceparent" not in plain
    assert len(plain["x-request-id"]) == 32
    assert timed_dl and timed[context.TIMEOUT_HEADER] == "5000"
    assert not inner_dl and inner["x-request-id"] == "rid-up" and inner["x-caller-id"] == "bob"


async def test_tracing_off_still_passes_an_incoming_traceparent_on(
    seen: tuple[_Seen, str],
) -> None:
    assert tracing.STATE.tracer is None
    recorder, addr = seen
    client = GrpcClient(addr)
    route = next(r for r in routes_of(Svc()) if r.method.name == "Sum")
    token = otel_context.attach(propagate.extract({"traceparent": TRACEPARENT}))
    try:
        await client.unary(route.path, route.method.request_type(a=1, b=2), route.codec)
    finally:
        otel_context.detach(token)
        await client.close()
    ((md, _),) = recorder.calls
    assert md["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]


class _Anon(Svc):
    async def why(self) -> str:
        ctx = context.current()
        assert ctx is not None and ctx.caller is None
        return ctx.anonymous


@pytest.mark.parametrize("kinds", [("unix",), ("tcp",), ("unix", "tcp")])
async def test_plaintext_server_names_why_there_is_no_caller(
    kinds: tuple[str, ...], tmp_path: Path
) -> None:
    svc = _Anon()
    routes = routes_of(svc)
    server = GrpcServer(
        ServiceDef(name="test", grpc=routes, grpc_services=[SERVICE]), NullObserver()
    )
    want = [parse(f"unix:{tmp_path}/a.sock" if k == "unix" else "127.0.0.1:0") for k in kinds]
    bound = await server.start(want)
    why = next(r for r in routes if r.method.name == "Why")
    try:
        for kind, addr in zip(kinds, bound, strict=True):
            client = GrpcClient(str(addr))
            try:
                got = await client.unary(why.path, why.method.request_type(), why.codec)
            finally:
                await client.close()
            if kind == "unix":
                assert got.startswith("a plaintext gRPC Unix socket gives no caller identity")
            else:
                assert got == context.NO_TRANSPORT_SECURITY
    finally:
        await server.stop(grace=1)


def test_call_metadata_iterates_its_pairs_and_keeps_the_metadata_api() -> None:
    pairs = (("x-request-id", "r1"), ("x-caller-id", "bob"))
    md = CallMetadata(pairs)
    assert len(md) == 2 and tuple(md) == pairs
    assert md["x-caller-id"] == "bob" and "x-request-id" in md
    md.add("x-request-id", "r2")  # as an interceptor might: the mapping is the truth now
    assert len(md) == 3
    assert tuple(md) == (("x-request-id", "r1"), ("x-request-id", "r2"), ("x-caller-id", "bob"))
