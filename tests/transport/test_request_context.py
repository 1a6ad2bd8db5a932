"""`context.incoming`: how both server transports read the request context."""

from __future__ import annotations

import pytest

from lokit import context
from lokit.errors import InvalidArgument


def test_incoming_reads_headers_alike_for_every_transport() -> None:
    ctx, bad = context.incoming("svc", "Sum", "grpc", "rid-1", "250", "alice")
    assert bad is None
    assert (ctx.request_id, ctx.service, ctx.method, ctx.transport, ctx.identity) == (
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
    assert ctx.deadline is None and ctx.identity is None


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
