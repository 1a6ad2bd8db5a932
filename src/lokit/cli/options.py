"""The flags every `lokit serve NAME` (and a service's own script) takes, and serving with them.

A service's command module (`lokit.logsvc.cli`, `lokit.examples.*.cli`) adds its
own flags on top and calls `serve_service` with a function that builds its
`ServiceDef` inside the running loop.

Besides the listener flags here, each serve-time concern keeps its flags in a
module of its own (`SERVE_GROUPS`): a list `OPTIONS` of click decorators, and
`configure(opts, listeners, service)`, which takes its values out of `opts`, may
adjust the `Listeners`, and returns the runtime `Extension`s it needs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lokit.service import ServiceDef

__all__ = ["SERVE_GROUPS", "common_serve_options", "serve_service"]

# The modules that add flags (and runtime extensions) to every `lokit serve`.
SERVE_GROUPS: tuple[str, ...] = (
    "lokit.cli.serve_security",  # TLS, socket permissions
    "lokit.cli.serve_acl",  # casbin ACLs
    "lokit.cli.serve_resilience",  # rate limits
    "lokit.cli.serve_register",  # registering with discovery (serf)
    "lokit.cli.serve_cores",  # --cpu, --instances (last: with --instances it supervises)
)


def _groups() -> list[ModuleType]:
    return [importlib.import_module(name) for name in SERVE_GROUPS]


class _Size(click.ParamType[int]):
    """A size in bytes: 4096, 64KiB, 8MiB, 1GB."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from lokit.transport.limits import parse_size

        try:
            size = parse_size(
                value, f"--{param.name.replace('_', '-')}" if param and param.name else "size"
            )
        except ValueError as e:
            self.fail(str(e), param, ctx)
        if size < 1:
            self.fail("must be at least 1 byte", param, ctx)
        return size


SIZE = _Size()


def common_serve_options(fn: Callable[..., None]) -> Callable[..., None]:
    """The listener and logging flags every `lokit serve SERVICE` takes, then the groups'."""
    for group in reversed(_groups()):  # decorated first, so listed after the listener flags
        for option in reversed(group.OPTIONS):
            fn = option(fn)
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
                "--no-reflection",
                is_flag=True,
                help="Do not serve gRPC server reflection (what buf curl and grpcurl use "
                "to call a service without its .proto file).",
            ),
            click.option(
                "--no-frames",
                is_flag=True,
                help="Do not serve lokit frames (lokit's own local protocol) beside the "
                "Unix HTTP sockets.",
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
            click.option(
                "--max-body-bytes",
                type=SIZE,
                default="8MiB",
                show_default=True,
                metavar="SIZE",
                help="Refuse HTTP request bodies (and streamed lines) larger than this: 413.",
            ),
            click.option(
                "--max-body-rate",
                type=SIZE,
                default="64MiB",
                show_default=True,
                metavar="SIZE",
                help="Bytes per second at which the HTTP listeners read large bodies "
                "(past their first MiB), all together, so uploads cannot starve other calls.",
            ),
            click.option(
                "--idle-timeout",
                type=click.FloatRange(min=0, min_open=True),
                default=60.0,
                show_default=True,
                metavar="SECONDS",
                help="Close connections without a request (HTTP keep-alive, gRPC) after this.",
            ),
            click.option(
                "--header-timeout",
                type=click.FloatRange(min=0, min_open=True),
                default=10.0,
                show_default=True,
                metavar="SECONDS",
                help="Close connections whose request headers (gRPC: handshake) take longer.",
            ),
            click.option(
                "--max-connections",
                type=click.IntRange(min=0),
                default=0,
                metavar="N",
                help="Connections per listener; more are refused (default 0: a quarter of "
                "the open-file limit, at most 10000).",
            ),
            click.option(
                "--max-streams",
                type=click.IntRange(min=1),
                default=100,
                show_default=True,
                metavar="N",
                help="gRPC calls at once on one connection.",
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
    extra_addrs: tuple[str, ...] = (),  # dependencies' addresses, checked at start
    max_body_bytes: int = 8 << 20,
    idle_timeout: float = 60.0,
    header_timeout: float = 10.0,
    max_connections: int = 0,
    max_streams: int = 100,
    max_body_rate: int = 64 << 20,
    no_reflection: bool = False,
    no_frames: bool = False,
    **groups: Any,
) -> None:
    """Configure logs, check addresses, build the service inside the loop and serve it.

    The limits (`--max-body-bytes` ... `--max-body-rate`) apply to every listener;
    see `lokit.transport.limits`; `no_reflection` turns gRPC server reflection
    off, `no_frames` the frames listeners; `groups` holds the flags of `SERVE_GROUPS`.

    Without `--grpc` and `--http` the service listens on its default sockets
    (`unix:run/<service>.grpc.sock`, `unix:run/<service>.http.sock`, and lokit frames
    on `unix:run/<service>.frames.sock`).
    """
    from lokit.cli.grpc_env import server_defaults

    server_defaults()  # before grpc-core starts (below)
    from lokit.observability.logs import configure_logging
    from lokit.runtime import Extension, Listeners, run
    from lokit.runtime import serve as serve_def
    from lokit.sd import instancer_for
    from lokit.transport.address import default_address, parse
    from lokit.transport.limits import Limits

    configure_logging(log_format, log_level)
    if not grpc_addrs and not http_addrs:
        grpc_addrs = (default_address(service, "grpc"),)
        http_addrs = (default_address(service, "http"),)
    for a in (*grpc_addrs, *http_addrs, *([debug_addr] if debug_addr else [])):
        if not a.strip().startswith("dir:"):  # a registry: serve_cores picks the socket
            parse(a)  # a malformed address fails here, in one sentence
    for a in extra_addrs:  # the addresses of dependencies: one, or many through discovery
        instancer_for(a, "grpc")
    limits = Limits(
        max_body_bytes, idle_timeout, header_timeout, max_connections, max_streams, max_body_rate
    )
    listeners = Listeners(list(grpc_addrs), list(http_addrs), debug_addr, grace, limits)
    listeners.reflection = not no_reflection
    listeners.frames = not no_frames
    extensions: list[Extension] = []
    for group in _groups():
        extensions.extend(group.configure(groups, listeners, service))
    if groups:
        raise TypeError(f"serve_service got unknown options: {', '.join(sorted(groups))}")

    def ready(kind: str, addr: object) -> None:
        click.echo(f"{service}: {kind} listening on {addr}")
        sys.stdout.flush()

    async def main() -> int:
        return await serve_def(build(), listeners, ready, tuple(extensions))

    sys.exit(run(main))
