"""The hook every server transport calls around each request.

`observer.start(ctx)` begins a request (in-flight gauge, timer, server span
parented on the trace context the transport attached); `call.finish(error)`
ends it: one structured log line, the RED metrics, the span's status. Decoding
happens inside the observed region, so a malformed request is logged and counted
like any other failure.
"""

from __future__ import annotations

from typing import Protocol

from lokit.context import RequestContext


class Call(Protocol):
    def finish(self, error: BaseException | None = None) -> None: ...


class Observer(Protocol):
    def start(self, ctx: RequestContext) -> Call: ...


class _NullCall:
    __slots__ = ()

    def finish(self, error: BaseException | None = None) -> None:
        return None


class NullObserver:
    """Observes nothing: the bare floor benchmarks and unit tests can use."""

    _call = _NullCall()

    def start(self, ctx: RequestContext) -> Call:
        return self._call
