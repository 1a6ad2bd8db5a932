"""`context.incoming` and `context.outgoing_metadata`: how both transports read and send context."""

from __future__ import annotations

import time

import pytest

from lokit import context
from lokit.context import RequestContext
from lokit.errors import DeadlineExceeded, InvalidArgument


def test_incoming_reads_headers_alike_for_every_transport() -> None:
    ctx, bad = context.incoming("svc", "Sum", "grpc", "rid-1", "250", "alice")
    assert bad is None
    assert (ctx.request_id, ctx.service, ctx.method, ctx.transport, ctx.caller_hint) == (
        "rid-1",
        "svc",
        "Sum",
        "grpc",
        "alice",
    )
    left = ctx.time_remaining()
    assert left is not None and 0 < left <= 0.25
    ctx, bad = context.incoming("svc", "Sum", "http", None, None, "")
    assert bad is None and len(ctx.request_id) == 32
    assert ctx.deadline is None and ctx.caller_hint is None


def test_incoming_takes_the_earlier_of_header_and_transport_deadline() -> None:
    ctx, _ = context.incoming("s", "m", "grpc", None, b"60000", None, left=0.5)
    assert (left := ctx.time_remaining()) is not None and left <= 0.5
    ctx, _ = context.incoming("s", "m", "grpc", None, "100", None, left=60.0)
    assert (left := ctx.time_remaining()) is not None and left <= 0.1
    ctx, _ = context.incoming("s", "m", "grpc", None, None, None, left=2.0)
    assert (left := ctx.time_remaining()) is not None and 1.0 < left <= 2.0


@pytest.mark.parametrize("value", ["soon", b"-5", "inf", "nan", ""])
def test_incoming_refuses_a_bad_timeout_in_one_sentence(value: str | bytes) -> None:
    ctx, bad = context.incoming("s", "m", "http", "r", value, None)
    assert isinstance(bad, InvalidArgument)
    text = value.decode() if isinstance(value, bytes) else value
    assert (
        bad.message == f"x-request-timeout-ms must be a number of milliseconds >= 0, not {text!r}"
    )
    assert ctx.request_id == "r"


def test_incoming_replaces_an_overlong_request_id() -> None:
    ok = "x" * context.MAX_REQUEST_ID
    assert context.incoming("s", "m", "grpc", ok, None, None)[0].request_id == ok
    ctx, _ = context.incoming("s", "m", "grpc", ok + "x", None, None)
    assert len(ctx.request_id) == 32


def outgoing_headers(
    timeout: float | None, default: float | None, method: str, peer: str
) -> tuple[dict[str, str], float | None]:
    pairs, seconds = context.outgoing_metadata(timeout, default, method, peer)
    return dict(pairs), seconds


def test_outgoing_headers_min_of_call_and_default_and_at_least_one_ms() -> None:
    headers, seconds = outgoing_headers(30.0, 2.0, "/p", "unix:x")
    assert seconds == 2.0 and headers["x-request-timeout-ms"] == "2000"
    headers, seconds = outgoing_headers(0.5, 2.0, "/p", "unix:x")
    assert seconds == 0.5 and headers["x-request-timeout-ms"] == "500"
    headers, seconds = outgoing_headers(None, 0.0004, "/p", "unix:x")
    assert seconds == 0.0004 and headers["x-request-timeout-ms"] == "1"
    headers, seconds = outgoing_headers(None, None, "/p", "unix:x")
    assert seconds is None and set(headers) == {"x-request-id"}


def test_outgoing_headers_carry_the_current_request() -> None:
    ctx = RequestContext("up-1", caller_hint="svc-a", deadline=time.monotonic() + 0.3)
    with context.scope(ctx):
        headers, seconds = outgoing_headers(10.0, None, "/p", "unix:x")
    assert headers["x-request-id"] == "up-1" and headers["x-caller-id"] == "svc-a"
    assert seconds is not None and 0 < seconds <= 0.3


def test_outgoing_headers_refuse_a_passed_deadline() -> None:
    with context.scope(RequestContext("r", deadline=time.monotonic() - 1)):
        with pytest.raises(DeadlineExceeded) as info:
            outgoing_headers(None, 5.0, "/pb.Add/Sum", "unix:add.sock")
    assert info.value.message == (
        "call to /pb.Add/Sum at unix:add.sock not started: the deadline has passed"
    )
