"""balanced(): the context each attempt runs under, and `enforces_deadline`."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from lokit.circuitbreaker import Breaker
from lokit.context import Caller, RequestContext, current, scope
from lokit.endpoint import Endpoint, Method
from lokit.errors import DeadlineExceeded, Unavailable
from lokit.lb import Instance, RetryBudget, RoundRobin, balanced

PLAIN = Method("Concat")
IDEMPOTENT = Method("Concat", idempotent=True)


def members(target: str, n: int) -> list[Instance]:
    return [Instance(f"unix:{target}-{i}.sock", Breaker(target, f"{target}-{i}")) for i in range(n)]


class Seen:
    """Endpoints that record the context of every attempt, failing the first `failing` ones."""

    def __init__(self, failing: int = 0) -> None:
        self.failing = failing
        self.contexts: list[RequestContext | None] = []

    def endpoint_of(self, member: Instance) -> Endpoint:
        async def call(request: Any) -> Any:
            self.contexts.append(current())
            if len(self.contexts) <= self.failing:
                raise Unavailable(f"{member.address} refused")
            return request

        return call


def endpoint(seen: Seen, target: str, method: Method = PLAIN, **kw: Any) -> Endpoint:
    group = members(target, 3)
    return balanced(
        lambda: group,
        seen.endpoint_of,
        method=method,
        target=target,
        budget=RetryBudget(),
        balancer=RoundRobin(),
        **kw,
    )


async def test_an_attempt_keeps_every_field_of_the_callers_context() -> None:
    until = time.monotonic() + 30.0
    caller = RequestContext(
        "rid-7",
        service="addsvc",
        method="Sum",
        transport="grpc",
        deadline=until,
        caller_hint="someone",
        caller=Caller("alice", "cert"),
        anonymous="",
    )
    seen = Seen(failing=2)
    ep = endpoint(seen, "ctx-fields", IDEMPOTENT, timeout=5.0, enforces_deadline=True)
    with scope(caller):
        assert await ep(1) == 1
        assert current() is caller
    assert len(seen.contexts) == 3
    for ctx in seen.contexts:
        assert ctx is not None and ctx.deadline is not None
        assert ctx.deadline < until - 20.0  # tightened to the 5 s timeout's share
        assert dataclasses.replace(ctx, deadline=until) == caller


async def test_a_callers_earlier_deadline_is_left_as_it_is() -> None:
    caller = RequestContext("rid-8", deadline=time.monotonic() + 1.0)
    seen = Seen()
    with scope(caller):
        await endpoint(seen, "ctx-earlier", timeout=5.0, enforces_deadline=True)(1)
    assert seen.contexts == [caller]


async def test_without_a_caller_the_attempts_of_one_call_share_a_request_id() -> None:
    seen = Seen(failing=2)
    ep = endpoint(seen, "ctx-new", IDEMPOTENT, timeout=3.0, enforces_deadline=True)
    await ep(1)
    ids = {ctx.request_id for ctx in seen.contexts if ctx is not None}
    assert len(seen.contexts) == 3 and len(ids) == 1
    assert current() is None
    await ep(2)
    assert seen.contexts[3] is not None and seen.contexts[3].request_id not in ids
    deadlines = [ctx.deadline or 0.0 for ctx in seen.contexts[:3] if ctx is not None]
    assert deadlines == sorted(deadlines)  # a share, half the rest, then all of it


async def test_enforces_deadline_leaves_the_deadline_to_the_endpoint() -> None:
    """An endpoint that overruns its attempt's deadline is not cut off: it promised to stop."""

    async def overruns(request: Any) -> Any:
        await asyncio.sleep(0.06)
        return request

    group = members("ctx-enforced", 1)
    for enforced in (True, False):
        ep = balanced(
            lambda: group,
            lambda m: overruns,
            method=PLAIN,
            target="ctx-enforced",
            budget=RetryBudget(),
            timeout=0.02,
            enforces_deadline=enforced,
        )
        if enforced:
            assert await ep(1) == 1
        else:
            with pytest.raises(DeadlineExceeded, match=r"exceeded its deadline \(0\.0\d\d s\)"):
                await ep(1)


async def test_an_endpoint_keeping_the_deadline_fails_over_within_it() -> None:
    """Like lokit's clients: stop at the current deadline; a stalled instance costs a share."""
    stalled = "unix:ctx-stall-0.sock"

    def endpoint_of(member: Instance) -> Endpoint:
        async def call(request: Any) -> Any:
            if member.address == stalled:
                ctx = current()
                assert ctx is not None and ctx.deadline is not None
                await asyncio.sleep(max(0.0, ctx.deadline - time.monotonic()))
                raise DeadlineExceeded(f"call to Concat on {member.address} exceeded its deadline")
            return request

        return call

    group = members("ctx-stall", 3)
    ep = balanced(
        lambda: group,
        endpoint_of,
        method=IDEMPOTENT,
        target="ctx-stall",
        budget=RetryBudget(),
        balancer=RoundRobin(),
        timeout=0.3,
        enforces_deadline=True,
    )
    for _ in range(3):
        assert await ep(1) == 1
