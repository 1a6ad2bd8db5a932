"""A client over every instance discovery finds: one transport each, balanced, retried, broken.

`lokit.connect` uses it when an address names more than one instance (`A,B`,
`dir:PATH`, `srv:NAME`, `serf:SERVICE`), with one `dialing.instance_client` per
instance. Go kit's client side, composed once for every method of a contract:

    discovery (lokit.sd instancer) -> endpointer cache (one transport per instance)
      -> balancer (p2c or round-robin, skipping instances whose breaker is open)
      -> per-instance breaker and load accounting -> budgeted retry
      -> per-target breaker (outermost)

The instancer starts on the first call (inside the caller's loop), so
`connect` stays a plain function. Each attempt's deadline is made current and
left to the instance's lokit client, which sends it and stops waiting when it
passes (`lb.balanced(..., enforces_deadline=True)`: no timer of our own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lokit import lb
from lokit.circuitbreaker import Breaker
from lokit.circuitbreaker import middleware as breaker_middleware
from lokit.contract import Contract
from lokit.dialing import Kind, instance_client
from lokit.endpoint import Endpoint, Method
from lokit.endpoint import Kind as CallKind
from lokit.routes import GrpcRoute, HttpRoute
from lokit.sd import Endpointer, Instancer

if TYPE_CHECKING:
    from lokit.security.tls import ClientTLS

__all__ = ["BalancedTransport", "Member"]


class Member:
    """One instance: its transport, its endpoints by method name, its load and breaker."""

    __slots__ = ("address", "breaker", "endpoints", "load", "transport")

    def __init__(self, address: str, transport: Any, endpoints: dict[str, Endpoint], target: str):
        self.address = address
        self.transport = transport
        self.endpoints = endpoints
        self.load = lb.Load()
        self.breaker = Breaker(target, address)


class BalancedTransport:
    """The instances behind one discovery address, as `lokit.connect` endpoints."""

    def __init__(
        self,
        instancer: Instancer,
        spec: Contract[Any],
        kind: Kind,
        *,
        timeout: float | None = None,
        balancer: str = "p2c",
        max_attempts: int = 3,
        tls: ClientTLS | None = None,
        frames: bool = False,
    ) -> None:
        self.target = instancer.target
        self._frames = frames
        self._instancer = instancer
        self._spec = spec
        self._kind = kind
        self._timeout = timeout
        self._routes: list[GrpcRoute | HttpRoute] = [*(spec.grpc if kind == "grpc" else spec.http)]
        self._tls = tls
        self._endpointer: Endpointer[Member] = Endpointer(instancer, self._member, _close)
        self._balancer = lb.balancer(balancer)
        self._budget = lb.RetryBudget()
        self._breaker = Breaker(self.target)
        self._max_attempts = max_attempts
        self._started: asyncio.Task[None] | None = None

    def _member(self, address: str) -> Member:
        transport, endpoints, _ = instance_client(
            self._kind, address, self._spec, self._timeout, self._tls, self._frames
        )
        return Member(address, transport, endpoints, self.target)

    async def _start(self) -> None:
        if self._started is None:
            self._started = asyncio.ensure_future(self._instancer.start())
        await asyncio.shield(self._started)

    def members(self) -> Sequence[Member]:
        return self._endpointer.members()

    def endpoints(self) -> dict[str, Endpoint]:
        """One balanced endpoint per method, keyed by RPC method name."""
        return {r.method.name: self._endpoint(r.method) for r in self._routes}

    def _endpoint(self, method: Method) -> Endpoint:
        name = method.name
        inner = lb.balanced(
            self._endpointer.members,
            _endpoint_of(name),
            method=method,
            target=self.target,
            balancer=self._balancer,
            budget=self._budget,
            max_attempts=self._max_attempts,
            timeout=self._timeout,
            enforces_deadline=True,  # lokit's clients keep the deadline made current
        )
        if method.kind is not CallKind.UNARY:
            guarded = breaker_middleware(self._breaker)(inner)

            async def call(request: Any) -> Any:
                if self._started is None or not self._started.done():
                    await self._start()
                return await guarded(request)

            return call
        breaker = self._breaker

        async def unary(request: Any) -> Any:
            """The target's breaker around the balanced call, inline: one frame less a call."""
            if self._started is None or not self._started.done():
                await self._start()
            if not breaker.allow():
                raise breaker.error()
            try:
                response = await inner(request)
            except BaseException as e:
                breaker.observe(e)
                raise
            breaker.record(True)
            return response

        return unary

    async def close(self) -> None:
        await self._endpointer.close()
        await self._instancer.close()


def _endpoint_of(name: str) -> Callable[[Member], Endpoint]:
    def endpoint_of(member: Member) -> Endpoint:
        return member.endpoints[name]

    return endpoint_of


async def _close(member: Member) -> None:
    """An instance left: close its transport and drop its breaker's metric series."""
    member.breaker.forget()
    await member.transport.close()
