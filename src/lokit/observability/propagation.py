"""W3C trace context in and out of gRPC metadata and HTTP headers.

Server transports `attach` the caller's trace context before observing a
request; clients `inject` the current one into outgoing metadata. Both are
free when there is nothing to carry: `extract_and_attach` looks for a
`traceparent` first, and `inject` returns at once when no span is given and no
trace context is attached (OpenTelemetry's current context is empty), which is
every call of a service with tracing off that was not called with one. A
traceparent that came in is still passed on with tracing off.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span


def extract_and_attach(carrier: Mapping[str, str]) -> object | None:
    """Attach the trace context found in `carrier`; return a token for `detach`, or None."""
    if "traceparent" not in carrier:
        return None
    ctx = propagate.extract(carrier)
    return otel_context.attach(ctx)


def attached() -> bool:
    """Whether any trace context (a span, a remote parent, baggage) is attached now."""
    return bool(otel_context.get_current())


def detach(token: object | None) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]


def with_trace(
    pairs: tuple[tuple[str, str], ...], span: Span | None = None
) -> tuple[tuple[str, str], ...]:
    """Header `pairs` with the trace context added (`span`'s, else the current one), if any."""
    if span is None and not otel_context.get_current():
        return pairs
    headers = dict(pairs)
    inject(headers, span)
    return tuple(headers.items())


def inject(carrier: MutableMapping[str, str], span: Span | None = None) -> None:
    """Add trace context headers to `carrier`: `span`'s, else the current span's (if any)."""
    if span is None and not otel_context.get_current():
        return  # nothing attached: the propagators would write nothing
    propagate.inject(carrier, None if span is None else trace.set_span_in_context(span))
