"""`lokit serve` flags for rate limits (`--limit`, `--limit-storage`, `--limit-fail`).

`--limit RATE` limits every method (together, in one window) and
`--limit METHOD=RATE` one method (its own window; METHOD is its RPC or Python
name, any case); both repeat. RATE is the `limits` library's notation
(`100/second`, `10/minute`). `--limit-storage redis://HOST:PORT` (or
`redis+unix:///PATH`) counts in Redis, so every instance of the service shares
the limit; `--limit-fail` says what happens while that storage cannot answer.
See `lokit.ratelimit`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lokit.endpoint import Method, Middleware
    from lokit.runtime import Extension, Listeners

DEFAULT_STORAGE = "memory://"


def _check_limits(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    from lokit.ratelimit.rates import parse_spec

    for spec in value:
        try:
            parse_spec(spec)
        except ValueError as e:
            raise click.BadParameter(str(e), ctx, param) from None
    return value


def _check_storage(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from lokit.ratelimit.rates import storage_uri

    try:
        storage_uri(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None
    return value


OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--limit",
        "limits",
        multiple=True,
        metavar="[METHOD=]RATE",
        callback=_check_limits,
        help="Refuse calls over RATE (100/second, 10/minute): RESOURCE_EXHAUSTED, HTTP 429 "
        "with Retry-After. RATE covers all methods together; METHOD=RATE one method "
        "(RPC or Python name). Repeatable.",
    ),
    click.option(
        "--limit-storage",
        metavar="URI",
        default=DEFAULT_STORAGE,
        show_default=True,
        callback=_check_storage,
        help="Where --limit counts: memory:// (this process), redis://HOST:PORT or "
        "redis+unix:///PATH (shared by every instance: one global limit).",
    ),
    click.option(
        "--limit-fail",
        type=click.Choice(["open", "closed"]),
        default="open",
        show_default=True,
        help="While the --limit-storage cannot answer: let calls through (open) or refuse "
        "them (closed).",
    ),
]


def configure(opts: dict[str, Any], listeners: Listeners, service: str) -> list[Extension]:
    """Take this group's flags out of `opts`; the rate limit extension when `--limit` is given."""
    specs: tuple[str, ...] = opts.pop("limits", ())
    storage: str = opts.pop("limit_storage", DEFAULT_STORAGE)
    fail: str = opts.pop("limit_fail", "open")
    if not specs:
        if storage != DEFAULT_STORAGE or fail != "open":
            raise click.UsageError("--limit-storage and --limit-fail need a --limit RATE")
        return []
    from lokit.ratelimit import RateLimit
    from lokit.runtime import Extension

    try:
        limit = RateLimit.parse(
            specs, storage=storage, fail="closed" if fail == "closed" else "open", service=service
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--limit'") from None
    seen: list[Method] = []

    def middleware(method: Method) -> Middleware | None:
        seen.append(method)
        return limit.middleware(method)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        # Every method has been wrapped by now (the runtime wraps before it starts):
        # a --limit METHOD= that matched none is a typo, refused in one sentence.
        try:
            limit.check_methods(seen, service or "the service")
        except ValueError as e:
            from lokit.transport.address import AddressError  # what serve() reports plainly

            raise AddressError(str(e)) from None
        async with limit.lifespan():
            yield

    return [Extension(middleware=middleware, lifespan=lifespan)]
