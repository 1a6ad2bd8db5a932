"""Services that add themselves to the `lokit` command: `lokit serve NAME`, `lokit call NAME`.

The CLI knows no service by name. A package lists its services under the entry
point group `lokit.services` (`log = "lokit.logsvc.cli:plugin"` in pyproject.toml),
each naming a `ServicePlugin`: its serve command, its contract (what `lokit call`
reads), and any commands of its own (the log's `lokit log ...`). A plugin module
imports click and the CLI's option helpers only; the service itself loads when a
command runs, so `lokit --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lokit.contract import Contract

__all__ = ["GROUP", "ServicePlugin", "load"]

GROUP = "lokit.services"


@dataclass(frozen=True)
class ServicePlugin:
    """One service's commands: `serve` becomes `lokit serve <name>`."""

    name: str
    serve: click.Command
    contract: Callable[[], Contract[Any]]
    commands: tuple[click.Command, ...] = ()


def load() -> dict[str, ServicePlugin]:
    """Every installed service plugin, by name."""
    plugins: dict[str, ServicePlugin] = {}
    for ep in entry_points(group=GROUP):
        plugin = ep.load()
        if not isinstance(plugin, ServicePlugin):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a lokit ServicePlugin")
        plugins[plugin.name] = plugin
    return plugins
