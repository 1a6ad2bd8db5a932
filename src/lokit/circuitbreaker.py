"""Circuit breakers: stop calling a target (or one instance of it) that keeps failing.

A `Breaker` is closed (calls pass) until 5 consecutive failures, or a failure
ratio over 50 % on at least 20 calls within 10 s; then it is open for 5 s and
every call is refused at once with `Unavailable("circuit open for <target>")`;
then half-open: one probe call at a time, whose success closes it and whose
failure opens it again. Only transport-level failures count (UNAVAILABLE,
DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, and unexpected exceptions); a business
error means the instance answered, so it counts as a success (Go kit's FAQ).

`middleware(breaker)` puts one breaker in front of an endpoint (per target);
`lokit.lb` keeps one per instance for outlier ejection. Metrics:
`lokit_breaker_state{target,instance}` (0 closed, 1 half-open, 2 open) and
`lokit_breaker_transitions_total{target,instance,to}`.

Written here rather than taken from a library: pybreaker is sync-only (its
async path needs Tornado), aiobreaker is stale and raises its own error on the
tripping call, and purgatory keeps state behind awaits and a factory (a lock
and a coroutine per call), pins an old redis and has no notion of which
errors are business errors. A breaker here is a few counters on the event
loop's thread, about 1 µs per call.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

from lokit.endpoint import Endpoint, Middleware
from lokit.errors import Code, Error, Unavailable, as_error

__all__ = [
    "TRANSPORT_FAILURES",
    "Breaker",
    "State",
    "is_failure",
    "middleware",
]

TRANSPORT_FAILURES = frozenset(
    {Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.INTERNAL, Code.UNKNOWN}
)
"""The codes that say an instance did not answer properly; only these trip a breaker."""

_METRICS: tuple[Any, Any] | None = None


def _metrics() -> tuple[Any, Any]:
    """`lokit_breaker_state` and `lokit_breaker_transitions_total`, registered on first use.

    (prometheus_client loads with the first breaker, not with `import lokit`.)
    """
    global _METRICS
    if _METRICS is None:
        from prometheus_client import Counter, Gauge

        _METRICS = (
            Gauge(
                "lokit_breaker_state",
                "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                ("target", "instance"),
                multiprocess_mode="livemax",
            ),
            Counter(
                "lokit_breaker_transitions",
                "Circuit breaker state changes, by the state entered.",
                ("target", "instance", "to"),
            ),
        )
    return _METRICS


_BUCKETS = 10  # the failure-ratio window is kept as this many sub-windows


class State(enum.IntEnum):
    """A breaker's state; the values are those of `lokit_breaker_state`."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


def _label(state: State) -> str:
    return state.name.lower().replace("_", "-")


def is_failure(exc: BaseException) -> bool:
    """Whether `exc` counts against a breaker (transport-level, not a business error)."""
    if isinstance(exc, Error):
        return exc.code in TRANSPORT_FAILURES
    return as_error(exc).code in TRANSPORT_FAILURES


class Breaker:
    """One circuit breaker for `target` (and `instance`, when it guards one instance).

    `allow()` says whether a call may go out now (in half-open it claims the one
    probe); every allowed call then reports exactly once: `record(ok)`,
    `observe(exc)` (which classifies the exception, None for success) or
    `release()` (the call was cancelled: no verdict). `available` answers like
    `allow()` without claiming anything (for balancers comparing instances).
    `clock` is injectable for tests (default `time.monotonic`).
    """

    __slots__ = (
        "_buckets",
        "_calls",
        "_clock",
        "_consecutive",
        "_epoch",
        "_failures",
        "_probe_since",
        "_state_gauge",
        "_transitions",
        "_until",
        "_width",
        "failures",
        "instance",
        "min_calls",
        "open_for",
        "ratio",
        "state",
        "target",
        "window",
    )

    def __init__(
        self,
        target: str,
        instance: str = "",
        *,
        failures: int = 5,
        ratio: float = 0.5,
        min_calls: int = 20,
        window: float = 10.0,
        open_for: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or min_calls < 1:
            raise ValueError("a breaker needs failures >= 1 and min_calls >= 1")
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"a breaker's failure ratio must be in (0, 1], not {ratio}")
        if window <= 0 or open_for <= 0:
            raise ValueError("a breaker's window and open_for must be > 0 seconds")
        self.target = target
        self.instance = instance
        self.failures = failures
        self.ratio = ratio
        self.min_calls = min_calls
        self.window = window
        self.open_for = open_for
        self._clock = clock
        self.state = State.CLOSED
        self._consecutive = 0
        self._width = window / _BUCKETS
        # Per sub-window [calls, failures]; _epoch is the index of the newest one.
        self._buckets = [[0, 0] for _ in range(_BUCKETS)]
        self._epoch = int(clock() / self._width)
        self._calls = 0
        self._failures = 0
        self._until = 0.0  # when an open breaker turns half-open
        self._probe_since: float | None = None  # a half-open probe in flight since
        state_gauge, transitions = _metrics()
        self._state_gauge = state_gauge.labels(target, instance)
        self._state_gauge.set(0)
        self._transitions = {s: transitions.labels(target, instance, _label(s)) for s in State}

    def __repr__(self) -> str:
        where = f"{self.target} {self.instance}".strip()
        return f"<Breaker {where} {self.state.name.lower()}>"

    @property
    def available(self) -> bool:
        """Whether `allow()` would let a call through now (claims nothing)."""
        state = self.state
        if state is State.CLOSED:
            return True
        now = self._clock()
        if state is State.OPEN:
            return now >= self._until
        return self._probe_since is None or now - self._probe_since >= self.open_for

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, the first caller gets the probe."""
        state = self.state
        if state is State.CLOSED:
            return True
        now = self._clock()
        if state is State.OPEN:
            if now < self._until:
                return False
            self._enter(State.HALF_OPEN)
        # Half-open: one probe at a time; a probe that never reported (its caller
        # vanished) is given up after open_for.
        if self._probe_since is not None and now - self._probe_since < self.open_for:
            return False
        self._probe_since = now
        return True

    def record(self, ok: bool) -> None:
        """The verdict on a call `allow()` let through."""
        state = self.state
        if state is State.HALF_OPEN:
            self._probe_since = None
            if ok:
                self._reset()
                self._enter(State.CLOSED)
            else:
                self._open()
            return
        if state is State.OPEN:
            return  # a call from before the breaker opened
        if ok:
            self._consecutive = 0
        else:
            self._consecutive += 1
        self._count(ok)
        if not ok and (
            self._consecutive >= self.failures
            or (self._calls >= self.min_calls and self._failures > self.ratio * self._calls)
        ):
            self._open()

    def observe(self, exc: BaseException | None) -> None:
        """Record the outcome of a call from its exception (None: it succeeded)."""
        if exc is None:
            self.record(True)
        elif isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            self.release()
        else:
            self.record(not is_failure(exc))

    def release(self) -> None:
        """A call `allow()` let through ended without a verdict (cancelled)."""
        if self.state is State.HALF_OPEN:
            self._probe_since = None

    def error(self) -> Unavailable:
        """What a call refused by this breaker raises."""
        return Unavailable(f"circuit open for {self.target}")

    def forget(self) -> None:
        """Drop this breaker's metric series (its instance left)."""
        state_gauge, transitions = _metrics()
        for s in State:
            with suppress(KeyError):
                transitions.remove(self.target, self.instance, _label(s))
        with suppress(KeyError):
            state_gauge.remove(self.target, self.instance)

    def _count(self, ok: bool) -> None:
        epoch = int(self._clock() / self._width)
        if epoch != self._epoch:
            self._roll(epoch)
        bucket = self._buckets[epoch % _BUCKETS]
        bucket[0] += 1
        self._calls += 1
        if not ok:
            bucket[1] += 1
            self._failures += 1

    def _roll(self, epoch: int) -> None:
        """Empty the sub-windows that fell out of the window since the last count."""
        stale = min(epoch - self._epoch, _BUCKETS)
        for i in range(epoch - stale + 1, epoch + 1):
            bucket = self._buckets[i % _BUCKETS]
            self._calls -= bucket[0]
            self._failures -= bucket[1]
            bucket[0] = bucket[1] = 0
        self._epoch = epoch

    def _reset(self) -> None:
        self._consecutive = 0
        self._calls = self._failures = 0
        for bucket in self._buckets:
            bucket[0] = bucket[1] = 0

    def _open(self) -> None:
        self._until = self._clock() + self.open_for
        self._reset()
        self._enter(State.OPEN)

    def _enter(self, state: State) -> None:
        self.state = state
        self._state_gauge.set(int(state))
        self._transitions[state].inc()


def middleware(breaker: Breaker) -> Middleware:
    """An endpoint middleware guarding the wrapped endpoint with `breaker`.

    An open breaker raises `Unavailable("circuit open for <target>")` without
    calling on. A stream's verdict is its first item (or its end, if it has
    none): that is when the peer has shown it answers.
    """

    def wrap(next_endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Any) -> Any:
            if not breaker.allow():
                raise breaker.error()
            try:
                response = await next_endpoint(request)
            except BaseException as e:
                breaker.observe(e)
                raise
            if isinstance(response, AsyncIterator):
                return judged_by_first_item(response, breaker.observe)
            breaker.record(True)
            return response

        return guarded

    return wrap


async def judged_by_first_item(
    stream: AsyncIterator[Any], verdict: Callable[[BaseException | None], None]
) -> AsyncIterator[Any]:
    """`stream`, calling `verdict` once: at its first item, its end, or its failure before."""
    pending = True
    try:
        async for item in stream:
            if pending:
                pending = False
                verdict(None)
            yield item
    except BaseException as e:
        if pending:
            pending = False
            verdict(e)
        raise
    if pending:  # it ended without an item
        verdict(None)
