"""Breaker transitions, what counts as a failure, the middleware and the metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lokit.circuitbreaker import Breaker, State, is_failure, middleware
from lokit.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Unknown,
)


def state_of(b: Breaker) -> State:
    """The state now (a call, so type checkers do not narrow it across assertions)."""
    return b.state


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_metric(target: str, instance: str = "") -> float | None:
    return REGISTRY.get_sample_value(
        "lokit_breaker_state", {"target": target, "instance": instance}
    )


def transitions(target: str, to: str, instance: str = "") -> float:
    value = REGISTRY.get_sample_value(
        "lokit_breaker_transitions_total", {"target": target, "instance": instance, "to": to}
    )
    return value or 0.0


def fail(b: Breaker, n: int) -> None:
    for _ in range(n):
        assert b.allow()
        b.record(False)


def test_five_consecutive_failures_open_it() -> None:
    clock = Clock()
    b = Breaker("consec", clock=clock)
    fail(b, 4)
    assert state_of(b) is State.CLOSED
    b.record(True)  # a success resets the run
    fail(b, 4)
    assert state_of(b) is State.CLOSED
    fail(b, 1)
    assert state_of(b) is State.OPEN
    assert not b.allow()
    assert not b.available
    assert state_metric("consec") == 2
    assert transitions("consec", "open") == 1


def test_failure_ratio_over_half_on_min_calls_opens_it() -> None:
    clock = Clock()
    b = Breaker("ratio", failures=100, clock=clock)
    # 20 calls, 10 failures: exactly half, not over it.
    for i in range(20):
        assert b.allow()
        b.record(i % 2 == 0)
    assert state_of(b) is State.CLOSED
    b.record(False)  # 11 of 21
    assert state_of(b) is State.OPEN


def test_ratio_needs_min_calls() -> None:
    b = Breaker("few", failures=100, clock=Clock())
    for ok in [False, False, True] * 6:  # 18 calls, 12 failures
        b.record(ok)
    assert state_of(b) is State.CLOSED


def test_the_ratio_window_forgets_old_calls() -> None:
    clock = Clock()
    b = Breaker("window", failures=100, window=10.0, clock=clock)
    for _ in range(15):
        b.record(True)
        b.record(False)  # 50 %: closed
    assert state_of(b) is State.CLOSED
    clock.now += 11.0  # all of that fell out of the window
    for _ in range(19):
        b.record(True)
    b.record(False)  # 1 of 20 now: closed
    assert state_of(b) is State.CLOSED
    for _ in range(4):
        b.record(False)
    assert state_of(b) is State.CLOSED  # 5 of 24


def test_open_then_half_open_probe_closes_it() -> None:
    clock = Clock()
    b = Breaker("probe", open_for=5.0, clock=clock)
    fail(b, 5)
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.available
    assert b.allow()  # the probe
    assert state_of(b) is State.HALF_OPEN
    assert state_metric("probe") == 1
    assert not b.available  # one probe at a time
    assert not b.allow()
    b.record(True)
    assert state_of(b) is State.CLOSED
    assert state_metric("probe") == 0
    assert transitions("probe", "half-open") == 1
    assert transitions("probe", "closed") == 1
    fail(b, 4)  # the counts started over
    assert state_of(b) is State.CLOSED


def test_a_failed_probe_opens_it_again() -> None:
    clock = Clock()
    b = Breaker("reprobe", open_for=5.0, clock=clock)
    fail(b, 5)
    clock.now += 5.0
    assert b.allow()
    b.record(False)
    assert state_of(b) is State.OPEN
    assert not b.allow()
    clock.now += 5.0
    assert b.allow()
    assert transitions("reprobe", "open") == 2


def test_a_lost_probe_is_given_up_after_open_for() -> None:
    clock = Clock()
    b = Breaker("lost", open_for=5.0, clock=clock)
    fail(b, 5)
    clock.now += 5.0
    assert b.allow()
    clock.now += 1.0
    assert not b.allow()
    clock.now += 4.0
    assert b.allow()  # the first probe never reported


def test_release_frees_the_probe() -> None:
    clock = Clock()
    b = Breaker("release", open_for=5.0, clock=clock)
    fail(b, 5)
    clock.now += 5.0
    assert b.allow()
    b.release()
    assert b.allow()


def test_only_transport_failures_count() -> None:
    for exc in (
        Unavailable("x"),
        DeadlineExceeded("x"),
        Internal("x"),
        Unknown("x"),
        TimeoutError(),
        RuntimeError(),
    ):
        assert is_failure(exc), exc
    for business in (InvalidArgument("x"), NotFound("x"), ResourceExhausted("x")):
        assert not is_failure(business), business
    b = Breaker("business", clock=Clock())
    for _ in range(30):
        assert b.allow()
        b.observe(NotFound("no such user"))
    assert state_of(b) is State.CLOSED


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ratio"):
        Breaker("x", ratio=1.5)
    with pytest.raises(ValueError, match="failures"):
        Breaker("x", failures=0)


async def test_middleware_answers_at_once_when_open() -> None:
    calls = 0

    async def down(request: Any) -> Any:
        nonlocal calls
        calls += 1
        raise Unavailable("service at unix:x is unavailable: connection refused")

    b = Breaker("mw-target", clock=Clock())
    guarded = middleware(b)(down)
    for _ in range(5):
        with pytest.raises(Unavailable, match="connection refused"):
            await guarded(1)
    with pytest.raises(Unavailable, match=r"^circuit open for mw-target$"):
        await guarded(1)
    assert calls == 5


async def test_middleware_business_errors_pass_and_do_not_trip() -> None:
    async def picky(request: Any) -> Any:
        raise InvalidArgument("bad input")

    b = Breaker("mw-business", clock=Clock())
    guarded = middleware(b)(picky)
    for _ in range(10):
        with pytest.raises(InvalidArgument):
            await guarded(1)
    assert state_of(b) is State.CLOSED


async def test_middleware_cancelled_call_gives_no_verdict() -> None:
    clock = Clock()
    b = Breaker("mw-cancel", open_for=1.0, clock=clock)
    fail(b, 5)
    clock.now += 1.0

    async def slow(request: Any) -> Any:
        await asyncio.sleep(10)

    task: asyncio.Task[Any] = asyncio.ensure_future(middleware(b)(slow)(1))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state_of(b) is State.HALF_OPEN
    assert b.allow()  # the probe slot came back


async def test_middleware_judges_a_stream_by_its_first_item() -> None:
    async def items() -> AsyncIterator[int]:
        yield 1
        raise Unavailable("gone mid-stream")

    async def failing() -> AsyncIterator[int]:
        raise Unavailable("refused")
        yield 0

    async def streaming(request: Any) -> Any:
        return items() if request else failing()

    b = Breaker("mw-stream", clock=Clock())
    guarded = middleware(b)(streaming)
    for _ in range(10):
        got = []
        with pytest.raises(Unavailable):
            async for x in await guarded(True):
                got.append(x)
        assert got == [1]
    assert state_of(b) is State.CLOSED  # each answered its first item
    for _ in range(5):
        with pytest.raises(Unavailable, match="refused"):
            async for _x in await guarded(False):
                pass
    assert state_of(b) is State.OPEN


def test_forget_drops_the_series() -> None:
    b = Breaker("forgotten", "unix:a.sock")
    assert state_metric("forgotten", "unix:a.sock") == 0
    b.forget()
    assert state_metric("forgotten", "unix:a.sock") is None
