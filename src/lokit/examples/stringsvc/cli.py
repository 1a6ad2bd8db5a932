"""`lokit serve stringsvc`: stringsvc's own command (its plugin)."""

from __future__ import annotations

from typing import Any

import click

from lokit.cli.errors import friendly
from lokit.cli.options import common_serve_options, serve_service
from lokit.cli.plugins import ServicePlugin
from lokit.contract import Contract


@click.command(name="stringsvc")
@common_serve_options
@friendly
def serve_stringsvc(**opts: Any) -> None:
    """Serve stringsvc: Uppercase, Count."""
    from lokit.examples.stringsvc.definition import stringsvc_definition

    serve_service("stringsvc", stringsvc_definition, **opts)


def _contract() -> Contract[Any]:
    from lokit.examples.stringsvc.contract import stringsvc_contract

    return stringsvc_contract()


plugin = ServicePlugin("stringsvc", serve_stringsvc, _contract)
