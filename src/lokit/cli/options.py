"""The flags every `lokit serve NAME` (and a service's own script) takes, and serving with them.

A service's command module (`lokit.logsvc.cli`, `lokit.examples.*.cli`) adds its
own flags on top and calls `serve_service` with a function that builds its
`ServiceDef` inside the running loop.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from lokit.service import ServiceDef

__all__ = ["common_serve_options", "serve_service"]


def common_serve_options(fn: Callable[..., None]) -> Callable[..., None]:
    """The listener and logging flags every `lokit serve SERVICE` takes."""
    for option in reversed(
        [
            click.option(
                "--grpc",
                "grpc_addrs",
                multiple=True,
                metavar="ADDR",
                help="gRPC listener (repeatable).",
            ),
            click.option(
                "--http",
                "http_addrs",
                multiple=True,
                metavar="ADDR",
                help="HTTP listener (repeatable).",
            ),
            click.option(
                "--debug", "debug_addr", metavar="ADDR", help="Debug listener: /metrics, /healthz."
            ),
            click.option(
                "--log-format",
                type=click.Choice(["logfmt", "json"]),
                default="logfmt",
                show_default=True,
            ),
            click.option(
                "--log-level",
                type=click.Choice(["debug", "info", "warning", "error"]),
                default="info",
                show_default=True,
            ),
            click.option(
                "--grace",
                type=float,
                default=10.0,
                show_default=True,
                help="Seconds for in-flight work at shutdown.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def serve_service(
    service: str,
    build: Callable[[], ServiceDef],
    grpc_addrs: tuple[str, ...],
    http_addrs: tuple[str, ...],
    debug_addr: str | None,
    log_format: str,
    log_level: str,
    grace: float,
    extra_addrs: tuple[str, ...] = (),
) -> None:
    """Configure logs, check addresses, build the service inside the loop and serve it.

    Without `--grpc` and `--http` the service listens on its default sockets
    (`unix:run/<service>.grpc.sock`, `unix:run/<service>.http.sock`).
    """
    from lokit.observability.logs import configure_logging
    from lokit.runtime import Listeners, run
    from lokit.runtime import serve as serve_def
    from lokit.transport.address import default_address, parse

    configure_logging(log_format, log_level)
    if not grpc_addrs and not http_addrs:
        grpc_addrs = (default_address(service, "grpc"),)
        http_addrs = (default_address(service, "http"),)
    for a in (*grpc_addrs, *http_addrs, *([debug_addr] if debug_addr else []), *extra_addrs):
        parse(a)  # a malformed address fails here, in one sentence
    listeners = Listeners(list(grpc_addrs), list(http_addrs), debug_addr, grace)

    def ready(kind: str, addr: object) -> None:
        click.echo(f"{service}: {kind} listening on {addr}")
        sys.stdout.flush()

    async def main() -> int:
        return await serve_def(build(), listeners, ready)

    sys.exit(run(main))
