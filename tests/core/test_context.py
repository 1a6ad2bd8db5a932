"""Request context: scoping, deadlines, and what outgoing calls send on."""

from __future__ import annotations

import time

from lokit import context
from lokit.context import RequestContext


def _outgoing(timeout: float | None) -> tuple[dict[str, str], float | None]:
    pairs, seconds = context.outgoing_metadata(timeout, None, "/x.X/Y", "peer")
    return dict(pairs), seconds


def test_outgoing_without_a_request_makes_a_fresh_id() -> None:
    headers, timeout = _outgoing(2.0)
    assert len(headers[context.REQUEST_ID_HEADER]) == 32 and timeout == 2.0
    assert context.CALLER_HEADER not in headers
    assert context.bounded(2.0) == 2.0 and context.bounded(None) is None


def test_outgoing_inherits_request_id_identity_and_remaining_deadline() -> None:
    ctx = RequestContext(request_id="r1", caller_hint="alice", deadline=time.monotonic() + 0.5)
    with context.scope(ctx):
        assert context.current() is ctx
        headers, timeout = _outgoing(10.0)
        assert headers[context.REQUEST_ID_HEADER] == "r1"
        assert headers[context.CALLER_HEADER] == "alice"
        assert timeout is not None and 0 < timeout <= 0.5
        assert _outgoing(0.1)[1] == 0.1
        bound = context.bounded(None)
        assert bound is not None and 0 < bound <= 0.5 and context.bounded(0.1) == 0.1
    assert context.current() is None


def test_outgoing_hint_is_the_authenticated_caller_when_there_is_one() -> None:
    """A service calling on sends its caller's name as the next service's x-caller-id hint."""
    ctx = RequestContext("r2", caller_hint="claimed", caller=context.Caller("root", "cert"))
    with context.scope(ctx):
        headers, _ = _outgoing(None)
    assert headers[context.CALLER_HEADER] == "root"


def test_with_deadline_only_tightens() -> None:
    with context.scope(RequestContext(request_id="r", deadline=time.monotonic() + 0.2)):
        token = context.with_deadline(5.0)
        left = context.current().time_remaining()  # type: ignore[union-attr]
        assert left is not None and left <= 0.2
        context.reset(token)
