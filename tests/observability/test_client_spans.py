"""lokit's clients open a CLIENT span per call; the server's span is its child."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lokit import errors
from lokit.derive import describe
from lokit.observability.logs import configure_logging
from lokit.observability.request import RequestObserver
from lokit.observability.tracing import configure_tracing
from lokit.routes import ServiceDef, grpc_routes, http_routes
from lokit.transport.address import parse
from lokit.transport.grpc import GrpcClient, GrpcServer
from lokit.transport.http import HttpClient, HttpServer, asgi_app

SERVICE = "obs_client_spans"


class Svc:
    async def sum(self, a: int, b: int) -> int:
        return a + b

    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def refuse(self) -> int:
        raise errors.FailedPrecondition("not now")


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch, out: io.StringIO) -> InMemorySpanExporter:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    configure_logging(stream=out)
    exp = InMemorySpanExporter()
    assert configure_tracing(SERVICE, exporter=exp)
    return exp


def _pairs(spans: tuple[ReadableSpan, ...]) -> list[tuple[str, str, StatusCode]]:
    """(client span name, server span name, client status) for each call, in order."""
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    servers = {s.parent.span_id: s for s in spans if s.kind is SpanKind.SERVER and s.parent}
    out = []
    for c in clients:
        server = servers[c.context.span_id]  # the server span is the client span's child
        assert server.context.trace_id == c.context.trace_id
        out.append((c.name, server.name, c.status.status_code))
    return out


async def test_grpc_client_spans(exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    methods = describe(Svc())
    routes = {r.method.name: r for r in grpc_routes("test.Spans", methods)}
    server = GrpcServer(ServiceDef(SERVICE, grpc=list(routes.values())), RequestObserver(SERVICE))
    (bound,) = await server.start([parse(f"unix:{tmp_path}/g.sock")])
    client = GrpcClient(bound)
    try:
        eps = client.endpoints(list(routes.values()))
        assert await eps["Sum"](routes["Sum"].method.request_type(a=1, b=2)) == 3
        stream = await eps["Count"](routes["Count"].method.request_type(n=2))
        assert [i async for i in stream] == [0, 1]
        with pytest.raises(errors.FailedPrecondition):
            await eps["Refuse"](routes["Refuse"].method.request_type())
    finally:
        await client.close()
        await server.stop(0)
    assert _pairs(exporter.get_finished_spans()) == [
        ("/test.Spans/Sum", f"{SERVICE}/Sum", StatusCode.UNSET),
        ("/test.Spans/Count", f"{SERVICE}/Count", StatusCode.UNSET),
        ("/test.Spans/Refuse", f"{SERVICE}/Refuse", StatusCode.ERROR),
    ]


async def test_http_client_spans(exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    routes = {r.method.name: r for r in http_routes(describe(Svc()))}
    app = asgi_app(ServiceDef(SERVICE, http=list(routes.values())), RequestObserver(SERVICE))
    server = HttpServer(app)
    (bound,) = await server.start([parse(f"unix:{tmp_path}/h.sock")])
    client = HttpClient(bound)
    try:
        assert await client.unary(routes["Sum"], routes["Sum"].method.request_type(a=1, b=2)) == 3
        stream = client.server_stream(routes["Count"], routes["Count"].method.request_type(n=2))
        assert [i async for i in stream] == [0, 1]
        with pytest.raises(errors.FailedPrecondition):
            await client.unary(routes["Refuse"], routes["Refuse"].method.request_type())
    finally:
        await client.close()
        await server.stop()
    paths = {name: f"{r.verb} {r.path}" for name, r in routes.items()}
    assert _pairs(exporter.get_finished_spans()) == [
        (paths["Sum"], f"{SERVICE}/Sum", StatusCode.UNSET),
        (paths["Count"], f"{SERVICE}/Count", StatusCode.UNSET),
        (paths["Refuse"], f"{SERVICE}/Refuse", StatusCode.ERROR),
    ]
