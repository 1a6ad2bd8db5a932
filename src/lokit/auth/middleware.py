"""`acl`: the endpoint middleware that asks an `Authorizer` before every method runs.

Made per method (a `MethodMiddleware`, so the runtime puts it on every
endpoint of any service): the action is the method's declared action
(`Method.action`, its Python name by default), the object is read from the
request by the method's `acl_object` (`*` without one), and the subject is the
caller the transport authenticated (`lokit.context.current().caller`: a client
certificate's CN or a Unix peer's user), never the `x-caller-id` hint.

- No authenticated caller: UNAUTHENTICATED with the transport's reason
  (`no transport security being used` over plaintext TCP, as proglog).
- Denied: PERMISSION_DENIED `<subject> not permitted to <action> to <object>`.
- Unary and server-streaming calls are checked before the endpoint runs (so
  before a stream's first item); the items of a request stream are checked as
  they arrive, each for its own object (a stream may write to several topics),
  which the decision cache makes a dict lookup per item.

Health checks and `/metrics` are not service endpoints: they stay open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from lokit.auth.authorizer import WILDCARD, Authorizer
from lokit.context import current
from lokit.endpoint import Endpoint, Method, Middleware
from lokit.errors import Unauthenticated

__all__ = ["NO_CALLER", "acl", "subject"]

NO_CALLER = "no authenticated caller (the call came from outside any request)"
"""Why an endpoint called outside a served request (no request context) is refused."""


def subject() -> str:
    """The authenticated caller's name; UNAUTHENTICATED when there is none."""
    ctx = current()
    if ctx is None:
        raise Unauthenticated(NO_CALLER)
    caller = ctx.caller
    if caller is None:
        raise Unauthenticated(ctx.anonymous)
    return caller.name


def acl(authorizer: Authorizer) -> Callable[[Method], Middleware]:
    """The ACL as a `MethodMiddleware`: for each method, the middleware that checks it."""

    def for_method(method: Method) -> Middleware:
        action = method.action or method.py_name or method.name
        object_of = method.acl_object
        if method.kind.streams_requests and object_of is not None:
            return _per_item(authorizer, action, object_of)
        return _per_call(authorizer, action, object_of)

    return for_method


def _per_call(
    authorizer: Authorizer, action: str, object_of: Callable[[Any], str] | None
) -> Middleware:
    """Check once, before the endpoint runs (the object from the request, else `*`)."""
    authorize = authorizer.authorize

    def middleware(next_endpoint: Endpoint) -> Endpoint:
        if object_of is None:

            async def whole(request: Any) -> Any:
                authorize(subject(), WILDCARD, action)
                return await next_endpoint(request)

            return whole

        async def by_object(request: Any) -> Any:
            authorize(subject(), object_of(request), action)
            return await next_endpoint(request)

        return by_object

    return middleware


def _per_item(authorizer: Authorizer, action: str, object_of: Callable[[Any], str]) -> Middleware:
    """A request stream: the caller is required at once, each item is checked as it arrives."""
    authorize = authorizer.authorize

    def middleware(next_endpoint: Endpoint) -> Endpoint:
        async def streamed(requests: AsyncIterator[Any]) -> Any:
            who = subject()

            async def checked() -> AsyncIterator[Any]:
                async for item in requests:
                    authorize(who, object_of(item), action)
                    yield item

            return await next_endpoint(checked())

        return streamed

    return middleware
