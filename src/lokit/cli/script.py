"""`lokit.main`: a service's own script gets the flags of `lokit serve`.

if __name__ == "__main__":
    lokit.main(lokit.define("greeter", Greeter()))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lokit.cli.errors import friendly
from lokit.cli.options import common_serve_options, serve_service
from lokit.service import ServiceDef

__all__ = ["main"]


def main(service: ServiceDef | Callable[[], ServiceDef], name: str | None = None) -> None:
    """Serve `service` with the flags of `lokit serve` (--grpc, --http, --debug, --log-*, --grace).

    Give the `ServiceDef`, or a function that builds it inside the running loop
    (for a service that must create loop-bound objects; then `name` names it in
    logs and default socket paths, else "service").
    """
    if isinstance(service, ServiceDef):
        served = service
        name = name or served.name

        def build() -> ServiceDef:
            return served

    else:
        build = service
    label = name or "service"

    @click.command(help=f"Serve {label} until SIGTERM or Ctrl-C.")
    @common_serve_options
    @friendly
    def command(**opts: Any) -> None:
        serve_service(label, build, **opts)

    command()
