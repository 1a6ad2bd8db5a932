"""The log's plugin: `lokit serve log` (flags, config file, environment) and `lokit log`.

The `lokit log` client commands are in `commands`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from lokit.cli.errors import fail, friendly
from lokit.cli.options import common_serve_options, serve_service
from lokit.cli.plugins import ServicePlugin
from lokit.logsvc.commands import log_group
from lokit.logsvc.defaults import DEFAULT_DATA, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR

# The common serve options whose click names differ from their config keys.
_RENAMED = {"grpc_addrs": "grpc", "http_addrs": "http", "debug_addr": "debug"}


def _serve_log_options(fn: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option(
                "--data",
                metavar="DIR",
                default=DEFAULT_DATA,
                show_default=True,
                help="Data directory.",
            ),
            click.option(
                "--fsync",
                metavar="always|interval:MS|never",
                default="always",
                show_default=True,
                help="When appends reach the disk: before each ack, every MS ms, or never.",
            ),
            click.option(
                "--segment-max-bytes", metavar="N", help="Roll segments at this size (64MiB)."
            ),
            click.option("--max-record-bytes", metavar="N", help="Refuse larger records (1MiB)."),
            click.option(
                "--retention-bytes", metavar="N", help="Delete the oldest segments above this."
            ),
            click.option(
                "--retention-age",
                metavar="DURATION",
                help="Delete segments older than this (e.g. 7d, 12h).",
            ),
            click.option(
                "--read-cache-bytes",
                metavar="N",
                help="Memory for the newest records of all topics together, served "
                "without reading the disk; the least recently used topics give theirs "
                "up first (64MiB; 0 turns it off).",
            ),
            click.option(
                "--max-topics",
                metavar="N",
                help="Refuse writes that would create more topics than this (429 / "
                "RESOURCE_EXHAUSTED); default: from the open-file limit at start.",
            ),
            click.option(
                "--config",
                "config_file",
                metavar="FILE",
                help="TOML or YAML file with the same keys; flags win.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _serve_log(config_file: str | None, **opts: Any) -> None:
    """Serve the commit log: proglog's log.v1 over gRPC, plus HTTP JSON.

    Without --grpc/--http it listens on unix:run/log.grpc.sock and unix:run/log.http.sock.
    """
    from lokit.logsvc.config import KEYS, ConfigError, merge

    ctx = click.get_current_context()
    given = {
        _RENAMED.get(name, name): value
        for name, value in opts.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }
    flags = {key: value for key, value in given.items() if key in KEYS}
    group_keys = _group_keys()
    try:
        config = merge(flags, config_file, group_keys=group_keys)
    except ConfigError as e:
        fail(str(e))
    grpc, http = config.grpc, config.http
    if not grpc and not http:
        grpc, http = (DEFAULT_GRPC_ADDR,), (DEFAULT_HTTP_ADDR,)
    # The serve flag groups' options: their defaults < the file and environment < flags.
    groups = {name: value for name, value in opts.items() if _RENAMED.get(name, name) not in KEYS}
    groups.update({k: v for k, v in config.groups.items() if k in groups and k not in given})
    _serve(config, grpc, http, groups)


def _group_keys() -> dict[str, Any]:
    """The config keys the serve flag groups take (their `CONFIG_KEYS`, when they have one)."""
    import importlib

    from lokit.cli.options import SERVE_GROUPS

    keys: dict[str, Any] = {}
    for name in SERVE_GROUPS:
        keys.update(getattr(importlib.import_module(name), "CONFIG_KEYS", {}))
    return keys


def _serve(
    config: Any, grpc: tuple[str, ...], http: tuple[str, ...], groups: dict[str, Any]
) -> None:
    """Serve the log through the shared runtime; tailing streams end as shutdown begins."""
    from lokit.logsvc.definition import log_definition

    serve_service(
        "log",
        lambda: log_definition(config, rpc_addr=grpc[0] if grpc else ""),
        grpc,
        http,
        config.debug,
        config.log_format,
        config.log_level,
        config.grace,
        max_body_bytes=config.max_body_bytes,
        idle_timeout=config.idle_timeout,
        header_timeout=config.header_timeout,
        max_connections=config.max_connections,
        max_streams=config.max_streams,
        max_body_rate=config.max_body_rate,
        **groups,
    )


def _contract() -> Any:
    from lokit.logsvc.contract import log_contract

    return log_contract()


plugin = ServicePlugin(
    "log",
    click.command(name="log")(common_serve_options(_serve_log_options(friendly(_serve_log)))),
    _contract,
    commands=(log_group,),
)
