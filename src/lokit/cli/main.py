"""The `lokit` command line: serve services, call them, run the local stack."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from lokit.cli.catalog import CATALOG
from lokit.cli.errors import fail, friendly

if TYPE_CHECKING:
    from lokit.routes import ServiceDef


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lokit")
def cli() -> None:
    """lokit: local-first microservices, the Go kit way."""


@cli.group()
def serve() -> None:
    """Serve a lokit service until SIGTERM or Ctrl-C."""


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
    """Configure logs, check addresses, build the service inside the loop and serve it."""
    from lokit.observability.logs import configure_logging
    from lokit.runtime import Listeners, run
    from lokit.runtime import serve as serve_def
    from lokit.transport.address import parse

    configure_logging(log_format, log_level)
    if not grpc_addrs and not http_addrs:
        grpc_addrs = (f"unix:run/{service}.grpc.sock",)
        http_addrs = (f"unix:run/{service}.http.sock",)
    for a in (*grpc_addrs, *http_addrs, *([debug_addr] if debug_addr else []), *extra_addrs):
        parse(a)  # a malformed address fails here, in one sentence
    listeners = Listeners(list(grpc_addrs), list(http_addrs), debug_addr, grace)

    def ready(kind: str, addr: object) -> None:
        click.echo(f"{service}: {kind} listening on {addr}")
        sys.stdout.flush()

    async def main() -> int:
        return await serve_def(build(), listeners, ready)

    sys.exit(run(main))


@serve.command(name="addsvc")
@common_serve_options
@click.option(
    "--stringsvc", metavar="ADDR", help="Uppercase Concat's result through stringsvc (gRPC)."
)
@friendly
def serve_addsvc(stringsvc: str | None, **opts: Any) -> None:
    """Serve addsvc: Sum, Concat, Mult."""
    serve_service(
        "addsvc",
        lambda: CATALOG["addsvc"].build(stringsvc=stringsvc),
        extra_addrs=(stringsvc,) if stringsvc else (),
        **opts,
    )


@serve.command(name="stringsvc")
@common_serve_options
@friendly
def serve_stringsvc(**opts: Any) -> None:
    """Serve stringsvc: Uppercase, Count."""
    serve_service("stringsvc", lambda: CATALOG["stringsvc"].build(), **opts)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("service", type=click.Choice(sorted(CATALOG)))
@click.argument("method")
@click.argument("args", nargs=-1)
@click.option("--grpc", "grpc_addr", metavar="ADDR", help="Call over gRPC at ADDR.")
@click.option("--http", "http_addr", metavar="ADDR", help="Call over HTTP at ADDR.")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds.")
@friendly
def call(
    service: str,
    method: str,
    args: tuple[str, ...],
    grpc_addr: str | None,
    http_addr: str | None,
    timeout: float,
) -> None:
    """Call METHOD of SERVICE with ARGS (positional, or name=value) and print the JSON result.

    Example: lokit call addsvc sum 1 2 --grpc unix:run/addsvc.grpc.sock
    """
    from lokit.codec import JsonCodec
    from lokit.proxy import request_from_args
    from lokit.runtime import run

    if (grpc_addr is None) == (http_addr is None):
        fail("give exactly one of --grpc ADDR or --http ADDR")
    definition = CATALOG[service].client()
    grpc_routes, http_routes = definition.grpc, definition.http
    # `concat`, `Concat`, `get-servers`, `get_servers` and `GetServers` all name one method
    routes = {r.method.name.lower(): r for r in grpc_routes}
    route = routes.get(method.replace("-", "").replace("_", "").lower())
    if route is None:
        names = ", ".join(sorted(r.method.name for r in grpc_routes))
        fail(f"{service} has no method {method!r} (it has {names})")
        return
    request = request_from_args(route.method, args)

    async def main() -> int:
        if grpc_addr is not None:
            from lokit.transport.grpc.client import GrpcClient

            client = GrpcClient(grpc_addr, timeout=timeout)
            try:
                result = await client.unary(route.path, request, route.codec)
            finally:
                await client.close()
        else:
            from lokit.transport.http.client import HttpClient

            assert http_addr is not None
            http_route = next(r for r in http_routes if r.method.name == route.method.name)
            hclient = HttpClient(http_addr, timeout=timeout)
            try:
                result = await hclient.unary(http_route, request)
            finally:
                await hclient.close()
        click.echo(JsonCodec(route.method).encode_response(result).decode())
        return 0

    sys.exit(run(main))


@cli.command(name="run")
@click.option(
    "--log-format", type=click.Choice(["logfmt", "json"]), default="logfmt", show_default=True
)
@friendly
def run_stack(log_format: str) -> None:
    """Run the local stack (log, stringsvc, addsvc) on Unix sockets under ./run/ until Ctrl-C."""
    from lokit.cli.stack import run_stack as run_local_stack

    sys.exit(asyncio.run(run_local_stack(log_format)))


def main() -> None:
    cli(prog_name="lokit")


from lokit.logsvc.cli import register  # noqa: E402

register(cli, serve)
