"""RequestObserver behind lokit's real gRPC server: log line, metrics and a parented span."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from lokit import errors
from lokit.codec import JsonCodec
from lokit.endpoint import Method
from lokit.observability.logs import configure_logging
from lokit.observability.request import RequestObserver
from lokit.observability.tracing import configure_tracing
from lokit.routes import GrpcRoute, ServiceDef
from lokit.transport.address import parse
from lokit.transport.grpc.server import GrpcServer

from ._logfmt import lines

SERVICE = "obs_grpc_e2e"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def echo(request: Any) -> Any:
    if request == "fail":
        raise errors.FailedPrecondition("not now")
    if request == "bug":
        raise ZeroDivisionError("division by zero")
    return request


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[str]:
    method = Method("Echo", echo)
    service = ServiceDef(SERVICE, grpc=[GrpcRoute("/test.Obs/Echo", method, JsonCodec(method))])
    server = GrpcServer(service, RequestObserver(SERVICE))
    sock = tmp_path / "obs.sock"
    await server.start([parse(f"unix:{sock}")])
    yield f"unix://{sock}"
    await server.stop(0)


async def test_grpc_requests_are_logged_counted_and_traced(
    target: str, out: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    configure_logging(stream=out)
    exporter = InMemorySpanExporter()
    configure_tracing(SERVICE, exporter=exporter)
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/test.Obs/Echo")
        md = (("x-request-id", "e2e-1"), ("traceparent", TRACEPARENT))
        assert await call(b'"hi"', metadata=md) == b'"hi"'
        for body, status in (
            (b'"fail"', grpc.StatusCode.FAILED_PRECONDITION),
            (b'"bug"', grpc.StatusCode.INTERNAL),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call(body, metadata=(("x-request-id", "e2e-2"),))
            assert e.value.code() == status

    ok, failed, bug = lines(out.getvalue())
    assert (ok["service"], ok["method"], ok["transport"]) == (SERVICE, "Echo", "grpc")
    assert (ok["request_id"], ok["code"], ok["level"]) == ("e2e-1", "OK", "info")
    assert "err" not in ok
    assert (failed["code"], failed["err"], failed["level"]) == (
        "FAILED_PRECONDITION",
        "not now",
        "info",
    )
    assert (bug["code"], bug["err"], bug["level"]) == (
        "INTERNAL",
        "ZeroDivisionError: division by zero",
        "error",
    )

    def count(code: str) -> float | None:
        labels = {"service": SERVICE, "method": "Echo", "transport": "grpc", "code": code}
        return REGISTRY.get_sample_value("lokit_requests_total", labels)

    assert (count("OK"), count("FAILED_PRECONDITION"), count("INTERNAL")) == (1, 1, 1)
    in_flight = {"service": SERVICE, "method": "Echo"}
    assert REGISTRY.get_sample_value("lokit_requests_in_flight", in_flight) == 0

    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    traced = spans[0]
    assert traced.name == f"{SERVICE}/Echo" and traced.kind is SpanKind.SERVER
    assert f"{traced.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert traced.parent is not None and f"{traced.parent.span_id:016x}" == "b7ad6b7169203331"
    assert traced.attributes and traced.attributes["lokit.request_id"] == "e2e-1"
    assert all(s.parent is None for s in spans[1:])  # no traceparent sent: new traces
