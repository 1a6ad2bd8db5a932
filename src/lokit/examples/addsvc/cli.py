"""`lokit serve addsvc [--stringsvc ADDR]`: addsvc's own command (its plugin)."""

from __future__ import annotations

from typing import Any

import click

from lokit.cli.client_options import lb_option
from lokit.cli.errors import friendly
from lokit.cli.options import common_serve_options, serve_service
from lokit.cli.plugins import ServicePlugin
from lokit.contract import Contract


@click.command(name="addsvc")
@common_serve_options
@click.option(
    "--stringsvc",
    metavar="ADDR",
    help="Uppercase Concat's result through stringsvc: one address, or every instance "
    "of ADDR,ADDR, dir:PATH, srv:NAME or serf:SERVICE (HTTP on its Unix sockets, "
    "else gRPC).",
)
@lb_option
@friendly
def serve_addsvc(stringsvc: str | None, lb: str, **opts: Any) -> None:
    """Serve addsvc: Sum, Concat, Mult."""
    from lokit.examples.addsvc.definition import addsvc_definition, addsvc_with_stringsvc

    serve_service(
        "addsvc",
        (lambda: addsvc_with_stringsvc(stringsvc, lb=lb)) if stringsvc else addsvc_definition,
        extra_addrs=(stringsvc,) if stringsvc else (),
        **opts,
    )


def _contract() -> Contract[Any]:
    from lokit.examples.addsvc.contract import addsvc_contract

    return addsvc_contract()


plugin = ServicePlugin("addsvc", serve_addsvc, _contract)
