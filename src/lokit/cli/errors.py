"""Turn expected failures into one sentence on stderr and exit code 1.

Also the CLI's one look at a socket (`listener_kind`): when a call fails as
unavailable, it tells a gRPC listener from an HTTP one, so a wrong `--grpc` /
`--http` (or a log command aimed at the HTTP socket) is said plainly.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from lokit.errors import Error
from lokit.transport.address import AddressError

__all__ = ["fail", "friendly", "listener_kind", "one_line"]

F = TypeVar("F", bound=Callable[..., Any])

# Sent to whatever listens at an address: an HTTP/1 server answers "HTTP/1.1 ...",
# an HTTP/2 server (every gRPC server) its SETTINGS frame.
_PROBE = b"GET / HTTP/1.1\r\nHost: lokit\r\nConnection: close\r\n\r\n"
_H2_SETTINGS = 0x04  # the type byte of an HTTP/2 frame header (9 bytes)
_PROBE_SECONDS = 1.0


def one_line(message: str) -> str:
    """`message` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(message.split())


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` (on one line) on stderr and exit."""
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def friendly(fn: F) -> F:
    """Decorate a command so lokit errors and bad addresses never show a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (Error, AddressError) as e:
            fail(str(e))
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


async def listener_kind(addr: str) -> str | None:
    """What listens at `addr`: "grpc" (an HTTP/2 server), "http" (HTTP/1.x), or None.

    None when nothing answers, or something else does. One short connection; the
    caller asks only after a call failed as unavailable.
    """
    import asyncio

    from lokit.transport.address import parse

    try:
        address = parse(addr).dialable()
        if address.path is not None:
            opening = asyncio.open_unix_connection(address.path)
        else:
            opening = asyncio.open_connection(address.host, address.port)
        reader, writer = await asyncio.wait_for(opening, _PROBE_SECONDS)
    except (OSError, TimeoutError, AddressError):
        return None
    try:
        writer.write(_PROBE)
        try:
            head = await asyncio.wait_for(reader.readexactly(9), _PROBE_SECONDS)
        except asyncio.IncompleteReadError as e:
            head = e.partial
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    if head.startswith(b"HTTP/"):
        return "http"
    if len(head) == 9 and head[3] == _H2_SETTINGS:
        return "grpc"
    return None
