"""`lokit call`: one method of any service, by its contract, with arguments from the CLI.

The contract comes from a registered service plugin (`lokit call addsvc ...`) or
from an import, `MODULE:OBJECT` as uvicorn takes it (`lokit call
lokit.examples.greeter:Greeter ...`), with the current directory on `sys.path`:
OBJECT is a `lokit.Contract`, a class or `Protocol` (its default contract), a
`ServiceDef`, or a function returning a Contract.

Only what the call needs is imported: the transport of the chosen flag, and no
server, runtime or service module.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Sequence
from typing import Any

import click
import msgspec

from lokit.cli.errors import fail, listener_kind
from lokit.contract import Contract, as_contract
from lokit.endpoint import Method
from lokit.errors import Error, InvalidArgument, NotFound, Unavailable, Unimplemented

__all__ = ["call_method", "contract_from_import", "request_from_args"]


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


def contract_from_import(target: str) -> Contract[Any]:
    """The contract `MODULE:OBJECT` names; a target that does not import is one sentence."""
    from lokit.routes import ServiceDef

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        fail(f"{target!r} is not MODULE:OBJECT (e.g. lokit.examples.greeter:Greeter)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` and uvicorn do
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            fail(
                f"cannot import {module_name!r}: no module named {missing!r} "
                "in the current directory or the installed packages"
            )
        fail(f"cannot import {module_name!r}: it imports {missing!r}, which is not installed")
    except Exception as e:
        fail(f"cannot import {module_name!r}: {type(e).__name__}: {e}")
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            fail(f"module {module_name!r} has no {attr!r}")
    if isinstance(obj, Contract):
        return obj
    if isinstance(obj, ServiceDef) and obj.contract is not None:
        return obj.contract
    if inspect.isclass(obj):
        try:
            return as_contract(obj)
        except TypeError as e:  # a type with no wire form (lokit.protobuf.SchemaError), ...
            fail(f"{target}: {e}")
    if callable(obj):
        try:
            made = obj()
        except Exception as e:
            fail(f"{target}() failed: {type(e).__name__}: {e}")
        if isinstance(made, Contract):
            return made
        if isinstance(made, ServiceDef) and made.contract is not None:
            return made.contract
        fail(f"{target}() returned {type(made).__name__}, not a lokit.Contract")
    fail(
        f"{target} is {type(obj).__name__}, not a lokit.Contract, a class or Protocol, "
        "or a function returning a Contract"
    )


def _not_served(e: Error) -> bool:
    """True for the answer of a server that has no such method (not a business error)."""
    if type(e) is Unimplemented:
        return e.message == "Method not found!"  # what a gRPC server says
    return type(e) is NotFound and e.message.startswith("no route for ")  # lokit's HTTP 404


async def _wrong_protocol(addr: str, expected: str) -> str | None:
    """The sentence for a call that reached the other kind of listener, else None."""
    kind = await listener_kind(addr)
    if kind is None or kind == expected:
        return None
    if kind == "grpc":
        return f"{addr} is a gRPC listener, not HTTP: call it with --grpc {addr}"
    return f"{addr} is an HTTP listener, not gRPC: call it with --http {addr}"


async def _tls_hint(addr: str) -> str | None:
    from lokit.cli.tls_options import plaintext_to_tls, speaks_tls

    return plaintext_to_tls(addr) if await speaks_tls(addr) else None


def call_method(
    spec: Contract[Any],
    name: str,
    args: Sequence[str],
    grpc_addr: str | None,
    http_addr: str | None,
    timeout: float,
    lb: str = "p2c",
    tls: Any = None,
) -> None:
    """Call `name` (any spelling: `concat`, `Concat`, `get-servers`); print the result as JSON.

    An address may name many instances (`lokit.sd`); `lb` spreads calls over them.
    """
    import asyncio

    from lokit.client import connect
    from lokit.codec import JsonCodec

    if grpc_addr is not None and http_addr is not None:
        fail("give one of --grpc ADDR or --http ADDR, not both")
    method = spec.method(name)
    if method is None:
        names = ", ".join(sorted(spec.methods))
        fail(f"{spec.name} has no method {name!r} (it has {names})")
    if method.kind.streams_requests:
        fail(f"{spec.name}.{method.name} takes a stream of requests; lokit call sends one")
    if http_addr is not None and spec.http_route(method.name) is None:
        fail(f"{spec.name}.{method.name} has no HTTP route; call it with --grpc")
    request = request_from_args(method, args)
    encode = JsonCodec(method).encode_response

    async def main() -> int:
        conn = connect(spec, grpc=grpc_addr, http=http_addr, timeout=timeout, lb=lb, tls=tls)
        addr, kind = conn.address, conn.protocol
        try:
            endpoint = conn.endpoints[method.name]
            if method.kind.streams_responses:
                async for item in await endpoint(request):
                    click.echo(encode(item).decode())
            else:
                click.echo(encode(await endpoint(request)).decode())
        except Unavailable:
            sentence = await _wrong_protocol(addr, kind)
            if sentence is None and tls is None:
                sentence = await _tls_hint(addr)
            if sentence is None:
                raise
            raise Unavailable(sentence) from None
        except (Unimplemented, NotFound) as e:
            if not _not_served(e):
                raise
            raise type(e)(
                f"{addr} does not serve {spec.name}.{method.name} ({e.message}); "
                f"is {spec.name} listening there?"
            ) from None
        finally:
            await conn.close()
        return 0

    sys.exit(asyncio.run(main()))
