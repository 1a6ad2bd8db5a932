"""Client-side services: call remote endpoints through the service's own method names.

Go kit's endpoint `Set` implements the service interface so callers use a remote
service like a local one; `proxy` does the same from a service class's type
hints and a dict of client endpoints (gRPC or HTTP), and `request_from_args`
turns command-line words into a typed request.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import msgspec

from lokit.derive import describe_method
from lokit.endpoint import Endpoint, Method
from lokit.errors import InvalidArgument


class _Proxy:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<lokit client for {self._name}>"


def proxy(service_cls: type, endpoints: dict[str, Endpoint]) -> Any:
    """An object with `service_cls`'s unary async methods that call `endpoints` remotely."""
    client = _Proxy(service_cls.__name__)
    for py_name, fn in inspect.getmembers(service_cls, inspect.iscoroutinefunction):
        if py_name.startswith("_"):
            continue
        method = describe_method(fn, py_name)
        endpoint = endpoints.get(method.name)
        if endpoint is None:
            continue
        setattr(client, py_name, _bind(method, endpoint))
    return client


def _bind(method: Method, endpoint: Endpoint) -> Any:
    request_type = method.request_type
    struct_fields = getattr(request_type, "__struct_fields__", None)

    async def call(*args: Any, **kwargs: Any) -> Any:
        if struct_fields is None:
            return await endpoint(args[0] if args else next(iter(kwargs.values())))
        return await endpoint(request_type(*args, **kwargs))

    call.__name__ = method.options.get("py_name", method.name)
    return call


def request_from_args(method: Method, args: Sequence[str]) -> Any:
    """Build `method`'s request from words: `a=1 b=2` or positional `1 2` in field order."""
    request_type = method.request_type
    fields: tuple[str, ...] = getattr(request_type, "__struct_fields__", ())
    values: dict[str, Any] = {}
    positional = [a for a in args if "=" not in a]
    for word in args:
        if "=" in word:
            key, _, value = word.partition("=")
            values[key] = value
    if len(positional) > len(fields) - len(values):
        raise InvalidArgument(
            f"{method.name} takes {len(fields)} argument(s) ({', '.join(fields)}), got {len(args)}"
        )
    free = [f for f in fields if f not in values]
    values.update(zip(free, positional, strict=False))
    try:
        return msgspec.convert(values, type=request_type, strict=False)
    except msgspec.ValidationError as e:
        raise InvalidArgument(f"invalid arguments for {method.name}: {e}") from None
