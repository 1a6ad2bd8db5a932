"""Methods derived from a service interface's type hints, and endpoints bound to an implementation.

The interface is a class or a `typing.Protocol`; its public `async def`s are
the methods (an explicit interface lets the implementation keep public helper
and lifecycle methods that are no endpoints). An `async def` returning
`AsyncIterator[T]` (or an async generator) is server-streaming; a single
parameter typed `AsyncIterator[T]` makes it client-streaming (or bidi when it
also streams out). Parameters become the fields of a request struct
(`{"a": 1, "b": 2}`); a single parameter that is itself a struct is the
request. A plain return value travels as `{"v": value}`, a struct or dataclass
as itself. Names: `get_servers` is the RPC method `GetServers` and the HTTP
path `/get-servers`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec

from lokit.endpoint import Endpoint, Kind, Method, Middleware, chain

__all__ = ["bind", "describe", "describe_method", "http_path", "methods_of", "rpc_name"]

_STREAM_ORIGINS = {
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
}


def rpc_name(py_name: str) -> str:
    """`get_servers` -> `GetServers`."""
    return "".join(part[:1].upper() + part[1:] for part in py_name.split("_") if part)


def http_path(py_name: str) -> str:
    """`get_servers` -> `/get-servers`."""
    return "/" + py_name.strip("_").replace("_", "-").lower()


def is_record_type(tp: Any) -> bool:
    """True for types encoded as a JSON object of their own (struct, dataclass, dict...)."""
    origin = typing.get_origin(tp) or tp
    if not isinstance(origin, type):
        return False
    return (
        issubclass(origin, msgspec.Struct | dict)
        or dataclasses.is_dataclass(origin)
        or typing.is_typeddict(origin)
    )


def _bare(tp: Any) -> Any:
    """`tp` without `Annotated[...]` (whose metadata, such as `lokit.field`, only fields read)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = tp.__origin__
    return tp


def _stream_item(tp: Any) -> Any | None:
    """The item type when `tp` is an async iterator/iterable/generator annotation."""
    if typing.get_origin(tp) in _STREAM_ORIGINS:
        args = typing.get_args(tp)
        return args[0] if args else Any
    return None


def methods_of(interface: type) -> list[Method]:
    """The methods (without endpoints) of a class or Protocol, in name order."""
    methods: list[Method] = []
    for py_name, fn in inspect.getmembers(interface, inspect.isfunction):
        if py_name.startswith("_"):
            continue
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            methods.append(describe_method(fn, py_name))
    return methods


def describe(
    service: object, *, interface: type | None = None, middlewares: tuple[Middleware, ...] = ()
) -> list[Method]:
    """The methods of `interface` (default: the service's class) bound to `service`."""
    methods = methods_of(interface or type(service))
    endpoints = bind(methods, service, middlewares)
    return [m.with_endpoint(endpoints[m.name]) for m in methods]


def bind(
    methods: Iterable[Method], service: object, middlewares: tuple[Middleware, ...] = ()
) -> dict[str, Endpoint]:
    """One endpoint per method calling `service`'s method of that name, wrapped in `middlewares`."""
    wrap = chain(*middlewares)
    endpoints: dict[str, Endpoint] = {}
    for m in methods:
        impl = getattr(service, m.py_name, None)
        if impl is None or not callable(impl):
            raise TypeError(
                f"{type(service).__name__} has no method {m.py_name!r} for endpoint {m.name}"
            )
        endpoints[m.name] = wrap(_endpoint(impl, m))
    return endpoints


def describe_method(fn: Any, py_name: str) -> Method:
    """One async function (or bound method) as a `Method` with derived request/response types."""
    fn = getattr(fn, "__func__", fn)
    hints = typing.get_type_hints(fn, include_extras=True)  # keeps lokit.field pins
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{py_name}: *args/**kwargs cannot become request fields")
        if p.name not in hints:
            raise TypeError(f"{py_name}: parameter {p.name!r} needs a type hint")
    ret = _bare(hints.get("return", type(None)))
    out_item = _stream_item(ret)
    streams_out = inspect.isasyncgenfunction(fn) or out_item is not None
    response_type = out_item if out_item is not None else ret

    in_item = _stream_item(_bare(hints[params[0].name])) if len(params) == 1 else None
    kind = {
        (False, False): Kind.UNARY,
        (False, True): Kind.SERVER_STREAM,
        (True, False): Kind.CLIENT_STREAM,
        (True, True): Kind.BIDI,
    }[(in_item is not None, streams_out)]

    spread = False
    if in_item is not None:
        request_type = in_item
    elif len(params) == 1 and is_record_type(_bare(hints[params[0].name])):
        request_type = _bare(hints[params[0].name])
    else:
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for p in params:
            if p.default is inspect.Parameter.empty:
                fields.append((p.name, hints[p.name]))
            else:
                fields.append((p.name, hints[p.name], p.default))
        request_type = msgspec.defstruct(rpc_name(py_name) + "Request", fields)
        spread = True

    return Method(
        name=rpc_name(py_name),
        kind=kind,
        request_type=request_type,
        response_type=response_type,
        wrap_response=not is_record_type(response_type),
        doc=inspect.getdoc(fn) or "",
        py_name=py_name,
        spread=spread,
        action=py_name,
    )


def _endpoint(impl: Any, method: Method) -> Endpoint:
    """The endpoint calling `impl` (a bound method) the way `method` describes.

    A streaming implementation may be an async generator or an `async def`
    that returns an async iterator; both give the transport an iterator.
    """
    astuple = msgspec.structs.astuple
    spread = method.spread
    if method.kind.streams_responses:
        returns_iterator = not inspect.iscoroutinefunction(impl)

        async def stream_endpoint(request: Any) -> AsyncIterator[Any]:
            out = impl(*astuple(request)) if spread else impl(request)
            if returns_iterator:
                return typing.cast(AsyncIterator[Any], out)
            return typing.cast(AsyncIterator[Any], await out)

        return stream_endpoint

    if spread:

        async def spread_endpoint(request: Any) -> Any:
            return await impl(*astuple(request))

        return spread_endpoint

    async def endpoint(request: Any) -> Any:
        return await impl(request)

    return endpoint
