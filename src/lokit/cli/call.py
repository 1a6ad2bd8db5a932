"""`lokit call`: one method of any service, by its contract, with arguments from the CLI."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
import msgspec

from lokit.cli.errors import fail
from lokit.codec import JsonCodec
from lokit.contract import Contract
from lokit.endpoint import Method
from lokit.errors import InvalidArgument

__all__ = ["call_method", "request_from_args"]


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


def call_method(
    spec: Contract[Any],
    name: str,
    args: Sequence[str],
    grpc_addr: str | None,
    http_addr: str | None,
    timeout: float,
) -> None:
    """Call `name` (any spelling: `concat`, `Concat`, `get-servers`); print the result as JSON."""
    from lokit.client import connect
    from lokit.runtime import run

    if (grpc_addr is None) == (http_addr is None):
        fail("give exactly one of --grpc ADDR or --http ADDR")
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
        conn = connect(spec, grpc=grpc_addr, http=http_addr, timeout=timeout)
        try:
            endpoint = conn.endpoints[method.name]
            if method.kind.streams_responses:
                async for item in await endpoint(request):
                    click.echo(encode(item).decode())
            else:
                click.echo(encode(await endpoint(request)).decode())
        finally:
            await conn.close()
        return 0

    sys.exit(run(main))
