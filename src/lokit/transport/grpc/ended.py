"""The status a call with a request stream really ended with.

When a server ends such a call before the client has half-closed (a refused record
on ProduceStream), a write the client issued just before the end fails in grpc
core, and grpc.aio (up to at least 1.85) then sets the call's status to `INTERNAL:
Internal error from Core` over the server's status (grpc/grpc#36066). The caller
would get INTERNAL instead of the server's code, message and `lokit-error` class (in
about one call in five here when the client writes fast).

`Ended.watch(call)` keeps the status a call first ends with, read the moment it is
set; `Ended.settle(exc)` answers that status instead of the placeholder. grpc core
completes the refused write after the call's status, so the placeholder comes
second (always so in our tests); were it ever first, it is what the caller gets.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc

PLACEHOLDER = "Internal error from Core"
"""grpc.aio's details for a write grpc core refused (with a `Failed "execute_batch"` debug text)."""


def is_placeholder(exc: Any) -> bool:
    """True for grpc.aio's own status for a refused write, not one a server sent."""
    return bool(
        exc.code() == grpc.StatusCode.INTERNAL
        and exc.details() == PLACEHOLDER
        and (exc.debug_error_string() or "").startswith('Failed "execute_batch"')
    )


def _settled(result: Awaitable[Any]) -> Any:
    """The value of an awaitable that completes without waiting (a finished call's
    accessors), read at once; None if it would have to wait."""
    coro = result.__await__()
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    return None


class Ended:
    """The first status one call ended with, as an AioRpcError (None while it runs)."""

    __slots__ = ("first",)

    def __init__(self) -> None:
        self.first: grpc.aio.AioRpcError | None = None

    def watch(self, call: grpc.aio.Call) -> None:
        call.add_done_callback(self._done)

    def _done(self, call: grpc.aio.Call) -> None:
        # Read now: the placeholder may replace this status before any task runs.
        if self.first is None:
            self.first = _status(call)

    def settle(self, exc: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
        """`exc`, or the server's status when `exc` is grpc's placeholder."""
        first = self.first
        if first is not None and is_placeholder(exc) and not is_placeholder(first):
            return first
        return exc


def _status(call: grpc.aio.Call) -> grpc.aio.AioRpcError | None:
    """A finished call's status as the error it would raise (None if not finished)."""
    code = _settled(call.code())
    if code is None:
        return None
    return grpc.aio.AioRpcError(
        code,
        _settled(call.initial_metadata()) or grpc.aio.Metadata(),
        _settled(call.trailing_metadata()) or grpc.aio.Metadata(),
        _settled(call.details()),
        _settled(call.debug_error_string()),
    )
