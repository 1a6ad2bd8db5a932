"""OpenTelemetry traces, configured by the standard `OTEL_*` variables.

`OTEL_TRACES_EXPORTER` picks the exporter: `console` (one JSON span per line on
stderr, written as each span ends, like a log line), `otlp` (gRPC, batched in a
background thread; the SDK reads `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*`),
`none`, or a comma list. Unlike the SDK's own default (otlp), **unset means none** for lokit: a
local service should not dial a collector nobody started. `OTEL_SERVICE_NAME`
overrides the service name; `OTEL_RESOURCE_ATTRIBUTES` and the sampler variables
(`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`) are read by the SDK.

With tracing off nothing is created per request: the observer and the clients
check one module attribute (`client_span` would hand back a shared no-op context
manager).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:  # the SDK loads only when tracing is configured (clients start faster)
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

EXPORTERS = ("console", "otlp", "none")
TRACER_NAME = "lokit"


class State:
    """What is configured now; `STATE.tracer is None` means tracing is off.

    Hot paths keep a reference to `STATE` and test `STATE.tracer` per call, which
    costs one attribute read and sees a later reconfiguration.
    """

    __slots__ = ("global_set", "provider", "tracer")

    def __init__(self) -> None:
        self.tracer: Tracer | None = None  # None: tracing off
        self.provider: TracerProvider | None = None
        self.global_set = False


STATE = State()
_NOOP: AbstractContextManager[None] = nullcontext()


def configure_tracing(service_name: str, exporter: SpanExporter | None = None) -> bool:
    """Set up tracing from the environment; True when spans will be exported.

    `exporter` (tests, embedding) bypasses `OTEL_TRACES_EXPORTER` and exports
    each span synchronously as it ends. Calling again replaces the earlier setup.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    if exporter is not None:
        processors: list[Any] = [SimpleSpanProcessor(exporter)]
    else:
        processors = [
            SimpleSpanProcessor(e) if isinstance(e, ConsoleSpanExporter) else BatchSpanProcessor(e)
            for e in _exporters_from_env()
        ]
    shutdown_tracing()
    if not processors:
        return False
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    for p in processors:
        provider.add_span_processor(p)
    if not STATE.global_set:
        # The global provider can be set once per process; lokit's own spans go
        # through `STATE.tracer`, so a later reconfiguration still takes effect.
        trace.set_tracer_provider(provider)
        STATE.global_set = True
    STATE.provider = provider
    STATE.tracer = provider.get_tracer(TRACER_NAME)
    return True


def _exporters_from_env() -> list[SpanExporter]:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    raw = os.environ.get("OTEL_TRACES_EXPORTER", "")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    for n in names:
        if n not in EXPORTERS:
            raise ValueError(f"unknown OTEL_TRACES_EXPORTER {n!r}: use console, otlp or none.")
    out: list[SpanExporter] = []
    if "console" in names:
        out.append(ConsoleSpanExporter(out=sys.stderr, formatter=_one_line))
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        out.append(OTLPSpanExporter())
    return out


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def shutdown_tracing() -> None:
    """Flush and stop the exporters; tracing is off afterwards."""

    provider = STATE.provider
    STATE.tracer = None
    STATE.provider = None
    if provider is not None:
        provider.shutdown()


def tracing_enabled() -> bool:
    return STATE.tracer is not None


def start_server_span(name: str, attributes: Mapping[str, AttributeValue]) -> Span | None:
    """A SERVER span, child of the current (attached) trace context; None when off."""
    t = STATE.tracer
    if t is None:
        return None
    return t.start_span(name, kind=SpanKind.SERVER, attributes=attributes)


def client_span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> AbstractContextManager[Span | None]:
    """Start a CLIENT span and make it current; a no-op when tracing is off.

    Clients call `propagation.inject(metadata)` inside the block so the next
    service parents its server span on this one. lokit's clients check
    `STATE.tracer` first and skip the block when tracing is off.
    """
    t = STATE.tracer
    if t is None:
        return _NOOP
    return t.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def start_client_span(name: str) -> Span | None:
    """A CLIENT span that is *not* made current; None when tracing is off.

    For streamed calls, which outlive the method that starts them: a current
    span would stay attached to the caller's context between items. Clients
    inject it with `propagation.inject(carrier, span)` and end it with `end_span`.
    """
    t = STATE.tracer
    return None if t is None else t.start_span(name, kind=SpanKind.CLIENT)


def end_span(span: Span, error: BaseException | None = None) -> None:
    """End `span`; with `error`, record it and mark the span failed (as `client_span` does)."""
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
