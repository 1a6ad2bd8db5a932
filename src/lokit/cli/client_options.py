"""Flags every lokit client command takes for reaching many instances: `--lb`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["BALANCERS", "lb_option"]

BALANCERS = ("p2c", "round-robin")


def lb_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--lb p2c|round-robin`: how calls spread over an address's instances."""
    return click.option(
        "--lb",
        type=click.Choice(BALANCERS),
        default="p2c",
        show_default=True,
        help="How calls spread over the instances of a discovery address "
        "(ADDR,ADDR, dir:PATH, srv:NAME, serf:SERVICE).",
    )(fn)
