"""The `lokit` command line: serve services, call them, run the local stack.

Services add their own `serve` commands (and any others) through plugins
(`lokit.cli.plugins`); `call` reaches any of them by its contract.
"""

from __future__ import annotations

import asyncio
import sys

import click

from lokit.cli.errors import friendly
from lokit.cli.plugins import load

PLUGINS = load()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lokit")
def cli() -> None:
    """lokit: local-first microservices, the Go kit way."""


@cli.group()
def serve() -> None:
    """Serve a lokit service until SIGTERM or Ctrl-C."""


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("service", type=click.Choice(sorted(PLUGINS)))
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

    A streaming method prints one JSON line per item. Example:
    lokit call addsvc sum 1 2 --grpc unix:run/addsvc.grpc.sock
    """
    from lokit.cli.call import call_method

    call_method(PLUGINS[service].contract(), method, args, grpc_addr, http_addr, timeout)


@cli.command(name="run")
@click.option(
    "--log-format", type=click.Choice(["logfmt", "json"]), default="logfmt", show_default=True
)
@friendly
def run_stack(log_format: str) -> None:
    """Run the local stack (log, stringsvc, addsvc) on Unix sockets under ./run/ until Ctrl-C."""
    from lokit.cli.stack import run_stack as run_local_stack

    sys.exit(asyncio.run(run_local_stack(log_format)))


for _plugin in PLUGINS.values():
    serve.add_command(_plugin.serve, name=_plugin.name)
    for _command in _plugin.commands:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="lokit")
