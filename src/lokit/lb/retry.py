"""One endpoint over many instances: pick, call, and retry elsewhere (Go kit's `lb.Retry`).

`balanced(...)` keeps Go kit's semantics and adds what its users asked for:

- `max_attempts` is the total number of calls (3: one call and at most two
  retries), and one deadline covers all of them: the request's own (from
  `lokit.context`), tightened by `timeout` when given. When it passes, the
  call fails with DeadlineExceeded (naming the earlier failures).
- Each retry goes to an instance not tried yet when there is one.
- Exhaustion raises the last error's class with the earlier errors in its
  message: `<last> (previously: <first>; <second>)`.
- What is retried: UNAVAILABLE only (the instance could not be reached, so
  nothing ran). A method marked `idempotent` (its contract says running it
  twice is harmless) also retries DEADLINE_EXCEEDED, INTERNAL and UNKNOWN. No
  other code is retried: a business error is an answer, RESOURCE_EXHAUSTED a
  shared limit that another instance would refuse too. `retryable` replaces
  that rule.
- Retries are capped by the target's `RetryBudget`; a refused retry raises
  the error at hand and counts in `lokit_retry_budget_exhausted_total{target}`;
  each retry counts in `lokit_retries_total{target,method}`.
- Per-attempt deadline: an idempotent unary call gives each attempt an equal
  share of the time left (a third, then half of the rest, then all of it), so
  a stalled instance (SIGSTOP: it accepts, never answers) costs one share and
  the call still succeeds elsewhere within its deadline. A method that is not
  idempotent gives each attempt all the time left (cutting it short could
  only turn a slow success into a failure, since it would not be retried).
  `attempt_timeout` caps every attempt besides. The attempt's deadline is made
  current (a copy of the caller's `lokit.context`, or a new context whose
  request id every attempt of the call shares), so the remote server is told
  too. Each attempt runs under `asyncio.timeout` unless `enforces_deadline`
  says the endpoints keep the current deadline themselves (lokit's gRPC and
  HTTP clients do: they send it and stop waiting when it passes); the timer
  such a wrapper arms and cancels on the loop was the largest cost of a
  balanced call (5-30 µs of client CPU a call, measured over gRPC on Unix
  sockets).
- Every attempt counts in the member's `Load` and gives its breaker a verdict
  (transport-level failures only: see `lokit.circuitbreaker`).
- Streams: a server stream is retried only while it is being established,
  that is until its first item (or its end) arrives; after that, a failure is
  the caller's (items may have been consumed). Its attempt gets the whole
  deadline (the stream lives under it), its outstanding count lasts until the
  stream ends, and its latency and breaker verdict are taken at the first item.
  Client streams and bidi streams are balanced but never retried: their
  requests are an iterator that cannot be replayed.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import Token
from typing import Any, TypeVar

from lokit.context import RequestContext, current, new_request_id, reset, set_current
from lokit.endpoint import Endpoint, Kind, Method
from lokit.errors import Code, DeadlineExceeded, Error, as_error
from lokit.lb.balancers import P2C, Balancer, Member
from lokit.lb.budget import RetryBudget
from lokit.lb.load import Load

__all__ = ["RETRIED", "RETRIED_IF_IDEMPOTENT", "balanced", "default_retryable"]

_METRICS: tuple[Any, Any] | None = None


def _metrics() -> tuple[Any, Any]:
    """`lokit_retries_total` and `lokit_retry_budget_exhausted_total`, registered on first use."""
    global _METRICS
    if _METRICS is None:
        from prometheus_client import Counter

        _METRICS = (
            Counter("lokit_retries", "Retries made, by target and method.", ("target", "method")),
            Counter(
                "lokit_retry_budget_exhausted",
                "Retries refused because the target's retry budget was spent.",
                ("target",),
            ),
        )
    return _METRICS


RETRIED = frozenset({Code.UNAVAILABLE})
"""Codes retried for any method: the instance was not reached."""
RETRIED_IF_IDEMPOTENT = frozenset(
    {Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.INTERNAL, Code.UNKNOWN}
)
"""Codes retried for a method marked idempotent."""

M = TypeVar("M", bound=Member)
Retryable = Callable[[BaseException, Method], bool]


def default_retryable(exc: BaseException, method: Method) -> bool:
    """lokit's rule: UNAVAILABLE always; DEADLINE_EXCEEDED, INTERNAL, UNKNOWN if idempotent."""
    code = exc.code if isinstance(exc, Error) else as_error(exc).code
    return code in (RETRIED_IF_IDEMPOTENT if method.idempotent else RETRIED)


def _call_deadline(timeout: float | None) -> tuple[RequestContext | None, float | None]:
    """The caller's context and the deadline covering every attempt of a call.

    The deadline is the context's, tightened to `timeout` from now when that is earlier.
    """
    ctx = current()
    deadline = None if ctx is None else ctx.deadline
    if timeout is not None:
        mine = time.monotonic() + timeout
        if deadline is None or mine < deadline:
            deadline = mine
    return ctx, deadline


_COPIED = tuple(f.name for f in dataclasses.fields(RequestContext) if f.name != "deadline")
_set_field = object.__setattr__


def _with_deadline(ctx: RequestContext | None, deadline: float) -> RequestContext:
    """`ctx` with `deadline` (a new context with a fresh request id when there is none).

    A field-by-field copy, as a frozen dataclass's own `__init__` fills itself:
    the same result as `dataclasses.replace`, in a third of its time (it runs
    for every attempt of every call).
    """
    if ctx is None:
        return RequestContext(new_request_id(), deadline=deadline)
    made = object.__new__(RequestContext)
    for name in _COPIED:
        _set_field(made, name, getattr(ctx, name))
    _set_field(made, "deadline", deadline)
    return made


def _with_history(last: BaseException, earlier: list[BaseException]) -> BaseException:
    """`last`, as a lokit error whose message ends `(previously: e1; e2)` when there were others."""
    if not earlier:
        return last
    err = as_error(last)
    if err is last:
        try:
            err = copy.copy(err)  # Error.__reduce__: a new instance of the same class
        except Exception:  # a subclass with its own __init__: annotate the original
            err = last
    message = f"{err.message} (previously: {'; '.join(str(e) for e in earlier)})"
    err.message = message
    err.args = (message,)
    return err


def _deadline_hit(method: str, target: str, failed: list[BaseException]) -> DeadlineExceeded:
    tries = f" after {len(failed)} failed attempts" if failed else ""
    text = f"call to {method} on {target} exceeded its deadline{tries}"
    if failed:
        text += f" (previously: {'; '.join(str(e) for e in failed)})"
    return DeadlineExceeded(text)


def balanced(
    members: Callable[[], Sequence[M]],
    endpoint_of: Callable[[M], Endpoint],
    *,
    method: Method,
    target: str,
    balancer: Balancer | None = None,
    budget: RetryBudget | None = None,
    max_attempts: int = 3,
    timeout: float | None = None,
    retryable: Retryable | None = None,
    attempt_timeout: float | None = None,
    enforces_deadline: bool = False,
) -> Endpoint:
    """An endpoint for `method` that calls one of `members()` and retries as described above.

    `members` is read at every attempt (discovery may change it); `endpoint_of`
    gives a member's endpoint for this method. `balancer` defaults to a new
    `P2C`, `budget` to a new `RetryBudget` (share one per target). With a
    custom `retryable`, attempts get all the time left (lokit cannot know
    whether a timed-out attempt would be retried); `attempt_timeout` caps each.
    `enforces_deadline=True` promises that the endpoints fail with
    DeadlineExceeded once the current context's deadline passes (lokit's
    transport clients do), so attempts are not also wrapped in `asyncio.timeout`.
    """
    if max_attempts < 1:
        raise ValueError(
            f"max_attempts is the total number of attempts, at least 1, not {max_attempts}"
        )
    if attempt_timeout is not None and attempt_timeout <= 0:
        raise ValueError(f"attempt_timeout must be > 0 seconds, not {attempt_timeout}")
    pick = (balancer or P2C()).pick
    budget = budget or RetryBudget()
    may_retry = retryable or default_retryable
    retries_total, exhausted_total = _metrics()
    retries = retries_total.labels(target, method.name)
    exhausted = exhausted_total.labels(target)
    name = method.name
    split = method.idempotent and retryable is None
    guard = not enforces_deadline
    perf = time.perf_counter
    mono = time.monotonic

    def next_attempt(
        e: BaseException, attempt: int, failed: list[BaseException], deadline: float | None
    ) -> None:
        """Raise unless `e` (attempt number `attempt`) may be retried now."""
        if attempt >= max_attempts or not may_retry(e, method):
            raise _with_history(e, failed[:-1]) from None
        if deadline is not None and mono() >= deadline:
            raise _deadline_hit(name, target, failed) from None
        if not budget.try_withdraw():
            exhausted.inc()
            raise _with_history(e, failed[:-1]) from None
        retries.inc()

    async def unary(request: Any) -> Any:
        budget.deposit()
        ctx, deadline = _call_deadline(timeout)
        outer = None if ctx is None else ctx.deadline  # the caller's own
        scoped: RequestContext | None = None  # the last attempt context made
        failed: list[BaseException] = []
        tried: list[str] = []
        attempt = 0
        while True:
            attempt += 1
            try:
                member = pick(members(), tried, target=target)
            except Error as none_left:
                raise _with_history(none_left, failed) from None
            now = mono()
            until = deadline  # this attempt's deadline
            if deadline is not None:
                left = deadline - now
                if left <= 0:
                    raise _deadline_hit(name, target, failed) from None
                if split and attempt < max_attempts:
                    until = now + left / (max_attempts - attempt + 1)
            if attempt_timeout is not None and (until is None or now + attempt_timeout < until):
                until = now + attempt_timeout
            breaker = member.breaker
            address = member.address
            if not breaker.allow():
                refused = breaker.error()
                failed.append(refused)
                tried.append(address)
                next_attempt(refused, attempt, failed, deadline)
                continue
            token: Token[RequestContext | None] | None = None
            if until is not None and (outer is None or until < outer):
                if scoped is None or scoped.deadline != until:
                    scoped = _with_deadline(ctx if scoped is None else scoped, until)
                token = set_current(scoped)
            load = member.load
            load.start()
            t0 = perf()
            try:
                try:
                    if guard and until is not None:
                        async with asyncio.timeout(until - now):
                            response = await endpoint_of(member)(request)
                    else:
                        response = await endpoint_of(member)(request)
                finally:
                    if token is not None:
                        reset(token)
            except BaseException as exc:
                load.done(perf() - t0)
                err: BaseException = exc
                if isinstance(err, TimeoutError):
                    took = "" if until is None else f" ({until - now:.3f} s)"
                    err = DeadlineExceeded(
                        f"call to {name} at {address} exceeded its deadline{took}"
                    )
                breaker.observe(err)
                if isinstance(err, asyncio.CancelledError):
                    raise
                failed.append(err)
                tried.append(address)
                next_attempt(err, attempt, failed, deadline)
                continue
            load.done(perf() - t0)
            breaker.record(True)
            return response

    async def server_stream(request: Any) -> AsyncIterator[Any]:
        budget.deposit()
        ctx, deadline = _call_deadline(timeout)
        outer = None if ctx is None else ctx.deadline
        scoped: RequestContext | None = None
        failed: list[BaseException] = []
        tried: list[str] = []
        attempt = 0
        while True:
            attempt += 1
            try:
                member = pick(members(), tried, target=target)
            except Error as none_left:
                raise _with_history(none_left, failed) from None
            now = mono()
            until = deadline  # the stream lives under the whole deadline
            if deadline is not None and deadline <= now:
                raise _deadline_hit(name, target, failed) from None
            if attempt_timeout is not None and (until is None or now + attempt_timeout < until):
                until = now + attempt_timeout
            breaker = member.breaker
            address = member.address
            if not breaker.allow():
                refused = breaker.error()
                failed.append(refused)
                tried.append(address)
                next_attempt(refused, attempt, failed, deadline)
                continue
            token: Token[RequestContext | None] | None = None
            if until is not None and (outer is None or until < outer):
                if scoped is None or scoped.deadline != until:
                    scoped = _with_deadline(ctx if scoped is None else scoped, until)
                token = set_current(scoped)
            load = member.load
            load.start()
            t0 = perf()
            stream: AsyncIterator[Any] | None = None
            try:
                try:
                    if guard and until is not None:
                        async with asyncio.timeout(until - now):
                            stream = await endpoint_of(member)(request)
                            first = await anext(stream)
                    else:
                        stream = await endpoint_of(member)(request)
                        first = await anext(stream)
                finally:
                    if token is not None:
                        reset(token)
            except StopAsyncIteration:
                load.done(perf() - t0)
                breaker.record(True)
                return _empty()
            except BaseException as exc:
                load.done(perf() - t0)
                if stream is not None:
                    await _aclose(stream)
                err: BaseException = exc
                if isinstance(err, TimeoutError):
                    err = DeadlineExceeded(f"stream {name} at {address} exceeded its deadline")
                breaker.observe(err)
                if isinstance(err, asyncio.CancelledError):
                    raise
                failed.append(err)
                tried.append(address)
                next_attempt(err, attempt, failed, deadline)
                continue
            load.done(perf() - t0)
            breaker.record(True)
            load.start()  # outstanding again until the stream ends
            return _Established(first, stream, load)

    async def once(requests: Any) -> Any:
        """Client and bidi streams: one attempt (the requests cannot be replayed)."""
        budget.deposit()
        member = pick(members(), (), target=target)
        breaker = member.breaker
        if not breaker.allow():
            raise breaker.error()
        ctx, deadline = _call_deadline(timeout)
        token: Token[RequestContext | None] | None = None
        outer = None if ctx is None else ctx.deadline
        if deadline is not None and (outer is None or deadline < outer):
            token = set_current(_with_deadline(ctx, deadline))
        load = member.load
        load.start()
        t0 = perf()
        try:
            response = await endpoint_of(member)(requests)
        except BaseException as e:
            load.done(perf() - t0)
            breaker.observe(e)
            raise
        finally:
            if token is not None:
                reset(token)
        load.done(perf() - t0)
        breaker.record(True)
        return response

    if method.kind is Kind.UNARY:
        return unary
    if method.kind is Kind.SERVER_STREAM:
        return server_stream
    return once


async def _empty() -> AsyncIterator[Any]:
    return
    yield


class _Established:
    """An established server stream: its first item again, then the others.

    It keeps its instance's outstanding count up until the stream ends, fails,
    is closed, or is dropped unread (a generator that never started would never
    run its `finally`, and the instance would look busy for good).
    """

    __slots__ = ("_first", "_load", "_open", "_stream")

    def __init__(self, first: Any, stream: AsyncIterator[Any], load: Load) -> None:
        self._first: tuple[Any] | None = (first,)
        self._stream = stream
        self._load = load
        self._open = True

    def __aiter__(self) -> _Established:
        return self

    async def __anext__(self) -> Any:
        first = self._first
        if first is not None:
            self._first = None
            return first[0]
        try:
            return await anext(self._stream)
        except BaseException:
            self._end()
            raise

    async def aclose(self) -> None:
        self._first = None
        self._end()
        await _aclose(self._stream)

    def _end(self) -> None:
        if self._open:
            self._open = False
            self._load.outstanding -= 1

    def __del__(self) -> None:
        self._end()


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass
