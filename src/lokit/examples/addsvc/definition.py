"""addsvc's wiring: the service, wrapped in its service middlewares, bound to its contract.

The contract (`contract`) is what servers and clients share; `addsvc_definition` binds the
service, wrapped in its service middlewares, to it. `addsvc_with_stringsvc`
adds the workshop's dependency: Concat's result uppercased by a remote stringsvc.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from lokit.endpoint import Middleware
from lokit.examples.addsvc.contract import addsvc_contract
from lokit.examples.addsvc.middleware import (
    ConcatTransform,
    InstrumentingMiddleware,
    LoggingMiddleware,
)
from lokit.examples.addsvc.service import AddService
from lokit.service import ServiceDef, define


def addsvc_definition(
    uppercase: Callable[[str], Awaitable[str]] | None = None,
    endpoint_middlewares: tuple[Middleware, ...] = (),
    lifespan: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None = None,
) -> ServiceDef:
    """addsvc ready to serve: `pb.Add` over gRPC (protobuf) and `POST /sum` etc. (JSON).

    `uppercase`, when given, post-processes Concat's results (the workshop's
    remote stringsvc dependency); without it Concat is plain.
    """
    service = InstrumentingMiddleware(LoggingMiddleware(ConcatTransform(AddService(), uppercase)))
    return define(addsvc_contract(), service, middlewares=endpoint_middlewares, lifespan=lifespan)


def addsvc_with_stringsvc(stringsvc: str, lb: str = "p2c") -> ServiceDef:
    """addsvc whose Concat goes through stringsvc at `stringsvc`; closed at shutdown.

    The protocol is lokit's default between services (`lokit.dialing`): HTTP on
    stringsvc's Unix sockets, gRPC elsewhere. `stringsvc` may name many instances
    (`dir:run/stringsvc.d`, ...): calls are then balanced by `lb`, retried on
    another instance and kept off broken ones.
    """
    from lokit.client import connect
    from lokit.examples.stringsvc.contract import stringsvc_contract

    remote = connect(stringsvc_contract(), stringsvc, timeout=2.0, lb=lb)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await remote.close()

    return addsvc_definition(uppercase=remote.service.uppercase, lifespan=lifespan)
