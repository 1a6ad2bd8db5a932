"""Server spans from RequestObserver, client spans, and configuration from OTEL_*."""

from __future__ import annotations

import io
import itertools

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lokit import errors
from lokit.context import RequestContext
from lokit.observability import propagation, tracing
from lokit.observability.logs import configure_logging
from lokit.observability.request import RequestObserver
from lokit.observability.tracing import (
    client_span,
    configure_tracing,
    shutdown_tracing,
    tracing_enabled,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"

_ids = itertools.count()


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch, out: io.StringIO) -> InMemorySpanExporter:
    for var in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(var, raising=False)
    configure_logging(stream=out)
    exp = InMemorySpanExporter()
    assert configure_tracing("tracesvc", exporter=exp)
    return exp


def _ctx(transport: str = "grpc", rid: str = "rid-1") -> RequestContext:
    return RequestContext(request_id=rid, service="pb.Add", method="Sum", transport=transport)


def _observer() -> RequestObserver:
    return RequestObserver(f"tracesvc{next(_ids)}")


def test_server_span_is_parented_on_the_attached_traceparent(
    exporter: InMemorySpanExporter,
) -> None:
    obs = _observer()
    token = propagation.extract_and_attach({"traceparent": TRACEPARENT})
    try:
        call = obs.start(_ctx(rid="req-42"))
        inside = trace.get_current_span()  # the handler runs under the server span
        call.finish(None)
    finally:
        propagation.detach(token)
    [span] = exporter.get_finished_spans()
    assert span.name == f"{obs.service}/Sum"
    assert span.kind is SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.parent.is_remote
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "pb.Add",
        "rpc.method": "Sum",
        "lokit.request_id": "req-42",
        "lokit.code": "OK",
    }
    assert span.status.status_code is StatusCode.UNSET
    assert inside.get_span_context().span_id == span.context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # detached after finish


def test_a_span_per_request_and_root_without_traceparent(exporter: InMemorySpanExporter) -> None:
    obs = _observer()
    for rid in ("a", "b", "c"):
        obs.start(_ctx(transport="http", rid=rid)).finish(None)
    spans = exporter.get_finished_spans()
    assert [s.attributes["lokit.request_id"] for s in spans if s.attributes] == ["a", "b", "c"]
    assert all(s.parent is None for s in spans)
    assert {s.attributes["rpc.system"] for s in spans if s.attributes} == {"http"}
    assert len({s.context.trace_id for s in spans}) == 3


def test_errors_set_the_span_status(exporter: InMemorySpanExporter) -> None:
    obs = _observer()
    obs.start(_ctx()).finish(errors.NotFound("no such record"))
    obs.start(_ctx()).finish(ValueError("boom"))
    lokit_err, bug = exporter.get_finished_spans()
    assert lokit_err.status.status_code is StatusCode.ERROR
    assert lokit_err.status.description == "no such record"
    assert lokit_err.attributes and lokit_err.attributes["lokit.code"] == "NOT_FOUND"
    assert not lokit_err.events  # a normal answer: no exception event
    assert bug.status.description == "ValueError: boom"
    assert [e.name for e in bug.events] == ["exception"]


def test_client_span_is_a_child_and_is_injected(exporter: InMemorySpanExporter) -> None:
    obs = _observer()
    call = obs.start(_ctx())
    carrier: dict[str, str] = {}
    with client_span("other.Svc/Get") as span:
        assert span is not None
        propagation.inject(carrier)
    call.finish(None)
    client, server = exporter.get_finished_spans()
    assert client.kind is SpanKind.CLIENT and client.name == "other.Svc/Get"
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    version, trace_id, parent_id, flags = carrier["traceparent"].split("-")
    assert (version, trace_id) == ("00", f"{server.context.trace_id:032x}")
    assert parent_id == f"{client.context.span_id:016x}"
    assert int(flags, 16) & 1  # sampled


def test_tracing_off_creates_no_span(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Off without shutting the provider down, so its exporter still takes spans:
    # anything that bypassed the "tracing is off" check would show up below.
    provider = tracing.STATE.provider
    assert provider is not None
    monkeypatch.setattr(tracing.STATE, "tracer", None)
    assert not tracing_enabled()
    obs = _observer()
    token = propagation.extract_and_attach({"traceparent": TRACEPARENT})
    try:
        call = obs.start(_ctx())
        current = trace.get_current_span()
        carrier: dict[str, str] = {}
        with client_span("other.Svc/Get") as span:
            assert span is None
            propagation.inject(carrier)
        call.finish(None)
    finally:
        propagation.detach(token)
    assert exporter.get_finished_spans() == ()
    assert not current.get_span_context().is_valid or not current.is_recording()
    # the caller's context still passes through untouched
    assert carrier["traceparent"] == TRACEPARENT
    # and the exporter was live all along
    provider.get_tracer("probe").start_span("probe").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["probe"]


@pytest.mark.parametrize("value", [None, "", "none", " NONE "])
def test_unset_or_none_exporter_means_off(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    else:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert configure_tracing("svc") is False
    assert not tracing_enabled()


def test_unknown_exporter_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ValueError) as e:
        configure_tracing("svc")
    assert str(e.value) == "unknown OTEL_TRACES_EXPORTER 'jaeger': use console, otlp or none."


def test_console_exporter_writes_one_json_span_per_line_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: io.StringIO
) -> None:
    configure_logging(stream=out)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "renamed")
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    assert configure_tracing("console-svc")
    obs = RequestObserver("console-svc")
    obs.start(_ctx()).finish(None)
    captured = capsys.readouterr()  # written when the span ended, not batched
    [raw] = [x for x in captured.err.splitlines() if x.startswith("{")]
    span = orjson.loads(raw)
    assert span["name"] == "console-svc/Sum"
    assert span["kind"] == "SpanKind.SERVER"
    assert span["resource"]["attributes"]["service.name"] == "renamed"
    assert captured.out == ""


def test_otlp_exporter_is_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    assert configure_tracing("otlp-svc")
    assert tracing_enabled()
    shutdown_tracing()  # nothing recorded, so nothing is sent
    assert not tracing_enabled()
