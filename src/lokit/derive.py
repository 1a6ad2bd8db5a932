"""Endpoints derived from a service class's typed async methods.

A service is a plain class. Each public `async def` becomes a unary endpoint,
each public async generator a server-streaming one; a single parameter typed
`AsyncIterator[T]` makes it client-streaming (or bidi when it also yields).
Parameters become the fields of a request struct (`{"a": 1, "b": 2}`); a single
parameter that is itself a struct is the request. A plain return value travels
as `{"v": value}`, a struct or dataclass as itself. Names: `get_servers` is the
RPC method `GetServers` and the HTTP path `/get-servers`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from lokit.endpoint import Endpoint, Kind, Method, Middleware, chain

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


def _stream_item(tp: Any) -> Any | None:
    """The item type when `tp` is an async iterator/iterable/generator annotation."""
    if typing.get_origin(tp) in _STREAM_ORIGINS:
        args = typing.get_args(tp)
        return args[0] if args else Any
    return None


def describe(service: object, *, middlewares: tuple[Middleware, ...] = ()) -> list[Method]:
    """The endpoints of a service instance, each wrapped in `middlewares`."""
    cls = type(service)
    methods: list[Method] = []
    wrap = chain(*middlewares)
    for py_name, fn in inspect.getmembers(cls, inspect.isfunction):
        if py_name.startswith("_"):
            continue
        if not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
            continue
        method = describe_method(getattr(service, py_name), py_name)
        methods.append(method.with_endpoint(wrap(method.endpoint)))
    return methods


def describe_method(bound: Any, py_name: str) -> Method:
    """One bound async method as a `Method` with its derived request/response types."""
    fn = bound.__func__ if hasattr(bound, "__func__") else bound
    hints = typing.get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{py_name}: *args/**kwargs cannot become request fields")
        if p.name not in hints:
            raise TypeError(f"{py_name}: parameter {p.name!r} needs a type hint")
    ret = hints.get("return", type(None))
    out_item = _stream_item(ret)
    streams_out = inspect.isasyncgenfunction(fn) or out_item is not None
    response_type = out_item if out_item is not None else ret

    in_item = _stream_item(hints[params[0].name]) if len(params) == 1 else None
    kind = {
        (False, False): Kind.UNARY,
        (False, True): Kind.SERVER_STREAM,
        (True, False): Kind.CLIENT_STREAM,
        (True, True): Kind.BIDI,
    }[(in_item is not None, streams_out)]

    endpoint: Endpoint
    if in_item is not None:
        request_type = in_item
        endpoint = _pass_through(bound, streams_out)
    elif len(params) == 1 and is_record_type(hints[params[0].name]):
        request_type = hints[params[0].name]
        endpoint = _pass_through(bound, streams_out)
    else:
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for p in params:
            if p.default is inspect.Parameter.empty:
                fields.append((p.name, hints[p.name]))
            else:
                fields.append((p.name, hints[p.name], p.default))
        request_type = msgspec.defstruct(rpc_name(py_name) + "Request", fields)
        endpoint = _spread(bound, streams_out)

    return Method(
        name=rpc_name(py_name),
        endpoint=endpoint,
        kind=kind,
        request_type=request_type,
        response_type=response_type,
        wrap_response=not is_record_type(response_type),
        doc=inspect.getdoc(fn) or "",
        options={"py_name": py_name, "http_path": http_path(py_name)},
    )


def _pass_through(bound: Any, streams_out: bool) -> Endpoint:
    if streams_out:

        async def stream_endpoint(request: Any) -> AsyncIterator[Any]:
            return typing.cast(AsyncIterator[Any], bound(request))

        return stream_endpoint

    async def endpoint(request: Any) -> Any:
        return await bound(request)

    return endpoint


def _spread(bound: Any, streams_out: bool) -> Endpoint:
    astuple = msgspec.structs.astuple
    if streams_out:

        async def stream_endpoint(request: Any) -> AsyncIterator[Any]:
            return typing.cast(AsyncIterator[Any], bound(*astuple(request)))

        return stream_endpoint

    async def endpoint(request: Any) -> Any:
        return await bound(*astuple(request))

    return endpoint
