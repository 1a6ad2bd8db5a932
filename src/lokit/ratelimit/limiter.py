"""Ingress rate limits: refuse calls over a rate, in this process or shared by instances in Redis.

`RateLimit` holds one default rate (for every method without its own; those
methods share its window) and per-method rates (each its own window). It
counts with the `limits` library's moving window, so at most RATE calls are
accepted in any window-long stretch of time; with `redis://...` storage, the
instances of a service count in the same keys, so together they accept at most
RATE (the global limit of "Local microservices"). A refused call raises
`ResourceExhausted("rate limit exceeded")` with `retry_after` set to the
seconds until the window frees a slot (at least 1): RESOURCE_EXHAUSTED on gRPC
(with `retry-after` trailing metadata), HTTP 429 with `Retry-After`. Refusals
count in `lokit_ratelimit_rejected_total{service,method}`.

When the storage cannot answer (Redis down, or slower than `timeout`), the
limiter fails open (lets calls through: the default) or closed (refuses them
with `ResourceExhausted("rate limit storage unreachable")`) by `fail`, logs one
line per outage and counts `lokit_ratelimit_storage_errors_total{service}`;
for `retry_storage` seconds after an error it decides without asking the
storage, so a dead Redis costs no round trip (nor a connection attempt) per
call, and then it tries again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal

from prometheus_client import Counter

from lokit.context import current
from lokit.endpoint import Endpoint, Method, Middleware
from lokit.errors import ResourceExhausted
from lokit.observability.logs import get_logger
from lokit.ratelimit.rates import (
    Rate,
    normalize_method,
    parse_rate,
    parse_spec,
    redacted,
    storage_uri,
)
from lokit.routes import MethodMiddleware

# limits' RateLimitItem (Any: with `bench/` on mypy's path, bench/limits.py shadows the library).
RateLimitItem = Any

__all__ = ["FAIL_MODES", "RateLimit", "ingress"]

REJECTED = Counter(
    "lokit_ratelimit_rejected",
    "Calls refused by the ingress rate limit.",
    ("service", "method"),
)
STORAGE_ERRORS = Counter(
    "lokit_ratelimit_storage_errors",
    "Rate limit storage calls that failed (the limiter then fails open or closed).",
    ("service",),
)

FAIL_MODES = ("open", "closed")
Fail = Literal["open", "closed"]
_DEFAULT = "*"  # the key of the shared default window
_log = get_logger("lokit.ratelimit")


class RateLimit:
    """An ingress limiter: a default rate, per-method rates and one storage.

    Rates are limits' notation (`100/second`); `methods` maps a method's RPC
    name (`Sum`) or Python name (`sum`, any case) to its own rate. `storage` is
    `memory://` (default), `redis://HOST:PORT`, `rediss://...` or
    `redis+unix:///PATH`. Bad input raises ValueError with one sentence.
    `service` names the service in log lines and metrics where no request
    context does (the middleware takes the name from the request's context).
    Open it (`await open()`, or `lifespan()`) inside the running loop; it
    opens itself on first use otherwise.
    """

    def __init__(
        self,
        default: str | Rate | None = None,
        methods: Mapping[str, str | Rate] | None = None,
        *,
        storage: str = "memory://",
        fail: Fail = "open",
        timeout: float = 0.25,
        retry_storage: float = 1.0,
        service: str = "",
    ) -> None:
        if fail not in FAIL_MODES:
            raise ValueError(f"fail must be 'open' or 'closed', not {fail!r}")
        self.default = _rate(default) if default is not None else None
        self._default_item = self.default.item() if self.default is not None else None
        self.methods: dict[str, tuple[str, Rate]] = {}
        self._items: dict[str, tuple[str, RateLimitItem]] = {}
        for name, given in (methods or {}).items():
            key = normalize_method(name)
            if key in self.methods:
                raise ValueError(f"the rate of method {name} is given twice")
            rate = _rate(given)
            self.methods[key] = (name, rate)
            self._items[key] = (name, rate.item())
        self.storage = storage
        self._uri = storage_uri(storage)
        self.fail: Fail = fail
        self.timeout = timeout
        self.retry_storage = retry_storage
        self.service = service
        self._memory = self._uri.startswith("async+memory")
        self._store: Any = None
        self._strategy: Any = None
        self._down_until = 0.0  # time.monotonic() until which the storage is not asked
        self._down = False
        self._matched: set[str] = set()
        self._labels: dict[tuple[str, str], Any] = {}
        self._errors: dict[str, Any] = {}

    @classmethod
    def parse(
        cls,
        specs: Iterable[str],
        *,
        storage: str | None = None,
        fail: Fail = "open",
        service: str = "",
    ) -> RateLimit:
        """From `--limit` values: `RATE` (the default, at most once) and `METHOD=RATE`."""
        default: Rate | None = None
        methods: dict[str, Rate] = {}
        for spec in specs:
            method, item = parse_spec(spec)
            if method is None:
                if default is not None:
                    raise ValueError(f"two default rates ({default} and {item}): give one")
                default = item
            else:
                if normalize_method(method) in {normalize_method(m) for m in methods}:
                    raise ValueError(f"the rate of method {method} is given twice")
                methods[method] = item
        return cls(default, methods, storage=storage or "memory://", fail=fail, service=service)

    def __repr__(self) -> str:
        rates = [str(self.default)] if self.default else []
        rates += [f"{name}={item}" for name, item in self.methods.values()]
        return f"<RateLimit {', '.join(rates)} in {redacted(self.storage)} fail {self.fail}>"

    # --- storage -------------------------------------------------------------

    async def open(self) -> None:
        """Create the storage (inside the running loop); warn if Redis does not answer now."""
        self._ensure()
        if not self._memory:
            try:
                async with asyncio.timeout(self.timeout):
                    ok = await self._store.check()
            except Exception:
                ok = False
            if not ok:
                self._storage_failed(self.service, "no answer to PING")

    def _ensure(self) -> Any:
        if self._strategy is None:
            from limits.aio.strategies import MovingWindowRateLimiter
            from limits.storage import storage_from_string

            options: dict[str, Any] = {}
            if not self._memory:
                options = {
                    "wrap_exceptions": True,
                    "connect_timeout": self.timeout,
                    "stream_timeout": self.timeout,
                }
            self._store = storage_from_string(self._uri, **options)
            self._strategy = MovingWindowRateLimiter(self._store)
        return self._strategy

    async def close(self) -> None:
        """Let go of the storage (Redis connections, the memory expiry task)."""
        store, self._store, self._strategy = self._store, None, None
        if store is None:
            return
        timer = getattr(store, "timer", None)
        if isinstance(timer, asyncio.Task):
            timer.cancel()
            with suppress(BaseException):
                await timer
        client = getattr(getattr(store, "bridge", None), "storage", None)
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            with suppress(Exception):
                pool.disconnect()

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[RateLimit]:
        """Open for the block (a runtime `Extension`'s lifespan)."""
        await self.open()
        try:
            yield self
        finally:
            await self.close()

    # --- deciding ------------------------------------------------------------

    def rate_for(self, method: Method | str) -> tuple[str, RateLimitItem] | None:
        """(storage key, rate) for `method`: its own rate, else the default's shared one."""
        names = (method.name, method.py_name) if isinstance(method, Method) else (method,)
        for name in names:
            if name:
                key = normalize_method(name)
                hit = self._items.get(key)
                if hit is not None:
                    self._matched.add(key)
                    return hit
        if self._default_item is None:
            return None
        return _DEFAULT, self._default_item

    def unmatched(self) -> list[str]:
        """The per-method rates no method asked for so far (a misspelt `--limit METHOD=`)."""
        return sorted(name for key, (name, _) in self.methods.items() if key not in self._matched)

    def check_methods(self, methods: Iterable[Method], service: str = "the service") -> None:
        """Raise ValueError (one sentence) when a per-method rate names none of `methods`."""
        methods = list(methods)
        for m in methods:
            self.rate_for(m)
        unknown = self.unmatched()
        if unknown:
            known = ", ".join(sorted(m.name for m in methods))
            raise ValueError(
                f"--limit names {', '.join(unknown)}, which {service} does not have "
                f"(its methods: {known})"
            )

    async def hit(self, service: str, method: str) -> bool:
        """Count one call of `method` on `service`; False when it is over the limit."""
        rate = self.rate_for(method)
        if rate is None:
            return True
        return await self._retry_after(service, rate[0], rate[1]) is None

    async def acquire(self, service: str, method: str) -> None:
        """Count one call; raise ResourceExhausted (with `retry_after`) when over the limit."""
        rate = self.rate_for(method)
        if rate is None:
            return
        after = await self._retry_after(service, rate[0], rate[1])
        if after is not None:
            self._reject(service, method, after)

    async def _retry_after(self, service: str, key: str, item: RateLimitItem) -> float | None:
        """None when the call may go on, else the seconds after which to retry."""
        strategy = self._strategy or self._ensure()
        if self._memory:
            if await strategy.hit(item, service, key):
                return None
            return await self._wait_for(strategy, item, service, key)
        if self._down_until:
            now = time.monotonic()
            if now < self._down_until:
                return None if self.fail == "open" else max(1.0, self._down_until - now)
        try:
            async with asyncio.timeout(self.timeout):
                ok = await strategy.hit(item, service, key)
        except Exception as e:
            self._storage_failed(service, _reason(e))
            return None if self.fail == "open" else max(1.0, self.retry_storage)
        if self._down:
            self._down = False
            self._down_until = 0.0
            _log.info(
                "rate limit storage reachable again",
                service=service,
                storage=redacted(self.storage),
            )
        if ok:
            return None
        return await self._wait_for(strategy, item, service, key)

    async def _wait_for(self, strategy: Any, item: RateLimitItem, service: str, key: str) -> float:
        """Seconds until the moving window frees a slot, at least 1."""
        try:
            if self._memory:
                stats = await strategy.get_window_stats(item, service, key)
            else:
                async with asyncio.timeout(self.timeout):
                    stats = await strategy.get_window_stats(item, service, key)
        except Exception:
            return 1.0
        return float(max(1, math.ceil(stats.reset_time - time.time())))

    def _reject(self, service: str, method: str, after: float) -> None:
        counter = self._labels.get((service, method))
        if counter is None:
            counter = self._labels[service, method] = REJECTED.labels(service, method)
        counter.inc()
        if self._down and self.fail == "closed":
            err = ResourceExhausted("rate limit storage unreachable")
        else:
            err = ResourceExhausted("rate limit exceeded")
        err.retry_after = after
        raise err

    def _storage_failed(self, service: str, reason: str) -> None:
        counter = self._errors.get(service)
        if counter is None:
            counter = self._errors[service] = STORAGE_ERRORS.labels(service)
        counter.inc()
        self._down_until = time.monotonic() + self.retry_storage
        if not self._down:
            self._down = True
            _log.error(
                f"rate limit storage unreachable: failing {self.fail}",
                service=service,
                storage=redacted(self.storage),
                err=reason,
                retry_in=self.retry_storage,
            )

    # --- middleware ----------------------------------------------------------

    def middleware(self, method: Method, service: str | None = None) -> Middleware | None:
        """The middleware limiting `method` (None when no rate applies to it).

        `service` names the service in storage keys and metrics; by default it
        is the one the server transport puts in the request's context.
        """
        rate = self.rate_for(method)
        if rate is None:
            return None
        key, item = rate
        name = method.name
        retry_after = self._retry_after
        reject = self._reject
        default_service = self.service

        def wrap(next_endpoint: Endpoint) -> Endpoint:
            async def limited(request: Any) -> Any:
                if service is None:
                    ctx = current()
                    svc = ctx.service if ctx is not None else default_service
                else:
                    svc = service
                after = await retry_after(svc, key, item)
                if after is not None:
                    reject(svc, name, after)
                return await next_endpoint(request)

            return limited

        return wrap


def ingress(limit: RateLimit, service: str | None = None) -> MethodMiddleware:
    """A `MethodMiddleware` (for `wrap_service` or an `Extension`) applying `limit` per method."""

    def make(method: Method) -> Middleware | None:
        return limit.middleware(method, service)

    return make


def _rate(rate: str | Rate) -> Rate:
    return parse_rate(rate) if isinstance(rate, str) else rate


def _reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__
