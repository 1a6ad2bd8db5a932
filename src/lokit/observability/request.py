"""`RequestObserver`: logs, RED metrics and a server span around every request.

Server transports call `observer.start(ctx)` after attaching the caller's trace
context and `call.finish(error)` when the answer is out, in the same task.

How a failure is reported:
- a lokit `Error` is a normal answer: logged at info with its code and message;
- cancellation (`asyncio.CancelledError`): info, code CANCELLED;
- `TimeoutError` is how the transport's deadline shows up: info, DEADLINE_EXCEEDED;
- anything else is a bug: error level, `err="Type: message"` and the
  `traceback` on the same line, under the request id the caller was given
  (`internal error (request id RID)`: the caller learns nothing more).

Who called: the authenticated caller (`ctx.caller`: name and source) and the
`x-caller-id` hint are on the request line (`caller=`, `caller_source=`,
`caller_hint=`) and on the span (`lokit.caller`, `lokit.caller.source`,
`lokit.caller.hint`).

Cost: per (method, transport) the metric values (`metrics.route`), the
precompiled log line and the span attributes are resolved once and cached; a
request then costs a few dict lookups, a few additions to its metric values,
one formatted line, and no span when tracing is off.
"""

from __future__ import annotations

import asyncio
import traceback
from time import perf_counter

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from lokit import errors
from lokit.context import Caller, RequestContext
from lokit.observability import logs, metrics, tracing
from lokit.observability.observer import Call

_tracing_state = tracing.STATE
_INFO = logs.INFO
_ERROR = logs.ERROR
_OK = "OK"
_CANCELLED = errors.Code.CANCELLED.name


class _Route:
    """Everything about one (service, method, transport) that does not change per request."""

    __slots__ = ("line", "metrics", "span_attrs", "span_name")

    def __init__(self, service: str, method: str, transport: str, rpc_service: str) -> None:
        self.metrics = metrics.route(service, method, transport)
        self.line = logs.RequestLine(service, method, transport)
        self.span_name = f"{service}/{method}"
        self.span_attrs = {
            "rpc.system": transport,
            "rpc.service": rpc_service,
            "rpc.method": method,
        }


class RequestObserver:
    """The `Observer` every lokit server uses; one per service."""

    __slots__ = ("_routes", "service")

    def __init__(self, service: str) -> None:
        self.service = service
        self._routes: dict[str, dict[str, _Route]] = {}

    def start(self, ctx: RequestContext) -> Call:
        by_method = self._routes.get(ctx.transport)
        if by_method is None:
            by_method = self._routes[ctx.transport] = {}
        route = by_method.get(ctx.method)
        if route is None:
            route = by_method[ctx.method] = _Route(
                self.service, ctx.method, ctx.transport, ctx.service
            )
        route.metrics.started()
        call = _RequestCall(route, ctx.request_id, ctx.caller, ctx.caller_hint)
        if _tracing_state.tracer is not None:
            call.open_span()
        return call


class _RequestCall:
    __slots__ = ("_caller", "_hint", "_rid", "_route", "_span", "_t0", "_token")

    def __init__(
        self, route: _Route, request_id: str, caller: Caller | None, hint: str | None
    ) -> None:
        self._route: _Route | None = route
        self._rid = request_id
        self._caller = caller
        self._hint = hint
        self._span: Span | None = None
        self._token: object | None = None
        self._t0 = perf_counter()

    def open_span(self) -> None:
        route = self._route
        assert route is not None
        attrs = dict(route.span_attrs)
        attrs["lokit.request_id"] = self._rid
        if self._caller is not None:
            attrs["lokit.caller"] = self._caller.name
            attrs["lokit.caller.source"] = self._caller.source
        if self._hint is not None:
            attrs["lokit.caller.hint"] = self._hint
        span = tracing.start_server_span(route.span_name, attrs)
        if span is not None:
            self._span = span
            self._token = otel_context.attach(trace.set_span_in_context(span))

    def finish(self, error: BaseException | None = None) -> None:
        """End the request; a second call is ignored."""
        route = self._route
        if route is None:
            return
        self._route = None
        took = perf_counter() - self._t0
        if error is None:
            route.metrics.finished(took, _OK)
            route.line.write(_INFO, self._rid, took, _OK, None, None, self._caller, self._hint)
            if self._span is not None:
                self._close_span(_OK, None, None)
            return
        self._failed(route, took, error)

    def _failed(self, route: _Route, took: float, error: BaseException) -> None:
        unexpected = False
        if isinstance(error, errors.Error):
            code, err, level = error.code.name, error.message, _INFO
        elif isinstance(error, asyncio.CancelledError):
            code, err, level = _CANCELLED, "cancelled", _INFO
        else:
            mapped = errors.as_error(error)
            code, text = mapped.code.name, str(error)
            if isinstance(error, TimeoutError):
                # How the transport's deadline shows up: a normal DEADLINE_EXCEEDED answer.
                err, level = (f"TimeoutError: {text}" if text else mapped.message), _INFO
            else:
                err = f"{type(error).__name__}: {text}" if text else type(error).__name__
                level, unexpected = _ERROR, True
        route.metrics.finished(took, code)
        extra = None
        if unexpected:
            extra = {"traceback": "".join(traceback.format_exception(error)).rstrip()}
        route.line.write(level, self._rid, took, code, err, extra, self._caller, self._hint)
        if self._span is not None:
            self._close_span(code, err, error if unexpected else None)

    def _close_span(self, code: str, err: str | None, exc: BaseException | None) -> None:
        span = self._span
        assert span is not None
        self._span = None
        span.set_attribute("lokit.code", code)
        if err is not None:
            if exc is not None:
                span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, err))
        span.end()
        token, self._token = self._token, None
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
