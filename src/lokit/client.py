"""Call a service: `connect` turns a contract and an address into the service's own methods.

    async with lokit.connect(Greeter, "unix:run/greeter", name="greeter") as g:
        await g.greet("ada")                    # unary
        async for n in g.countdown(3): ...      # streams too

With only an address, lokit picks the protocol: on a lokit service's Unix
socket, lokit frames for unary methods and HTTP for streams (the fastest local
calls), gRPC for everything else (`lokit.dialing`); `grpc=` or `http=` names it
instead.

Go kit's endpoint `Set` implements the service interface so callers use a
remote service like a local one; a `Connection` does the same from the
contract: every method (unary and streaming) calls the remote endpoint, wrapped
in the client-side `middlewares`. With a class or `Protocol` as the target,
`async with` yields an object type checkers see as that interface. Request id,
deadline and trace context of the request being served travel along.

An address may name many instances (`A,B`, `dir:PATH`, `srv:NAME`,
`serf:SERVICE`, see `lokit.sd`): the connection then balances, retries and
breaks across them (`lokit.balanced`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast, overload

from lokit.contract import Contract, Interface, as_contract
from lokit.endpoint import Endpoint, Method, Middleware, chain

if TYPE_CHECKING:
    from lokit.security.tls import ClientTLS

__all__ = ["Connection", "connect", "proxy", "stream_items"]

T = TypeVar("T")


class _Transport(Protocol):
    async def close(self) -> None: ...


class Connection(Generic[T]):
    """A remote service: its methods as attributes (or on `.service`); close it when done.

    `protocol` ("grpc", "http" or "frames": unary methods over frames, streams over
    HTTP) and `address` say what it calls.
    """

    def __init__(
        self,
        transport: _Transport,
        service: T,
        endpoints: dict[str, Endpoint],
        protocol: str = "grpc",
        address: str = "",
    ) -> None:
        self._transport = transport
        self.service = service
        self.endpoints = endpoints  # by RPC method name, middlewares applied
        self.protocol = protocol
        self.address = address

    def __getattr__(self, item: str) -> Any:
        return getattr(self.service, item)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> T:
        return self.service

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


@overload
def connect(
    target: Contract[T],
    address: str | None = ...,
    *,
    grpc: str | None = ...,
    http: str | None = ...,
    timeout: float | None = ...,
    middlewares: tuple[Middleware, ...] = ...,
    lb: str = ...,
    retries: int = ...,
    limit: str | None = ...,
    tls: ClientTLS | None = ...,
) -> Connection[T]: ...


@overload
def connect(
    target: Interface[T],
    address: str | None = ...,
    *,
    grpc: str | None = ...,
    http: str | None = ...,
    name: str | None = ...,
    timeout: float | None = ...,
    middlewares: tuple[Middleware, ...] = ...,
    lb: str = ...,
    retries: int = ...,
    limit: str | None = ...,
    tls: ClientTLS | None = ...,
) -> Connection[T]: ...


def connect(
    target: Contract[T] | Interface[T],
    address: str | None = None,
    *,
    grpc: str | None = None,
    http: str | None = None,
    name: str | None = None,
    timeout: float | None = None,
    middlewares: tuple[Middleware, ...] = (),
    lb: str = "p2c",
    retries: int = 3,
    limit: str | None = None,
    tls: ClientTLS | None = None,
) -> Connection[T]:
    """A client for the service `target` describes: a contract, or an interface.

    An interface gets its default contract (`name` defaults to its lowercased
    class name, as `define(name, ...)` derives it). `address` lets lokit pick the
    protocol (`lokit.dialing`: HTTP on a lokit service's Unix socket, else gRPC;
    none at all: the service's sockets under run/); `grpc=` or `http=` names the
    protocol instead. `timeout` is the default per-call timeout in seconds.
    Over many instances, `lb` picks the balancer (`p2c`, `round-robin`) and
    `retries` is the total number of attempts per call (within one deadline).
    `limit` (`50/second`) delays calls to stay under that rate (Go kit's
    delaying limiter), bounded by each call's deadline.
    `tls` (a `lokit.security.tls.ClientTLS`) turns on TLS (mTLS with a client
    certificate); None takes it from LOKIT_TLS_CA / _CERT / _KEY when one is set,
    else the connection is plaintext.
    """
    if sum(a is not None for a in (address, grpc, http)) > 1:
        raise ValueError("connect takes one address: address, grpc= or http=")
    from lokit.sd import instancer_for

    spec = as_contract(target, name)
    if tls is None:
        from lokit.security.tls import ClientTLS

        tls = ClientTLS.from_env()
    kind: Literal["grpc", "http"]
    frames = False  # may unary calls go over lokit frames (the protocol left to lokit)
    if grpc is not None:
        kind, addr = "grpc", grpc
    elif http is not None:
        kind, addr = "http", http
    else:
        from lokit.dialing import choose

        kind, addr = choose(spec, address)
        frames = kind == "http" and (tls is None or not tls.applies_to(True))
    from lokit.dialing import instance_client

    instancer = instancer_for(addr, kind)
    transport: Any
    beside: str | None = None
    if instancer is not None:
        from lokit.balanced import BalancedTransport

        transport = BalancedTransport(
            instancer,
            spec,
            kind,
            timeout=timeout,
            balancer=lb,
            max_attempts=retries,
            tls=tls,
            frames=frames,
        )
        raw = transport.endpoints()
    else:
        transport, raw, beside = instance_client(kind, addr, spec, timeout, tls, frames)
    if limit is not None:
        from lokit.ratelimit import delaying

        middlewares = (*middlewares, delaying(limit, timeout=timeout))
    wrap = chain(*middlewares)
    endpoints = {name: wrap(e) for name, e in raw.items()}
    if beside is not None:
        return Connection(transport, proxy(spec, endpoints), endpoints, "frames", beside)
    return Connection(transport, proxy(spec, endpoints), endpoints, kind, addr)


class _Proxy:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<lokit client for {self._name}>"


def proxy(spec: Contract[T], endpoints: dict[str, Endpoint]) -> T:
    """An object with the contract's methods (by Python name) that call `endpoints`."""
    client = _Proxy(spec.name)
    for method in spec.methods.values():
        endpoint = endpoints.get(method.name)
        if endpoint is not None:
            setattr(client, method.py_name or method.name, _bind(method, endpoint))
    return cast(T, client)


async def stream_items(endpoint: Endpoint, request: Any) -> AsyncIterator[Any]:
    """The items of the response stream `endpoint(request)` answers, closed when left early.

    The call starts on the first iteration, as a stream of a transport client does.
    """
    stream = await endpoint(request)
    try:
        async for item in stream:
            yield item
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _bind(method: Method, endpoint: Endpoint) -> Any:
    """The Python method for one remote endpoint: builds the request from the call's arguments."""
    make = method.request_type if method.spread else None

    def request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if make is not None:
            return make(*args, **kwargs)
        if len(args) + len(kwargs) != 1:
            raise TypeError(f"{method.py_name}() takes exactly one argument")
        return args[0] if args else next(iter(kwargs.values()))

    call: Any
    if method.kind.streams_responses:

        def streaming(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            return stream_items(endpoint, request(args, kwargs))

        call = streaming
    elif make is not None:

        async def spread(*args: Any, **kwargs: Any) -> Any:
            return await endpoint(make(*args, **kwargs))

        call = spread
    else:

        async def single(*args: Any, **kwargs: Any) -> Any:
            return await endpoint(request(args, kwargs))

        call = single
    call.__name__ = method.py_name or method.name
    call.__doc__ = method.doc or None
    return call
