"""balanced(): Go kit's lb.Retry semantics, per-attempt deadlines, budgets, breakers, streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lokit.circuitbreaker import Breaker, State
from lokit.context import RequestContext, current, scope
from lokit.endpoint import Endpoint, Kind, Method
from lokit.errors import DeadlineExceeded, Internal, InvalidArgument, Unavailable, Unknown
from lokit.lb import Load, RetryBudget, RoundRobin, balanced

Behaviour = Callable[[Any], Any]


@dataclass(eq=False)
class Node:
    """An instance as the tests see it: a real breaker whose insides they may read."""

    address: str
    breaker: Breaker
    load: Load = field(default_factory=Load)


def state_of(b: Breaker) -> State:
    """The state now (a call, so type checkers do not narrow it across assertions)."""
    return b.state


class Cluster:
    """Instances whose endpoints are plain async functions, with a log of who got each call."""

    def __init__(self, target: str, n: int) -> None:
        self.target = target
        self.members = [
            Node(f"unix:{target}-{i}.sock", Breaker(target, f"unix:{target}-{i}.sock"))
            for i in range(n)
        ]
        self.calls: list[str] = []
        self.deadlines: list[float | None] = []
        self.behaviour: dict[str, Behaviour] = {}

    def fail_with(self, make: Callable[[str], BaseException], *which: int) -> None:
        for i in which or range(len(self.members)):
            address = self.members[i].address

            async def raise_it(request: Any, address: str = address) -> Any:
                raise make(address)

            self.behaviour[address] = raise_it

    def hang(self, *which: int) -> None:
        for i in which:

            async def stalled(request: Any) -> Any:
                await asyncio.sleep(3600)

            self.behaviour[self.members[i].address] = stalled

    def endpoint_of(self, member: Node) -> Endpoint:
        async def call(request: Any) -> Any:
            self.calls.append(member.address)
            ctx = current()
            self.deadlines.append(None if ctx is None else ctx.time_remaining())
            behave = self.behaviour.get(member.address)
            if behave is not None:
                return await behave(request)
            return f"{member.address}:{request}"

        return call

    def balanced(self, method: Method, **kw: Any) -> Endpoint:
        kw.setdefault("budget", RetryBudget())
        return balanced(
            lambda: self.members, self.endpoint_of, method=method, target=self.target, **kw
        )


def unavailable(address: str) -> Unavailable:
    return Unavailable(f"service at {address} is unavailable: connection refused")


PLAIN = Method("Concat")
IDEMPOTENT = Method("Concat", idempotent=True)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_success_needs_one_call() -> None:
    c = Cluster("ok", 3)
    assert (await c.balanced(PLAIN)(7)).endswith(":7")
    assert len(c.calls) == 1
    assert all(m.load.outstanding == 0 for m in c.members)


async def test_max_attempts_is_the_total_and_each_retry_goes_elsewhere() -> None:
    c = Cluster("total", 5)
    c.fail_with(unavailable)
    with pytest.raises(Unavailable) as info:
        await c.balanced(PLAIN, max_attempts=3)(1)
    assert len(c.calls) == 3
    assert len(set(c.calls)) == 3
    first, second, last = c.calls
    assert str(info.value) == (
        f"service at {last} is unavailable: connection refused (previously: "
        f"service at {first} is unavailable: connection refused; "
        f"service at {second} is unavailable: connection refused)"
    )
    assert metric("lokit_retries_total", target="total", method="Concat") == 2


async def test_one_instance_is_retried_itself() -> None:
    c = Cluster("single", 1)
    c.fail_with(unavailable)
    with pytest.raises(Unavailable):
        await c.balanced(PLAIN, max_attempts=3)(1)
    assert len(c.calls) == 3


async def test_a_retry_that_succeeds_answers() -> None:
    c = Cluster("recover", 2)
    c.fail_with(unavailable, 0)
    for _ in range(20):
        assert (await c.balanced(PLAIN)(1)).startswith(c.members[1].address)


async def test_only_unavailable_is_retried_by_default() -> None:
    c = Cluster("plain", 3)
    for make in (Internal, Unknown, DeadlineExceeded, InvalidArgument):
        c.calls.clear()
        c.fail_with(make)
        with pytest.raises(make):
            await c.balanced(PLAIN)(1)
        assert len(c.calls) == 1, make


async def test_idempotent_methods_also_retry_internal_unknown_and_deadline() -> None:
    c = Cluster("idem", 3)
    for make in (Internal, Unknown, DeadlineExceeded):
        c.calls.clear()
        c.fail_with(make)
        with pytest.raises(make, match=r"\(previously: "):
            await c.balanced(IDEMPOTENT)(1)
        assert len(c.calls) == 3, make
    c.calls.clear()
    c.fail_with(InvalidArgument)  # a business error is an answer: never retried
    with pytest.raises(InvalidArgument):
        await c.balanced(IDEMPOTENT)(1)
    assert len(c.calls) == 1


async def test_a_custom_retryable_rule() -> None:
    c = Cluster("custom", 3)
    c.fail_with(InvalidArgument)
    with pytest.raises(InvalidArgument):
        await c.balanced(PLAIN, retryable=lambda e, m: True)(1)
    assert len(c.calls) == 3


async def test_the_last_error_class_is_raised_with_the_earlier_ones() -> None:
    c = Cluster("mixed", 2)
    c.fail_with(unavailable, 0)
    c.fail_with(lambda a: InvalidArgument("no such thing"), 1)
    for _ in range(10):
        c.calls.clear()
        with pytest.raises((InvalidArgument, Unavailable)) as info:
            await c.balanced(PLAIN)(1)
        if c.calls == [c.members[0].address, c.members[1].address]:
            assert isinstance(info.value, InvalidArgument)
            assert str(info.value).startswith("no such thing (previously: service at ")
            return
    pytest.fail("the failing instance was never tried first")


async def test_one_deadline_covers_every_attempt() -> None:
    c = Cluster("deadline", 3)
    c.hang(0, 1, 2)
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="exceeded its deadline"):
        await c.balanced(IDEMPOTENT, timeout=0.15)(1)
    took = time.monotonic() - t0
    assert len(c.calls) == 3  # each attempt got a share of the 0.15 s
    assert took < 1.0  # not 3 x 0.15 s plus a hang (a bound, not a figure)


async def test_the_request_deadline_is_the_one_used() -> None:
    c = Cluster("ctxdeadline", 2)
    c.hang(0, 1)
    ctx = RequestContext("rid", deadline=time.monotonic() + 0.1)
    with scope(ctx), pytest.raises(DeadlineExceeded):
        await c.balanced(PLAIN, timeout=30.0)(1)
    assert len(c.calls) == 1  # not idempotent: the one attempt had all the time
    left = c.deadlines[0]
    assert left is not None and left <= 0.1


async def test_each_attempt_gets_a_share_of_the_time_left() -> None:
    c = Cluster("shares", 3)
    c.fail_with(unavailable)
    with pytest.raises(Unavailable):
        await c.balanced(IDEMPOTENT, timeout=3.0)(1)
    first, second, third = c.deadlines
    assert first is not None and second is not None and third is not None
    assert first <= 1.0
    assert 1.0 < second <= 1.5
    assert 2.5 < third <= 3.0


async def test_a_stalled_instance_fails_over_within_the_deadline_and_opens() -> None:
    c = Cluster("stalled", 3)
    c.hang(1)
    ep = c.balanced(IDEMPOTENT, balancer=RoundRobin(), timeout=0.15)
    for _ in range(18):
        assert (await ep(1)).endswith(":1")
    stalled = c.members[1]
    assert state_of(stalled.breaker) is State.OPEN
    assert stalled.load.outstanding == 0
    assert metric("lokit_breaker_state", target="stalled", instance=stalled.address) == 2


async def test_no_members_is_unavailable_at_once() -> None:
    nobody: list[Node] = []
    ep = balanced(
        lambda: nobody,
        lambda m: PLAIN.endpoint,
        method=PLAIN,
        target="nobody",
        budget=RetryBudget(),
    )
    with pytest.raises(Unavailable, match=r"^no endpoints available for nobody$"):
        await ep(1)


async def test_every_breaker_open_is_unavailable_at_once() -> None:
    c = Cluster("allopen", 2)
    for m in c.members:
        for _ in range(5):
            m.breaker.record(False)
    with pytest.raises(Unavailable, match=r"^circuit open for allopen$"):
        await c.balanced(PLAIN)(1)
    assert c.calls == []


async def test_attempts_feed_load_and_breakers_business_errors_do_not_trip() -> None:
    c = Cluster("feed", 1)
    c.fail_with(lambda a: InvalidArgument("bad"))
    ep = c.balanced(PLAIN)
    for _ in range(10):
        with pytest.raises(InvalidArgument):
            await ep(1)
    member = c.members[0]
    assert state_of(member.breaker) is State.CLOSED
    assert member.load.calls == 10
    assert member.load.outstanding == 0
    c.fail_with(unavailable)
    for _ in range(2):
        with pytest.raises(Unavailable):
            await ep(1)  # 3 attempts each: the breaker opens on the 5th failure
    assert state_of(member.breaker) is State.OPEN


async def test_with_every_instance_failing_attempts_stay_within_the_budget() -> None:
    c = Cluster("budget", 3)
    c.fail_with(unavailable)
    budget = RetryBudget(ttl=10.0, min_per_second=1.0, percent=0.2)
    ep = c.balanced(PLAIN, budget=budget, max_attempts=3)
    requests = 200
    for m in c.members:  # keep the breakers out of it: this is about the budget
        m.breaker.failures = 10**9
        m.breaker.min_calls = 10**9
    for _ in range(requests):
        with pytest.raises(Unavailable):
            await ep(1)
    allowed = 0.2 * requests + 1.0 * 10.0
    assert len(c.calls) <= requests + allowed
    assert len(c.calls) >= requests + allowed - 1
    assert metric("lokit_retry_budget_exhausted_total", target="budget") > 0


def test_budget_window_and_reserve() -> None:
    now = [0.0]
    budget = RetryBudget(ttl=10.0, min_per_second=1.0, percent=0.5, clock=lambda: now[0])
    assert sum(budget.try_withdraw() for _ in range(20)) == 10  # the reserve alone
    for _ in range(10):
        budget.deposit()
    assert sum(budget.try_withdraw() for _ in range(20)) == 5  # 50 % of 10 requests
    now[0] = 5.0
    assert budget.balance == 0.0  # still within the window
    now[0] = 10.5  # that sub-window has left the window
    assert budget.balance == 10.0


async def test_a_cancelled_call_releases_its_instance() -> None:
    c = Cluster("cancel", 1)
    c.hang(0)
    task: asyncio.Task[Any] = asyncio.ensure_future(c.balanced(PLAIN)(1))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    member = c.members[0]
    assert member.load.outstanding == 0
    assert state_of(member.breaker) is State.CLOSED
    assert member.breaker._consecutive == 0


STREAM = Method("Count", kind=Kind.SERVER_STREAM)


def stream_cluster(n: int, target: str, fail_first: set[int], fail_after: set[int]) -> Cluster:
    c = Cluster(target, n)
    for i in range(n):
        address = c.members[i].address

        async def stream(request: Any, i: int = i, address: str = address) -> Any:
            async def items() -> AsyncIterator[str]:
                if i in fail_first:
                    raise Unavailable(f"{address} refused")
                yield f"{address}:1"
                if i in fail_after:
                    raise Unavailable(f"{address} died")
                yield f"{address}:2"

            return items()

        c.behaviour[address] = stream
    return c


async def test_a_server_stream_is_retried_until_its_first_item() -> None:
    c = stream_cluster(3, "streams", fail_first={0, 1}, fail_after=set())
    ep = c.balanced(STREAM, balancer=RoundRobin())
    items = [x async for x in await ep(1)]
    good = c.members[2].address
    assert items == [f"{good}:1", f"{good}:2"]
    assert len(c.calls) == 3
    assert all(m.load.outstanding == 0 for m in c.members)


async def test_a_server_stream_is_not_retried_after_its_first_item() -> None:
    c = stream_cluster(2, "streams-after", fail_first=set(), fail_after={0, 1})
    ep = c.balanced(STREAM)
    got = []
    with pytest.raises(Unavailable, match="died"):
        async for x in await ep(1):
            got.append(x)
    assert len(got) == 1
    assert len(c.calls) == 1
    assert all(m.load.outstanding == 0 for m in c.members)


async def test_client_streams_are_not_retried() -> None:
    c = Cluster("upload", 3)
    c.fail_with(unavailable)
    ep = c.balanced(Method("Upload", kind=Kind.CLIENT_STREAM, idempotent=True))
    with pytest.raises(Unavailable):
        await ep(None)
    assert len(c.calls) == 1


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="total number of attempts"):
        balanced(list[Node], lambda m: PLAIN.endpoint, method=PLAIN, target="x", max_attempts=0)


async def test_a_stream_dropped_or_closed_early_frees_its_instance() -> None:
    c = stream_cluster(1, "streams-dropped", fail_first=set(), fail_after=set())
    ep = c.balanced(STREAM)
    member = c.members[0]
    stream = await ep(1)
    assert member.load.outstanding == 1  # established, not yet read
    del stream
    assert member.load.outstanding == 0
    stream = await ep(1)
    assert await anext(stream) == f"{member.address}:1"
    await stream.aclose()
    assert member.load.outstanding == 0
