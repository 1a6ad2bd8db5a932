"""W3C trace context in and out of gRPC metadata and HTTP headers.

Server transports `attach` the caller's trace context before observing a
request; clients `inject` the current one into outgoing metadata. With no
tracer provider configured both are cheap no-ops in effect.
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


def detach(token: object | None) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]


def inject(carrier: MutableMapping[str, str], span: Span | None = None) -> None:
    """Add trace context headers to `carrier`: `span`'s, else the current span's (if any)."""
    propagate.inject(carrier, None if span is None else trace.set_span_in_context(span))
