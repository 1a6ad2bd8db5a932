"""`lokit serve` flags for registering with discovery (`--register serf`).

`--register serf` sets the tag `lokit.<service>` on the local Serf agent
(`LOKIT_SERF_RPC`, default 127.0.0.1:7373) once every listener is ready, and
removes it first thing at shutdown, before the listeners drain. The tag lists
the gRPC and HTTP listeners as `grpc=unix:/abs/path.grpc.sock,http=HOST:PORT`
(the debug listener is not registered).

An agent that cannot be reached at start does not stop the service: it logs one
warning and serves unregistered while the registration keeps retrying in the
background (with backoff), so a service started before its agent (boot order)
or outliving an agent restart registers as soon as the agent is back. Failing
the start instead would make the agent a hard dependency of every service.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lokit.runtime import Bound, Extension, Listeners

REGISTRIES = ["serf"]

OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--register",
        "register",
        type=click.Choice(REGISTRIES),
        default=None,
        help="Register the listeners with discovery once ready, deregister at shutdown "
        "(serf: tag lokit.<service> on the agent at LOKIT_SERF_RPC, default 127.0.0.1:7373).",
    ),
]


def tag_entries(bound: Bound) -> list[str]:
    """`kind=address` for every gRPC and HTTP listener (Unix sockets by absolute path)."""
    entries: list[str] = []
    for kind, addr in bound:
        if kind not in ("grpc", "http"):
            continue
        text = f"unix:{os.path.abspath(addr.path)}" if addr.path is not None else str(addr)
        entries.append(f"{kind}={text}")
    return entries


def configure(opts: dict[str, Any], listeners: Listeners, service: str) -> list[Extension]:
    """Take this group's flags out of `opts`; adjust `listeners`; the extensions to run."""
    from lokit.runtime import Extension

    registry = opts.pop("register", None)
    if registry is None:
        return []
    count = opts.get("instances")  # serve_cores' flag, read after this group
    if count is not None and count > 1:
        raise click.UsageError(
            f"--register {registry} with --instances {count} is refused: the instances would "
            "announce one shared entry, and the first to stop would withdraw it; register "
            "processes started one by one instead"
        )
    rpc = os.environ.get("LOKIT_SERF_RPC") or None
    from lokit.sd.serfrpc import rpc_address
    from lokit.transport.address import AddressError

    try:
        rpc_address(rpc)
    except AddressError as e:
        raise click.BadParameter(str(e), param_hint="LOKIT_SERF_RPC") from None

    def announce(bound: Bound) -> AbstractAsyncContextManager[Any]:
        from lokit.sd.serf import register

        return register(service, tag_entries(bound), rpc)

    return [Extension(announce=announce)]
