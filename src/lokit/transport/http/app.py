"""A service's HTTP side: a raw ASGI app that routes requests to endpoints.

No framework underneath: Starlette costs 5-25 % per request, and lokit aims to
stay within 15 % of a bare ASGI callable. Everything a request needs is prepared
when the app is built (route table, codecs, header tuples); a request costs one
dict lookup, one pass over the headers, one `RequestContext`, one `Exchange`
and the codec.

A request goes through these steps (`HttpApp.__call__`): route it (`router`;
404 or 405 when nothing matches), read its context from the headers
(`exchange.Exchange`), make that context current and attach the caller's trace
context, start the observer's call, serve it, and leave the context again.
Serving a unary route (in `HttpApp.serve`) reads the body, decodes it, runs the
endpoint under the request's deadline and sends the encoded answer, or the
error; streaming routes are served by `streams`. The wire format is in `wire`.
Paths no route has may be a method's gRPC path: those speak the Connect
protocol (`connect`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping

from lokit import context, errors
from lokit.observability import propagation
from lokit.observability.observer import Observer
from lokit.routes import ServiceDef
from lokit.transport.deadline import within
from lokit.transport.failures import stopping
from lokit.transport.http import streams
from lokit.transport.http.connect import ConnectHandler
from lokit.transport.http.direct import DirectExchange, direct_routes
from lokit.transport.http.exchange import (
    RID,
    ClientGone,
    Exchange,
    send_json,
)
from lokit.transport.http.router import NO_PARAMS, Router, Target
from lokit.transport.http.wire import ERROR_HEADER, error_body
from lokit.transport.limits import BodyPacer, Limits
from lokit.types import ASGIApp, Receive, Scope, Send

__all__ = ["HttpApp", "asgi_app"]


def asgi_app(service: ServiceDef, observer: Observer, limits: Limits | None = None) -> ASGIApp:
    """The ASGI app serving `service.http` routes, observed by `observer`.

    A request body over `limits.max_body_bytes` is refused with 413
    (`BodyTooLarge`); large bodies are read at `limits.max_body_rate` in all.
    """
    return HttpApp(service, observer, limits)


class HttpApp:
    """The ASGI callable behind `asgi_app` (one per service, shared by all requests)."""

    __slots__ = (
        "_connect",
        "_exact",
        "_max_body",
        "_observer",
        "_pacer",
        "_router",
        "_service",
        "direct",
        "exchange",
    )

    def __init__(
        self, service: ServiceDef, observer: Observer, limits: Limits | None = None
    ) -> None:
        limits = limits or Limits()
        self._service = service.name
        self._max_body = limits.max_body_bytes
        self._pacer = BodyPacer(limits.max_body_rate)
        self._observer = observer
        self._router = Router(service.http)
        self._exact = self._router.exact
        self._connect = ConnectHandler(service, observer, self._max_body, self._pacer)
        self.direct = direct_routes(self._exact)
        # For lokit's protocol, which serves `direct_target`s from its parser's
        # callbacks (`direct`): the request's exchange, from the target, its path
        # params, the headers, what it noted of them, the peer, keep-alive, itself.
        self.exchange = functools.partial(
            DirectExchange, self._service, self._max_body, self._pacer
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off: the runtime runs start/stop hooks itself
        # Route: one dict lookup, then the routes with {name} segments.
        verb: str = scope["method"]
        path: str = scope["path"]
        target = self._exact.get((verb, path))
        params = NO_PARAMS
        if target is None:
            proc = self._connect.procedures.get(path)
            if proc is not None:  # the Connect protocol at the method's gRPC path
                await self._connect(proc, scope, receive, send)
                return
            target, params, allow = self._router.match(verb, path, scope.get("raw_path"))
            if target is None:
                await _no_route(scope, send, verb, path, allow)
                return
        # The request's context from its headers, current while it is served.
        make = streams.Stream if target.streams else Exchange
        await self.serve(
            make(self._service, target, scope, receive, send, params, self._max_body, self._pacer)
        )

    def direct_target(self, verb: bytes, url: bytes) -> tuple[Target, Mapping[str, str]] | None:
        """The unary route (and its path params) a request line names, for a direct answer.

        None sends the request the ASGI way: a stream, a query string, no route.
        """
        target = self.direct.get((verb, url))
        if target is not None:
            return target, NO_PARAMS
        if not self._router.templated or b"?" in url:
            return None
        try:
            path = url.decode("ascii")
        except UnicodeDecodeError:
            return None
        target, params, _ = self._router.match(verb.decode("ascii"), path, url)
        return None if target is None or target.streams else (target, params)

    async def serve(self, exchange: Exchange) -> None:
        """Serve a routed request with its context current, observed from start to answer.

        A unary request: decode, run the endpoint under the deadline, answer, and
        finish the observed call however it ends (here rather than in a function of
        its own: one coroutine fewer per request). Streams: `streams.serve`.
        """
        token = context.set_current(exchange.ctx)
        trace_token = (
            None if exchange.headers is None else propagation.extract_and_attach(exchange.headers)
        )
        try:
            call = self._observer.start(exchange.ctx)  # each serve step finishes it
            if isinstance(exchange, streams.Stream):
                await streams.serve(exchange, call)
                return
            target = exchange.target
            try:
                if exchange.bad is not None:
                    raise exchange.bad
                request = exchange.decode(await exchange.read_body())
                deadline = exchange.ctx.deadline
                if deadline is None:  # most local calls: no timer, no extra coroutine
                    response = await target.endpoint(request)
                else:
                    response = await within(target.endpoint, request, deadline)
                out = target.codec.encode_response(response)
            except ClientGone:
                call.finish(errors.Cancelled("the client disconnected"))
                return
            except (Exception, asyncio.CancelledError) as exc:
                failure = stopping(exc)
                try:
                    await exchange.send_error(failure)
                finally:
                    call.finish(failure)
                return
            try:
                await exchange.respond(target.status, out)
            except BaseException as exc:  # the answer did not go out (cancelled, connection lost)
                call.finish(exc)
                raise
            call.finish(None)
        finally:
            if trace_token is not None:
                propagation.detach(trace_token)
            context.reset(token)


async def _no_route(scope: Scope, send: Send, verb: str, path: str, allow: list[str]) -> None:
    """404 for a path nobody serves, 405 (with `allow`) for a verb it is not served with."""
    rid_b: bytes | None = None
    for name, value in scope["headers"]:
        if name == RID:
            rid_b = value
            break
    if not rid_b or len(rid_b) > context.MAX_REQUEST_ID:
        rid_b = context.new_request_id().encode()
    if not allow:
        await send_json(
            send,
            404,
            error_body(f"no route for {path}"),
            rid_b,
            (ERROR_HEADER.encode(), errors.NotFound.error_name.encode()),
        )
        return
    allowed = ", ".join(sorted(set(allow)))
    await send_json(
        send,
        405,
        error_body(f"method {verb} is not allowed for {path}; use {allowed}"),
        rid_b,
        (b"allow", allowed.encode()),
        (ERROR_HEADER.encode(), errors.Unimplemented.error_name.encode()),
    )
