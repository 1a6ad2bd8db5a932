"""Request-scoped context carried in `contextvars`.

Server transports set it for each request; every lokit client reads it and sends
the request id, the remaining deadline and the caller hint on to the next
service. Trace context rides in OpenTelemetry's own context variable.

Who is calling comes in two strengths. `caller` is an authenticated `Caller`
the transport vouches for: the CN of a verified client certificate (`cert`,
mTLS on TCP or a Unix socket) or the user of the process at the other end of a
Unix socket (`unix`, from SO_PEERCRED, where the transport exposes the
connection's socket: lokit's HTTP server, once per connection; grpc.aio does
not). `caller_hint` is the `x-caller-id` header: anyone can set it, so it is
only written to logs and passed on, never used to authorize. A service calling
the next one sends its own caller's name as the hint (else the hint it got),
so the next service's log shows on whose behalf it is called.
"""

from __future__ import annotations

import contextvars
import itertools
import math
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

from lokit.errors import DeadlineExceeded, Error, InvalidArgument

REQUEST_ID_HEADER = "x-request-id"
TIMEOUT_HEADER = "x-request-timeout-ms"
CALLER_HEADER = "x-caller-id"
TRACEPARENT_HEADER = "traceparent"
# What `scan_incoming` looks for, in this order: (request id, timeout, caller, traceparent).
INCOMING_HEADERS = (REQUEST_ID_HEADER, TIMEOUT_HEADER, CALLER_HEADER, TRACEPARENT_HEADER)
# Longest request id a server accepts; a longer one is replaced by a fresh id.
MAX_REQUEST_ID = 256


NO_TRANSPORT_SECURITY = "no transport security being used"
"""Why a request has no authenticated caller when it came over plaintext TCP (proglog's text)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: `name` as the transport established it, and how.

    `source` is `cert` (the common name of a client certificate the server
    verified) or `unix` (the user name of the connecting process, SO_PEERCRED;
    its uid when it has no passwd entry).
    """

    name: str
    source: str

    def __str__(self) -> str:
        return f"{self.name} ({self.source})"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What is known about the request being served.

    `caller` is None when the transport could not authenticate one; `anonymous`
    then says why, in one sentence (an ACL answers UNAUTHENTICATED with it).
    """

    request_id: str
    service: str = ""
    method: str = ""
    transport: str = ""
    deadline: float | None = None  # time.monotonic() instant
    caller_hint: str | None = None  # x-caller-id: for logs only
    caller: Caller | None = None
    anonymous: str = NO_TRANSPORT_SECURITY

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline, or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "lokit_request", default=None
)


def current() -> RequestContext | None:
    """The context of the request being served, if any."""
    return _current.get()


class _RequestIds:
    """Request ids: a random 64-bit prefix per process, then a 64-bit counter, in hex.

    Unique across processes (the prefix is drawn from `os.urandom` at import and again
    in every forked child) without a `getrandom` syscall per id; `next` on an
    `itertools.count` is atomic, so threads need no lock. Ids are for correlating
    logs, not secrets: a peer learns how many ids a process made since it started.
    """

    __slots__ = ("counter", "prefix")

    def __init__(self) -> None:
        self.prefix = ""
        self.counter: itertools.count[int] = itertools.count()
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


_ids = _RequestIds()
os.register_at_fork(after_in_child=_ids.reseed)


def new_request_id() -> str:
    """A fresh request id: 32 hex characters, unique across processes (see `_RequestIds`)."""
    # bytes.hex: half the time of a `:016x` format.
    return _ids.prefix + (next(_ids.counter) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big").hex()


def deadline_from_timeout(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


@contextmanager
def scope(ctx: RequestContext) -> Iterator[RequestContext]:
    """Make `ctx` current for the duration of the block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def set_current(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _current.set(ctx)


def reset(token: contextvars.Token[RequestContext | None]) -> None:
    _current.reset(token)


def with_deadline(timeout: float) -> contextvars.Token[RequestContext | None]:
    """Tighten the current deadline (or start a context with one) for outgoing calls."""
    ctx = current() or RequestContext(request_id=new_request_id())
    deadline = time.monotonic() + timeout
    if ctx.deadline is not None:
        deadline = min(deadline, ctx.deadline)
    return _current.set(replace(ctx, deadline=deadline))


def bounded(timeout: float | None) -> float | None:
    """`timeout` (seconds, None for none) bounded by the time left on the current deadline."""
    ctx = _current.get()
    return timeout if ctx is None else _within(ctx.deadline, timeout)


def _within(deadline: float | None, timeout: float | None) -> float | None:
    """`timeout` cut to the time left before `deadline` (a time.monotonic() instant)."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    return left if timeout is None or left < timeout else timeout


_Key = TypeVar("_Key", str, bytes)
_Value = TypeVar("_Value")


def scan_incoming(
    headers: Iterable[tuple[_Key, _Value]], keys: tuple[_Key, _Key, _Key, _Key]
) -> tuple[_Value | None, _Value | None, _Value | None, bool]:
    """(request id, timeout, caller, whether a traceparent came) from a request's headers.

    The one pass over the headers every server transport makes per request; the
    raw values go on to `incoming`. `keys` are `INCOMING_HEADERS` in the
    transport's key type, prepared once: str for gRPC metadata, bytes for ASGI
    headers (both lower-case). A repeated header's last value wins.
    """
    rid_key, timeout_key, caller_key, trace_key = keys
    request_id = timeout = caller = None
    traced = False
    for key, value in headers:
        if key == rid_key:
            request_id = value
        elif key == timeout_key:
            timeout = value
        elif key == caller_key:
            caller = value
        elif key == trace_key:
            traced = True
    return request_id, timeout, caller, traced


def incoming(
    service: str,
    method: str,
    transport: str,
    request_id: str | None,
    timeout_ms: str | bytes | None,
    caller: str | None,
    left: float | None = None,
    peer: Caller | None = None,
    anonymous: str = NO_TRANSPORT_SECURITY,
) -> tuple[RequestContext, Error | None]:
    """The context of an incoming request, and the error to answer it with, if any.

    Server transports scan their headers (`scan_incoming`) and hand the raw
    values here, so both read them alike: a missing, empty or longer than
    `MAX_REQUEST_ID` request id is replaced by a fresh one; `timeout_ms`
    (`x-request-timeout-ms`) must be a number of milliseconds >= 0, else the
    error is InvalidArgument; `left` is the seconds the transport itself allows
    (gRPC's deadline), and the deadline is the earlier of the two. `caller` is
    the `x-caller-id` hint; `peer` the caller the transport authenticated, and
    `anonymous` why there is none.
    """
    bad: Error | None = None
    if timeout_ms is not None:
        try:
            ms = float(timeout_ms)
        except ValueError:
            ms = math.nan
        if 0.0 <= ms < math.inf:
            seconds = ms / 1000.0
            if left is None or seconds < left:
                left = seconds
        else:
            text = timeout_ms.decode("latin-1") if isinstance(timeout_ms, bytes) else timeout_ms
            bad = InvalidArgument(
                f"{TIMEOUT_HEADER} must be a number of milliseconds >= 0, not {text!r}"
            )
    if not request_id or len(request_id) > MAX_REQUEST_ID:
        request_id = new_request_id()
    deadline = None if left is None else time.monotonic() + left
    return (
        RequestContext(
            request_id, service, method, transport, deadline, caller or None, peer, anonymous
        ),
        bad,
    )


def outgoing(
    timeout: float | None, default: float | None, method: str, peer: str
) -> tuple[str, float | None, str | None]:
    """The request id, timeout in seconds and caller hint of a client call to `method`.

    The request id is the current request's, else a fresh one; the timeout the
    smaller of the per-call `timeout` and the client's `default`, bounded by the
    current deadline (a call with no time left raises DeadlineExceeded, naming
    `peer`); the hint the current request's authenticated caller, else the hint
    it came with. Transports send them as they carry them (`outgoing_metadata`).
    """
    if default is not None and (timeout is None or default < timeout):
        timeout = default
    ctx = _current.get()
    if ctx is None:
        request_id, hint = new_request_id(), None
    else:
        request_id = ctx.request_id
        caller = ctx.caller
        hint = ctx.caller_hint if caller is None else caller.name
        timeout = _within(ctx.deadline, timeout)
    if timeout is not None and timeout <= 0:
        raise DeadlineExceeded(f"call to {method} at {peer} not started: the deadline has passed")
    return request_id, timeout, hint or None


def timeout_ms(seconds: float) -> int:
    """A timeout as the whole milliseconds sent on (at least 1)."""
    return max(1, int(seconds * 1000))


def outgoing_metadata(
    timeout: float | None, default: float | None, method: str, peer: str
) -> tuple[tuple[tuple[str, str], ...], float | None]:
    """The context headers of a client call to `method` at `peer`, and its timeout in seconds.

    Pairs of lower-case names (gRPC metadata requires them) and values: the
    request id, the timeout as `x-request-timeout-ms`, the caller hint, as
    `outgoing` gives them; only a call with a timeout carries its header, and only
    one with a hint the hint's. The trace context is the caller's to add.
    """
    request_id, timeout, hint = outgoing(timeout, default, method, peer)
    pairs: tuple[tuple[str, str], ...] = ((REQUEST_ID_HEADER, request_id),)
    if timeout is not None:
        pairs += ((TIMEOUT_HEADER, str(timeout_ms(timeout))),)
    if hint:
        pairs += ((CALLER_HEADER, hint),)
    return pairs, timeout
