"""`lokit serve` flags for casbin ACLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lokit.runtime import Extension, Listeners

OPTIONS: list[Callable[[Any], Any]] = []


def configure(opts: dict[str, Any], listeners: Listeners, service: str) -> list[Extension]:
    """Take this group's flags out of `opts`; adjust `listeners`; the extensions to run."""
    return []
