"""Turn expected failures into one sentence on stderr and exit code 1."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from lokit.errors import Error
from lokit.transport.address import AddressError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def friendly(fn: F) -> F:
    """Decorate a command so lokit errors and bad addresses never show a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (Error, AddressError) as e:
            fail(str(e))
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
